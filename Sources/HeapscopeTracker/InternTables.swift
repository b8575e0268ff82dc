// Open-addressing hash tables for the tracker's interning. They live in
// malloc'ed memory and are used only under the recorder's lock, from inside
// allocator hooks: no Swift collections (which would retain, allocate through
// the runtime and check exclusivity), just loads and stores.

@inline(__always)
func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var h = (a ^ (b &* 0x9E37_79B9_7F4A_7C15)) &* 0xBF58_476D_1CE4_E5B9
    h ^= h >> 31
    return h
}

/// (parent frame id, code id, instruction offset) -> frame id: the trie of Python stacks.
struct FrameTable {
    struct Entry {
        var parent: UInt32
        var code: UInt32
        var offset: UInt32
        var id: UInt32   // 0: empty slot
    }
    private var slots: UnsafeMutablePointer<Entry>
    private var mask: Int
    private var count = 0

    init(capacity: Int = 1 << 14) {
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Entry(parent: 0, code: 0, offset: 0, id: 0), count: capacity)
        mask = capacity - 1
    }

    func release() { slots.deallocate() }

    /// The id stored for the key, or 0, with the slot where it is or would go.
    @inline(__always)
    func find(parent: UInt32, code: UInt32, offset: UInt32) -> (id: UInt32, slot: Int) {
        var i = Int(truncatingIfNeeded: mix(UInt64(parent) << 32 | UInt64(code), UInt64(offset))) & mask
        while true {
            let e = slots[i]
            if e.id == 0 || (e.parent == parent && e.code == code && e.offset == offset) { return (e.id, i) }
            i = (i + 1) & mask
        }
    }

    mutating func insert(parent: UInt32, code: UInt32, offset: UInt32, id: UInt32, at slot: Int) {
        slots[slot] = Entry(parent: parent, code: code, offset: offset, id: id)
        count += 1
        if count * 2 > mask { grow() }
    }

    private mutating func grow() {
        let old = slots, oldCapacity = mask + 1
        self = FrameTable(capacity: oldCapacity * 2)
        for i in 0..<oldCapacity where old[i].id != 0 {
            let e = old[i]
            insert(parent: e.parent, code: e.code, offset: e.offset, id: e.id,
                   at: find(parent: e.parent, code: e.code, offset: e.offset).slot)
        }
        old.deallocate()
    }
}

/// Code object address -> code id, with a fingerprint that tells a reused address apart.
struct CodeTable {
    struct Entry {
        var address: UInt
        var fingerprint: UInt64
        var id: UInt32   // 0: empty slot
    }
    private var slots: UnsafeMutablePointer<Entry>
    private var mask: Int
    private var count = 0

    init(capacity: Int = 1 << 12) {
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Entry(address: 0, fingerprint: 0, id: 0), count: capacity)
        mask = capacity - 1
    }

    func release() { slots.deallocate() }

    @inline(__always)
    func find(address: UInt) -> (entry: Entry, slot: Int) {
        var i = Int(truncatingIfNeeded: mix(UInt64(address), 0)) & mask
        while true {
            let e = slots[i]
            if e.id == 0 || e.address == address { return (e, i) }
            i = (i + 1) & mask
        }
    }

    /// Stores into `slot` (from `find`); replacing an entry does not count as a new one.
    mutating func store(_ entry: Entry, at slot: Int) {
        let isNew = slots[slot].id == 0
        slots[slot] = entry
        if isNew {
            count += 1
            if count * 2 > mask { grow() }
        }
    }

    private mutating func grow() {
        let old = slots, oldCapacity = mask + 1
        self = CodeTable(capacity: oldCapacity * 2)
        for i in 0..<oldCapacity where old[i].id != 0 {
            store(old[i], at: find(address: old[i].address).slot)
        }
        old.deallocate()
    }
}

/// A 64-bit key -> id table, for strings (by content hash) and threads (by OS tid).
struct KeyTable {
    struct Entry {
        var key: UInt64
        var id: UInt32   // 0: empty slot
    }
    private var slots: UnsafeMutablePointer<Entry>
    private var mask: Int
    private var count = 0

    init(capacity: Int = 1 << 10) {
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Entry(key: 0, id: 0), count: capacity)
        mask = capacity - 1
    }

    func release() { slots.deallocate() }

    func find(_ key: UInt64) -> (id: UInt32, slot: Int) {
        var i = Int(truncatingIfNeeded: mix(key, 1)) & mask
        while true {
            let e = slots[i]
            if e.id == 0 || e.key == key { return (e.id, i) }
            i = (i + 1) & mask
        }
    }

    mutating func insert(_ key: UInt64, id: UInt32, at slot: Int) {
        slots[slot] = Entry(key: key, id: id)
        count += 1
        if count * 2 > mask { grow() }
    }

    private mutating func grow() {
        let old = slots, oldCapacity = mask + 1
        self = KeyTable(capacity: oldCapacity * 2)
        for i in 0..<oldCapacity where old[i].id != 0 {
            insert(old[i].key, id: old[i].id, at: find(old[i].key).slot)
        }
        old.deallocate()
    }
}

/// FNV-1a over a string's bytes: strings are interned by content (their
/// objects come and go); a 64-bit collision between two names is not a concern.
func contentHash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h | 1   // never 0
}
