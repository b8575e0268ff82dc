import HeapscopeFormat

/// A number of allocations and the bytes they hold.
public struct Totals: Equatable, Sendable {
    public var count: Int
    public var bytes: UInt64

    public init(count: Int = 0, bytes: UInt64 = 0) {
        self.count = count
        self.bytes = bytes
    }

    public static let zero = Totals()

    /// Sums wrap instead of trapping: a damaged capture may hold absurd sizes.
    @inline(__always)
    mutating func add(_ bytes: UInt64, count: Int = 1) {
        self.count &+= count
        self.bytes &+= bytes
    }

    public static func + (a: Totals, b: Totals) -> Totals {
        Totals(count: a.count &+ b.count, bytes: a.bytes &+ b.bytes)
    }
}

// An aggregated capture's records carry figures as unsigned counts.
extension Totals {
    init(_ figures: BlockFigures) { self.init(count: Int(truncatingIfNeeded: figures.count), bytes: figures.bytes) }
}

extension BlockFigures {
    init(_ totals: Totals) { self.init(count: UInt64(truncatingIfNeeded: totals.count), bytes: totals.bytes) }
}

/// Allocation sizes in power-of-two buckets: bucket 0 holds size 0, bucket k
/// (1...64) holds sizes in [2^(k-1), 2^k).
public struct SizeHistogram: Equatable, Sendable {
    public private(set) var counts = [Int](repeating: 0, count: 65)

    public init() {}

    @inline(__always)
    public static func bucket(ofSize size: UInt64) -> Int { 64 - size.leadingZeroBitCount }

    /// Smallest and largest size bucket `index` holds.
    public static func range(ofBucket index: Int) -> ClosedRange<UInt64> {
        index == 0 ? 0...0 : (UInt64(1) << (index - 1))...(index == 64 ? UInt64.max : (UInt64(1) << index) - 1)
    }

    @inline(__always)
    mutating func add(size: UInt64) { counts[Self.bucket(ofSize: size)] &+= 1 }

    /// Adds another histogram's counts (merged processes).
    mutating func add(_ other: SizeHistogram) {
        for index in counts.indices { counts[index] &+= other.counts[index] }
    }

    mutating func add(bucket: Int, count: Int) { counts[bucket] &+= count }

    /// The buckets from the first to the last non-empty one (empty ones between included).
    public var populatedBuckets: [(range: ClosedRange<UInt64>, count: Int)] {
        guard let first = counts.firstIndex(where: { $0 > 0 }), let last = counts.lastIndex(where: { $0 > 0 }) else { return [] }
        return (first...last).map { (Self.range(ofBucket: $0), counts[$0]) }
    }
}

/// A size histogram kept sparse, for one site among many: the non-empty
/// buckets of `SizeHistogram` only, in bucket order.
public struct SparseSizeHistogram: Equatable, Sendable {
    /// bucket << 56 | count.
    private var entries: [UInt64] = []
    private static let countMask: UInt64 = (1 << 56) - 1

    public init() {}

    @inline(__always)
    mutating func add(size: UInt64, count: Int = 1) {
        add(bucket: UInt64(SizeHistogram.bucket(ofSize: size)), count: UInt64(count))
    }

    mutating func add(bucket: UInt64, count: UInt64) {
        let key = bucket << 56
        var index = 0
        while index < entries.count && entries[index] & ~Self.countMask < key { index += 1 }
        if index < entries.count && entries[index] & ~Self.countMask == key {
            entries[index] &+= count
        } else {
            entries.insert(key | count, at: index)
        }
    }

    public static func + (a: SparseSizeHistogram, b: SparseSizeHistogram) -> SparseSizeHistogram {
        var sum = a
        for entry in b.entries { sum.add(bucket: entry >> 56, count: entry & countMask) }
        return sum
    }

    /// The non-empty buckets, smallest sizes first: `SizeHistogram.range(ofBucket:)` and the count.
    public var buckets: [(bucket: Int, count: Int)] {
        entries.map { (Int($0 >> 56), Int($0 & Self.countMask)) }
    }
}

public struct ThreadTotals: Equatable, Sendable {
    public var number: ThreadNumber
    /// 0 when no THREAD_INFO named the thread.
    public var osThreadID: UInt64
    public var name: String?
    public var allocated: Totals

    public init(number: ThreadNumber, osThreadID: UInt64, name: String?, allocated: Totals) {
        self.number = number
        self.osThreadID = osThreadID
        self.name = name
        self.allocated = allocated
    }
}

/// A point of the memory-over-time series, one per SNAPSHOT record.
public struct MemorySample: Equatable, Sendable {
    public var timeMicros: UInt64
    public var rssBytes: UInt64
    /// The replayed live heap at that moment.
    public var heapBytes: UInt64

    public init(timeMicros: UInt64, rssBytes: UInt64, heapBytes: UInt64) {
        self.timeMicros = timeMicros
        self.rssBytes = rssBytes
        self.heapBytes = heapBytes
    }
}

/// An allocation that was still live (at the end of the capture, for leaks).
public struct LiveAllocation: Equatable, Sendable {
    public var kind: AllocatorKind
    public var address: UInt64
    /// For an mmap that was partly unmapped, the bytes still mapped.
    public var size: UInt64
    public var frame: FrameID
    public var thread: ThreadNumber
    /// Blocks it stands for: 1, or in an aggregated capture (no addresses, address 0)
    /// the blocks its site had live, `size` their bytes.
    public var count: Int

    public init(kind: AllocatorKind, address: UInt64, size: UInt64, frame: FrameID, thread: ThreadNumber, count: Int = 1) {
        self.kind = kind
        self.address = address
        self.size = size
        self.frame = frame
        self.thread = thread
        self.count = count
    }
}
