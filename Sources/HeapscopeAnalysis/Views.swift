import HeapscopeFormat

/// What a report shows of a capture (docs/REPORTS.md, "Views").
public enum ReportView: Equatable, Sendable {
    /// What was live at the high-water mark of the heap.
    case peak
    /// Allocated after tracking began and not freed when it ended.
    case leaks
    /// Freed on the thread that made it with at most `threshold` other
    /// allocations on that thread in between (0: freed before any other).
    case temporary(threshold: Int)
    /// Everything allocated while tracking, freed or not (`heapscope diff --allocated`).
    case allocated

    /// Short name for titles and file names: "peak", "leaks", "temporary", "allocated".
    public var name: String {
        switch self {
        case .peak: return "peak"
        case .leaks: return "leaks"
        case .temporary: return "temporary"
        case .allocated: return "allocated"
        }
    }

    /// One line saying what the figures are.
    public var explanation: String {
        switch self {
        case .peak:
            return "memory live at the peak (the high-water mark of the heap)"
        case .leaks:
            return "memory allocated while tracking and not freed when tracking ended (leaks)"
        case .temporary(let threshold):
            return "temporary allocations: freed on the same thread with at most \(threshold) other "
                + "allocation\(threshold == 1 ? "" : "s") in between"
        case .allocated:
            return "all memory allocated while tracking, freed or not"
        }
    }
}

/// Figures of one allocation site: a stack (innermost frame id), the thread and
/// the allocator.
public struct SiteTotals: Equatable, Sendable {
    public var frame: FrameID
    /// Innermost native frame (native captures; else 0).
    public var nativeFrame: NativeFrameID
    public var thread: ThreadNumber
    public var kind: AllocatorKind
    public var totals: Totals
    /// Sizes of the site's allocations in the view (an mmap partly unmapped:
    /// what is still mapped); empty unless the replay was asked for sizes.
    public var sizes: SparseSizeHistogram

    public init(frame: FrameID, nativeFrame: NativeFrameID = 0, thread: ThreadNumber, kind: AllocatorKind, totals: Totals,
                sizes: SparseSizeHistogram = SparseSizeHistogram()) {
        self.frame = frame
        self.nativeFrame = nativeFrame
        self.thread = thread
        self.kind = kind
        self.totals = totals
        self.sizes = sizes
    }

    /// The whole stack: Python and native.
    public var stack: StackKey { StackKey(frame: frame, nativeFrame: nativeFrame) }
}

/// One replay of a capture for a report view: the view's figures per site, plus
/// what every report shows around them (peak, memory over time, totals). Unlike
/// `CaptureAnalysis` it keeps the thread and allocator of every site, and can
/// also aggregate by time for the temporal flame graph.
public struct ViewAnalysis: Sendable {
    public var view: ReportView
    public var header: CaptureHeader
    public var tables: CaptureTables
    public var isTruncated: Bool
    /// Why the tracker stopped writing early, when the capture says (disk full, file deleted).
    public var stopCause: StopCause?
    public var isCompressed: Bool
    public var recordCount: Int
    /// Whether pymalloc arenas count (only when Python allocators were not traced).
    public var countsArenas: Bool

    /// The view's figures by (stack, thread, allocator), unsorted.
    public var sites: [SiteTotals]
    /// Sum over `sites`.
    public var total: Totals
    /// Every counted allocation made while tracking.
    public var allocated: Totals
    /// Every counted allocation by stack (index = frame id).
    public var allocatedByFrame: [Totals]
    public var peakBytes: UInt64
    public var peakTimeMicros: UInt64?
    public var memoryOverTime: [MemorySample]
    public var endTimeMicros: UInt64?
    /// Set when the replay was asked for it.
    public var temporal: TemporalAggregate?

    public var durationMicros: UInt64? { endTimeMicros ?? memoryOverTime.last?.timeMicros }

    /// The capture was recorded with pymalloc active and Python allocators not
    /// traced: freed objects stay inside pymalloc's arenas, so leak figures mislead.
    public var leaksMislead: Bool { AllocatorNotes.leaksMislead(header) }

    /// The view's figures by (Python stack, native stack), threads and allocators merged.
    public var byStackKey: StackKeyTotals {
        var totals = StackKeyTotals()
        for site in sites { totals.add(site.stack, site.totals) }
        return totals
    }

    /// The view's figures by Python stack only.
    public var byStack: StackTotals {
        var totals = StackTotals(frameCount: tables.frameCount)
        for site in sites { totals.add(frame: site.frame, bytes: site.totals.bytes, count: site.totals.count) }
        return totals
    }

    /// Reads and replays the capture at `path`. `progress` is called now and then
    /// with (bytes read, stream length).
    /// `sizes`: also keep each site's size histogram (`SiteTotals.sizes`).
    public static func analyze(path: String, view: ReportView, temporal: Bool = false, sizes: Bool = false,
                               progress: ((Int, Int) -> Void)? = nil) throws(CaptureError) -> ViewAnalysis {
        try ViewAnalysis(reader: CaptureReader(path: path), view: view, temporal: temporal, sizes: sizes, progress: progress)
    }

    public init(reader: CaptureReader, view: ReportView, temporal: Bool = false, sizes: Bool = false,
                progress: ((Int, Int) -> Void)? = nil) throws(CaptureError) {
        var reader = reader
        var replay = ViewReplay(view: view, countsArenas: !reader.header.flags.contains(.pythonAllocators),
                                temporal: temporal, frameCount: reader.tables.frameCount,
                                nativeStacks: reader.header.flags.contains(.native))
        replay.sizes = sizes ? [:] : nil
        var progressReport = ProgressReport(progress, streamLength: reader.streamLength)
        // As CaptureAnalysis does: ALLOC and FREE records in batches, the table
        // slots of a batch loaded first so their cache misses overlap.
        let events = UnsafeMutableBufferPointer<Event>.allocate(capacity: 128)
        defer { events.deallocate() }
        while true {
            let count = reader.nextEvents(into: events)
            if count > 0 {
                let batch = UnsafeMutableBufferPointer(rebasing: events[0..<count])
                replay.heap.warm(batch.lazy.map(\.address))
                let thread = reader.currentThread
                for event in batch {
                    if event.isFree {
                        replay.free(event.kind, address: event.address, thread: thread)
                    } else {
                        replay.alloc(Allocation(kind: event.kind, address: event.address, size: event.size,
                                                frame: event.frame, thread: thread, nativeFrame: event.nativeFrame))
                    }
                }
            } else {
                guard let record = try reader.next() else { break }
                switch record {
                case .alloc(let allocation): replay.alloc(allocation)
                case .free(let kind, let address, let thread): replay.free(kind, address: address, thread: thread)
                case .munmap(let address, let length): replay.munmap(address, length: length)
                case .frame: replay.allocatedByFrame.append(.zero)
                case .snapshot(let time, let rss): replay.snapshot(time: time, rss: rss)
                case .end(let time): replay.endTime = time
                default: break
                }
            }
            progressReport.note(reader)
        }
        progressReport.finish()

        self.view = view
        header = reader.header
        tables = reader.tables
        isTruncated = reader.isTruncated
        stopCause = reader.stopCause
        isCompressed = reader.isCompressed
        recordCount = reader.recordCount
        countsArenas = replay.countsArenas
        allocated = replay.allocated
        allocatedByFrame = replay.allocatedByFrame
        peakBytes = replay.peakBytes
        peakTimeMicros = replay.peakTime
        memoryOverTime = replay.samples
        endTimeMicros = replay.endTime
        sites = replay.finishSites()
        total = sites.reduce(Totals()) { $0 + $1.totals }
        self.temporal = replay.finishTemporal(endTime: replay.endTime ?? replay.samples.last?.timeMicros ?? 0)
    }
}

/// Site key: frame id (32 bits), thread (24 bits), allocator kind (8 bits).
@inline(__always)
func siteKey(frame: FrameID, thread: ThreadNumber, kind: AllocatorKind) -> UInt64 {
    UInt64(frame) << 32 | UInt64(thread & 0xFF_FFFF) << 8 | UInt64(kind.rawValue)
}

@inline(__always)
func site(ofKey key: UInt64) -> (frame: FrameID, thread: ThreadNumber, kind: AllocatorKind) {
    (FrameID(truncatingIfNeeded: key >> 32), ThreadNumber(truncatingIfNeeded: (key >> 8) & 0xFF_FFFF),
     AllocatorKind(rawValue: UInt8(truncatingIfNeeded: key)) ?? .malloc)
}

/// The replay behind `ViewAnalysis`: the same counting rules as
/// `CaptureAnalysis` (docs/FORMAT.md, "What the figures mean").
struct ViewReplay {
    struct Release {
        var key: UInt64
        var bytes: UInt64
        var count: Int
    }

    let view: ReportView
    let countsArenas: Bool
    let heap = AddressTable()
    var mapped = MappedRanges()
    var liveBytes: UInt64 = 0
    var serial: UInt64 = 0
    var peakBytes: UInt64 = 0
    var peakSerial: UInt64 = 0
    var peakTime: UInt64?
    var lastSnapshotTime: UInt64?
    var releasedSincePeak: [Release] = []
    var allocated = Totals()
    var allocatedByFrame: [Totals]
    var samples: [MemorySample] = []
    var endTime: UInt64?

    /// Temporary view: figures gathered as frees happen; allocated view: as
    /// allocations happen.
    var gatheredTotals = KeyedTotals()
    let gathersAllocations: Bool
    /// Per site key, the sizes counted in the view (nil: not asked for).
    var sizes: [UInt64: SparseSizeHistogram]?
    /// Per thread: the serials of its last threshold + 1 allocations, oldest first.
    var recent: [RecentAllocations] = []
    let recentCapacity: Int

    var temporal: TemporalBuilder?
    /// Live blocks, mappings and site keys hold a stack id from this table
    /// where they held the Python frame id (the same number without native stacks).
    var stacks: StackKeyTable

    init(view: ReportView, countsArenas: Bool, temporal: Bool, frameCount: Int, nativeStacks: Bool = false) {
        self.view = view
        stacks = StackKeyTable(nativeStacks: nativeStacks)
        self.countsArenas = countsArenas
        tracksPeak = view == .peak
        gathersAllocations = view == .allocated
        allocatedByFrame = [Totals](repeating: .zero, count: frameCount + 1)
        if case .temporary(let threshold) = view {
            recentCapacity = max(0, threshold) + 1
        } else {
            recentCapacity = 0
        }
        self.temporal = temporal ? TemporalBuilder() : nil
    }

    /// Keeps the log of blocks released after the peak (peak view only).
    let tracksPeak: Bool

    mutating func snapshot(time: UInt64, rss: UInt64) {
        lastSnapshotTime = time
        samples.append(MemorySample(timeMicros: time, rssBytes: rss, heapBytes: liveBytes))
        temporal?.snapshot(serial: serial)
    }

    @inline(__always)
    mutating func alloc(_ allocation: Allocation) {
        serial &+= 1
        if allocation.kind == .pymallocArena && !countsArenas { return }
        allocated.add(allocation.size)
        allocatedByFrame[Int(allocation.frame)].add(allocation.size)
        let stack = stacks.id(frame: allocation.frame, nativeFrame: allocation.nativeFrame)
        if gathersAllocations {
            let key = siteKey(frame: stack, thread: allocation.thread, kind: allocation.kind)
            gatheredTotals.add(key, bytes: allocation.size, count: 1)
            sizes?[key, default: SparseSizeHistogram()].add(size: allocation.size)
        }

        if allocation.kind == .mmap {
            let mapping = MappedRanges.Mapping(address: allocation.address, serial: serial, frame: stack,
                                               thread: allocation.thread, kind: allocation.kind, liveBytes: 0)
            for part in mapped.map(mapping, length: allocation.size) { release(part) }
        } else {
            let block = LiveBlock(address: allocation.address, size: allocation.size, serial: serial,
                                  frame: stack, thread: allocation.thread, kind: allocation.kind)
            if let replaced = heap.insert(block) { release(replaced, freeingThread: nil) }
        }
        if recentCapacity > 0 {
            let thread = Int(allocation.thread)
            while recent.count <= thread { recent.append(RecentAllocations(capacity: recentCapacity)) }
            recent[thread].push(serial)
        }
        liveBytes &+= allocation.size
        if liveBytes > peakBytes {
            peakBytes = liveBytes
            peakSerial = serial
            peakTime = lastSnapshotTime
            if tracksPeak { releasedSincePeak.removeAll(keepingCapacity: true) }
        }
    }

    @inline(__always)
    mutating func free(_ kind: AllocatorKind, address: UInt64, thread: ThreadNumber) {
        if kind == .pymallocArena && !countsArenas { return }
        if let block = heap.remove(address) { release(block, freeingThread: thread) }
    }

    mutating func munmap(_ address: UInt64, length: UInt64) {
        for part in mapped.unmap(address, length: length) { release(part) }
    }

    @inline(__always)
    private mutating func release(_ block: LiveBlock, freeingThread: ThreadNumber?) {
        liveBytes &-= block.size
        if tracksPeak && block.serial <= peakSerial {
            releasedSincePeak.append(Release(key: siteKey(frame: block.frame, thread: block.thread, kind: block.kind),
                                             bytes: block.size, count: 1))
        }
        if recentCapacity > 0, let freeingThread, freeingThread == block.thread,
           Int(freeingThread) < recent.count, recent[Int(freeingThread)].contains(block.serial) {
            let key = siteKey(frame: block.frame, thread: block.thread, kind: block.kind)
            gatheredTotals.add(key, bytes: block.size, count: 1)
            sizes?[key, default: SparseSizeHistogram()].add(size: block.size)
        }
        if temporal != nil {
            temporal!.release(serial: block.serial, key: siteKey(frame: block.frame, thread: block.thread, kind: block.kind),
                              bytes: block.size, count: 1)
        }
    }

    private mutating func release(_ part: MappedRanges.Released) {
        liveBytes &-= part.bytes
        let key = siteKey(frame: part.mapping.frame, thread: part.mapping.thread, kind: part.mapping.kind)
        if tracksPeak && part.mapping.serial <= peakSerial {
            releasedSincePeak.append(Release(key: key, bytes: part.bytes, count: part.isWhole ? 1 : 0))
        }
        temporal?.release(serial: part.mapping.serial, key: key, bytes: part.bytes, count: part.isWhole ? 1 : 0)
    }

    func finishSites() -> [SiteTotals] {
        var totals = KeyedTotals()
        var sizes = self.sizes
        func add(_ key: UInt64, bytes: UInt64, count: Int) {
            totals.add(key, bytes: bytes, count: count)
            if count > 0 { sizes?[key, default: SparseSizeHistogram()].add(size: bytes, count: count) }
        }
        switch view {
        case .peak:
            heap.forEach { block in
                if block.serial <= peakSerial {
                    add(siteKey(frame: block.frame, thread: block.thread, kind: block.kind), bytes: block.size, count: 1)
                }
            }
            for mapping in mapped.mappings.values where mapping.serial <= peakSerial {
                add(siteKey(frame: mapping.frame, thread: mapping.thread, kind: mapping.kind), bytes: mapping.liveBytes, count: 1)
            }
            for release in releasedSincePeak { add(release.key, bytes: release.bytes, count: release.count) }
        case .leaks:
            heap.forEach { block in
                add(siteKey(frame: block.frame, thread: block.thread, kind: block.kind), bytes: block.size, count: 1)
            }
            for mapping in mapped.mappings.values {
                add(siteKey(frame: mapping.frame, thread: mapping.thread, kind: mapping.kind), bytes: mapping.liveBytes, count: 1)
            }
        case .temporary, .allocated:
            totals = gatheredTotals
        }
        var result: [SiteTotals] = []
        result.reserveCapacity(totals.count)
        totals.forEach { key, value in
            let site = site(ofKey: key)
            let stack = stacks.key(site.frame)
            result.append(SiteTotals(frame: stack.frame, nativeFrame: stack.nativeFrame, thread: site.thread,
                                     kind: site.kind, totals: value, sizes: sizes?[key] ?? SparseSizeHistogram()))
        }
        return result
    }

    mutating func finishTemporal(endTime: UInt64) -> TemporalAggregate? {
        guard var builder = temporal else { return nil }
        // Whatever is still live was never freed.
        heap.forEach { block in
            builder.leak(serial: block.serial, key: siteKey(frame: block.frame, thread: block.thread, kind: block.kind),
                         bytes: block.size, count: 1)
        }
        for mapping in mapped.mappings.values {
            builder.leak(serial: mapping.serial, key: siteKey(frame: mapping.frame, thread: mapping.thread, kind: mapping.kind),
                         bytes: mapping.liveBytes, count: 1)
        }
        return builder.finish(snapshotTimes: samples.map(\.timeMicros), endTime: endTime, stacks: stacks)
    }
}

/// The serials of a thread's last few allocations, oldest first (a ring; serials
/// only grow, so it stays sorted and `contains` is a binary search).
struct RecentAllocations {
    private var ring: [UInt64]
    private var start = 0
    private var count = 0

    init(capacity: Int) { ring = [UInt64](repeating: 0, count: capacity) }

    @inline(__always)
    mutating func push(_ serial: UInt64) {
        if count < ring.count {
            ring[(start + count) % ring.count] = serial
            count += 1
        } else {
            ring[start] = serial
            start = (start + 1) % ring.count
        }
    }

    @inline(__always)
    func contains(_ serial: UInt64) -> Bool {
        guard count > 0 else { return false }
        if ring.count == 1 { return ring[0] == serial }
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            let value = ring[(start + middle) % ring.count]
            if value == serial { return true }
            if value < serial { low = middle + 1 } else { high = middle }
        }
        return false
    }
}

/// Totals keyed by a 64-bit key: open addressing, linear probing. Keys are never
/// removed.
struct KeyedTotals {
    private var keys: [UInt64]
    private var used: [Bool]
    private var values: [Totals]
    private(set) var count = 0
    private var shift: UInt64

    init() {
        keys = [UInt64](repeating: 0, count: 1024)
        used = [Bool](repeating: false, count: 1024)
        values = [Totals](repeating: .zero, count: 1024)
        shift = 64 - 10
    }

    @inline(__always)
    private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    @inline(__always)
    mutating func add(_ key: UInt64, bytes: UInt64, count: Int) {
        if (self.count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var index = home(key)
        while used[index] && keys[index] != key { index = (index + 1) & mask }
        if !used[index] {
            used[index] = true
            keys[index] = key
            self.count += 1
        }
        values[index].add(bytes, count: count)
    }

    func forEach(_ body: (UInt64, Totals) -> Void) {
        for index in keys.indices where used[index] { body(keys[index], values[index]) }
    }

    private mutating func grow() {
        let oldKeys = keys, oldUsed = used, oldValues = values
        let capacity = keys.count * 2
        keys = [UInt64](repeating: 0, count: capacity)
        used = [Bool](repeating: false, count: capacity)
        values = [Totals](repeating: .zero, count: capacity)
        shift -= 1
        let mask = capacity - 1
        for index in oldKeys.indices where oldUsed[index] {
            var target = home(oldKeys[index])
            while used[target] { target = (target + 1) & mask }
            used[target] = true
            keys[target] = oldKeys[index]
            values[target] = oldValues[index]
        }
    }
}
