import HeapscopeFormat

/// The live view's model at one moment of a live stream (docs/FORMAT.md, "The
/// live stream"): what is live now, by innermost Python frame and thread, the
/// peak so far and the totals, as the replay engine's live consumer
/// (`LiveSites`) finds them. The screens (`LiveScreen`) group it by site; they
/// compute no figure of their own.
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
    /// What is live now, by (innermost frame, thread): allocator kinds and native frames merged.
    public var live: [LiveKey: Totals]

    public struct LiveKey: Hashable, Sendable {
        public var frame: FrameID
        public var thread: ThreadNumber

        public init(frame: FrameID, thread: ThreadNumber) {
            self.frame = frame
            self.thread = thread
        }
    }

    /// The view of what `sites` was fed, with the reader's tables.
    public init(header: CaptureHeader, tables: CaptureTables, sites: LiveSites) {
        let now = sites.snapshot()
        self.header = header
        self.tables = tables
        heapBytes = now.liveTotals.bytes
        peakBytes = now.peakBytes
        allocated = now.allocated
        rssBytes = now.lastSnapshot?.rssBytes ?? 0
        samples = sites.samples
        timeMicros = sites.endTimeMicros ?? now.lastSnapshot?.timeMicros ?? 0
        var live: [LiveKey: Totals] = [:]
        for site in now.live {
            let key = LiveKey(frame: site.frame, thread: site.thread)
            live[key] = live[key, default: .zero] + site.totals
        }
        self.live = live
    }
}

/// A capture's stream as it arrives (live mode, `--aggregate`): its bytes go in
/// (`append`, compressed or not) and are read and replayed into `consumer`,
/// made once the header is in. Each byte is decoded and replayed once, so a
/// look at the consumer costs what arrived since the one before.
public struct StreamFeed<Consumer: ReplayConsumer> {
    private let decoder = CaptureStreamDecoder()
    private let makeConsumer: (CaptureHeader) -> Consumer
    /// Uncompressed bytes before the header is complete.
    private var pending: [UInt8] = []
    public private(set) var reader: CaptureReader?
    public private(set) var consumer: Consumer?

    public init(_ makeConsumer: @escaping (CaptureHeader) -> Consumer) {
        self.makeConsumer = makeConsumer
    }

    /// Reads and replays the bytes that follow those appended before.
    public mutating func append(_ bytes: [UInt8]) throws(CaptureError) {
        let decoded = try decoder.decode(bytes)
        if reader != nil {
            reader!.resume(appending: decoded)
        } else {
            pending += decoded
            // The header (its metadata can be long) may take a few pieces to arrive.
            guard let first = try? CaptureReader(bytes: pending) else { return }
            reader = first
            consumer = makeConsumer(first.header)
            pending = []
        }
        try Replay.run(&reader!, into: &consumer!)
    }
}

/// The live view's model as the stream arrives: `view` says what it shows so far.
public typealias LiveFeed = StreamFeed<LiveSites>

extension StreamFeed where Consumer == LiveSites {
    public init() { self.init { LiveSites(header: $0) } }

    /// The figures so far; nil until the header has arrived.
    public var view: LiveView? {
        guard let reader, let consumer else { return nil }
        return LiveView(header: reader.header, tables: reader.tables, sites: consumer)
    }
}
