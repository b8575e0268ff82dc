import Testing
import HeapscopeReports

@Suite struct FormattingTests {
    @Test func sizes() {
        #expect(Formatting.bytes(0) == "0 B")
        #expect(Formatting.bytes(1023) == "1023 B")
        #expect(Formatting.bytes(1024) == "1.00 KiB")
        #expect(Formatting.bytes(1536) == "1.50 KiB")
        #expect(Formatting.bytes(5 * 1024 * 1024 + 1024 * 1024 / 4) == "5.25 MiB")
        #expect(Formatting.bytes(3 << 30) == "3.00 GiB")
    }

    @Test func numbers() {
        #expect(Formatting.count(0) == "0")
        #expect(Formatting.count(999) == "999")
        #expect(Formatting.count(1000) == "1,000")
        #expect(Formatting.count(1234567) == "1,234,567")
        #expect(Formatting.fixed(2.005, decimals: 1) == "2.0")
        #expect(Formatting.fixed(0.5, decimals: 0) == "1")
        #expect(Formatting.percent(1, of: 3) == "33.33%")
        #expect(Formatting.seconds(micros: 1_500_000) == "1.500 s")
    }
}
