import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports
import Testing
import HeapscopeTestSupport

private let KiB: UInt64 = 1024
private let MiB: UInt64 = 1 << 20
/// Not pool-aligned (page-aligned, as mmap gives): 63 pools, the first at +12 KiB.
private let arenaA: UInt64 = 0x7f00_0000_1000
/// Pool-aligned: 64 pools.
private let arenaB: UInt64 = 0x7f00_1000_0000

private func model(_ writer: CaptureWriter, referrers: ReferrerTable? = nil, pinned: Int = 10) throws -> PymallocAnalysis {
    try PymallocAnalysis(reader: CaptureReader(bytes: writer.bytes), referrers: referrers, pinnedPercent: pinned)
}

private func metadata(allocator: String = "pymalloc", traced: Bool = true) -> JSONValue {
    .object([
        ("command_line", .array([.string("app.py")])),
        ("python_version", .string("3.11.7")),
        ("python_allocator", .string(allocator)),
        ("trace_python_allocators", .bool(traced)),
        ("pymalloc", .object([
            ("arena_size", .int(1 << 20)), ("pool_size", .int(16384)), ("alignment", .int(16)),
            ("small_request_threshold", .int(512)), ("pool_header_size", .int(48)),
            ("cross_checked", .array([.string("arena_size")])),
        ])),
    ])
}

@Suite struct PymallocGeometryTests {
    @Test func cpythonLayout() {
        let g = PymallocGeometry.cpython64
        #expect(g.sizeClassCount == 32)
        #expect(g.sizeClass(ofRequest: 1) == 0)
        #expect(g.sizeClass(ofRequest: 16) == 0)
        #expect(g.sizeClass(ofRequest: 17) == 1)
        #expect(g.sizeClass(ofRequest: 512) == 31)
        #expect(g.blockSize(ofClass: 0) == 16)
        #expect(g.blockSize(ofClass: 31) == 512)
        #expect(g.blocksPerPool(ofClass: 3) == (16384 - 48) / 64)
        #expect(g.poolCount(ofArena: arenaA) == 63)
        #expect(g.firstPool(ofArena: arenaA) == 0x7f00_0000_4000)
        #expect(g.poolCount(ofArena: arenaB) == 64)
        #expect(g.pool(ofBlock: 0x7f00_0000_4abc) == 0x7f00_0000_4000)
    }

    @Test func readFromMetadata() {
        let g = PymallocGeometry(metadata: CaptureMetadata(json: metadata()))
        #expect(g.source == "metadata")
        #expect(g.crossChecked == ["arena_size"])
        let old = PymallocGeometry(metadata: CaptureMetadata(json: .object([
            ("pymalloc", .object([("arena_size", .int(256 << 10)), ("pool_size", .int(4096))])),
        ])))
        #expect(old.arenaSize == 256 << 10 && old.poolSize == 4096 && old.alignment == 16)
        let none = PymallocGeometry(metadata: CaptureMetadata(json: .object([])))
        #expect(none == .cpython64)
    }
}

@Suite struct PymallocModelTests {
    @Test func blocksArePlacedInPoolsAndArenas() throws {
        var writer = CaptureWriter(metadata: metadata())
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.pymallocArena, address: arenaA, size: MiB, frame: frame)
        let pool0 = arenaA + 12 * KiB  // first pool
        let pool1 = pool0 + 16 * KiB
        writer.alloc(.pymemObj, address: pool0 + 48, size: 64, frame: frame)        // class 3
        writer.alloc(.pymemObj, address: pool0 + 48 + 64, size: 50, frame: frame)   // class 3, 64-byte block
        writer.alloc(.pymemMem, address: pool1 + 48, size: 30, frame: frame)        // class 1
        writer.alloc(.pymemObj, address: 0x5000_0000, size: 600, frame: frame)      // over the threshold: not pymalloc
        writer.alloc(.pymemRaw, address: 0x5100_0000, size: 20, frame: frame)       // RAW domain: malloc
        writer.end(timeMicros: 1000)
        let a = try model(writer)
        let end = a.end
        #expect(a.arenasAllocated == 1)
        #expect(end.arenasHeld == 1)
        #expect(end.arenaBytes == MiB)
        #expect(end.poolsInUse == 2)
        #expect(end.poolsInUseByClass[3] == 1)
        #expect(end.poolsInUseByClass[1] == 1)
        #expect(end.liveBlocks == 3)
        #expect(end.requestedBytes == 144)
        #expect(end.blockBytes == 64 + 64 + 32)
        #expect(end.roundingBytes == 16)
        #expect(end.poolHeaderBytes == 96)
        #expect(end.alignmentBytes == 16 * KiB)
        #expect(end.emptyPoolBytes == 61 * 16 * KiB)
        #expect(end.freeBlockBytes == 2 * (16 * KiB - 48) - 160)
        // Everything the arena holds is accounted for.
        #expect(end.requestedBytes + end.roundingBytes + end.freeBlockBytes + end.poolHeaderBytes
                + end.emptyPoolBytes + end.alignmentBytes == MiB)
        #expect(end.freeInsideBytes == MiB - 144)
        #expect(end.occupancyHistogram[0] == 1)
        #expect(a.blocksAllocated == Totals(count: 3, bytes: 144))
        #expect(a.anomalies == 0)
    }

    @Test func poolsEmptyAndChangeSizeClass() throws {
        var writer = CaptureWriter(metadata: metadata())
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.pymallocArena, address: arenaB, size: MiB, frame: frame)
        writer.alloc(.pymemObj, address: arenaB + 48, size: 64, frame: frame)
        writer.free(.pymemObj, address: arenaB + 48)                     // pool empty again
        writer.alloc(.pymemObj, address: arenaB + 48, size: 200, frame: frame)  // reused for class 12
        writer.end(timeMicros: 1000)
        let a = try model(writer)
        #expect(a.end.poolsInUse == 1)
        #expect(a.end.poolsInUseByClass[3] == 0)
        #expect(a.end.poolsInUseByClass[12] == 1)
        #expect(a.end.blockBytes == 208)
        #expect(a.end.alignmentBytes == 0)
        #expect(a.anomalies == 0)
    }

    @Test func reallocShrinkingInPlaceKeepsThePoolsClass() throws {
        var writer = CaptureWriter(metadata: metadata())
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.pymallocArena, address: arenaB, size: MiB, frame: frame)
        writer.alloc(.pymemObj, address: arenaB + 48, size: 512, frame: frame)
        writer.alloc(.pymemObj, address: arenaB + 48 + 512, size: 512, frame: frame)
        writer.free(.pymemObj, address: arenaB + 48)                       // realloc(p, 400): in place
        writer.alloc(.pymemObj, address: arenaB + 48, size: 400, frame: frame)
        writer.end(timeMicros: 1)
        let a = try model(writer)
        #expect(a.anomalies == 0)
        #expect(a.end.poolsInUseByClass[31] == 1)
        #expect(a.end.poolsInUseByClass[24] == 0)
        #expect(a.end.blockBytes == 1024)
        #expect(a.end.requestedBytes == 912)
        #expect(a.end.roundingBytes == 112)
    }

    @Test func arenasOverTimeAndAtThePeak() throws {
        var writer = CaptureWriter(metadata: metadata())
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.snapshot(timeMicros: 10, rssBytes: 0)
        writer.alloc(.pymallocArena, address: arenaA, size: MiB, frame: frame)
        writer.alloc(.pymallocArena, address: arenaB, size: MiB, frame: frame)
        // Half of arena B in 512-byte blocks: 64 pools x 31 blocks.
        var addresses: [UInt64] = []
        for pool in 0..<32 {
            for block in 0..<31 { addresses.append(arenaB + UInt64(pool) * 16 * KiB + 48 + UInt64(block) * 512) }
        }
        for address in addresses { writer.alloc(.pymemObj, address: address, size: 512, frame: frame) }
        writer.snapshot(timeMicros: 20, rssBytes: 0)
        writer.free(.pymallocArena, address: arenaA)
        writer.snapshot(timeMicros: 30, rssBytes: 0)
        writer.end(timeMicros: 40)
        let a = try model(writer)
        #expect(a.samples.map(\.arenasHeld) == [0, 2, 1])
        #expect(a.samples[1].blockBytes == UInt64(addresses.count) * 512)
        #expect(a.samples[1].occupancy[4] == 1)  // B: 31 * 512 * 32 / 1 MiB = 48%
        #expect(a.samples[1].occupancy[0] == 1)  // A: empty
        #expect(a.peak?.arenasHeld == 2)
        #expect(a.peak?.timeMicros == 10)
        #expect(a.end.arenasHeld == 1)
        #expect(a.arenasReleased == 1)
        #expect(a.end.poolsInUse == 32)
        #expect(a.end.occupancyHistogram[4] == 1)
    }

    @Test func pinnedArenasNameTheBlocksAndTheirHolders() throws {
        var writer = CaptureWriter(metadata: metadata())
        writer.thread(1)
        let fill = writer.stack([("<module>", "pinned.py", 20), ("fill", "pinned.py", 14)])
        let keep = writer.stack([("<module>", "pinned.py", 21), ("keep_every_hundredth", "pinned.py", 18)])
        let other = writer.stack([("<module>", "pinned.py", 22), ("work", "pinned.py", 30)])
        writer.alloc(.pymallocArena, address: arenaA, size: MiB, frame: fill)
        writer.alloc(.pymallocArena, address: arenaB, size: MiB, frame: other)
        // Arena A: 63 pools of 64-byte blocks, all freed but one block per 4 pools.
        let first = arenaA + 12 * KiB
        var survivors: [UInt64] = []
        for pool in 0..<63 {
            for block in 0..<255 {
                let address = first + UInt64(pool) * 16 * KiB + 48 + UInt64(block) * 64
                writer.alloc(.pymemObj, address: address, size: 64, frame: fill)
            }
        }
        for pool in 0..<63 {
            for block in 0..<255 {
                let address = first + UInt64(pool) * 16 * KiB + 48 + UInt64(block) * 64
                if block == 0 && pool % 4 == 0 { survivors.append(address); continue }
                writer.free(.pymemObj, address: address)
            }
        }
        // The list holding the survivors (a malloc'ed block) and a busy arena B.
        writer.alloc(.pymemObj, address: arenaB + 48, size: 56, frame: keep)
        for pool in 1..<64 {
            for block in 0..<31 {
                writer.alloc(.pymemObj, address: arenaB + UInt64(pool) * 16 * KiB + 48 + UInt64(block) * 512, size: 512, frame: other)
            }
        }
        writer.end(timeMicros: 100)
        var holders: [UInt64: UInt64] = [:]
        for address in survivors.dropLast() { holders[address] = arenaB + 48 }
        let a = try model(writer, referrers: ReferrerTable(holders: holders))
        #expect(a.end.arenasHeld == 2)
        #expect(a.pinnedArenas.map(\.address) == [arenaA])
        #expect(a.pinnedArenas[0].liveBlocks == 16)
        #expect(a.pinnedArenas[0].poolsInUse == 16)
        #expect(a.pinningBlocks == Totals(count: 16, bytes: 16 * 64))
        #expect(a.pinningSites.count == 1)
        #expect(a.pinningSites[0].frame == fill)
        #expect(a.holders.count == 2)
        #expect(a.holders[0].holder == .allocatedAt(keep, .pymemObj))
        #expect(a.holders[0].totals.count == 15)
        #expect(a.holders[1].holder == .notFound)

        let text = PymallocReport(analysis: a, capturePath: "pinned.hsc").text()
        #expect(text.contains("1 of 2 held at the end"))
        #expect(text.contains("fill at pinned.py:14"))
        #expect(text.contains("an object allocated at keep_every_hundredth at pinned.py:18"))
        let html = String(decoding: PymallocReport(analysis: a, capturePath: "pinned.hsc").html(), as: UTF8.self)
        #expect(html.contains("keep_every_hundredth"))
        #expect(!html.contains("src=\"http"))
        #expect(!html.contains("<link"))
    }

    @Test func withoutTracingOnlyArenasAreKnown() throws {
        var writer = CaptureWriter(flags: [], metadata: metadata(traced: false))
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.pymallocArena, address: arenaA, size: MiB, frame: frame)
        writer.alloc(.malloc, address: 0x1000, size: 64, frame: frame)
        writer.end(timeMicros: 1)
        let a = try model(writer)
        #expect(!a.blocksTraced)
        #expect(a.end.arenasHeld == 1)
        #expect(a.end.liveBlocks == 0)
        let report = PymallocReport(analysis: a, capturePath: "x.hsc")
        #expect(report.notes.contains { $0.contains("not traced") })
    }

    @Test func mallocAllocatorHasNoArenas() throws {
        var writer = CaptureWriter(metadata: metadata(allocator: "malloc"))
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.pymemObj, address: 0x1000, size: 64, frame: frame)
        writer.end(timeMicros: 1)
        let a = try model(writer)
        #expect(!a.pymallocActive)
        #expect(a.end.liveBlocks == 0)
        #expect(a.blocksAllocated.count == 0)
        #expect(PymallocReport(analysis: a, capturePath: "x.hsc").notes.contains { $0.contains("not active") })
    }

    @Test func blocksOfArenasFromBeforeTrackingAreSetApart() throws {
        var writer = CaptureWriter(metadata: metadata())
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.pymemObj, address: 0x6000_0000_0030, size: 32, frame: frame)
        writer.end(timeMicros: 1)
        let a = try model(writer)
        #expect(a.blocksOutsideTrackedArenas == Totals(count: 1, bytes: 32))
        #expect(a.end.liveBlocks == 0)
        #expect(a.end.poolsInUseByClass[1] == 1)
    }

    @Test func debugAllocatorOffsets() throws {
        var meta = metadata(allocator: "pymalloc_debug")
        if case .object(var fields) = meta, let index = fields.firstIndex(where: { $0.key == "pymalloc" }),
           case .object(var geometry) = fields[index].value {
            geometry.append(("debug_offset", .int(16)))
            geometry.append(("debug_extra", .int(24)))
            fields[index].value = .object(geometry)
            meta = .object(fields)
        }
        var writer = CaptureWriter(metadata: meta)
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.pymallocArena, address: arenaB, size: MiB, frame: frame)
        writer.alloc(.pymemObj, address: arenaB + 48 + 16, size: 40, frame: frame)   // 64-byte request
        writer.alloc(.pymemObj, address: 0x1000, size: 500, frame: frame)            // 524 with the hooks: not pymalloc
        writer.end(timeMicros: 1)
        let a = try model(writer)
        #expect(a.end.liveBlocks == 1)
        #expect(a.end.poolsInUseByClass[3] == 1)
        #expect(a.end.requestedBytes == 64)
    }

    @Test func referrersSidecar() {
        var bytes = Array("HSREFS1\n".utf8) + [1, 0, 0, 0, 0, 0, 0, 0]
        func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        bytes += u64(0x10) + u64(0x99) + u64(0x10) + u64(0x55) + u64(0x20) + u64(0x99)
        let table = ReferrerTable(bytes: bytes)
        #expect(table?.isComplete == false)
        #expect(table?.holders == [0x10: 0x99, 0x20: 0x99])
        #expect(ReferrerTable(bytes: Array("nope".utf8)) == nil)
    }
}

@Suite struct SuppressionsTests {
    @Test func parse() throws {
        let s = try Suppressions(text: """
            # known leaks
            function:fetch_profile
            file:*/site-packages/*   # third party

            module:json
            """)
        #expect(s.patterns == [.function("fetch_profile"), .file("*/site-packages/*"), .module("json")])
        #expect(throws: Suppressions.ParseError.self) { try Suppressions(text: "fetch_profile") }
        #expect(throws: Suppressions.ParseError.self) { try Suppressions(text: "class:X") }
        #expect(throws: Suppressions.ParseError.self) { try Suppressions(text: "function:") }
    }

    @Test func matching() throws {
        let s = try Suppressions(text: "function:Cache.*\nfile:*/vendor/*.py\nmodule:json")
        let cache = Location(function: "Cache.get", file: "/app/cache.py", line: 3)
        let vendor = Location(function: "f", file: "/app/vendor/x.py", line: 1)
        let json = Location(function: "decode", file: "/usr/lib/python3.11/json/decoder.py", line: 9)
        let jsonInit = Location(function: "loads", file: "/usr/lib/python3.11/json/__init__.py", line: 9)
        let plain = Location(function: "main", file: "/app/main.py", line: 1)
        let jsonish = Location(function: "main", file: "/app/jsonish.py", line: 1)
        #expect(s.match(stack: [cache]) == 0)
        #expect(s.match(stack: [plain, vendor]) == 1)
        #expect(s.match(stack: [json]) == 2)
        #expect(s.match(stack: [jsonInit]) == 2)
        #expect(s.match(stack: [plain, jsonish]) == nil)
        let short = try Suppressions(text: "function:get")
        #expect(short.match(stack: [cache]) == 0)
    }

    @Test func filterHidesAndCounts() throws {
        var writer = CaptureWriter(metadata: metadata(allocator: "malloc"))
        writer.thread(1)
        let leak = writer.stack([("<module>", "app.py", 1), ("fetch_profile", "app.py", 10)])
        let other = writer.stack([("<module>", "app.py", 2), ("load", "app.py", 20)])
        for i in 0..<10 { writer.alloc(.pymemObj, address: 0x1000 + UInt64(i) * 0x100, size: 100, frame: leak) }
        writer.alloc(.malloc, address: 0x9000, size: 100_000, frame: other)
        writer.end(timeMicros: 1)
        let analysis = try CaptureAnalysis(reader: CaptureReader(bytes: writer.bytes))
        let s = try Suppressions(text: "function:fetch_profile")
        let filtered = s.filter(analysis.liveAtEnd, tables: analysis.tables)
        #expect(filtered.hidden == Totals(count: 10, bytes: 1000))
        #expect(filtered.kept.count == 1)
        #expect(filtered.byPattern[0] == Totals(count: 10, bytes: 1000))

        let summary = LeakSummary(analysis: analysis, suppressions: s, siteFloor: 64 * KiB)
        #expect(summary.suppressed == Totals(count: 10, bytes: 1000))
        #expect(summary.sites.map(\.location.function) == ["load"])
        #expect(summary.suppressedByPattern.first?.pattern == "function:fetch_profile")
    }
}

@Suite struct LeakSummaryTests {
    @Test func floorIsSetApart() throws {
        var writer = CaptureWriter(metadata: metadata(allocator: "malloc"))
        writer.thread(1)
        let big = writer.stack([("<module>", "app.py", 1), ("fetch_profile", "app.py", 10)])
        let small = writer.stack([("<module>", "app.py", 2)])
        let imports = writer.stack([("<module>", "app.py", 3), ("_find_and_load", "<frozen importlib._bootstrap>", 1000)])
        for i in 0..<5 { writer.alloc(.pymemObj, address: 0x10_0000 + UInt64(i) * 0x10000, size: 10_273, frame: big) }
        for i in 0..<3 { writer.alloc(.pymemObj, address: 0x90_0000 + UInt64(i) * 0x100, size: 100, frame: small) }
        writer.alloc(.pymemObj, address: 0xA0_0000, size: 5000, frame: imports)
        writer.alloc(.malloc, address: 0xB0_0000, size: 700, frame: 0)
        writer.end(timeMicros: 1)
        let analysis = try CaptureAnalysis(reader: CaptureReader(bytes: writer.bytes))
        let summary = LeakSummary(analysis: analysis, siteFloor: 1000)
        #expect(summary.total == Totals(count: 10, bytes: 5 * 10_273 + 300 + 5000 + 700))
        #expect(summary.sites.count == 1)
        #expect(summary.sites[0].location.function == "fetch_profile")
        #expect(summary.sites[0].totals == Totals(count: 5, bytes: 5 * 10_273))
        #expect(summary.belowFloor == Totals(count: 3, bytes: 300))
        #expect(summary.belowFloorSites == 1)
        #expect(summary.imports == Totals(count: 1, bytes: 5000))
        #expect(summary.interpreter == Totals(count: 1, bytes: 700))
        #expect(summary.floor.bytes == 6000)
    }

    @Test func allocatorNotes() {
        let pymalloc = CaptureMetadata(json: .object([("python_allocator", .string("pymalloc"))]))
        #expect(AllocatorNotes.describe(pymalloc).hasPrefix("pymalloc"))
        let leaks = CaptureMetadata(json: .object([("python_allocator", .string("malloc")), ("leaks_mode", .bool(true)),
                                                    ("pythonmalloc_set_by_heapscope", .bool(true))]))
        #expect(AllocatorNotes.describe(leaks).contains("set by heapscope run --leaks"))
        let header = CaptureHeader(flags: [], pid: 1, startTimeMicros: 0, metadata: pymalloc)
        #expect(AllocatorNotes.leaksMislead(header))
        let traced = CaptureHeader(flags: .pythonAllocators, pid: 1, startTimeMicros: 0, metadata: pymalloc)
        #expect(!AllocatorNotes.leaksMislead(traced))
    }
}
