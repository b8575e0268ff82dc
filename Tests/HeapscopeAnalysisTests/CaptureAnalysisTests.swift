import Testing
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeTestSupport

func analyze(_ writer: CaptureWriter) throws -> CaptureAnalysis {
    try CaptureAnalysis(reader: CaptureReader(bytes: writer.bytes))
}

/// Bytes live at the peak whose innermost frame is `frame`.
func liveAtPeak(_ analysis: CaptureAnalysis, _ frame: FrameID) -> Totals {
    analysis.peak.live[frame]
}

@Suite struct CaptureAnalysisTests {
    @Test func totalsAndPeak() throws {
        var writer = CaptureWriter()
        writer.thread(1)
        let load = writer.stack([("main", "app.py", 1), ("load", "app.py", 10)])
        let parse = writer.stack([("main", "app.py", 2), ("parse", "app.py", 20)])
        writer.alloc(.pymemObj, address: 0x1000, size: 100, frame: load)
        writer.alloc(.pymemObj, address: 0x2000, size: 200, frame: parse)
        writer.free(.pymemObj, address: 0x1000)                            // live 200
        writer.alloc(.malloc, address: 0x3000, size: 1000, frame: load)    // live 1200: peak
        writer.free(.malloc, address: 0x3000)                              // live 200
        writer.alloc(.pymemMem, address: 0x4000, size: 500, frame: parse)  // live 700
        writer.free(.pymemObj, address: 0x9999)                            // unknown: ignored
        writer.end(timeMicros: 5_000_000)
        let analysis = try analyze(writer)

        #expect(analysis.allocated == Totals(count: 4, bytes: 1800))
        #expect(analysis.peak.bytes == 1200)
        #expect(analysis.peak.allocationSerial == 3)
        #expect(liveAtPeak(analysis, load) == Totals(count: 1, bytes: 1000))
        #expect(liveAtPeak(analysis, parse) == Totals(count: 1, bytes: 200))
        #expect(analysis.peak.live.total == Totals(count: 2, bytes: 1200))
        #expect(analysis.liveAtEndTotals == Totals(count: 2, bytes: 700))
        #expect(analysis.liveAtEnd.map(\.address) == [0x2000, 0x4000])
        #expect(analysis.byAllocator == [.pymemObj: Totals(count: 2, bytes: 300), .malloc: Totals(count: 1, bytes: 1000),
                                         .pymemMem: Totals(count: 1, bytes: 500)])
        #expect(analysis.durationMicros == 5_000_000)
        #expect(!analysis.isTruncated)
    }

    /// realloc is a FREE of the old block then an ALLOC of the new one.
    @Test func reallocMovesTheBlock() throws {
        var writer = CaptureWriter()
        writer.alloc(.malloc, address: 0x1000, size: 100, frame: 0)
        writer.free(.realloc, address: 0x1000)
        writer.alloc(.realloc, address: 0x2000, size: 300, frame: 0)   // live 300
        writer.free(.realloc, address: 0x2000)
        writer.alloc(.realloc, address: 0x2000, size: 50, frame: 0)    // shrunk in place: live 50
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)
        #expect(analysis.peak.bytes == 300)
        #expect(analysis.peak.live.total == Totals(count: 1, bytes: 300))
        #expect(analysis.liveAtEndTotals == Totals(count: 1, bytes: 50))
        #expect(analysis.allocated == Totals(count: 3, bytes: 450))
    }

    /// An ALLOC at a live address replaces the block (its FREE was not seen).
    @Test func allocOverALiveAddressReplacesIt() throws {
        var writer = CaptureWriter()
        writer.alloc(.malloc, address: 0x1000, size: 100, frame: 0)
        writer.alloc(.malloc, address: 0x1000, size: 40, frame: 0)
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)
        #expect(analysis.peak.bytes == 100)
        #expect(analysis.liveAtEndTotals == Totals(count: 1, bytes: 40))
        #expect(analysis.peak.live.total == Totals(count: 1, bytes: 100))
    }

    /// The peak's contents: blocks born before the peak and freed after it count;
    /// blocks born after it do not, even when the heap later shrinks.
    @Test func liveAtPeakAfterLaterFrees() throws {
        var writer = CaptureWriter()
        let a = writer.stack([("a", "m.py", 1)])
        let b = writer.stack([("b", "m.py", 5)])
        let c = writer.stack([("c", "m.py", 9)])
        writer.alloc(.malloc, address: 0x10, size: 10, frame: a)
        writer.alloc(.malloc, address: 0x20, size: 20, frame: b)   // 30
        writer.free(.malloc, address: 0x10)                        // 20
        writer.alloc(.malloc, address: 0x30, size: 15, frame: c)   // 35: first peak candidate
        writer.alloc(.malloc, address: 0x40, size: 5, frame: a)    // 40: peak
        writer.free(.malloc, address: 0x20)                        // 20
        writer.free(.malloc, address: 0x30)                        // 5
        writer.alloc(.malloc, address: 0x50, size: 30, frame: c)   // 35: below the peak
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)
        #expect(analysis.peak.bytes == 40)
        #expect(liveAtPeak(analysis, a) == Totals(count: 1, bytes: 5))
        #expect(liveAtPeak(analysis, b) == Totals(count: 1, bytes: 20))
        #expect(liveAtPeak(analysis, c) == Totals(count: 1, bytes: 15))
        #expect(analysis.liveAtEndTotals == Totals(count: 2, bytes: 35))
    }

    @Test func munmapReleasesPartsOfMappings() throws {
        var writer = CaptureWriter()
        let frame = writer.stack([("mapper", "m.py", 3)])
        let page: UInt64 = 4096
        writer.alloc(.mmap, address: 0x10000, size: 10 * page, frame: frame)  // 10 pages
        writer.munmap(address: 0x10000 + 4 * page, length: 2 * page)           // hole in the middle: 8 left
        writer.alloc(.mmap, address: 0x80000, size: 4 * page, frame: 0)       // 12: peak
        writer.munmap(address: 0x10000, length: 4 * page)                      // left piece: 8
        writer.munmap(address: 0x10000, length: 4 * page)                      // again: nothing mapped there
        writer.munmap(address: 0x7F000, length: 2 * page)                      // straddles the start of the 2nd: 7
        writer.munmap(address: 0x5_0000_0000, length: page)                    // unknown: ignored
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)
        #expect(analysis.peak.bytes == 12 * page)
        #expect(liveAtPeak(analysis, frame) == Totals(count: 1, bytes: 8 * page))
        #expect(liveAtPeak(analysis, 0) == Totals(count: 1, bytes: 4 * page))
        #expect(analysis.liveAtEndTotals == Totals(count: 2, bytes: 7 * page))
        #expect(Set(analysis.liveAtEnd.map(\.size)) == [4 * page, 3 * page])

        // Unmapping everything, across both mappings, in one call.
        writer = CaptureWriter()
        writer.alloc(.mmap, address: 0x10000, size: 2 * page, frame: 0)
        writer.alloc(.mmap, address: 0x20000, size: 2 * page, frame: 0)
        writer.munmap(address: 0, length: 1 << 40)
        writer.end(timeMicros: 1)
        let cleared = try analyze(writer)
        #expect(cleared.liveAtEnd.isEmpty)
        #expect(cleared.peak.live.total == Totals(count: 2, bytes: 4 * page))
    }

    /// A mapping partly unmapped after the peak still counts whole at the peak, once.
    @Test func mappingSplitAfterThePeak() throws {
        var writer = CaptureWriter()
        writer.alloc(.mmap, address: 0x10000, size: 3 * 4096, frame: 0)
        writer.munmap(address: 0x11000, length: 4096)  // split in two pieces
        writer.munmap(address: 0x10000, length: 4096)
        writer.munmap(address: 0x12000, length: 4096)
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)
        #expect(analysis.peak.live.total == Totals(count: 1, bytes: 3 * 4096))
        #expect(analysis.liveAtEnd.isEmpty)
    }

    @Test func mmapOverAMappingReplacesIt() throws {
        var writer = CaptureWriter()
        writer.alloc(.mmap, address: 0x10000, size: 4 * 4096, frame: 0)
        writer.alloc(.mmap, address: 0x11000, size: 4096, frame: 0)  // MAP_FIXED over the 2nd page
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)
        #expect(analysis.peak.bytes == 4 * 4096)
        #expect(analysis.liveAtEndTotals == Totals(count: 2, bytes: 4 * 4096))
    }

    @Test func arenasCountOnlyWithoutPythonAllocatorTracing() throws {
        func capture(_ flags: CaptureFlags) -> CaptureWriter {
            var writer = CaptureWriter(flags: flags)
            writer.alloc(.pymallocArena, address: 0x100000, size: 1 << 20, frame: 0)
            writer.alloc(.pymemObj, address: 0x100040, size: 64, frame: 0)
            writer.alloc(.malloc, address: 0x200000, size: 1000, frame: 0)
            writer.free(.pymallocArena, address: 0x100000)
            writer.end(timeMicros: 1)
            return writer
        }
        let traced = try analyze(capture(.pythonAllocators))
        #expect(!traced.countsArenas)
        #expect(traced.allocated == Totals(count: 2, bytes: 1064))
        #expect(traced.peak.bytes == 1064)
        #expect(traced.byAllocator[.pymallocArena] == Totals(count: 1, bytes: 1 << 20))
        #expect(traced.liveAtEndTotals == Totals(count: 2, bytes: 1064))

        let untraced = try analyze(capture([]))
        #expect(untraced.countsArenas)
        #expect(untraced.allocated == Totals(count: 3, bytes: (1 << 20) + 1064))
        #expect(untraced.peak.bytes == (1 << 20) + 1064)
        #expect(untraced.liveAtEndTotals == Totals(count: 2, bytes: 1064))
    }

    @Test func topLocationsMergeStacksByInnermostLine() throws {
        var writer = CaptureWriter()
        // Same innermost line reached from two callers: one location.
        let viaMain = writer.stack([("main", "app.py", 1), ("helper", "util.py", 50)])
        let viaWorker = writer.stack([("worker", "app.py", 30), ("helper", "util.py", 50)])
        let otherLine = writer.stack([("main", "app.py", 1), ("helper", "util.py", 52)], definedAt: ["helper": 50])
        for index in 0..<10 { writer.alloc(.pymemObj, address: 0x1000 + UInt64(index) * 64, size: 8, frame: viaMain) }
        for index in 0..<5 { writer.alloc(.pymemObj, address: 0x9000 + UInt64(index) * 64, size: 8, frame: viaWorker) }
        writer.alloc(.malloc, address: 0x100000, size: 4096, frame: otherLine)
        writer.alloc(.malloc, address: 0x200000, size: 100, frame: 0)
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)

        let byBytes = analysis.topLocations(by: .bytes, limit: 2)
        #expect(byBytes.map(\.location) == [Location(function: "helper", file: "util.py", line: 52),
                                            Location(function: "helper", file: "util.py", line: 50)])
        #expect(byBytes.map(\.totals) == [Totals(count: 1, bytes: 4096), Totals(count: 15, bytes: 120)])
        let byCount = analysis.topLocations(by: .count, limit: 5)
        #expect(byCount.map(\.totals.count) == [15, 1, 1])
        #expect(byCount.last?.location == .unknown)
    }

    @Test func functionsOwnAndTotalAtThePeak() throws {
        var writer = CaptureWriter()
        let main = writer.stack([("main", "app.py", 1)])
        let load = writer.stack([("main", "app.py", 2), ("load", "app.py", 10)])
        // Recursion: fib -> fib counts once in fib's total.
        let fib = writer.stack([("main", "app.py", 3), ("fib", "app.py", 20), ("fib", "app.py", 21)], definedAt: ["fib": 19])
        writer.alloc(.malloc, address: 0x10, size: 100, frame: main)
        writer.alloc(.malloc, address: 0x20, size: 300, frame: load)
        writer.alloc(.malloc, address: 0x30, size: 50, frame: fib)
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)
        let rows = Dictionary(uniqueKeysWithValues: analysis.peak.live.byFunction(analysis.tables).map { ($0.function.function, $0) })
        #expect(rows["main"]?.own == Totals(count: 1, bytes: 100))
        #expect(rows["main"]?.total == Totals(count: 3, bytes: 450))
        #expect(rows["main"]?.function == Location(function: "main", file: "app.py", line: 1))
        #expect(rows["load"]?.own == Totals(count: 1, bytes: 300))
        #expect(rows["load"]?.total == Totals(count: 1, bytes: 300))
        #expect(rows["fib"]?.own == Totals(count: 1, bytes: 50))
        #expect(rows["fib"]?.total == Totals(count: 1, bytes: 50))
        #expect(rows["fib"]?.function.line == 19)
    }

    @Test func threadsHistogramAndMemoryOverTime() throws {
        var writer = CaptureWriter()
        writer.threadInfo(1, osThreadID: 100, name: "MainThread")
        writer.thread(1)
        writer.alloc(.malloc, address: 0x10, size: 1, frame: 0)
        writer.alloc(.malloc, address: 0x20, size: 3, frame: 0)
        writer.snapshot(timeMicros: 10_000, rssBytes: 1 << 20)
        writer.thread(2)
        writer.threadInfo(2, osThreadID: 101, name: "worker")
        writer.alloc(.malloc, address: 0x30, size: 4096, frame: 0)
        writer.alloc(.malloc, address: 0x40, size: 0, frame: 0)
        writer.snapshot(timeMicros: 20_000, rssBytes: 2 << 20)
        writer.thread(1)
        writer.free(.malloc, address: 0x30)
        writer.snapshot(timeMicros: 30_000, rssBytes: 2 << 20)
        let analysis = try analyze(writer)

        #expect(analysis.isTruncated)
        #expect(analysis.durationMicros == 30_000)
        #expect(analysis.threads == [
            ThreadTotals(number: 1, osThreadID: 100, name: "MainThread", allocated: Totals(count: 2, bytes: 4)),
            ThreadTotals(number: 2, osThreadID: 101, name: "worker", allocated: Totals(count: 2, bytes: 4096)),
        ])
        #expect(analysis.histogram.populatedBuckets.map(\.count) == [1, 1, 1] + [Int](repeating: 0, count: 10) + [1])
        #expect(analysis.histogram.populatedBuckets.first?.range == 0...0)
        #expect(analysis.histogram.populatedBuckets.last?.range == 4096...8191)
        #expect(analysis.memoryOverTime == [
            MemorySample(timeMicros: 10_000, rssBytes: 1 << 20, heapBytes: 4),
            MemorySample(timeMicros: 20_000, rssBytes: 2 << 20, heapBytes: 4100),
            MemorySample(timeMicros: 30_000, rssBytes: 2 << 20, heapBytes: 4),
        ])
        #expect(analysis.peak.timeMicros == 10_000)
    }

    /// Many blocks through the address table: growth and deletion keep it exact.
    @Test func heavyChurnStaysExact() throws {
        var writer = CaptureWriter()
        var generator = SplitMix(seed: 1)
        var live: [UInt64: UInt64] = [:]
        var liveBytes: UInt64 = 0
        var peak: UInt64 = 0
        for _ in 0..<60_000 {
            let address = (generator.next() % 20_000) * 16 + 16
            if live[address] != nil && generator.next() % 3 != 0 {
                liveBytes -= live.removeValue(forKey: address)!
                writer.free(.malloc, address: address)
            } else {
                let size = generator.next() % 512
                liveBytes -= live[address] ?? 0
                live[address] = size
                liveBytes += size
                peak = max(peak, liveBytes)
                writer.alloc(.malloc, address: address, size: size, frame: 0)
            }
        }
        writer.end(timeMicros: 1)
        let analysis = try analyze(writer)
        #expect(analysis.liveAtEndTotals == Totals(count: live.count, bytes: liveBytes))
        #expect(analysis.peak.bytes == peak)
        #expect(analysis.peak.live.total.bytes == peak)
    }

    /// Cut at every byte: the analysis of every prefix works or fails with a header error.
    @Test func truncatedCapturesStillAnalyse() throws {
        var writer = CaptureWriter()
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.malloc, address: 0x1000, size: 10, frame: frame)
        writer.alloc(.mmap, address: 0x10000, size: 8192, frame: frame)
        writer.munmap(address: 0x10000, length: 4096)
        writer.free(.malloc, address: 0x1000)
        writer.end(timeMicros: 1)
        let full = writer.bytes
        for length in 1..<full.count {
            do {
                let analysis = try CaptureAnalysis(reader: CaptureReader(bytes: Array(full[0..<length])))
                #expect(analysis.isTruncated)
                #expect(analysis.peak.bytes <= 8202)
            } catch {
                #expect(error == .headerCutShort)
            }
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
