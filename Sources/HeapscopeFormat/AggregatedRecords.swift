/// The records only an aggregated capture holds (docs/FORMAT.md, "Aggregated
/// captures"): one SITE per (stack, thread, allocator, size bucket), the
/// TOTALS, and HEAP_SAMPLEs. One encoder (`encoded`) for the writer and the
/// tests; the reader decodes them (`CaptureReader`).

/// A count of blocks and their bytes, as the site and totals records carry them.
public struct BlockFigures: Equatable, Sendable {
    public var count: UInt64
    public var bytes: UInt64

    public init(count: UInt64 = 0, bytes: UInt64 = 0) {
        self.count = count
        self.bytes = bytes
    }

    public mutating func add(_ other: BlockFigures) {
        count &+= other.count
        bytes &+= other.bytes
    }
}

/// A SITE record: what one site held at the peak, held at the end (or at the
/// checkpoint), and allocated in all. What it freed is allocated minus live.
public struct AggregatedSite: Equatable, Sendable {
    public var thread: ThreadNumber
    public var kind: AllocatorKind
    public var frame: FrameID
    public var nativeFrame: NativeFrameID
    /// `SizeHistogram.bucket(ofSize:)` of the site's blocks: sizes 2^(b-1) ..< 2^b (0: size 0).
    public var sizeBucket: UInt8
    public var atPeak: BlockFigures
    public var live: BlockFigures
    public var allocated: BlockFigures

    public init(thread: ThreadNumber, kind: AllocatorKind, frame: FrameID, nativeFrame: NativeFrameID = 0,
                sizeBucket: UInt8, atPeak: BlockFigures, live: BlockFigures, allocated: BlockFigures) {
        self.thread = thread
        self.kind = kind
        self.frame = frame
        self.nativeFrame = nativeFrame
        self.sizeBucket = sizeBucket
        self.atPeak = atPeak
        self.live = live
        self.allocated = allocated
    }
}

/// The TOTALS record: the capture's figures, and how far the program got.
public struct AggregateTotals: Equatable, Sendable {
    public enum State: UInt8, Sendable {
        /// The program stopped tracking cleanly: the figures are final.
        case ended = 0
        /// Rewritten while the program runs: a checkpoint of a run still going.
        case checkpoint = 1
        /// The stream ended without END (the program was killed): figures up to its last record.
        case cutShort = 2
    }

    public var state: State
    public var peakBytes: UInt64
    /// Serial of the ALLOC (all kinds counted, 1, 2, ...) that reached the peak; 0: none.
    public var peakSerial: UInt64
    /// Time of the last SNAPSHOT before the peak, if any.
    public var peakTimeMicros: UInt64?
    /// Every counted allocation, and those freed.
    public var allocated: BlockFigures
    public var freed: BlockFigures
    /// Live at the end (or the checkpoint): an mmap partly unmapped counts once.
    public var live: BlockFigures
    /// Every allocation by allocator kind (index = raw kind), arenas included even when not counted.
    public var byAllocator: [BlockFigures]

    public init(state: State, peakBytes: UInt64, peakSerial: UInt64, peakTimeMicros: UInt64?, allocated: BlockFigures,
                freed: BlockFigures, live: BlockFigures, byAllocator: [BlockFigures]) {
        self.state = state
        self.peakBytes = peakBytes
        self.peakSerial = peakSerial
        self.peakTimeMicros = peakTimeMicros
        self.allocated = allocated
        self.freed = freed
        self.live = live
        self.byAllocator = byAllocator
    }
}

extension AggregatedSite {
    /// The SITE record.
    public var encoded: [UInt8] {
        var out = [RecordTag.site]
        appendVarints([UInt64(thread), UInt64(kind.rawValue), UInt64(frame), UInt64(nativeFrame), UInt64(sizeBucket),
                       atPeak.count, atPeak.bytes, live.count, live.bytes, allocated.count, allocated.bytes], to: &out)
        return out
    }
}

extension AggregateTotals {
    /// The TOTALS record.
    public var encoded: [UInt8] {
        var out = [RecordTag.aggregateTotals]
        var values: [UInt64] = [UInt64(state.rawValue), peakBytes, peakSerial, peakTimeMicros.map { $0 + 1 } ?? 0,
                                allocated.count, allocated.bytes, freed.count, freed.bytes, live.count, live.bytes,
                                UInt64(byAllocator.count)]
        for figures in byAllocator { values += [figures.count, figures.bytes] }
        appendVarints(values, to: &out)
        return out
    }
}

/// The HEAP_SAMPLE record: a SNAPSHOT's time and RSS with the heap's live bytes then.
public func heapSampleRecord(timeMicros: UInt64, rssBytes: UInt64, heapBytes: UInt64) -> [UInt8] {
    var out = [RecordTag.heapSample]
    appendVarints([timeMicros, rssBytes, heapBytes], to: &out)
    return out
}

/// A STRING record (its id is the count of STRING records before it, plus 1).
public func stringRecord(_ text: String) -> [UInt8] {
    var out = [RecordTag.string]
    appendVarints([UInt64(text.utf8.count)], to: &out)
    return out + Array(text.utf8)
}

/// A THREAD_INFO record: the thread's number, OS thread id (0: none) and name.
public func threadInfoRecord(thread: ThreadNumber, osThreadID: UInt64, name: StringID) -> [UInt8] {
    var out = [RecordTag.threadInfo]
    appendVarints([UInt64(thread), osThreadID, UInt64(name)], to: &out)
    return out
}

/// The END record.
public func endRecord(timeMicros: UInt64) -> [UInt8] {
    var out = [RecordTag.end]
    appendVarints([timeMicros], to: &out)
    return out
}

private func appendVarints(_ values: [UInt64], to out: inout [UInt8]) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: VarInt.maxBytes) { scratch in
        for value in values { out += scratch[0..<VarInt.write(value, to: scratch.baseAddress!)] }
    }
}
