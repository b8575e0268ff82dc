import HeapscopeFormat

/// A live block, as the replay keeps it: 32 bytes, so slots never straddle cache lines.
struct LiveBlock {
    var address: UInt64
    var size: UInt64
    /// Serial number of the ALLOC that created it (low 56 bits: tells whether it
    /// was live at the peak) and its allocator kind (high 8 bits).
    private var serialAndKind: UInt64
    var frame: FrameID
    var thread: ThreadNumber

    init(address: UInt64, size: UInt64, serial: UInt64, frame: FrameID, thread: ThreadNumber, kind: AllocatorKind) {
        self.address = address
        self.size = size
        self.serialAndKind = serial & Self.serialMask | UInt64(kind.rawValue) << 56
        self.frame = frame
        self.thread = thread
    }

    private static let serialMask: UInt64 = (1 << 56) - 1
    var serial: UInt64 { serialAndKind & Self.serialMask }
    var kind: AllocatorKind { AllocatorKind(rawValue: UInt8(serialAndKind >> 56)) ?? .malloc }
}

/// Live blocks by address: open addressing with linear probing and
/// backward-shift deletion (no tombstones), so a long churn of alloc/free pairs
/// keeps probes short. Tens of millions of operations a second; Dictionary is
/// several times slower here.
final class AddressTable {
    private var slots: UnsafeMutablePointer<LiveBlock>
    private var capacity: Int
    private var shift: UInt64
    private(set) var count = 0
    /// Address 0 marks an empty slot, so a block at 0 lives here.
    private var blockAtZero: LiveBlock?

    init() {
        capacity = 1 << 12
        shift = 64 - 12
        slots = Self.emptySlots(capacity)
    }

    deinit { slots.deallocate() }

    private static func emptySlots(_ capacity: Int) -> UnsafeMutablePointer<LiveBlock> {
        let slots = UnsafeMutablePointer<LiveBlock>.allocate(capacity: capacity)
        slots.initialize(repeating: LiveBlock(address: 0, size: 0, serial: 0, frame: 0, thread: 0, kind: .malloc), count: capacity)
        return slots
    }

    @inline(__always)
    private func home(_ address: UInt64) -> Int {
        // Fibonacci hashing: the high bits of the product mix all address bits,
        // including the alignment zeros at the bottom.
        Int(truncatingIfNeeded: (address &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// Reads the home slots of `addresses`, and the slot after each (a removal
    /// looks at it), so they are in cache when needed: loads issued back to back
    /// wait for memory together.
    func warm<Addresses: Sequence<UInt64>>(_ addresses: Addresses) {
        let mask = capacity - 1
        var combined: UInt64 = 0
        for address in addresses {
            let index = home(address)
            combined |= slots[index].address | slots[(index + 1) & mask].address
        }
        warmed = combined
    }

    /// Keeps the loads of `warm` from being optimised away.
    private var warmed: UInt64 = 0

    /// Inserts `block`; returns the block it replaced at the same address, if any.
    @inline(__always)
    func insert(_ block: LiveBlock) -> LiveBlock? {
        if block.address == 0 {
            defer { blockAtZero = block }
            if blockAtZero == nil { count += 1 }
            return blockAtZero
        }
        // Up to 3/4 full: with backward-shift deletion probe runs stay short, and a
        // capture with tens of millions of live blocks needs a third less memory
        // than at 1/2.
        if (count + 1) * 4 > capacity * 3 { grow() }
        let mask = capacity - 1
        var index = home(block.address)
        while true {
            let current = slots[index]
            if current.address == 0 {
                slots[index] = block
                count += 1
                return nil
            }
            if current.address == block.address {
                slots[index] = block
                return current
            }
            index = (index + 1) & mask
        }
    }

    /// Removes and returns the block at `address`, if live.
    @inline(__always)
    func remove(_ address: UInt64) -> LiveBlock? {
        if address == 0 {
            defer { blockAtZero = nil }
            if blockAtZero != nil { count -= 1 }
            return blockAtZero
        }
        let mask = capacity - 1
        var index = home(address)
        while true {
            let current = slots[index]
            if current.address == address { break }
            if current.address == 0 { return nil }
            index = (index + 1) & mask
        }
        let removed = slots[index]
        count -= 1
        // Pull later blocks of the probe run back into the hole, unless that
        // would move one before its home slot.
        var hole = index
        var next = (index + 1) & mask
        while slots[next].address != 0 {
            let nextHome = home(slots[next].address)
            let distanceFromHome = (next - nextHome) & mask
            let distanceToHole = (next - hole) & mask
            if distanceFromHome >= distanceToHole {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole].address = 0
        return removed
    }

    func forEach(_ body: (LiveBlock) -> Void) {
        if let blockAtZero { body(blockAtZero) }
        for index in 0..<capacity where slots[index].address != 0 { body(slots[index]) }
    }

    private func grow() {
        let old = slots
        let oldCapacity = capacity
        capacity *= 2
        shift -= 1
        slots = Self.emptySlots(capacity)
        let mask = capacity - 1
        for index in 0..<oldCapacity where old[index].address != 0 {
            var target = home(old[index].address)
            while slots[target].address != 0 { target = (target + 1) & mask }
            slots[target] = old[index]
        }
        old.deallocate()
    }
}
