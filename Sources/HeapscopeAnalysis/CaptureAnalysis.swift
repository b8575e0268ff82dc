import HeapscopeFormat

/// Everything one replay of a capture yields (docs/FORMAT.md, "What the figures
/// mean"): totals, the peak and what was live then, what was live at the end,
/// and splits by allocator, size, location, thread and time.
public struct CaptureAnalysis: Sendable {
    public var header: CaptureHeader
    public var tables: CaptureTables
    /// The capture was cut short: the figures cover it up to its last complete record.
    public var isTruncated: Bool
    /// Why the tracker stopped writing early, when the capture says (disk full, file deleted).
    public var stopCause: StopCause?
    public var isCompressed: Bool
    public var recordCount: Int
    /// Whether pymalloc arenas count in totals and the peak: only when Python
    /// allocators were not traced (otherwise their blocks are counted already).
    public var countsArenas: Bool

    /// Every counted allocation made while tracking.
    public var allocated: Totals
    public var allocatedByStack: StackTotals
    /// Every allocation by kind, arenas included even when not counted in `allocated`.
    public var byAllocator: [AllocatorKind: Totals]
    public var histogram: SizeHistogram
    public var threads: [ThreadTotals]
    public var peak: Peak
    /// Allocations still live when tracking stopped (or where the capture was cut).
    public var liveAtEnd: [LiveAllocation]
    public var memoryOverTime: [MemorySample]
    /// From the END record, if any.
    public var endTimeMicros: UInt64?

    public struct Peak: Equatable, Sendable {
        /// High-water mark of the live heap.
        public var bytes: UInt64
        /// Serial number (1, 2, ... over all ALLOC records) of the allocation that
        /// reached it; 0 if the heap never grew.
        public var allocationSerial: UInt64
        /// Time of the last SNAPSHOT before the peak, if any.
        public var timeMicros: UInt64?
        /// What was live at the peak, by stack.
        public var live: StackTotals
    }

    /// Tracking time: from the END record, else the last snapshot.
    public var durationMicros: UInt64? { endTimeMicros ?? memoryOverTime.last?.timeMicros }

    public var liveAtEndTotals: Totals {
        liveAtEnd.reduce(into: Totals()) { $0.add($1.size) }
    }

    public var liveAtEndByStack: StackTotals {
        var totals = StackTotals(frameCount: tables.frameCount)
        for allocation in liveAtEnd { totals.add(frame: allocation.frame, bytes: allocation.size) }
        return totals
    }

    public enum Order: Sendable {
        case bytes, count
    }

    /// The locations that allocated the most, by bytes or by count (ties: the other
    /// figure, then the location).
    public func topLocations(by order: Order, limit: Int) -> [LocationTotals] {
        let locations = allocatedByStack.byLocation(tables)
        let sorted = locations.sorted { a, b in
            let keyA = order == .bytes ? (a.totals.bytes, UInt64(a.totals.count)) : (UInt64(a.totals.count), a.totals.bytes)
            let keyB = order == .bytes ? (b.totals.bytes, UInt64(b.totals.count)) : (UInt64(b.totals.count), b.totals.bytes)
            return keyA != keyB ? keyA > keyB : a.location < b.location
        }
        return Array(sorted.prefix(limit))
    }

    private static let batchSize = 128

    /// Reads and replays the capture at `path`.
    /// `progress` is called now and then with (bytes read, stream length).
    public static func analyze(path: String, progress: ((Int, Int) -> Void)? = nil) throws(CaptureError) -> CaptureAnalysis {
        try CaptureAnalysis(reader: CaptureReader(path: path), progress: progress)
    }

    /// Replays `reader` from where it stands to the end of the stream.
    public init(reader: CaptureReader, progress: ((Int, Int) -> Void)? = nil) throws(CaptureError) {
        var reader = reader
        var progressReport = ProgressReport(progress, streamLength: reader.streamLength)
        var replay = Replay(countsArenas: !reader.header.flags.contains(.pythonAllocators),
                            frameCount: reader.tables.frameCount, threadCount: reader.tables.threadCount)
        // ALLOC and FREE records come in batches: first every address of the batch
        // is looked up in the live-block table at once, so their cache misses
        // overlap, then the batch is replayed in order against a warm table.
        let events = UnsafeMutableBufferPointer<Event>.allocate(capacity: Self.batchSize)
        defer { events.deallocate() }
        while true {
            let count = reader.nextEvents(into: events)
            if count > 0 {
                let batch = UnsafeMutableBufferPointer(rebasing: events[0..<count])
                replay.warm(batch)
                replay.apply(batch, thread: reader.currentThread)
                progressReport.note(reader)
                continue
            }
            guard let record = try reader.next() else { break }
            replay.apply(record)
            progressReport.note(reader)
        }
        progressReport.finish()

        header = reader.header
        tables = reader.tables
        isTruncated = reader.isTruncated
        stopCause = reader.stopCause
        isCompressed = reader.isCompressed
        recordCount = reader.recordCount
        countsArenas = replay.countsArenas
        allocated = replay.allocated
        allocatedByStack = replay.allocatedByStack
        byAllocator = [:]
        for kind in AllocatorKind.allCases where replay.byAllocator[Int(kind.rawValue)].count > 0 {
            byAllocator[kind] = replay.byAllocator[Int(kind.rawValue)]
        }
        histogram = replay.histogram
        threads = reader.tables.threads.indices.map { number in
            let info = reader.tables.threads[number]
            return ThreadTotals(number: info.number, osThreadID: info.osThreadID, name: info.name,
                                allocated: number < replay.threads.count ? replay.threads[number] : .zero)
        }.filter { $0.number != 0 || $0.allocated.count > 0 }
        peak = Peak(bytes: replay.peakBytes, allocationSerial: replay.peakSerial, timeMicros: replay.peakTime,
                    live: replay.liveAtPeak(frameCount: reader.tables.frameCount))
        liveAtEnd = replay.liveAllocations()
        memoryOverTime = replay.samples
        endTimeMicros = replay.endTime
    }
}

/// The state of one replay. Only `liveBytes`, the tables of live blocks and a
/// short log are needed to find the peak and what was live at it in one pass:
/// what was live at the peak is (blocks still live at the end, born by the
/// peak) + (blocks born by the peak and released after it), and the log holds
/// the second set. It restarts at each new peak, so it never outgrows the peak.
private struct Replay {
    /// A block, or part of a mapping, released after the current peak and live at it.
    struct Release {
        var bytes: UInt64
        var frame: FrameID
        /// False when only part of a mapping went.
        var isWhole: Bool
    }

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
    var allocatedByStack: StackTotals
    var byAllocator = [Totals](repeating: .zero, count: AllocatorKind.allCases.count)
    var histogram = SizeHistogram()
    /// Index = thread number.
    var threads: [Totals]
    var samples: [MemorySample] = []
    var endTime: UInt64?

    init(countsArenas: Bool, frameCount: Int, threadCount: Int) {
        self.countsArenas = countsArenas
        allocatedByStack = StackTotals(frameCount: frameCount)
        threads = [Totals](repeating: .zero, count: threadCount + 1)
    }

    mutating func apply(_ record: Record) {
        switch record {
        case .alloc(let allocation): alloc(allocation)
        case .free(let kind, let address, _): free(kind, address: address)
        case .munmap(let address, let length): munmap(address, length: length)
        case .frame: allocatedByStack.byFrame.append(.zero)
        case .thread(let number), .threadInfo(let number):
            if Int(number) >= threads.count { threads.append(.zero) }
        case .snapshot(let time, let rss):
            lastSnapshotTime = time
            samples.append(MemorySample(timeMicros: time, rssBytes: rss, heapBytes: liveBytes))
        case .end(let time): endTime = time
        case .string, .code, .nativeFrame, .mappings, .stopped: break
        }
    }

    /// Starts loading the table slots the events will touch.
    func warm(_ events: UnsafeMutableBufferPointer<Event>) {
        heap.warm(events.lazy.map(\.address))
    }

    mutating func apply(_ events: UnsafeMutableBufferPointer<Event>, thread: ThreadNumber) {
        for event in events {
            if event.isFree {
                free(event.kind, address: event.address)
            } else {
                alloc(Allocation(kind: event.kind, address: event.address, size: event.size, frame: event.frame, thread: thread))
            }
        }
    }

    @inline(__always)
    mutating func alloc(_ allocation: Allocation) {
        serial &+= 1
        byAllocator[Int(allocation.kind.rawValue)].add(allocation.size)
        if allocation.kind == .pymallocArena && !countsArenas { return }

        allocated.add(allocation.size)
        allocatedByStack.add(frame: allocation.frame, bytes: allocation.size)
        histogram.add(size: allocation.size)
        threads[Int(allocation.thread)].add(allocation.size)

        if allocation.kind == .mmap {
            let mapping = MappedRanges.Mapping(address: allocation.address, serial: serial, frame: allocation.frame,
                                               thread: allocation.thread, kind: allocation.kind, liveBytes: 0)
            for part in mapped.map(mapping, length: allocation.size) { release(part) }
        } else {
            let block = LiveBlock(address: allocation.address, size: allocation.size, serial: serial,
                                  frame: allocation.frame, thread: allocation.thread, kind: allocation.kind)
            if let replaced = heap.insert(block) { release(replaced) }  // its FREE was not seen
        }
        liveBytes &+= allocation.size
        if liveBytes > peakBytes {
            peakBytes = liveBytes
            peakSerial = serial
            peakTime = lastSnapshotTime
            releasedSincePeak.removeAll(keepingCapacity: true)
        }
    }

    @inline(__always)
    mutating func free(_ kind: AllocatorKind, address: UInt64) {
        if kind == .pymallocArena && !countsArenas { return }
        if let block = heap.remove(address) { release(block) }
    }

    mutating func munmap(_ address: UInt64, length: UInt64) {
        for part in mapped.unmap(address, length: length) { release(part) }
    }

    @inline(__always)
    private mutating func release(_ block: LiveBlock) {
        liveBytes &-= block.size
        if block.serial <= peakSerial {
            releasedSincePeak.append(Release(bytes: block.size, frame: block.frame, isWhole: true))
        }
    }

    private mutating func release(_ part: MappedRanges.Released) {
        liveBytes &-= part.bytes
        if part.mapping.serial <= peakSerial {
            releasedSincePeak.append(Release(bytes: part.bytes, frame: part.mapping.frame, isWhole: part.isWhole))
        }
    }

    func liveAtPeak(frameCount: Int) -> StackTotals {
        var live = StackTotals(frameCount: frameCount)
        heap.forEach { block in
            if block.serial <= peakSerial { live.add(frame: block.frame, bytes: block.size) }
        }
        for mapping in mapped.mappings.values where mapping.serial <= peakSerial {
            live.add(frame: mapping.frame, bytes: mapping.liveBytes)
        }
        for release in releasedSincePeak {
            live.add(frame: release.frame, bytes: release.bytes, count: release.isWhole ? 1 : 0)
        }
        return live
    }

    func liveAllocations() -> [LiveAllocation] {
        var result: [LiveAllocation] = []
        result.reserveCapacity(heap.count + mapped.mappings.count)
        heap.forEach { block in
            result.append(LiveAllocation(kind: block.kind, address: block.address, size: block.size,
                                         frame: block.frame, thread: block.thread))
        }
        for mapping in mapped.mappings.values {
            result.append(LiveAllocation(kind: mapping.kind, address: mapping.address, size: mapping.liveBytes,
                                         frame: mapping.frame, thread: mapping.thread))
        }
        return result.sorted { ($0.address, $0.size) < ($1.address, $1.size) }
    }
}

/// Calls a progress callback every 256 Ki records, not on every one.
struct ProgressReport {
    private let callback: ((Int, Int) -> Void)?
    private let streamLength: Int
    private var nextReport = 0

    init(_ callback: ((Int, Int) -> Void)?, streamLength: Int) {
        self.callback = callback
        self.streamLength = streamLength
        callback?(0, streamLength)
    }

    @inline(__always)
    mutating func note(_ reader: CaptureReader) {
        guard let callback, reader.recordCount >= nextReport else { return }
        nextReport = reader.recordCount + 1 << 18
        callback(reader.recordOffset, streamLength)
    }

    func finish() { callback?(streamLength, streamLength) }
}
