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

    /// Snapshots so far: the epoch of an allocation made now.
    private(set) var epoch: UInt32 = 0
    /// Bucket of a snapshot epoch = epoch >> shift.
    private var shift: UInt32 = 0
    /// Keyed by (site id, alloc bucket << 16 | free bucket).
    private var table = PairKeyedTotals()

    private var currentBucket: UInt32 { epoch >> shift }

    mutating func snapshot() {
        epoch += 1
        while currentBucket >= Self.maxBuckets { coarsen() }
    }

    /// A block allocated at snapshot epoch `epoch` is freed now.
    @inline(__always)
    mutating func release(epoch allocEpoch: UInt32, site: UInt32, bytes: UInt64, count: Int) {
        let allocBucket = allocEpoch >> shift
        let freeBucket = currentBucket
        if allocBucket == freeBucket { return }
        table.add(UInt64(site), allocBucket << 16 | freeBucket, bytes: bytes, count: count)
    }

    mutating func leak(epoch allocEpoch: UInt32, site: UInt32, bytes: UInt64, count: Int) {
        table.add(UInt64(site), (allocEpoch >> shift) << 16 | UInt32(TemporalAggregate.never), bytes: bytes, count: count)
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
    }

    /// `site` names a site id's stack, thread and allocator.
    func finish(snapshotTimes: [UInt64], endTime: UInt64,
                site: (UInt32) -> (StackKey, ThreadNumber, AllocatorKind)) -> TemporalAggregate {
        let snapshots = Int(epoch)
        let bucketCount = (snapshots >> Int(shift)) + 1
        var ends: [UInt64] = []
        for bucket in 0..<bucketCount {
            let lastSnapshot = ((bucket + 1) << Int(shift)) - 1
            if lastSnapshot < snapshots && lastSnapshot < snapshotTimes.count {
                ends.append(snapshotTimes[lastSnapshot])
            } else {
                ends.append(max(endTime, ends.last ?? 0))
            }
        }
        var entries: [TemporalEntry] = []
        entries.reserveCapacity(table.count)
        table.forEach { key, buckets, totals in
            let (stack, thread, kind) = site(UInt32(truncatingIfNeeded: key))
            entries.append(TemporalEntry(frame: stack.frame, nativeFrame: stack.nativeFrame, thread: thread, kind: kind,
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
