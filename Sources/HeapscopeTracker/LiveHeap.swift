import Glibc
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
/// writer thread's `StreamTotals` for every capture. Its memory is the
/// profiled process': see `BlockTable`. No Swift collection, so it may run
/// inside an allocator hook.
struct LiveHeap {
    private var blocks = BlockTable()
    private var blockAtZero: UInt64?
    private var mapped = MappedIntervals()
    private(set) var bytes: UInt64 = 0
    let countsArenas: Bool

    init(countsArenas: Bool) {
        self.countsArenas = countsArenas
    }

    func release() {
        blocks.release()
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
        bytes &-= blocks.insert(address: address, size: size) ?? 0   // its FREE was not seen
        bytes &+= size
    }

    mutating func free(kind: UInt8, address: UInt) {
        guard counts(kind: kind) else { return }
        if address == 0 {
            bytes &-= blockAtZero ?? 0
            blockAtZero = nil
            return
        }
        bytes &-= blocks.remove(address) ?? 0
    }

    mutating func munmap(address: UInt, length: UInt64) {
        bytes &-= mapped.unmap(start: UInt64(address), length: length)
    }

    /// Heap blocks live now, mappings not included.
    var blockCount: UInt64 { UInt64(blocks.count) + (blockAtZero == nil ? 0 : 1) }

    /// Up to 2^15 blocks: shards at most half full hold them in about 2^16
    /// slots (512 KiB), where lookups mostly hit the cache and prefetching gains nothing.
    var fitsInCache: Bool { blocks.count <= 1 << 15 }

    /// Starts loading the slot `address` will be looked up in: a batch of
    /// these first lets the cache misses of a big table overlap.
    @inline(__always)
    func prefetch(address: UInt) { blocks.prefetch(address) }
}

/// The live blocks by address, with their sizes. Nearly every block packs
/// into one 8-byte word (`PackedBlock`), so ten million live blocks cost the
/// profiled process 134 MB (107-213 MB as the table's fill varies); 16-byte
/// slots in one table doubled when full cost it 256 MB, and 384 MB while it
/// grew. The table is split into 64 shards by the hash's top bits, each
/// doubled on its own: a growth copies a 64th of the blocks. Blocks that do
/// not pack go whole into `wide`: an address is in one of the two, never both.
private struct BlockTable {
    private static let shardBits: UInt64 = 6
    private static let shardCount = 1 << shardBits
    private let shards: UnsafeMutablePointer<ProbeTable<PackedBlock>>
    private var wide = ProbeTable<WideBlock>(capacity: 256)
    /// Blocks in the table.
    private(set) var count = 0

    init() {
        shards = .allocate(capacity: Self.shardCount)
        for i in 0..<Self.shardCount { (shards + i).initialize(to: ProbeTable(capacity: 512)) }
    }

    func release() {
        for i in 0..<Self.shardCount { shards[i].release() }
        shards.deallocate()
        wide.release()
    }

    @inline(__always)
    private static func shard(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> (64 - shardBits)) }

    /// Adds a block; returns the size of the block it replaced at the same address.
    @inline(__always)
    mutating func insert(address: UInt, size: UInt64) -> UInt64? {
        let replaced = insertOrReplace(address: address, size: size)
        if replaced == nil { count += 1 }
        return replaced
    }

    @inline(__always)
    private mutating func insertOrReplace(address: UInt, size: UInt64) -> UInt64? {
        let hash = blockHash(address)
        guard let packed = PackedBlock(address: address, size: size) else {
            if let replaced = wide.insert(WideBlock(address: address, size: size), hash: hash) { return replaced.size }
            return shards[Self.shard(hash)].remove(address, hash: hash)?.size
        }
        if let replaced = shards[Self.shard(hash)].insert(packed, hash: hash) { return replaced.size }
        return wide.count == 0 ? nil : wide.remove(address, hash: hash)?.size
    }

    @inline(__always)
    func prefetch(_ address: UInt) {
        let hash = blockHash(address)
        shards[Self.shard(hash)].prefetch(hash: hash)
    }

    /// Removes the block at `address`; returns its size, if it was live.
    @inline(__always)
    mutating func remove(_ address: UInt) -> UInt64? {
        let removed = take(address)
        if removed != nil { count -= 1 }
        return removed
    }

    @inline(__always)
    private mutating func take(_ address: UInt) -> UInt64? {
        let hash = blockHash(address)
        if let removed = shards[Self.shard(hash)].remove(address, hash: hash) { return removed.size }
        return wide.count == 0 ? nil : wide.remove(address, hash: hash)?.size
    }
}

/// Fibonacci hashing: the product's high bits mix every address bit, the
/// alignment zeros at the bottom included. The top bits pick the shard, the
/// next ones the home slot in it (`ProbeTable.home`).
@inline(__always)
private func blockHash(_ address: UInt) -> UInt64 { UInt64(address) &* 0x9E37_79B9_7F4A_7C15 }

/// A slot of a `ProbeTable`: all zero bytes is an empty slot.
private protocol BlockSlot {
    /// 0 only in an empty slot.
    var address: UInt { get }
    var size: UInt64 { get }
}

/// A block in one word: its address / 16 in the high 44 bits, its size in
/// the low 20. Heap blocks are 16-aligned below 2^48 (malloc's and
/// pymalloc's on x86-64 and aarch64), and nearly all are under 1 MiB.
private struct PackedBlock: BlockSlot {
    private var word: UInt64

    @inline(__always)
    init?(address: UInt, size: UInt64) {
        guard address & 15 == 0, address >> 48 == 0, size >> 20 == 0 else { return nil }
        word = UInt64(address) << 16 | size
    }

    @inline(__always)
    var address: UInt { UInt(truncatingIfNeeded: word >> 20) << 4 }
    @inline(__always)
    var size: UInt64 { word & 0xF_FFFF }
}

private struct WideBlock: BlockSlot {
    var address: UInt
    var size: UInt64
}

/// An open-addressing table of blocks by address: linear probing, backward-
/// shift deletion (no tombstones, so a long churn keeps probes short), a
/// power-of-two capacity doubled when full: at most half full up to 16 Ki
/// slots (a FREE walks to the end of its probe run, so a table that fits in
/// the caches is kept sparse to keep those walks short), 3/4 full beyond.
private struct ProbeTable<Slot: BlockSlot> {
    private var slots: UnsafeMutablePointer<Slot>
    private(set) var capacity: Int
    private var mask: Int
    /// 64 - log2(capacity).
    private var shift: UInt64
    private(set) var count = 0

    /// `capacity`: a power of two.
    init(capacity: Int) {
        self.capacity = capacity
        mask = capacity - 1
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        slots = Self.zeroedSlots(capacity)
    }

    /// Zeroed memory mapped with its pages faulted in at once. Faulted one by
    /// one, each page was mapped to the zero page by a probe's read, then
    /// copied on the first write, with a TLB shootdown of the program's other
    /// cores each time: that cost more than the table's own work.
    private static func zeroedSlots(_ capacity: Int) -> UnsafeMutablePointer<Slot> {
        let memory = mmap(nil, capacity * MemoryLayout<Slot>.stride, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
        guard let memory, memory != MAP_FAILED else { fatalError("heapscope: out of memory for the live-block table") }
        return memory.bindMemory(to: Slot.self, capacity: capacity)
    }

    private static func release(_ slots: UnsafeMutablePointer<Slot>, capacity: Int) {
        munmap(slots, capacity * MemoryLayout<Slot>.stride)
    }

    func release() { Self.release(slots, capacity: capacity) }

    /// The hash's bits below the shard's pick the slot.
    @inline(__always)
    private func home(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: (hash << 6) >> shift) }

    @inline(__always)
    func prefetch(hash: UInt64) { hs_prefetch(slots + home(hash)) }

    /// Adds `slot` (`hash` is of its address); returns the slot it replaced.
    @inline(__always)
    mutating func insert(_ slot: Slot, hash: UInt64) -> Slot? {
        if count >= (capacity <= 1 << 14 ? capacity / 2 : capacity / 4 * 3) { grow() }
        var index = home(hash)
        while true {
            let current = slots[index].address
            if current == 0 {
                slots[index] = slot
                count += 1
                return nil
            }
            if current == slot.address {
                let replaced = slots[index]
                slots[index] = slot
                return replaced
            }
            index = (index + 1) & mask
        }
    }

    /// Removes and returns the slot of `address`, if any.
    @inline(__always)
    mutating func remove(_ address: UInt, hash: UInt64) -> Slot? {
        var index = home(hash)
        while true {
            let current = slots[index].address
            if current == address { break }
            if current == 0 { return nil }
            index = (index + 1) & mask
        }
        let removed = slots[index]
        count -= 1
        // Pull later slots of the probe run back into the hole, unless that
        // would move one before its home.
        var hole = index
        var next = (index + 1) & mask
        while slots[next].address != 0 {
            let nextHome = home(blockHash(slots[next].address))
            if (next - nextHome) & mask >= (next - hole) & mask {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        memset(slots + hole, 0, MemoryLayout<Slot>.stride)
        return removed
    }

    private mutating func grow() {
        let old = slots, oldCapacity = capacity
        capacity *= 2
        mask = capacity - 1
        shift -= 1
        slots = Self.zeroedSlots(capacity)
        for j in 0..<oldCapacity where old[j].address != 0 {
            var index = home(blockHash(old[j].address))
            while slots[index].address != 0 { index = (index + 1) & mask }
            slots[index] = old[j]
        }
        Self.release(old, capacity: oldCapacity)
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
