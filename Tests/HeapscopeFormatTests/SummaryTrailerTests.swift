import Testing
import HeapscopeFormat

/// The summary trailer as docs/FORMAT.md lays it out: version 2, written now,
/// and version 1, which older captures end with.
@Suite struct SummaryTrailerTests {
    private func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    @Test func versionTwoIsLaidOutAsDocumented() {
        let trailer = SummaryTrailer(allocations: 7, allocatedBytes: 1_000, peakBytes: 600, mostBlocksLive: 5)
        let expected = littleEndian(UInt32(0x184D_2A5E)) + littleEndian(UInt32(40)) + Array("HSCS".utf8)
            + littleEndian(UInt32(2)) + littleEndian(UInt64(7)) + littleEndian(UInt64(1_000))
            + littleEndian(UInt64(600)) + littleEndian(UInt64(5))
        #expect(trailer.bytes == expected)
        #expect(SummaryTrailer.size == 48)
        // After a stream's last bytes, as in a file.
        #expect(SummaryTrailer(trailing: [0x07, 0x00] + trailer.bytes) == trailer)
    }

    @Test func versionOneReadsWithNoBlockCount() {
        let old = littleEndian(UInt32(0x184D_2A5E)) + littleEndian(UInt32(32)) + Array("HSCS".utf8)
            + littleEndian(UInt32(1)) + littleEndian(UInt64(7)) + littleEndian(UInt64(1_000)) + littleEndian(UInt64(600))
        let stream = [UInt8](repeating: 0xAB, count: 20) + old
        #expect(SummaryTrailer(trailing: stream)
                == SummaryTrailer(allocations: 7, allocatedBytes: 1_000, peakBytes: 600, mostBlocksLive: 0))
    }

    @Test func otherEndingsHaveNone() {
        let trailer = SummaryTrailer(allocations: 7, allocatedBytes: 1_000, peakBytes: 600, mostBlocksLive: 5).bytes
        var wrongVersion = trailer
        wrongVersion[12] = 3
        #expect(SummaryTrailer(trailing: wrongVersion) == nil)
        #expect(SummaryTrailer(trailing: trailer.dropLast()) == nil)
        #expect(SummaryTrailer(trailing: [UInt8](repeating: 0, count: 100)) == nil)
    }
}
