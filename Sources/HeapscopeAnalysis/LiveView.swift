import HeapscopeFormat

/// The live view's model at one moment of a live stream (docs/FORMAT.md, "The
/// live stream"): what is live now, by innermost Python frame and thread, the
/// peak so far and the totals, as the replay of the stream so far finds them.
/// The screens (`LiveScreen`) group it by site; they compute no figure of
/// their own.
public struct LiveView: Sendable {
    public var header: CaptureHeader
    public var tables: CaptureTables
    /// Bytes live now (the counted kinds, docs/FORMAT.md "What the figures mean").
    public var heapBytes: UInt64
    public var peakBytes: UInt64
    /// Every counted allocation so far.
    public var allocated: Totals
    /// Resident set size at the last SNAPSHOT; 0 before the first.
    public var rssBytes: UInt64
    /// Stream time: the END record's, else the last SNAPSHOT's.
    public var timeMicros: UInt64
    /// The heap at every SNAPSHOT so far.
    public var samples: [MemorySample]
    /// Tracking ended (END) or stopped (STOPPED): nothing more will come.
    public var isFinished: Bool
    /// What is live now, by (innermost frame, thread).
    public var live: [LiveKey: Totals]

    public struct LiveKey: Hashable, Sendable {
        public var frame: FrameID
        public var thread: ThreadNumber

        public init(frame: FrameID, thread: ThreadNumber) {
            self.frame = frame
            self.thread = thread
        }
    }

    /// The view of a replay of the stream up to now.
    public init(analysis: CaptureAnalysis) {
        header = analysis.header
        tables = analysis.tables
        peakBytes = analysis.peak.bytes
        allocated = analysis.allocated
        rssBytes = analysis.memoryOverTime.last?.rssBytes ?? 0
        timeMicros = analysis.durationMicros ?? 0
        samples = analysis.memoryOverTime
        isFinished = analysis.endTimeMicros != nil || analysis.stopCause != nil
        var live: [LiveKey: Totals] = [:]
        var heap: UInt64 = 0
        for block in analysis.liveAtEnd {
            live[LiveKey(frame: block.frame, thread: block.thread), default: .zero].add(block.size)
            heap &+= block.size
        }
        self.live = live
        heapBytes = heap
    }

    /// Replays the capture at `path` (the live store) as far as it goes.
    public static func read(path: String) throws(CaptureError) -> LiveView {
        LiveView(analysis: try CaptureAnalysis.analyze(path: path))
    }
}
