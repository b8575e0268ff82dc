import Testing
import HeapscopeFormat
import HeapscopeTestSupport

/// Checks LineTable against CPython's own answers (Fixtures/linetables.json,
/// made by Fixtures/make_linetables.py with CPython 3.10, 3.11, 3.12 and 3.13).
@Suite struct LineTableTests {
    struct Case {
        var python: String
        var qualname: String
        var firstLine: Int
        var table: [UInt8]
        var lines: [Int?]
    }

    static func loadCases() throws -> [Case] {
        let path = String(#filePath.dropLast("LineTableTests.swift".count)) + "Fixtures/linetables.json"
        let json = try JSONValue.parse(try readFile(path))
        return try #require(json.arrayValue).map { entry in
            let hex = Array(entry["linetable"]?.stringValue ?? "")
            let table = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(hex[$0...$0 + 1]), radix: 16)! }
            return Case(python: entry["python"]?.stringValue ?? "?",
                        qualname: entry["qualname"]?.stringValue ?? "?",
                        firstLine: Int(entry["first_line"]?.intValue ?? 0),
                        table: table,
                        lines: (entry["lines"]?.arrayValue ?? []).map { $0.intValue.map { Int($0) } })
        }
    }

    @Test func matchesCPythonAtEveryOffset() throws {
        let cases = try Self.loadCases()
        #expect(Set(cases.map(\.python)) == ["3.10", "3.11", "3.12", "3.13"])
        var checked = 0
        for testCase in cases {
            let version = testCase.python.split(separator: ".").compactMap { Int($0) }
            let format = try #require(LineTable.Format(pythonMajor: version[0], minor: version[1]))
            let table = LineTable(format, table: testCase.table, firstLine: testCase.firstLine)
            for (offset, expected) in testCase.lines.enumerated() {
                #expect(table.line(atOffset: offset) == expected,
                        "\(testCase.python) \(testCase.qualname) offset \(offset)")
                checked += 1
            }
            #expect(table.line(atOffset: testCase.lines.count) == nil)
        }
        #expect(checked > 1000)
    }

    @Test func damagedTablesDoNotTrap() {
        var generator = SplitMix(seed: 7)
        for _ in 0..<2000 {
            let bytes = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            for format in [LineTable.Format.locationTable, .lineTable310] {
                let table = LineTable(format, table: bytes, firstLine: Int(generator.next() % 1000))
                for offset in -1..<80 { _ = table.line(atOffset: offset) }
            }
        }
    }

    @Test func writerTablesRoundTrip() {
        let lines: [Int?] = [10, 10, 11, nil, 400, 3, 3, nil, 12]
        let table = LineTable(locationTable: CaptureWriter.lineTable(firstLine: 10, lines: lines), firstLine: 10)
        #expect((0..<lines.count).map { table.line(atOffset: $0) } == lines)
    }
}
