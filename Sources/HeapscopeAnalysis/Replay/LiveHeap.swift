import HeapscopeFormat

/// Live heap blocks by address: for each, its size, its site (a `SiteTable`
/// id) and, when asked for, a 64-bit tag (`HeapModel` keeps the snapshot epoch
/// and the per-thread allocation number there). 16 bytes a block (24 tagged):
/// what the replay of a capture with ten million blocks live at once holds.
///
/// Open addressing with linear probing and backward-shift deletion (no
/// tombstones, so a long churn of alloc/free pairs keeps probes short), split
/// into 64 shards by the hash's top bits. Each shard grows on its own by a
/// fifth (capacities need not be powers of two: the slot is picked by a
/// multiply-shift), so the table's size follows the live count closely and a
/// growth never holds two copies of the whole table.
final class LiveHeap {
    struct Slot {
        /// 0: empty (a block at address 0 is kept apart).
        var address: UInt64
        /// `UInt32.max`: the size is in `largeSizes`.
        var size: UInt32
        var site: UInt32
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
    private let shards: UnsafeMutablePointer<Shard>
    let isTagged: Bool
    private var blockAtZero: Block?
    /// Sizes of 4 GiB and more, by address.
    private var largeSizes: [UInt64: UInt64] = [:]

    init(tagged: Bool) {
        isTagged = tagged
        shards = .allocate(capacity: Self.shardCount)
        for index in 0..<Self.shardCount {
            shards[index] = Self.emptyShard(capacity: Self.initialCapacity, tagged: tagged)
        }
    }

    deinit {
        for index in 0..<Self.shardCount {
            shards[index].slots.deallocate()
            shards[index].tags?.deallocate()
        }
        shards.deallocate()
    }

    private static func emptyShard(capacity: Int, tagged: Bool) -> Shard {
        let slots = UnsafeMutablePointer<Slot>.allocate(capacity: capacity)
        slots.initialize(repeating: Slot(address: 0, size: 0, site: 0), count: capacity)
        let tags = tagged ? UnsafeMutablePointer<UInt64>.allocate(capacity: capacity) : nil
        tags?.initialize(repeating: 0, count: capacity)
        return Shard(slots: slots, tags: tags, capacity: capacity, count: 0)
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
        (0..<Self.shardCount).reduce(blockAtZero == nil ? 0 : 1) { $0 + shards[$1].count }
    }

    /// Loads the home slots of `events` so their cache misses overlap; the
    /// caller keeps the result so the loads are not optimised away.
    func warm(_ events: UnsafeMutableBufferPointer<Event>) -> UInt64 {
        var combined: UInt64 = 0
        for event in events {
            let hash = Self.hash(event.address)
            let shard = shards[Self.shardIndex(hash)]
            combined |= shard.slots[Self.home(hash, capacity: shard.capacity)].address
        }
        return combined
    }

    /// Adds a block; returns the block it replaced at the same address (whose
    /// FREE the capture did not hold), if any.
    @inline(__always)
    func insert(address: UInt64, size: UInt64, site: UInt32, tag: UInt64) -> Block? {
        if address == 0 {
            defer { blockAtZero = Block(address: 0, size: size, site: site, tag: tag) }
            return blockAtZero
        }
        let hash = Self.hash(address)
        let shardNumber = Self.shardIndex(hash)
        // Up to 85% full, then a fifth more: between 71% and 85% full, the
        // probe runs stay short and a live block costs 19-23 bytes.
        if (shards[shardNumber].count + 1) * 20 > shards[shardNumber].capacity * 17 { grow(shardNumber) }
        let shard = shards[shardNumber]
        let stored = Slot(address: address, size: size < UInt64(UInt32.max) ? UInt32(size) : .max, site: site)
        var index = Self.home(hash, capacity: shard.capacity)
        while true {
            let current = shard.slots[index]
            if current.address == 0 {
                shard.slots[index] = stored
                shard.tags?[index] = tag
                shards[shardNumber].count += 1
                if stored.size == .max { largeSizes[address] = size }
                return nil
            }
            if current.address == address {
                let replaced = block(current, tag: shard.tags?[index] ?? 0)
                shard.slots[index] = stored
                shard.tags?[index] = tag
                if stored.size == .max { largeSizes[address] = size }
                return replaced
            }
            index += 1
            if index == shard.capacity { index = 0 }
        }
    }

    @inline(__always)
    private func block(_ slot: Slot, tag: UInt64) -> Block {
        let size = slot.size == .max ? largeSizes.removeValue(forKey: slot.address) ?? UInt64(UInt32.max) : UInt64(slot.size)
        return Block(address: slot.address, size: size, site: slot.site, tag: tag)
    }

    /// Removes and returns the block at `address`, if live.
    @inline(__always)
    func remove(_ address: UInt64) -> Block? {
        if address == 0 {
            defer { blockAtZero = nil }
            return blockAtZero
        }
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
        while shard.slots[next].address != 0 {
            let nextHome = Self.home(Self.hash(shard.slots[next].address), capacity: capacity)
            let fromHome = next >= nextHome ? next - nextHome : next + capacity - nextHome
            let toHole = next >= hole ? next - hole : next + capacity - hole
            if fromHome >= toHole {
                shard.slots[hole] = shard.slots[next]
                shard.tags?[hole] = shard.tags![next]
                hole = next
            }
            next = next + 1 == capacity ? 0 : next + 1
        }
        shard.slots[hole].address = 0
        return removed
    }

    /// Every live block, in no particular order.
    func forEach(_ body: (Block) -> Void) {
        if let blockAtZero { body(blockAtZero) }
        for number in 0..<Self.shardCount {
            let shard = shards[number]
            for index in 0..<shard.capacity where shard.slots[index].address != 0 {
                let slot = shard.slots[index]
                let size = slot.size == .max ? largeSizes[slot.address] ?? UInt64(UInt32.max) : UInt64(slot.size)
                body(Block(address: slot.address, size: size, site: slot.site, tag: shard.tags?[index] ?? 0))
            }
        }
    }

    private func grow(_ number: Int) {
        let old = shards[number]
        var grown = Self.emptyShard(capacity: old.capacity + old.capacity / 5, tagged: isTagged)
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
        old.slots.deallocate()
        old.tags?.deallocate()
        shards[number] = grown
    }
}
