import HeapscopeFormat

/// What the temporal flame graph needs to answer "what was allocated in this time
/// range and still live at its end (or never freed)" for any range, in the page:
/// bytes and counts per (site, time bucket of the allocation, time bucket of the
/// free). Time comes from SNAPSHOT records; at most `TemporalBuilder.maxBuckets`
/// buckets (neighbouring snapshots are merged on long captures). Blocks freed in
/// the bucket they were allocated in are never live at a bucket's end and are
/// left out, which keeps the table small.
public struct TemporalAggregate: Sendable {
    /// Free bucket of a block never freed.
    public static let never: UInt16 = .max

    /// End of each bucket in microseconds since the start; bucket b covers
    /// (end[b-1], end[b]], bucket 0 starts at 0.
    public var bucketEndMicros: [UInt64]
    public var entries: [TemporalEntry]
}

public struct TemporalEntry: Equatable, Sendable {
    public var frame: FrameID
    /// Innermost native frame (native captures; else 0).
    public var nativeFrame: NativeFrameID = 0
    public var thread: ThreadNumber
    public var kind: AllocatorKind
    public var allocBucket: UInt16
    /// `TemporalAggregate.never` when the blocks were still live at the end.
    public var freeBucket: UInt16
    public var totals: Totals
}

struct TemporalBuilder {
    static let maxBuckets = 240

    /// Serial of the last ALLOC before each snapshot.
    private var serialAtSnapshot: [UInt64] = []
    /// Bucket of a snapshot epoch = epoch >> shift.
    private var shift = 0
    /// Allocations with a serial above this one are in the current bucket.
    private var currentBucketStartSerial: UInt64 = 0
    private var table = PairKeyedTotals()

    private var currentBucket: Int { serialAtSnapshot.count >> shift }

    mutating func snapshot(serial: UInt64) {
        serialAtSnapshot.append(serial)
        while currentBucket >= Self.maxBuckets { coarsen() }
        if serialAtSnapshot.count & ((1 << shift) - 1) == 0 { currentBucketStartSerial = serial }
    }

    /// Epoch of an allocation: how many snapshots came before it.
    @inline(__always)
    private func epoch(ofSerial serial: UInt64) -> Int {
        var low = 0
        var high = serialAtSnapshot.count
        while low < high {
            let middle = (low + high) / 2
            if serialAtSnapshot[middle] < serial { low = middle + 1 } else { high = middle }
        }
        return low
    }

    @inline(__always)
    mutating func release(serial: UInt64, key: UInt64, bytes: UInt64, count: Int) {
        if serial > currentBucketStartSerial { return }
        let allocBucket = epoch(ofSerial: serial) >> shift
        let freeBucket = currentBucket
        if allocBucket == freeBucket { return }
        table.add(key, UInt32(allocBucket) << 16 | UInt32(freeBucket), bytes: bytes, count: count)
    }

    mutating func leak(serial: UInt64, key: UInt64, bytes: UInt64, count: Int) {
        let allocBucket = epoch(ofSerial: serial) >> shift
        table.add(key, UInt32(allocBucket) << 16 | UInt32(TemporalAggregate.never), bytes: bytes, count: count)
    }

    /// Halves the number of buckets: merges each pair of neighbours.
    private mutating func coarsen() {
        shift += 1
        var merged = PairKeyedTotals()
        table.forEach { key, buckets, totals in
            let allocBucket = (buckets >> 16) >> 1
            let free = buckets & 0xFFFF
            let freeBucket = free == UInt32(TemporalAggregate.never) ? free : free >> 1
            if allocBucket == freeBucket { return }
            merged.add(key, allocBucket << 16 | freeBucket, bytes: totals.bytes, count: totals.count)
        }
        table = merged
        let start = currentBucket << shift
        currentBucketStartSerial = start > 0 ? serialAtSnapshot[start - 1] : 0
    }

    func finish(snapshotTimes: [UInt64], endTime: UInt64, stacks: StackKeyTable = StackKeyTable(nativeStacks: false)) -> TemporalAggregate {
        let snapshots = serialAtSnapshot.count
        let bucketCount = (snapshots >> shift) + 1
        var ends: [UInt64] = []
        for bucket in 0..<bucketCount {
            let lastSnapshot = ((bucket + 1) << shift) - 1
            if lastSnapshot < snapshots && lastSnapshot < snapshotTimes.count {
                ends.append(snapshotTimes[lastSnapshot])
            } else {
                ends.append(max(endTime, ends.last ?? 0))
            }
        }
        var entries: [TemporalEntry] = []
        entries.reserveCapacity(table.count)
        table.forEach { key, buckets, totals in
            let site = site(ofKey: key)
            let stack = stacks.key(site.frame)
            entries.append(TemporalEntry(frame: stack.frame, nativeFrame: stack.nativeFrame, thread: site.thread, kind: site.kind,
                                         allocBucket: UInt16(truncatingIfNeeded: buckets >> 16),
                                         freeBucket: UInt16(truncatingIfNeeded: buckets), totals: totals))
        }
        return TemporalAggregate(bucketEndMicros: ends, entries: entries)
    }
}

/// Totals keyed by (64-bit key, 32-bit key): open addressing, linear probing.
struct PairKeyedTotals {
    private var keys: [UInt64]
    private var seconds: [UInt32]
    private var used: [Bool]
    private var values: [Totals]
    private(set) var count = 0
    private var shift: UInt64

    init() {
        keys = [UInt64](repeating: 0, count: 1024)
        seconds = [UInt32](repeating: 0, count: 1024)
        used = [Bool](repeating: false, count: 1024)
        values = [Totals](repeating: .zero, count: 1024)
        shift = 64 - 10
    }

    @inline(__always)
    private func home(_ key: UInt64, _ second: UInt32) -> Int {
        Int(truncatingIfNeeded: ((key ^ UInt64(second) &* 0xC2B2_AE3D_27D4_EB4F) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    mutating func add(_ key: UInt64, _ second: UInt32, bytes: UInt64, count: Int) {
        if (self.count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var index = home(key, second)
        while used[index] && (keys[index] != key || seconds[index] != second) { index = (index + 1) & mask }
        if !used[index] {
            used[index] = true
            keys[index] = key
            seconds[index] = second
            self.count += 1
        }
        values[index].add(bytes, count: count)
    }

    func forEach(_ body: (UInt64, UInt32, Totals) -> Void) {
        for index in keys.indices where used[index] { body(keys[index], seconds[index], values[index]) }
    }

    private mutating func grow() {
        let oldKeys = keys, oldSeconds = seconds, oldUsed = used, oldValues = values
        let capacity = keys.count * 2
        keys = [UInt64](repeating: 0, count: capacity)
        seconds = [UInt32](repeating: 0, count: capacity)
        used = [Bool](repeating: false, count: capacity)
        values = [Totals](repeating: .zero, count: capacity)
        shift -= 1
        let mask = capacity - 1
        for index in oldKeys.indices where oldUsed[index] {
            var target = home(oldKeys[index], oldSeconds[index])
            while used[target] { target = (target + 1) & mask }
            used[target] = true
            keys[target] = oldKeys[index]
            seconds[target] = oldSeconds[index]
            values[target] = oldValues[index]
        }
    }
}
