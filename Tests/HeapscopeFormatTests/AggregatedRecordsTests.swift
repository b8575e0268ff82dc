import Testing
import HeapscopeFormat
import HeapscopeTestSupport

/// The records of aggregated captures round-trip through the test writer
/// (the one encoder) and the reader.
@Suite struct AggregatedRecordsTests {
    @Test func recordsRoundTrip() throws {
        var writer = CaptureWriter(flags: [.pythonAllocators, .aggregated], version: CaptureFile.aggregatedVersion)
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        let site = AggregatedSite(thread: 1, kind: .pymemObj, frame: frame, sizeBucket: 7,
                                  atPeak: BlockFigures(count: 2, bytes: 200), live: BlockFigures(count: 1, bytes: 100),
                                  allocated: BlockFigures(count: 5, bytes: 500))
        let totals = AggregateTotals(state: .ended, peakBytes: 200, peakSerial: 3, peakTimeMicros: 0,
                                     allocated: BlockFigures(count: 5, bytes: 500), freed: BlockFigures(count: 4, bytes: 400),
                                     live: BlockFigures(count: 1, bytes: 100),
                                     byAllocator: AllocatorKind.allCases.map { BlockFigures(count: UInt64($0.rawValue), bytes: 1) })
        writer.heapSample(timeMicros: 10, rssBytes: 4096, heapBytes: 200)
        writer.site(site)
        writer.aggregateTotals(totals)
        writer.end(timeMicros: 20)
        let (records, reader) = try readAll(writer.bytes)
        #expect(records.contains(.site(site)) && records.contains(.aggregateTotals(totals)))
        #expect(records.contains(.heapSample(timeMicros: 10, rssBytes: 4096, heapBytes: 200)))
        #expect(!reader.isTruncated)
        // The same records in an event capture are corrupt: only an aggregated one has them.
        var plain = CaptureWriter()
        plain.site(site)
        #expect(throws: CaptureError.self) { try readAll(plain.bytes) }
    }
}
