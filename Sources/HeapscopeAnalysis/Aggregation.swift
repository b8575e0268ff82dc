import HeapscopeFormat

/// Turns an event capture's stream into an aggregated capture (`--aggregate`;
/// docs/FORMAT.md, "Aggregated captures"): the replay engine's `HeapModel`
/// takes the events, the definitions are kept as the stream holds them, and
/// `capture(state:)` writes the sites' figures at any moment. Out of the
/// profiled process (docs/ARCHITECTURE.md, "Aggregated captures"), so its
/// figures are by construction those every report of the full capture gives.
///
/// Memory: the model's live blocks and sites, the definitions, the samples.
public struct Aggregation: ReplayConsumer {
    /// Samples an aggregated capture keeps at most: a longer run keeps, of each
    /// run of consecutive samples, the one with the most heap.
    public static let maxSamples = 2048
    /// Threads an aggregated capture keeps apart, in order of first appearance.
    /// The sites of every later thread are summed into one more thread, named
    /// `laterThreadsName`: a service that starts a thread per task keeps a
    /// capture (and checkpoints) that grows with its stacks, not its threads.
    public static let threadsKeptApart: ThreadNumber = 64
    public static let laterThreadsName = "[threads after the first 64, summed]"

    private let header: CaptureHeader
    private var model: HeapModel
    /// STRING, CODE, FRAME, NATIVE_FRAME, MAPPINGS, THREAD_INFO records and each
    /// thread's first THREAD, in stream order: ids stay those of the full stream.
    private var definitions: [UInt8] = []
    private var threadsSeen: ThreadNumber = 0
    /// STRING records in `definitions`: the next one's id is this plus 1.
    private var strings = 0
    /// The stream's last time (END, STOPPED or SNAPSHOT).
    private var lastTime: UInt64 = 0

    public init(header: CaptureHeader) {
        self.header = header
        var features = HeapModel.Features()
        features.counters = true
        features.gather = .allocated
        features.sizes = true
        model = HeapModel(header: header, tables: CaptureTables(), features: features)
    }

    public static var wantsRecordBytes: Bool { true }

    public mutating func recordBytes(_ bytes: [UInt8], of record: Record) {
        switch record {
        case .string:
            strings += 1
            definitions += bytes
        case .code, .frame, .nativeFrame, .mappings:
            definitions += bytes
        case .threadInfo(let number) where number <= Self.threadsKeptApart:
            definitions += bytes
        case .thread(let number) where number > threadsSeen:
            threadsSeen = number
            if number <= Self.threadsKeptApart { definitions += bytes }
        case .snapshot(let time, _), .end(let time), .stopped(_, let time):
            lastTime = time
        default:
            break
        }
    }

    @inline(__always)
    public mutating func events(_ batch: UnsafeMutableBufferPointer<Event>, thread: ThreadNumber) {
        model.events(batch, thread: Self.kept(thread))
    }

    public mutating func record(_ record: Record, tables: CaptureTables) {
        switch record {
        case .alloc(var allocation):
            allocation.thread = Self.kept(allocation.thread)
            model.record(.alloc(allocation), tables: tables)
        case .free(let kind, let address, let thread):
            model.record(.free(kind: kind, address: address, thread: Self.kept(thread)), tables: tables)
        case .thread(let number):
            model.record(.thread(Self.kept(number)), tables: tables)
        case .threadInfo(let number):
            model.record(.threadInfo(Self.kept(number)), tables: tables)
        default:
            model.record(record, tables: tables)
        }
    }

    /// Threads after `threadsKeptApart` go into the model as one: their sites
    /// are summed as the events come (exactly: each figure is a sum over
    /// blocks), so this process's memory does not grow with them either.
    @inline(__always)
    private static func kept(_ thread: ThreadNumber) -> ThreadNumber { min(thread, threadsKeptApart + 1) }

    /// The stream's END has been read: the program stopped tracking cleanly.
    public var streamEnded: Bool { model.endTime != nil }

    /// The aggregated capture of everything read so far, `state` saying how far the program got.
    public func capture(state: AggregateTotals.State) -> [UInt8] {
        var aggregatedHeader = header
        aggregatedHeader.version = CaptureFile.aggregatedVersion
        aggregatedHeader.flags.insert(.aggregated)
        var out = aggregatedHeader.encoded()
        out += definitions
        if threadsSeen > Self.threadsKeptApart {
            out += stringRecord(Self.laterThreadsName)
            out += threadInfoRecord(thread: Self.threadsKeptApart + 1, osThreadID: 0, name: StringID(strings + 1))
        }
        for sample in Self.thinned(model.samples) {
            out += heapSampleRecord(timeMicros: sample.timeMicros, rssBytes: sample.rssBytes, heapBytes: sample.heapBytes)
        }
        for site in model.aggregatedSites() { out += site.encoded }
        out += model.aggregateTotals(state: state).encoded
        out += endRecord(timeMicros: model.endTime ?? lastTime)
        return out
    }

    /// At most `maxSamples`, the one with the most heap of each run of consecutive ones.
    static func thinned(_ samples: [MemorySample]) -> [MemorySample] {
        guard samples.count > maxSamples else { return samples }
        let stride = (samples.count + maxSamples - 1) / maxSamples
        return Swift.stride(from: 0, to: samples.count, by: stride).map { start in
            samples[start..<min(start + stride, samples.count)].max { $0.heapBytes < $1.heapBytes }!
        }
    }
}

/// What an aggregated capture can answer: every view but the temporary one, no temporal aggregate.
public enum AggregatedCaptures {
    public static func check(_ header: CaptureHeader, view: ReportView = .peak, temporal: Bool = false) throws(CaptureError) {
        guard header.flags.contains(.aggregated) else { return }
        if case .temporary = view { throw .needsEvents("--temporary-allocations") }
        if temporal { throw .needsEvents("--temporal") }
    }

    /// For a report that needs the addresses of blocks or their order (`what`).
    public static func refuse(_ header: CaptureHeader, _ what: String) throws(CaptureError) {
        if header.flags.contains(.aggregated) { throw .needsEvents(what) }
    }
}
