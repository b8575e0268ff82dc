import CZstd
import Testing
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeTestSupport
@testable import HeapscopeReports

/// Live mode's model and screen: the stream fed in pieces gives the figures
/// of the whole capture's replay; sites and the layout.
@Suite struct LiveScreenTests {
    /// Two threads allocating and freeing in turn, with snapshots; `checkpoint`
    /// is the stream up to the middle, ending between records.
    func busy() -> (whole: [UInt8], checkpoint: [UInt8]) {
        var writer = CaptureWriter()
        let load = writer.stack([("main", "app.py", 1), ("load", "app.py", 10)])
        let parse = writer.stack([("main", "app.py", 2), ("parse", "app.py", 20)])
        var checkpoint: [UInt8] = []
        for round in 0..<400 {
            writer.thread(ThreadNumber(1 + round % 2))
            if round == 1 { writer.threadInfo(2, osThreadID: 77, name: "worker") }
            let base = UInt64(0x10000 + round * 0x100)
            writer.alloc(.pymemObj, address: base, size: UInt64(64 + round), frame: round % 3 == 0 ? load : parse)
            writer.alloc(.malloc, address: base + 0x80, size: 4096, frame: load)
            if round % 2 == 1 { writer.free(.malloc, address: base + 0x80 - 0x100) }
            if round % 50 == 0 { writer.snapshot(timeMicros: UInt64(round) * 1000, rssBytes: 1 << 24) }
            if round == 200 { checkpoint = writer.bytes }
        }
        writer.end(timeMicros: 400_000)
        return (writer.bytes, checkpoint)
    }

    func compressed(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: ZSTD_compressBound(bytes.count))
        let n = out.withUnsafeMutableBytes { o in bytes.withUnsafeBytes { ZSTD_compress(o.baseAddress, o.count, $0.baseAddress, $0.count, 3) } }
        return Array(out.prefix(n))
    }

    /// What the whole replay says, in the live view's terms.
    func expected(_ bytes: [UInt8]) throws -> (heap: UInt64, peak: UInt64, allocated: Totals, live: [LiveView.LiveKey: Totals]) {
        let analysis = try CaptureAnalysis(reader: CaptureReader(bytes: bytes))
        var live: [LiveView.LiveKey: Totals] = [:]
        for block in analysis.liveAtEnd {
            let key = LiveView.LiveKey(frame: block.frame, thread: block.thread)
            live[key] = live[key, default: .zero] + Totals(count: 1, bytes: block.size)
        }
        return (analysis.liveAtEndTotals.bytes, analysis.peak.bytes, analysis.allocated, live)
    }

    func feed(_ bytes: [UInt8], pieces: [Int]) throws -> LiveView? {
        var feed = LiveFeed()
        var offset = 0
        var piece = 0
        while offset < bytes.count {
            let count = min(pieces[piece % pieces.count], bytes.count - offset)
            try feed.append(Array(bytes[offset..<offset + count]))
            offset += count
            piece += 1
        }
        return feed.view
    }

    @Test(arguments: [[1], [7, 1, 300], [4096], [1 << 20]])
    func piecesGiveTheWholeReplay(pieces: [Int]) throws {
        let (whole, checkpoint) = busy()
        // A zstd skippable frame after the capture's (a trailer, say) changes nothing.
        let skippable: [UInt8] = [0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]
        for stream in [whole, compressed(whole), compressed(whole) + skippable] {
            let view = try #require(try feed(stream, pieces: pieces))
            let want = try expected(whole)
            #expect(view.heapBytes == want.heap && view.peakBytes == want.peak && view.allocated == want.allocated)
            #expect(view.live == want.live)
            #expect(view.timeMicros == 400_000 && view.samples.count == 8)
        }
        // Mid-stream: the figures of the capture cut there.
        let view = try #require(try feed(checkpoint, pieces: pieces))
        let want = try expected(checkpoint)
        #expect(view.heapBytes == want.heap && view.peakBytes == want.peak && view.live == want.live)
    }

    @Test func noViewBeforeTheHeader() throws {
        var feed = LiveFeed()
        try feed.append(Array(busy().whole.prefix(20)))
        #expect(feed.view == nil)
    }

    /// main -> load (100 B, thread 1), main -> parse (50 B, thread 1), a
    /// frozen importlib frame over load (30 B, thread 2), one all frozen (8 B).
    func sample() throws -> LiveView {
        var writer = CaptureWriter()
        let load = writer.stack([("main", "app.py", 1), ("load", "app.py", 10)])
        let parse = writer.stack([("main", "app.py", 2), ("parse", "app.py", 20)])
        let imported = writer.stack([("main", "app.py", 1), ("load", "app.py", 10),
                                     ("_call_with_frames_removed", "<frozen importlib._bootstrap>", 241)])
        let frozen = writer.stack([("_find_and_load", "<frozen importlib._bootstrap>", 1176)])
        writer.thread(1)
        writer.alloc(.pymemObj, address: 0x1000, size: 100, frame: load)
        writer.alloc(.pymemObj, address: 0x2000, size: 50, frame: parse)
        writer.thread(2)
        writer.threadInfo(2, osThreadID: 77, name: "worker")
        writer.alloc(.malloc, address: 0x3000, size: 30, frame: imported)
        writer.alloc(.malloc, address: 0x4000, size: 8, frame: frozen)
        writer.snapshot(timeMicros: 250_000, rssBytes: 1 << 24)
        var feed = LiveFeed()
        try feed.append(writer.bytes)
        return try #require(feed.view)
    }

    func row(_ rows: [LiveSiteRow], _ function: String) -> LiveSiteRow? { rows.first { $0.location.function == function } }

    @Test func sitesOwnTotalCount() throws {
        let view = try sample()
        let rows = LiveScreen.sites(view, thread: nil, hideInternal: false, sort: .own)
        #expect(rows.map(\.location.function).prefix(2) == ["load", "parse"])
        #expect(row(rows, "load")?.ownBytes == 100 && row(rows, "load")?.totalBytes == 130 && row(rows, "load")?.count == 1)
        // main at line 1 (over load) and at line 2 (over parse) are two sites.
        #expect(rows.filter { $0.location.function == "main" }.map(\.totalBytes).sorted() == [50, 130])
        let byTotal = LiveScreen.sites(view, thread: nil, hideInternal: false, sort: .total)
        #expect(byTotal.map(\.totalBytes) == byTotal.map(\.totalBytes).sorted(by: >))
        #expect(byTotal.first?.totalBytes == 130)
    }

    @Test func threadAndHiddenFrames() throws {
        let view = try sample()
        let worker = LiveScreen.sites(view, thread: 2, hideInternal: false, sort: .own)
        #expect(Set(worker.filter { $0.ownBytes > 0 }.map(\.location.function)) == ["_call_with_frames_removed", "_find_and_load"])
        let hidden = LiveScreen.sites(view, thread: 2, hideInternal: true, sort: .own)
        // The frozen frame's 30 B go to load, its caller; the all-frozen 8 B to one row.
        #expect(row(hidden, "load")?.ownBytes == 30)
        #expect(row(hidden, "<import system and interpreter>")?.ownBytes == 8)
        #expect(!hidden.contains { $0.location.file.hasPrefix("<frozen") })
        #expect(LiveScreen.threadChoices(view) == [nil, 1, 2])
    }

    @Test(arguments: [(80, 24), (100, 30), (200, 60)])
    func fitsTheTerminal(width: Int, height: Int) throws {
        var state = LiveScreenState()
        state.status = "running"
        state.note = "program output: app.out"
        let lines = LiveScreen.render(try sample(), state, width: width, height: height)
        #expect(lines.count == height)
        #expect(lines.allSatisfy { $0.count <= width })
        #expect(lines[0].contains("running") && lines[1].hasPrefix("heap 188 B  peak 188 B  RSS 16.00 MiB"))
        #expect(lines.last == state.help || width < state.help.count)
        #expect(state.help.hasSuffix("  q quit"))
        #expect(lines.contains { $0.contains("load") && $0.contains("app.py:10") })
        #expect(lines[height - 2].hasPrefix("program output: app.out"))
        #expect(LiveScreen.tableHeight(height: 24) == 13)
    }
}
