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
    /// Allocations still live when tracking stopped (or where the capture was
    /// cut), by address; empty unless asked for (`keepsLiveAllocations`).
    public var liveAtEnd: [LiveAllocation]
    /// What was live at the end, in all and by Python stack.
    public var liveAtEndTotals: Totals
    public var liveAtEndByStack: StackTotals
    public var memoryOverTime: [MemorySample]
    /// From the END record, if any.
    public var endTimeMicros: UInt64?
    /// The view the per-location figures of `viewByStack` are for.
    public var view: ReportView
    /// The view's figures by Python stack: what was live at the peak, at the
    /// end (leaks), or the temporary or allocated view.
    public var viewByStack: StackTotals
    /// A report over a process tree (`--children`, ProcessTree.swift): each
    /// process's own figures, root first; empty for one capture.
    public var processes: [ProcessFigures] = []

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

    /// The capture was recorded with pymalloc active and Python allocators not
    /// traced: freed objects stay inside pymalloc's arenas, so leak figures mislead.
    public var leaksMislead: Bool { AllocatorNotes.leaksMislead(header) }

    public enum Order: Sendable {
        case bytes, count
    }

    /// The locations with the most in `viewByStack` (for the peak view: that
    /// allocated the most), by bytes or by count (ties: the other figure, then
    /// the location).
    public func topLocations(by order: Order, limit: Int) -> [LocationTotals] {
        let locations = (view == .peak ? allocatedByStack : viewByStack).byLocation(tables)
        let sorted = locations.sorted { a, b in
            let keyA = order == .bytes ? (a.totals.bytes, UInt64(a.totals.count)) : (UInt64(a.totals.count), a.totals.bytes)
            let keyB = order == .bytes ? (b.totals.bytes, UInt64(b.totals.count)) : (UInt64(b.totals.count), b.totals.bytes)
            return keyA != keyB ? keyA > keyB : a.location < b.location
        }
        return Array(sorted.prefix(limit))
    }

    /// Reads and replays the capture at `path` (one pass).
    /// `view`: what `viewByStack` holds; `keepsLiveAllocations`: fill `liveAtEnd`.
    /// `progress` is called now and then with (bytes read, stream length).
    public static func analyze(path: String, view: ReportView = .peak, keepsLiveAllocations: Bool = true,
                               progress: ((Int, Int) -> Void)? = nil) throws(CaptureError) -> CaptureAnalysis {
        try CaptureAnalysis(reader: CaptureReader(path: path), view: view, keepsLiveAllocations: keepsLiveAllocations,
                            progress: progress)
    }

    /// Replays `reader` from where it stands to the end of the stream.
    public init(reader: CaptureReader, view: ReportView = .peak, keepsLiveAllocations: Bool = true,
                progress: ((Int, Int) -> Void)? = nil) throws(CaptureError) {
        var reader = reader
        try AggregatedCaptures.check(reader.header, view: view)
        var features = HeapModel.Features()
        features.counters = true
        features.gather = HeapModel.Gather(view)
        var model = HeapModel(header: reader.header, tables: reader.tables, features: features,
                              expectedBlocks: reader.liveBlocksHint)
        try Replay.run(&reader, into: &model, progress: progress)

        header = reader.header
        tables = reader.tables
        isTruncated = reader.isTruncated
        stopCause = reader.stopCause
        isCompressed = reader.isCompressed
        recordCount = reader.recordCount
        countsArenas = model.countsArenas
        allocated = model.allocated
        allocatedByStack = StackTotals(byFrame: model.allocatedByFrame)
        byAllocator = [:]
        for kind in AllocatorKind.allCases where model.byAllocator[Int(kind.rawValue)].count > 0 {
            byAllocator[kind] = model.byAllocator[Int(kind.rawValue)]
        }
        histogram = model.histogram
        threads = reader.tables.threads.indices.map { number in
            let info = reader.tables.threads[number]
            return ThreadTotals(number: info.number, osThreadID: info.osThreadID, name: info.name,
                                allocated: number < model.threadTotals.count ? model.threadTotals[number] : .zero)
        }.filter { $0.number != 0 || $0.allocated.count > 0 }
        let frameCount = reader.tables.frameCount
        peak = Peak(bytes: model.peakBytes, allocationSerial: model.peakSerial, timeMicros: model.peakTime,
                    live: model.byFrame(.peak, frameCount: frameCount))
        liveAtEnd = keepsLiveAllocations ? model.liveAllocations() : []
        liveAtEndTotals = model.liveTotals
        liveAtEndByStack = model.byFrame(.live, frameCount: frameCount)
        memoryOverTime = model.samples
        endTimeMicros = model.endTime
        self.view = view
        switch view {
        case .peak: viewByStack = peak.live
        case .leaks: viewByStack = liveAtEndByStack
        case .temporary, .allocated: viewByStack = model.byFrame(.gathered, frameCount: frameCount)
        }
    }
}

extension HeapModel.Gather {
    /// What a view needs gathered as the replay goes (peak and leaks come with the heap).
    init(_ view: ReportView) {
        switch view {
        case .peak, .leaks: self = .none
        case .temporary(let threshold): self = .temporary(threshold: threshold)
        case .allocated: self = .allocated
        }
    }
}
