// The tracker's interning tables: open addressing over malloc'ed memory, used
// only under the recorder's lock, from inside allocator hooks. No Swift
// collections (they would retain, allocate through the runtime and check
// exclusivity): just loads and stores, specialised per key type.

protocol InternKey: Equatable {
    /// Any well-mixed 64 bits; `mix` below is enough.
    var hash: UInt64 { get }
    /// A key value that is never looked up (empty slots hold it).
    static var unused: Self { get }
}

@inline(__always)
func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var h = (a ^ (b &* 0x9E37_79B9_7F4A_7C15)) &* 0xBF58_476D_1CE4_E5B9
    h ^= h >> 31
    return h
}

/// Key -> id (ids from 1; 0 marks an empty slot).
struct InternTable<Key: InternKey> {
    struct Entry {
        var key: Key
        var id: UInt32
    }
    private var slots: UnsafeMutablePointer<Entry>
    private var mask: Int
    private var count = 0

    init(capacity: Int) {
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Entry(key: .unused, id: 0), count: capacity)
        mask = capacity - 1
    }

    func release() { slots.deallocate() }

    /// The id stored for `key` (0 if none) and the slot where it is or would go.
    @inline(__always)
    func find(_ key: Key) -> (id: UInt32, slot: Int) {
        var i = Int(truncatingIfNeeded: key.hash) & mask
        while true {
            let e = slots[i]
            if e.id == 0 || e.key == key { return (e.id, i) }
            i = (i + 1) & mask
        }
    }

    /// The key's id, giving it `next` (and advancing it) if it is new.
    @inline(__always)
    mutating func intern(_ key: Key, next: inout UInt32) -> (id: UInt32, isNew: Bool) {
        let (found, slot) = find(key)
        if found != 0 { return (found, false) }
        let id = next
        next += 1
        insert(key, id: id, at: slot)
        return (id, true)
    }

    /// Stores a key that `find` did not have, in the slot it gave.
    mutating func insert(_ key: Key, id: UInt32, at slot: Int) {
        slots[slot] = Entry(key: key, id: id)
        count += 1
        if count * 2 > mask { grow() }
    }

    private mutating func grow() {
        let old = slots, oldCapacity = mask + 1
        self = InternTable(capacity: oldCapacity * 2)
        for i in 0..<oldCapacity where old[i].id != 0 {
            insert(old[i].key, id: old[i].id, at: find(old[i].key).slot)
        }
        old.deallocate()
    }
}

/// A Python frame in the stack trie: its parent, its code object, where in it.
struct FrameKey: InternKey {
    var parent: UInt32
    var code: UInt32
    var offset: UInt32
    var hash: UInt64 { mix(UInt64(parent) << 32 | UInt64(code), UInt64(offset)) }
    static var unused: FrameKey { FrameKey(parent: 0, code: 0, offset: 0) }
}

/// A code object by address and fingerprint: an address reused by another
/// code object (the first one was freed) has another fingerprint, so it is a
/// new key and gets a new id.
struct CodeKey: InternKey {
    var address: UInt
    var fingerprint: UInt64
    var hash: UInt64 { mix(UInt64(address), fingerprint) }
    static var unused: CodeKey { CodeKey(address: 0, fingerprint: 0) }
}

/// A native frame in the native stack trie: its parent and its return address.
struct NativeKey: InternKey {
    var parent: UInt32
    var ip: UInt
    var hash: UInt64 { mix(UInt64(ip), UInt64(parent)) }
    static var unused: NativeKey { NativeKey(parent: 0, ip: 0) }
}

/// Strings by content hash, threads by OS id.
extension UInt64: InternKey {
    var hash: UInt64 { mix(self, 1) }
    static var unused: UInt64 { 0 }
}

/// FNV-1a over a string's bytes: strings are interned by content (their
/// objects come and go); a 64-bit collision between two names is not a concern.
func contentHash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h | 1   // never 0, the unused key
}
