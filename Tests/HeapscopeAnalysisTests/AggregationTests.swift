import Testing
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeTestSupport

/// Aggregated captures (docs/FORMAT.md, "Aggregated captures"): the
/// aggregation of an event capture gives every figure of the analysis the
/// events give (the records' round trip: HeapscopeFormatTests).
@Suite struct AggregationTests {
    /// Two threads, two stacks, sizes in several buckets, a realloc, an mmap partly unmapped.
    func events(end: Bool = true) -> [UInt8] {
        var writer = CaptureWriter()
        writer.threadInfo(1, osThreadID: 11, name: "MainThread")
        writer.thread(1)
        let load = writer.stack([("main", "app.py", 1), ("load", "app.py", 10)])
        let parse = writer.stack([("main", "app.py", 2), ("parse", "app.py", 20)])
        writer.alloc(.pymemObj, address: 0x1000, size: 100, frame: load)
        writer.alloc(.pymemObj, address: 0x2000, size: 3000, frame: parse)
        writer.snapshot(timeMicros: 1_000, rssBytes: 1 << 20)
        writer.alloc(.mmap, address: 0x10_0000, size: 1 << 16, frame: load)
        writer.thread(2)
        writer.alloc(.malloc, address: 0x3000, size: 50_000, frame: parse)            // peak
        writer.free(.malloc, address: 0x3000)
        writer.munmap(address: 0x10_0000, length: 1 << 12)
        writer.thread(1)
        writer.free(.pymemObj, address: 0x1000)
        writer.alloc(.realloc, address: 0x5000, size: 7, frame: load)
        writer.snapshot(timeMicros: 2_000, rssBytes: 2 << 20)
        if end { writer.end(timeMicros: 3_000) }
        return writer.bytes
    }

    func aggregated(_ bytes: [UInt8], state: AggregateTotals.State) throws -> [UInt8] {
        var reader = try CaptureReader(bytes: bytes)
        var aggregation = Aggregation(header: reader.header)
        try Replay.run(&reader, into: &aggregation)
        return aggregation.capture(state: state)
    }

    func sorted(_ sites: [SiteTotals]) -> [String] {
        sites.map { "\($0.frame) \($0.thread) \($0.kind) \($0.totals.count) \($0.totals.bytes)" }.sorted()
    }

    @Test func sameFiguresAsTheEvents() throws {
        let full = try CaptureAnalysis(reader: CaptureReader(bytes: events()))
        let bytes = try aggregated(events(), state: .ended)
        let agg = try CaptureAnalysis(reader: CaptureReader(bytes: bytes))
        #expect(agg.header.version == 2 && agg.header.flags.contains(.aggregated) && !agg.isTruncated)
        #expect(agg.allocated == full.allocated && agg.peak.bytes == full.peak.bytes)
        #expect(agg.peak.allocationSerial == full.peak.allocationSerial && agg.peak.timeMicros == full.peak.timeMicros)
        #expect(agg.liveAtEndTotals == full.liveAtEndTotals && agg.byAllocator == full.byAllocator)
        #expect(agg.histogram == full.histogram && agg.threads == full.threads)
        #expect(agg.memoryOverTime == full.memoryOverTime && agg.endTimeMicros == full.endTimeMicros)
        #expect(agg.allocatedByStack == full.allocatedByStack && agg.liveAtEndByStack == full.liveAtEndByStack)
        #expect(agg.peak.live == full.peak.live)
        // The leak summary counts blocks, not sites.
        #expect(LeakSummary(analysis: agg, siteFloor: 0).total == LeakSummary(analysis: full, siteFloor: 0).total)
        for view in [ReportView.peak, .leaks, .allocated] {
            let a = try ViewAnalysis(reader: CaptureReader(bytes: bytes), view: view, sizes: true)
            let f = try ViewAnalysis(reader: CaptureReader(bytes: events()), view: view, sizes: true)
            #expect(sorted(a.sites) == sorted(f.sites) && a.total == f.total)
            #expect(a.sites.map(\.sizes).count == f.sites.map(\.sizes).count)
        }
    }

    @Test func aProgramCutShortOrStillRunning() throws {
        for state in [AggregateTotals.State.checkpoint, .cutShort] {
            let bytes = try aggregated(events(end: false), state: state)
            var reader = try CaptureReader(bytes: bytes)
            while try reader.next() != nil {}
            #expect(reader.isTruncated && reader.aggregateState == state)
        }
    }

    @Test func reportsThatNeedEventsRefuse() throws {
        let bytes = try aggregated(events(), state: .ended)
        #expect(throws: CaptureError.needsEvents("--temporary-allocations")) {
            try ViewAnalysis(reader: CaptureReader(bytes: bytes), view: .temporary(threshold: 0))
        }
        #expect(throws: CaptureError.needsEvents("--temporal")) {
            try ViewAnalysis(reader: CaptureReader(bytes: bytes), view: .peak, temporal: true)
        }
        #expect(throws: CaptureError.self) { try PymallocAnalysis(reader: CaptureReader(bytes: bytes)) }
    }
}
