import HeapscopeFormat

/// Dense 32-bit ids for the sites a replay meets: (stack id, thread, allocator,
/// and the size bucket when sizes are kept apart), so that live blocks and the
/// per-site figures hold a 4-byte id, and per-site figures are plain arrays.
struct SiteTable {
    /// Index = site id.
    private(set) var keys: [UInt64] = []
    /// Open addressing over `keys`: id + 1, 0 for an empty slot.
    private var slots = [UInt32](repeating: 0, count: 1024)
    private var shift: UInt64 = 64 - 10
    /// Most allocations repeat the previous one's site.
    private var lastKey: UInt64 = .max
    private var lastID: UInt32 = 0

    var count: Int { keys.count }

    /// Stack id (32 bits), thread (20 bits), allocator kind (5 bits), size bucket (7 bits).
    @inline(__always)
    static func key(stack: StackKeyTable.ID, thread: ThreadNumber, kind: AllocatorKind, bucket: Int) -> UInt64 {
        UInt64(stack) << 32 | UInt64(thread & 0xF_FFFF) << 12 | UInt64(kind.rawValue & 0x1F) << 7 | UInt64(bucket & 0x7F)
    }

    @inline(__always)
    func stack(_ id: UInt32) -> StackKeyTable.ID { StackKeyTable.ID(truncatingIfNeeded: keys[Int(id)] >> 32) }
    @inline(__always)
    func thread(_ id: UInt32) -> ThreadNumber { ThreadNumber(truncatingIfNeeded: (keys[Int(id)] >> 12) & 0xF_FFFF) }
    @inline(__always)
    func kind(_ id: UInt32) -> AllocatorKind {
        AllocatorKind(rawValue: UInt8(truncatingIfNeeded: (keys[Int(id)] >> 7) & 0x1F)) ?? .malloc
    }
    @inline(__always)
    func bucket(_ id: UInt32) -> Int { Int(keys[Int(id)] & 0x7F) }

    @inline(__always)
    private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// The id of `key`; new keys get the next id.
    @inline(__always)
    mutating func id(_ key: UInt64) -> UInt32 {
        if key == lastKey { return lastID }
        let mask = slots.count - 1
        var index = home(key)
        while true {
            let slot = slots[index]
            if slot == 0 { break }
            if keys[Int(slot - 1)] == key {
                lastKey = key
                lastID = slot - 1
                return slot - 1
            }
            index = (index + 1) & mask
        }
        let id = UInt32(keys.count)
        keys.append(key)
        slots[index] = id + 1
        if keys.count * 2 > slots.count { grow() }
        lastKey = key
        lastID = id
        return id
    }

    private mutating func grow() {
        slots = [UInt32](repeating: 0, count: slots.count * 2)
        shift -= 1
        let mask = slots.count - 1
        for (id, key) in keys.enumerated() {
            var index = home(key)
            while slots[index] != 0 { index = (index + 1) & mask }
            slots[index] = UInt32(id + 1)
        }
    }
}
