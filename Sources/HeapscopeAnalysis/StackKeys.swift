import HeapscopeFormat

/// A whole allocation stack in a native capture: the innermost Python frame and
/// the innermost native frame (either may be 0). In a capture without native
/// stacks `nativeFrame` is always 0 and the key is just the Python frame id.
public struct StackKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var frame: FrameID
    public var nativeFrame: NativeFrameID

    public init(frame: FrameID, nativeFrame: NativeFrameID = 0) {
        self.frame = frame
        self.nativeFrame = nativeFrame
    }

    /// No Python frame and no native frame.
    public static let none = StackKey(frame: 0, nativeFrame: 0)

    @inline(__always)
    var packed: UInt64 { UInt64(frame) << 32 | UInt64(nativeFrame) }

    public static func < (a: StackKey, b: StackKey) -> Bool { a.packed < b.packed }

    public var description: String { "(\(frame), \(nativeFrame))" }
}

/// Dense 32-bit ids for the stack keys a replay meets, so code that keys its
/// figures by a 32-bit frame id (site keys, live blocks) can key them by the
/// pair instead: it stores `id(of:)` where it stored the frame id, and turns
/// ids back into keys with `key(_:)` when it reports.
///
/// Without native stacks the id *is* the Python frame id (nothing is interned,
/// nothing is looked up), so one code path serves both kinds of capture.
/// Id 0 is always `StackKey.none`.
public struct StackKeyTable: Sendable {
    public typealias ID = UInt32

    /// Whether keys are interned (native capture) or ids are frame ids.
    public let interns: Bool
    /// Index = id (native captures only).
    public private(set) var keys: [StackKey] = [.none]
    private var ids: [UInt64: ID] = [0: 0]
    /// Most allocations repeat the previous one's stack (ALLOC_SAME_STACK).
    private var lastPacked: UInt64 = 0
    private var lastID: ID = 0

    /// `nativeStacks`: the capture's flags contain `.native`.
    public init(nativeStacks: Bool) {
        interns = nativeStacks
    }

    public init(header: CaptureHeader) {
        self.init(nativeStacks: header.flags.contains(.native))
    }

    /// Ids handed out so far, 0 included (native captures; else 1).
    public var count: Int { keys.count }

    @inline(__always)
    public mutating func id(frame: FrameID, nativeFrame: NativeFrameID) -> ID {
        guard interns else { return frame }
        let packed = UInt64(frame) << 32 | UInt64(nativeFrame)
        if packed == lastPacked { return lastID }
        let id: ID
        if let known = ids[packed] {
            id = known
        } else {
            id = ID(keys.count)
            keys.append(StackKey(frame: frame, nativeFrame: nativeFrame))
            ids[packed] = id
        }
        lastPacked = packed
        lastID = id
        return id
    }

    @inline(__always)
    public mutating func id(of key: StackKey) -> ID { id(frame: key.frame, nativeFrame: key.nativeFrame) }

    /// The key an id stands for. Without native stacks: (id, 0).
    @inline(__always)
    public func key(_ id: ID) -> StackKey {
        interns ? keys[Int(id)] : StackKey(frame: id, nativeFrame: 0)
    }
}

/// Totals per stack key: what `StackTotals` is per Python frame id, for native
/// captures, where the native stack tells allocations under one Python line apart.
public struct StackKeyTotals: Equatable, Sendable {
    public private(set) var byKey: [StackKey: Totals] = [:]

    public init() {}

    public init<S: Sequence>(_ entries: S) where S.Element == (StackKey, Totals) {
        for (key, totals) in entries { add(key, totals) }
    }

    public subscript(key: StackKey) -> Totals { byKey[key] ?? .zero }

    public mutating func add(_ key: StackKey, _ totals: Totals) {
        byKey[key, default: .zero] = byKey[key, default: .zero] + totals
    }

    public mutating func add(_ key: StackKey, bytes: UInt64, count: Int = 1) {
        add(key, Totals(count: count, bytes: bytes))
    }

    public var total: Totals { byKey.values.reduce(.zero, +) }

    /// Keys with something in them, sorted.
    public var keys: [StackKey] { byKey.filter { $0.value.count > 0 || $0.value.bytes > 0 }.keys.sorted() }

    /// The same figures per Python stack only (native frames dropped): the
    /// `StackTotals` the existing reports take.
    public func byFrame(frameCount: Int) -> StackTotals {
        var totals = StackTotals(frameCount: frameCount)
        for (key, value) in byKey { totals.add(frame: key.frame, bytes: value.bytes, count: value.count) }
        return totals
    }
}
