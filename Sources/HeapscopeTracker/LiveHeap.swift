import HeapscopeFormat

/// The bytes live in the traced heap, kept in the process only under a memory
/// limit: address -> size, counted as the analysis counts the peak (a block
/// allocated again at a live address replaces it; arenas only when Python
/// allocators are not traced; an munmap takes what it covers from the
/// mapping it starts in). Open addressing with backward-shift deletion over
/// malloc'ed memory, under the recorder's lock, like the intern tables.
struct LiveHeap {
    private struct Slot {
        var address: UInt   // 0: empty
        var size: UInt64
    }
    private var slots: UnsafeMutablePointer<Slot>
    private var mask: Int
    private var count = 0
    private(set) var bytes: UInt64 = 0
    let countsArenas: Bool

    init(countsArenas: Bool) {
        self.countsArenas = countsArenas
        let capacity = 1 << 16
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(address: 0, size: 0), count: capacity)
        mask = capacity - 1
    }

    func release() { slots.deallocate() }

    mutating func alloc(kind: UInt8, address: UInt, size: Int) {
        if kind == AllocatorKind.pymallocArena.rawValue && !countsArenas { return }
        guard address != 0 else { return }
        if count * 2 >= mask { grow() }
        var i = home(address)
        while slots[i].address != 0 && slots[i].address != address { i = (i + 1) & mask }
        if slots[i].address == address {
            bytes &-= slots[i].size   // its FREE was not seen
        } else {
            count += 1
        }
        slots[i] = Slot(address: address, size: UInt64(size))
        bytes &+= UInt64(size)
    }

    mutating func free(kind: UInt8, address: UInt) {
        if kind == AllocatorKind.pymallocArena.rawValue && !countsArenas { return }
        guard let i = find(address) else { return }
        bytes &-= slots[i].size
        remove(at: i)
    }

    /// Only an unmapping from a mapping's start is seen (the usual case): a
    /// partial one leaves the rest live from the end of the unmapped range.
    mutating func munmap(address: UInt, length: Int) {
        guard let i = find(address) else { return }
        let size = slots[i].size
        let unmapped = min(size, UInt64(length))
        bytes &-= unmapped
        remove(at: i)
        if unmapped < size { alloc(kind: AllocatorKind.mmap.rawValue, address: address + UInt(unmapped), size: Int(size - unmapped)) }
    }

    @inline(__always)
    private func home(_ address: UInt) -> Int { Int(truncatingIfNeeded: mix(UInt64(address), 0)) & mask }

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
        for j in 0..<oldCapacity where old[j].address != 0 {
            var i = home(old[j].address)
            while slots[i].address != 0 { i = (i + 1) & mask }
            slots[i] = old[j]
        }
        old.deallocate()
    }
}
