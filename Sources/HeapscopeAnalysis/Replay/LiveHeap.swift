import Glibc
import HeapscopeFormat

/// Live heap blocks by address: for each, its size, its site (a `SiteTable`
/// id) and, when asked for, a 64-bit tag (`HeapModel` keeps the snapshot epoch
/// and the per-thread allocation number there). 12 bytes a block (20 tagged):
/// what the replay of a capture with ten million blocks live at once holds.
///
/// Open addressing with linear probing and backward-shift deletion (no
/// tombstones, so a long churn of alloc/free pairs keeps probes short), split
/// into 64 shards by the hash's top bits. Each shard grows on its own by a
/// fifth (capacities need not be powers of two: the slot is picked by a
/// multiply-shift), so the table's size follows the live count closely and a
/// growth never holds two copies of the whole table.
///
/// A slot packs a 48-bit address, a 24-bit size and a 24-bit site: smaller
/// slots let the table stay at most 3/4 full in less memory than 16-byte ones
/// at 85%, and at 3/4 an insert or a removal walks about half as many slots
/// (the walk to the end of the probe run is what each event costs). Blocks
/// that do not fit (address 0 or above 2^48, 16 MiB or more, site 2^24 or
/// more) are kept whole in `overflow`: rare, so a dictionary will do.
final class LiveHeap {
    struct Slot {
        /// Address bits 0-31.
        var low: UInt32
        /// Address bits 32-47 (low half), size bits 0-15 (high half).
        var middle: UInt32
        /// Size bits 16-23 (low byte), the site (the rest).
        var high: UInt32

        static let empty = Slot(low: 0, middle: 0, high: 0)

        init(low: UInt32, middle: UInt32, high: UInt32) {
            self.low = low
            self.middle = middle
            self.high = high
        }

        /// The caller checked `LiveHeap.fits`.
        @inline(__always)
        init(address: UInt64, size: UInt64, site: UInt32) {
            low = UInt32(truncatingIfNeeded: address)
            middle = UInt32(truncatingIfNeeded: address >> 32) & 0xFFFF | UInt32(truncatingIfNeeded: size) << 16
            high = UInt32(truncatingIfNeeded: size >> 16) & 0xFF | site << 8
        }

        /// 0: empty.
        @inline(__always)
        var address: UInt64 { UInt64(low) | UInt64(middle & 0xFFFF) << 32 }
        @inline(__always)
        var size: UInt64 { UInt64(middle >> 16) | UInt64(high & 0xFF) << 16 }
        @inline(__always)
        var site: UInt32 { high >> 8 }
    }

    /// A block taken out of the table.
    struct Block {
        var address: UInt64
        var size: UInt64
        var site: UInt32
        var tag: UInt64
    }

    private struct Shard {
        var slots: UnsafeMutablePointer<Slot>
        /// Parallel to `slots` when the heap is tagged.
        var tags: UnsafeMutablePointer<UInt64>?
        var capacity: Int
        var count: Int
    }

    private static let shardBits: UInt64 = 6
    private static let shardCount = 1 << shardBits
    private static let initialCapacity = 64
    /// Shards up to this many slots are kept at most half full.
    private static let sparseCapacity = 16 << 10
    private let shards: UnsafeMutablePointer<Shard>
    let isTagged: Bool
    /// The blocks a slot cannot hold, by address. An address is either here or
    /// in the table, never both.
    private var overflow: [UInt64: Block] = [:]
    /// Bit n: overflow may hold a block hashed to shard n (cleared when it is
    /// empty), so the table's events skip the dictionary.
    private var overflowShards: UInt64 = 0

    /// `expectedBlocks`: the most blocks the capture will hold live at once
    /// (its summary trailer's), if known. A shard that must grow then grows
    /// straight to its share of them, at most eightfold at a time: ten million
    /// blocks grown by a fifth at a time cost 50 million moves and 1.1 GB of
    /// fresh pages, and a file whose hint lies costs at most eight times the
    /// table its blocks need.
    init(tagged: Bool, expectedBlocks: Int = 0) {
        isTagged = tagged
        let perShard = min(max(0, expectedBlocks), 1 << 32) / Self.shardCount
        hintCapacity = perShard + perShard / 2 + 1   // 2/3 full with them all
        shards = .allocate(capacity: Self.shardCount)
        for index in 0..<Self.shardCount {
            shards[index] = Self.emptyShard(capacity: Self.initialCapacity, tagged: tagged)
        }
    }

    /// A shard's capacity for its share of the expected blocks.
    private let hintCapacity: Int

    deinit {
        for index in 0..<Self.shardCount { Self.release(shards[index]) }
        shards.deallocate()
    }

    /// A shard's arrays are zeroed memory (an empty slot is all zeros) mapped
    /// with its pages faulted in at once: a growing table touches every page
    /// of each new shard, and faulting them one by one cost more than the
    /// rehash itself.
    private static func emptyShard(capacity: Int, tagged: Bool) -> Shard {
        let slots = zeroedPages(MemoryLayout<Slot>.stride * capacity).bindMemory(to: Slot.self, capacity: capacity)
        let tags = tagged ? zeroedPages(MemoryLayout<UInt64>.stride * capacity).bindMemory(to: UInt64.self, capacity: capacity) : nil
        return Shard(slots: slots, tags: tags, capacity: capacity, count: 0)
    }

    private static func zeroedPages(_ bytes: Int) -> UnsafeMutableRawPointer {
        let pointer = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
        guard let pointer, pointer != MAP_FAILED else { fatalError("heapscope: out of memory for the live blocks") }
        return pointer
    }

    private static func release(_ shard: Shard) {
        munmap(shard.slots, MemoryLayout<Slot>.stride * shard.capacity)
        if let tags = shard.tags { munmap(tags, MemoryLayout<UInt64>.stride * shard.capacity) }
    }

    /// An address a slot can hold (0 marks an empty slot).
    @inline(__always)
    private static func isSlotAddress(_ address: UInt64) -> Bool { address != 0 && address >> 48 == 0 }

    @inline(__always)
    private static func fits(address: UInt64, size: UInt64, site: UInt32) -> Bool {
        isSlotAddress(address) && size >> 24 == 0 && site >> 24 == 0
    }

    /// Fibonacci hashing: the product's high bits mix every address bit,
    /// alignment zeros included. Top bits pick the shard, the next ones the slot.
    @inline(__always)
    private static func hash(_ address: UInt64) -> UInt64 { address &* 0x9E37_79B9_7F4A_7C15 }

    @inline(__always)
    private static func shardIndex(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> (64 - shardBits)) }

    @inline(__always)
    private static func home(_ hash: UInt64, capacity: Int) -> Int {
        Int(truncatingIfNeeded: (hash << shardBits).multipliedFullWidth(by: UInt64(capacity)).high)
    }

    /// Blocks live now.
    var count: Int {
        (0..<Self.shardCount).reduce(overflow.count) { $0 + shards[$1].count }
    }

    /// Loads the home slots of `events`, and the slots five further on (the
    /// next cache line: an insert or a removal walks to the end of the probe
    /// run, about six slots at 3/4 full), so their cache misses overlap; the
    /// caller keeps the result so the loads are not optimised away.
    func warm(_ events: UnsafeMutableBufferPointer<Event>) -> UInt64 {
        var combined: UInt64 = 0
        for event in events {
            let hash = Self.hash(event.address)
            let shard = shards[Self.shardIndex(hash)]
            let home = Self.home(hash, capacity: shard.capacity)
            combined |= UInt64(shard.slots[home].low) | UInt64(shard.slots[min(home + 5, shard.capacity - 1)].low)
        }
        return combined
    }

    /// Adds a block; returns the block it replaced at the same address (whose
    /// FREE the capture did not hold), if any.
    @inline(__always)
    func insert(address: UInt64, size: UInt64, site: UInt32, tag: UInt64) -> Block? {
        let hash = Self.hash(address)
        let shardNumber = Self.shardIndex(hash)
        guard Self.fits(address: address, size: size, site: site) else {
            overflowShards |= 1 << UInt64(shardNumber)
            let replaced = overflow.updateValue(Block(address: address, size: size, site: site, tag: tag), forKey: address)
            return replaced ?? (Self.isSlotAddress(address) ? removeFromSlots(address) : nil)
        }
        // Up to 3/4 full, then a fifth more: between 62% and 75% full. A shard
        // of up to 16 Ki slots (a table of up to 12 MiB) stays at most half
        // full: its probe runs are half as long, and so is the work of a table
        // that fits in the caches.
        let count = shards[shardNumber].count + 1, capacity = shards[shardNumber].capacity
        if count * 4 > capacity * 3 || (capacity <= Self.sparseCapacity && count * 2 > capacity) { grow(shardNumber) }
        let shard = shards[shardNumber]
        let stored = Slot(address: address, size: size, site: site)
        var index = Self.home(hash, capacity: shard.capacity)
        while true {
            let current = shard.slots[index].address
            if current == 0 {
                shard.slots[index] = stored
                shard.tags?[index] = tag
                shards[shardNumber].count += 1
                return overflowShards >> UInt64(shardNumber) & 1 == 0 ? nil : removeFromOverflow(address)
            }
            if current == address {
                let replaced = block(shard.slots[index], tag: shard.tags?[index] ?? 0)
                shard.slots[index] = stored
                shard.tags?[index] = tag
                return replaced
            }
            index += 1
            if index == shard.capacity { index = 0 }
        }
    }

    @inline(__always)
    private func block(_ slot: Slot, tag: UInt64) -> Block {
        Block(address: slot.address, size: slot.size, site: slot.site, tag: tag)
    }

    /// Removes and returns the block at `address`, if live.
    @inline(__always)
    func remove(_ address: UInt64) -> Block? {
        if Self.isSlotAddress(address), let removed = removeFromSlots(address) { return removed }
        return overflowShards >> UInt64(Self.shardIndex(Self.hash(address))) & 1 == 0 ? nil : removeFromOverflow(address)
    }

    private func removeFromOverflow(_ address: UInt64) -> Block? {
        defer { if overflow.isEmpty { overflowShards = 0 } }
        return overflow.removeValue(forKey: address)
    }

    @inline(__always)
    private func removeFromSlots(_ address: UInt64) -> Block? {
        let hash = Self.hash(address)
        let shardNumber = Self.shardIndex(hash)
        let shard = shards[shardNumber]
        let capacity = shard.capacity
        var index = Self.home(hash, capacity: capacity)
        while true {
            let current = shard.slots[index].address
            if current == address { break }
            if current == 0 { return nil }
            index += 1
            if index == capacity { index = 0 }
        }
        let removed = block(shard.slots[index], tag: shard.tags?[index] ?? 0)
        shards[shardNumber].count -= 1
        // Pull later blocks of the probe run back into the hole, unless that
        // would move one before its home slot.
        var hole = index
        var next = index + 1 == capacity ? 0 : index + 1
        while true {
            let nextAddress = shard.slots[next].address
            if nextAddress == 0 { break }
            let nextHome = Self.home(Self.hash(nextAddress), capacity: capacity)
            let fromHome = next >= nextHome ? next - nextHome : next + capacity - nextHome
            let toHole = next >= hole ? next - hole : next + capacity - hole
            if fromHome >= toHole {
                shard.slots[hole] = shard.slots[next]
                shard.tags?[hole] = shard.tags![next]
                hole = next
            }
            next = next + 1 == capacity ? 0 : next + 1
        }
        shard.slots[hole] = .empty
        return removed
    }

    /// Every live block, in no particular order.
    func forEach(_ body: (Block) -> Void) {
        for block in overflow.values { body(block) }
        for number in 0..<Self.shardCount {
            let shard = shards[number]
            for index in 0..<shard.capacity where shard.slots[index].address != 0 {
                body(block(shard.slots[index], tag: shard.tags?[index] ?? 0))
            }
        }
    }

    private func grow(_ number: Int) {
        let old = shards[number]
        let capacity = max(old.capacity + old.capacity / 5, min(hintCapacity, old.capacity * 8))
        var grown = Self.emptyShard(capacity: capacity, tagged: isTagged)
        for index in 0..<old.capacity where old.slots[index].address != 0 {
            var target = Self.home(Self.hash(old.slots[index].address), capacity: grown.capacity)
            while grown.slots[target].address != 0 {
                target += 1
                if target == grown.capacity { target = 0 }
            }
            grown.slots[target] = old.slots[index]
            grown.tags?[target] = old.tags![index]
        }
        grown.count = old.count
        Self.release(old)
        shards[number] = grown
    }
}
