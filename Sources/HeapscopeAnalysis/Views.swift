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
    /// A report over a process tree (`--children`, ProcessTree.swift): each
    /// process's own figures, root first; empty for one capture.
    public var processes: [ProcessFigures] = []

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
        try AggregatedCaptures.check(reader.header, view: view, temporal: temporal)
        var features = HeapModel.Features()
        features.counters = true
        features.gather = HeapModel.Gather(view)
        features.sizes = sizes
        features.temporal = temporal
        var model = HeapModel(header: reader.header, tables: reader.tables, features: features,
                              expectedBlocks: reader.liveBlocksHint)
        try Replay.run(&reader, into: &model, progress: progress)

        self.view = view
        header = reader.header
        tables = reader.tables
        isTruncated = reader.isTruncated
        stopCause = reader.stopCause
        isCompressed = reader.isCompressed
        recordCount = reader.recordCount
        countsArenas = model.countsArenas
        allocated = model.allocated
        allocatedByFrame = model.allocatedByFrame
        peakBytes = model.peakBytes
        peakTimeMicros = model.peakTime
        memoryOverTime = model.samples
        endTimeMicros = model.endTime
        switch view {
        case .peak: sites = model.siteTotals(.peak)
        case .leaks: sites = model.siteTotals(.live)
        case .temporary, .allocated: sites = model.siteTotals(.gathered)
        }
        total = sites.reduce(Totals()) { $0 + $1.totals }
        self.temporal = model.temporalAggregate()
    }
}
