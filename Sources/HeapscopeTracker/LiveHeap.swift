import HeapscopeHooks
import HeapscopeWire

/// The bytes live in the traced heap, counted exactly as the analysis counts
/// the peak (docs/FORMAT.md, "What the figures mean"; HeapscopeAnalysis'
/// Replay): blocks by address (one allocated again at a live address replaces
/// it; a FREE of an address not live is ignored), mmaps as address ranges (a
/// new mapping replaces what it overlaps; an MUNMAP takes what it covers from
/// every mapping), arenas only when Python allocators are not traced.
///
/// Used by the recorder under a memory limit (under its lock) and by the
/// writer thread's `StreamTotals` for every capture. Open addressing with
/// backward-shift deletion over malloc'ed memory, like the intern tables: no
/// Swift collection, so it may run inside an allocator hook.
struct LiveHeap {
    private struct Slot {
        var address: UInt   // 0: empty (a block at address 0 is `blockAtZero`)
        var size: UInt64
    }
    private var slots: UnsafeMutablePointer<Slot>
    private var mask: Int
    /// 64 - log2(capacity).
    private var shift: Int
    private var count = 0
    private var blockAtZero: UInt64?
    private var mapped = MappedIntervals()
    private(set) var bytes: UInt64 = 0
    let countsArenas: Bool

    init(countsArenas: Bool) {
        self.countsArenas = countsArenas
        let capacity = 1 << 16
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(address: 0, size: 0), count: capacity)
        mask = capacity - 1
        shift = 64 - capacity.trailingZeroBitCount
    }

    func release() {
        slots.deallocate()
        mapped.release()
    }

    /// Whether an allocation of `kind` counts in the totals and the peak.
    @inline(__always)
    func counts(kind: UInt8) -> Bool { kind != AllocatorKind.pymallocArena.rawValue || countsArenas }

    /// Sums wrap, as the analysis' do: a damaged stream may hold absurd sizes.
    mutating func alloc(kind: UInt8, address: UInt, size: UInt64) {
        guard counts(kind: kind) else { return }
        if kind == AllocatorKind.mmap.rawValue {
            bytes &-= mapped.map(start: UInt64(address), length: size)
            bytes &+= size
            return
        }
        if address == 0 {
            bytes &-= blockAtZero ?? 0
            blockAtZero = size
            bytes &+= size
            return
        }
        if (count + 1) * 4 > (mask + 1) * 3 { grow() }   // 3/4 full at most, as the analysis' table
        var i = home(address)
        while slots[i].address != 0 && slots[i].address != address { i = (i + 1) & mask }
        if slots[i].address == address {
            bytes &-= slots[i].size   // its FREE was not seen
        } else {
            count += 1
        }
        slots[i] = Slot(address: address, size: size)
        bytes &+= size
    }

    mutating func free(kind: UInt8, address: UInt) {
        guard counts(kind: kind) else { return }
        if address == 0 {
            bytes &-= blockAtZero ?? 0
            blockAtZero = nil
            return
        }
        guard let i = find(address) else { return }
        bytes &-= slots[i].size
        remove(at: i)
    }

    mutating func munmap(address: UInt, length: UInt64) {
        bytes &-= mapped.unmap(start: UInt64(address), length: length)
    }

    /// Fibonacci hashing: the product's high bits mix every address bit, the
    /// alignment zeros at the bottom included.
    @inline(__always)
    private func home(_ address: UInt) -> Int {
        Int(truncatingIfNeeded: (UInt64(address) &* 0x9E37_79B9_7F4A_7C15) >> UInt64(shift))
    }

    /// Up to 2^16 slots (1 MiB): lookups mostly hit the cache, prefetching gains nothing.
    var fitsInCache: Bool { mask < 1 << 16 }

    /// Starts loading the slot `address` will be looked up in: a batch of
    /// these first lets the cache misses of a big table overlap.
    @inline(__always)
    func prefetch(address: UInt) { hs_prefetch(slots + home(address)) }

    private func find(_ address: UInt) -> Int? {
        var i = home(address)
        while slots[i].address != 0 {
            if slots[i].address == address { return i }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Backward-shift deletion: no tombstones, so lookups stay short.
    private mutating func remove(at slot: Int) {
        var hole = slot
        var i = (slot + 1) & mask
        while slots[i].address != 0 {
            let h = home(slots[i].address)
            // Move entry i into the hole unless its home lies cyclically in (hole, i].
            let stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i)
            if !stays {
                slots[hole] = slots[i]
                hole = i
            }
            i = (i + 1) & mask
        }
        slots[hole] = Slot(address: 0, size: 0)
        count -= 1
    }

    private mutating func grow() {
        let old = slots, oldCapacity = mask + 1
        let capacity = oldCapacity * 2
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(address: 0, size: 0), count: capacity)
        mask = capacity - 1
        shift -= 1
        for j in 0..<oldCapacity where old[j].address != 0 {
            var i = home(old[j].address)
            while slots[i].address != 0 { i = (i + 1) & mask }
            slots[i] = old[j]
        }
        old.deallocate()
    }
}

/// The mapped ranges of the live heap as sorted, disjoint [start, end) pieces.
/// Only their bytes matter here (the analysis also keeps which mapping each
/// piece came from). mmaps are rare next to heap blocks: a sorted array is enough.
private struct MappedIntervals {
    private var starts: UnsafeMutablePointer<UInt64>?
    private var ends: UnsafeMutablePointer<UInt64>?
    private var count = 0
    private var capacity = 0

    func release() {
        starts?.deallocate()
        ends?.deallocate()
    }

    /// Maps [start, start + length); returns the bytes of what it replaced.
    mutating func map(start: UInt64, length: UInt64) -> UInt64 {
        guard length > 0 else { return 0 }
        let replaced = unmap(start: start, length: length)
        insert(at: firstPiece(endingAfter: start), start: start, end: Self.end(start, length))
        return replaced
    }

    /// Unmaps [start, start + length) from every piece it covers; returns the bytes that went.
    mutating func unmap(start: UInt64, length: UInt64) -> UInt64 {
        guard length > 0, count > 0, let starts, let ends else { return 0 }
        let end = Self.end(start, length)
        var released: UInt64 = 0
        var i = firstPiece(endingAfter: start)
        while i < count && starts[i] < end {
            let pieceStart = starts[i], pieceEnd = ends[i]
            released &+= min(pieceEnd, end) - max(pieceStart, start)
            if pieceStart < start && pieceEnd > end {
                // Cut out of the middle: the piece becomes two.
                ends[i] = start
                insert(at: i + 1, start: end, end: pieceEnd)
                return released
            }
            if pieceStart < start {
                ends[i] = start
                i += 1
            } else if pieceEnd > end {
                starts[i] = end
                i += 1
            } else {
                removePiece(at: i)
            }
        }
        return released
    }

    private func firstPiece(endingAfter address: UInt64) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if ends![middle] <= address { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private mutating func insert(at index: Int, start: UInt64, end: UInt64) {
        if count == capacity {
            let grown = max(16, capacity * 2)
            let newStarts = UnsafeMutablePointer<UInt64>.allocate(capacity: grown)
            let newEnds = UnsafeMutablePointer<UInt64>.allocate(capacity: grown)
            if let starts, let ends {
                newStarts.update(from: starts, count: count)
                newEnds.update(from: ends, count: count)
                starts.deallocate()
                ends.deallocate()
            }
            starts = newStarts
            ends = newEnds
            capacity = grown
        }
        (starts! + index + 1).update(from: starts! + index, count: count - index)
        (ends! + index + 1).update(from: ends! + index, count: count - index)
        starts![index] = start
        ends![index] = end
        count += 1
    }

    private mutating func removePiece(at index: Int) {
        (starts! + index).update(from: starts! + index + 1, count: count - index - 1)
        (ends! + index).update(from: ends! + index + 1, count: count - index - 1)
        count -= 1
    }

    /// End of a range, clamped at the top of the address space (as the analysis does).
    private static func end(_ start: UInt64, _ length: UInt64) -> UInt64 {
        let (end, overflow) = start.addingReportingOverflow(length)
        return overflow ? .max : end
    }
}
