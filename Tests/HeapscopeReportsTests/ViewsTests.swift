import Testing
import HeapscopeAnalysis
import HeapscopeFormat
@testable import HeapscopeReports
import HeapscopeTestSupport

func view(_ writer: CaptureWriter, _ view: ReportView, temporal: Bool = false) throws -> ViewAnalysis {
    try ViewAnalysis(reader: CaptureReader(bytes: writer.bytes), view: view, temporal: temporal)
}

func bytes(_ analysis: ViewAnalysis, _ frame: FrameID) -> UInt64 { analysis.byStack[frame].bytes }

@Suite struct ViewsTests {
    /// Two stacks on two threads; a peak in the middle, a leak at the end.
    func sample() -> (CaptureWriter, load: FrameID, parse: FrameID) {
        var writer = CaptureWriter()
        writer.thread(1)
        let load = writer.stack([("main", "app.py", 1), ("load", "app.py", 10)])
        let parse = writer.stack([("main", "app.py", 2), ("parse", "app.py", 20)])
        writer.alloc(.pymemObj, address: 0x1000, size: 100, frame: load)
        writer.snapshot(timeMicros: 10_000, rssBytes: 1 << 20)
        writer.thread(2)
        writer.threadInfo(2, osThreadID: 77, name: "worker")
        writer.alloc(.malloc, address: 0x2000, size: 1000, frame: parse)    // peak 1100
        writer.snapshot(timeMicros: 20_000, rssBytes: 1 << 21)
        writer.free(.malloc, address: 0x2000)
        writer.thread(1)
        writer.alloc(.pymemObj, address: 0x3000, size: 50, frame: parse)
        writer.end(timeMicros: 30_000)
        return (writer, load, parse)
    }

    @Test func peakKeepsThreadAndAllocator() throws {
        let (writer, load, parse) = sample()
        let analysis = try view(writer, .peak)
        #expect(analysis.peakBytes == 1100)
        #expect(analysis.total == Totals(count: 2, bytes: 1100))
        #expect(bytes(analysis, load) == 100)
        #expect(bytes(analysis, parse) == 1000)
        let parseSite = analysis.sites.first { $0.frame == parse }!
        #expect(parseSite.thread == 2 && parseSite.kind == .malloc)
    }

    @Test func leaksAreWhatIsLiveAtTheEnd() throws {
        let (writer, load, parse) = sample()
        let analysis = try view(writer, .leaks)
        #expect(analysis.total == Totals(count: 2, bytes: 150))
        #expect(bytes(analysis, load) == 100)
        #expect(bytes(analysis, parse) == 50)
    }

    @Test func sizeHistogramsPerSite() throws {
        let (writer, load, parse) = sample()
        func sizes(_ analysis: ViewAnalysis, _ frame: FrameID) -> [Int] {
            analysis.sites.filter { $0.frame == frame }.reduce(SparseSizeHistogram()) { $0 + $1.sizes }.buckets.flatMap { [$0.bucket, $0.count] }
        }
        // Not asked for: empty.
        #expect(sizes(try view(writer, .peak), parse).isEmpty)
        func replay(_ view: ReportView) throws -> ViewAnalysis {
            try ViewAnalysis(reader: CaptureReader(bytes: writer.bytes), view: view, sizes: true)
        }
        // Peak: 100 bytes (bucket 7: 64...127) at load, 1000 (bucket 10), freed after the peak, at parse.
        let peak = try replay(.peak)
        #expect(sizes(peak, load) == [7, 1] && sizes(peak, parse) == [10, 1])
        // Leaks: parse's 50 bytes (bucket 6) only.
        #expect(sizes(try replay(.leaks), parse) == [6, 1])
        // Allocated: both of parse's, smallest first.
        #expect(sizes(try replay(.allocated), parse) == [6, 1, 10, 1])
        #expect(SizeHistogram.range(ofBucket: 10) == 512...1023)
    }

    @Test func temporaryThreshold() throws {
        var writer = CaptureWriter()
        writer.thread(1)
        let a = writer.stack([("a", "t.py", 1)])
        let b = writer.stack([("b", "t.py", 2)])
        writer.alloc(.malloc, address: 0x10, size: 8, frame: a)
        writer.free(.malloc, address: 0x10)                 // 0 others in between
        writer.alloc(.malloc, address: 0x20, size: 16, frame: b)
        writer.alloc(.malloc, address: 0x30, size: 1, frame: a)
        writer.free(.malloc, address: 0x20)                 // 1 other in between
        writer.alloc(.malloc, address: 0x40, size: 32, frame: b)
        writer.alloc(.malloc, address: 0x50, size: 1, frame: a)
        writer.alloc(.malloc, address: 0x60, size: 1, frame: a)
        writer.free(.malloc, address: 0x40)                 // 2 others in between
        // freed on another thread: never temporary
        writer.alloc(.malloc, address: 0x70, size: 64, frame: b)
        writer.thread(2)
        writer.free(.malloc, address: 0x70)
        writer.end(timeMicros: 1)
        let zero = try view(writer, .temporary(threshold: 0))
        #expect(zero.total == Totals(count: 1, bytes: 8))
        let one = try view(writer, .temporary(threshold: 1))
        #expect(one.total == Totals(count: 2, bytes: 24))
        let two = try view(writer, .temporary(threshold: 2))
        #expect(two.total == Totals(count: 3, bytes: 56))
        #expect(bytes(two, b) == 48)
    }

    @Test func temporalBuckets() throws {
        var writer = CaptureWriter()
        writer.thread(1)
        let early = writer.stack([("early", "t.py", 1)])
        let late = writer.stack([("late", "t.py", 2)])
        writer.alloc(.malloc, address: 0x10, size: 10, frame: early)    // bucket 0, freed in 2
        writer.alloc(.malloc, address: 0x20, size: 5, frame: early)     // bucket 0, freed in 0: left out
        writer.free(.malloc, address: 0x20)
        writer.snapshot(timeMicros: 100, rssBytes: 1)
        writer.alloc(.malloc, address: 0x30, size: 20, frame: late)     // bucket 1, never freed
        writer.snapshot(timeMicros: 200, rssBytes: 1)
        writer.free(.malloc, address: 0x10)
        writer.end(timeMicros: 300)
        let analysis = try view(writer, .peak, temporal: true)
        let temporal = try #require(analysis.temporal)
        #expect(temporal.bucketEndMicros == [100, 200, 300])
        let entries = temporal.entries.sorted { $0.allocBucket < $1.allocBucket }
        #expect(entries.count == 2)
        #expect(entries[0].frame == early && entries[0].allocBucket == 0 && entries[0].freeBucket == 2)
        #expect(entries[0].totals == Totals(count: 1, bytes: 10))
        #expect(entries[1].frame == late && entries[1].allocBucket == 1 && entries[1].freeBucket == TemporalAggregate.never)
    }

    @Test func temporalStaysBounded() throws {
        var writer = CaptureWriter()
        writer.thread(1)
        let frame = writer.stack([("f", "t.py", 1)])
        for step in 0..<2000 {
            writer.alloc(.malloc, address: UInt64(0x1000 + step * 16), size: 1, frame: frame)
            writer.snapshot(timeMicros: UInt64(step * 10), rssBytes: 1)
        }
        writer.end(timeMicros: 20_000)
        let temporal = try #require(try view(writer, .leaks, temporal: true).temporal)
        #expect(temporal.bucketEndMicros.count <= 240)
        #expect(temporal.entries.reduce(0) { $0 + $1.totals.count } == 2000)
        #expect(temporal.bucketEndMicros == temporal.bucketEndMicros.sorted())
    }
}

@Suite struct ReportsTests {
    func context(_ writer: CaptureWriter, _ options: ReportOptions = ReportOptions()) throws -> ReportContext {
        ReportContext(capturePath: "test.hsc", options: options,
                      analysis: try view(writer, options.view, temporal: options.temporal))
    }

    func twoStacks() -> CaptureWriter {
        var writer = CaptureWriter()
        writer.thread(1)
        let load = writer.stack([("main", "app.py", 1), ("load", "app.py", 10)])
        let parse = writer.stack([("main", "app.py", 2), ("parse;x", "app.py", 20)])
        writer.alloc(.pymemObj, address: 0x1000, size: 300, frame: load)
        writer.alloc(.pymemObj, address: 0x2000, size: 100, frame: parse)
        writer.end(timeMicros: 1000)
        return writer
    }

    @Test func stackTreeSumsUp() throws {
        let report = FlameGraphReport(context: try context(twoStacks()))
        let totals = report.tree.totals()
        #expect(totals[0] == Totals(count: 2, bytes: 400))
        let names = (0..<report.tree.count).map { report.tree.location(ofNode: $0).function }
        #expect(names.filter { $0 == "main" }.count == 2)  // main at two lines
        let inverted = FlameGraphReport(context: try context(twoStacks(), ReportOptions(inverted: true)))
        let children = inverted.tree.children(totals: inverted.tree.totals())
        #expect(children[0].map { inverted.tree.location(ofNode: Int($0)).function } == ["load", "parse;x"])
    }

    @Test func htmlIsSelfContained() throws {
        let html = String(decoding: FlameGraphReport(context: try context(twoStacks())).html(), as: UTF8.self)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("<script src"))
        #expect(!html.contains("<link"))
        #expect(html.contains("\"fn\":[\"all\""))
        let table = String(decoding: TableReport(context: try context(twoStacks())).html(), as: UTF8.self)
        #expect(table.contains("id=\"rows\""))
    }

    @Test func jsonEscapesForScriptElements() {
        var json = ReportJSONWriter()
        json.string("</script>\"\\\n\u{1}é")
        #expect(String(decoding: json.bytes, as: UTF8.self) == "\"\\u003c/script\\u003e\\\"\\\\\\n\\u0001é\"")
        var numbers = ReportJSONWriter()
        numbers.unsignedArray([0, 9, 10, 1234567890123] as [UInt64])
        numbers.int(-42)
        #expect(String(decoding: numbers.bytes, as: UTF8.self) == "[0,9,10,1234567890123]-42")
    }

    @Test func collapsedAndCSV() throws {
        let transform = TransformReport(context: try context(twoStacks()))
        let folded = String(decoding: transform.output(.collapsed), as: UTF8.self)
        #expect(folded == "main (app.py:1);load (app.py:10) 300\nmain (app.py:2);parse:x (app.py:20) 100\n")
        let csv = String(decoding: transform.output(.csv), as: UTF8.self).split(separator: "\n")
        #expect(csv[0] == "allocator,num_allocations,size,thread,tid,thread_name,stack_trace")
        #expect(csv[1] == "pymem_obj,1,300,1,0,,load;app.py;10|main;app.py;1")
    }

    @Test func gzipFraming() {
        let data = [UInt8](repeating: 7, count: 70_000) + Array("hello".utf8)
        let gz = Gzip.stored(data)
        #expect(gz.prefix(3) == [0x1F, 0x8B, 0x08])
        #expect(Gzip.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        // two stored blocks: 65535 + the rest
        #expect(gz.count == 10 + 5 + 65_535 + 5 + (data.count - 65_535) + 8)
    }

    @Test func treeText() throws {
        let text = TreeReport(context: try context(twoStacks()), biggest: 1).text()
        #expect(text.contains("test.hsc"))
        #expect(text.contains("└── 300 B (75.00%), 1 allocation  main  app.py:1"))
        #expect(!text.contains("parse"))
    }

    @Test func progressLine() {
        let line = ProgressBar.line(label: "Reading x.hsc", done: 50, total: 100, elapsed: 1, width: 80)
        #expect(line.contains("50%") && line.contains("s left") && line.count <= 80)
    }

    @Test func leaksWarning() throws {
        var writer = CaptureWriter(flags: [])
        writer.thread(1)
        writer.end(timeMicros: 1)
        let options = ReportOptions(view: .leaks)
        let context = ReportContext(capturePath: "x.hsc", options: options, analysis: try view(writer, .leaks))
        #expect(context.warnings.contains { $0.contains("pymalloc") })
    }
}
