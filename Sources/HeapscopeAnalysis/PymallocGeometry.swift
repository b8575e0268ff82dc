import HeapscopeFormat

/// pymalloc's layout constants (docs/PYMALLOC.md): how CPython's small-object
/// allocator carves arenas into pools and pools into blocks. Recorded by the
/// tracker in the capture's metadata ("pymalloc"); captures without it get the
/// values CPython 3.10+ compiles in on a 64-bit build.
public struct PymallocGeometry: Equatable, Sendable {
    /// Bytes of one arena (what pymalloc mmaps at once).
    public var arenaSize: UInt64
    /// Bytes of one pool; pools are `poolSize`-aligned inside their arena.
    public var poolSize: UInt64
    /// Block sizes are multiples of it; a size class is `(request - 1) / alignment`.
    public var alignment: UInt64
    /// Largest request pymalloc serves; larger ones go to the system allocator.
    public var smallRequestThreshold: UInt64
    /// Bytes at the start of each pool that hold its header.
    public var poolHeaderSize: UInt64
    /// With a debug allocator (`pymalloc_debug`): the block starts this many bytes
    /// before the address the program got...
    public var debugOffset: UInt64
    /// ...and is this many bytes larger than the request.
    public var debugExtra: UInt64
    /// Where the values came from: "metadata" (recorded at tracking start) or "default".
    public var source: String
    /// The geometry keys the interpreter's own statistics confirmed at tracking start.
    public var crossChecked: [String]

    public init(arenaSize: UInt64 = 1 << 20, poolSize: UInt64 = 16 << 10, alignment: UInt64 = 16,
                smallRequestThreshold: UInt64 = 512, poolHeaderSize: UInt64 = 48,
                debugOffset: UInt64 = 0, debugExtra: UInt64 = 0, source: String = "default", crossChecked: [String] = []) {
        self.arenaSize = arenaSize
        self.poolSize = poolSize
        self.alignment = alignment
        self.smallRequestThreshold = smallRequestThreshold
        self.poolHeaderSize = poolHeaderSize
        self.debugOffset = debugOffset
        self.debugExtra = debugExtra
        self.source = source
        self.crossChecked = crossChecked
    }

    /// CPython 3.10+ on a 64-bit build.
    public static let cpython64 = PymallocGeometry()

    /// The geometry recorded in a capture's metadata, else `cpython64`. Values
    /// that are missing or not powers of two (where they must be) fall back.
    public init(metadata: CaptureMetadata) {
        var geometry = PymallocGeometry.cpython64
        guard let object = metadata.json["pymalloc"] else {
            self = geometry
            return
        }
        func value(_ key: String) -> UInt64? {
            guard let int = object[key]?.intValue, int > 0 else { return nil }
            return UInt64(int)
        }
        func powerOfTwo(_ key: String) -> UInt64? {
            guard let v = value(key), v & (v - 1) == 0 else { return nil }
            return v
        }
        geometry.arenaSize = powerOfTwo("arena_size") ?? geometry.arenaSize
        geometry.poolSize = powerOfTwo("pool_size") ?? geometry.poolSize
        geometry.alignment = powerOfTwo("alignment") ?? geometry.alignment
        geometry.smallRequestThreshold = value("small_request_threshold") ?? geometry.smallRequestThreshold
        geometry.poolHeaderSize = value("pool_header_size") ?? geometry.poolHeaderSize
        geometry.debugOffset = value("debug_offset") ?? 0
        geometry.debugExtra = value("debug_extra") ?? 0
        if geometry.poolSize > geometry.arenaSize || geometry.poolHeaderSize >= geometry.poolSize {
            geometry = .cpython64
        }
        geometry.crossChecked = object["cross_checked"]?.arrayValue?.compactMap(\.stringValue) ?? []
        geometry.source = "metadata"
        self = geometry
    }

    /// Number of size classes.
    public var sizeClassCount: Int { Int((smallRequestThreshold + alignment - 1) / alignment) }

    /// The size class of a request of `size` bytes (1...threshold).
    @inline(__always)
    public func sizeClass(ofRequest size: UInt64) -> Int { Int((size - 1) / alignment) }

    /// Bytes of one block of `sizeClass`.
    @inline(__always)
    public func blockSize(ofClass sizeClass: Int) -> UInt64 { UInt64(sizeClass + 1) * alignment }

    /// Blocks one pool of `sizeClass` holds.
    public func blocksPerPool(ofClass sizeClass: Int) -> UInt64 {
        (poolSize - poolHeaderSize) / blockSize(ofClass: sizeClass)
    }

    /// The pool holding the block at `address`.
    @inline(__always)
    public func pool(ofBlock address: UInt64) -> UInt64 { address & ~(poolSize - 1) }

    /// The first pool of an arena at `address`: the first pool boundary at or after it.
    public func firstPool(ofArena address: UInt64) -> UInt64 { (address + poolSize - 1) & ~(poolSize - 1) }

    /// Pools an arena at `address` holds (one less when it is not pool-aligned).
    public func poolCount(ofArena address: UInt64) -> Int {
        let end = address &+ arenaSize
        let first = firstPool(ofArena: address)
        return first >= end ? 0 : Int((end - first) / poolSize)
    }
}

extension CaptureMetadata {
    /// The allocator was pymalloc (or its debug variant) when tracking began;
    /// true when it was not recorded (CPython's default).
    public var pymallocActive: Bool {
        guard let name = pythonAllocator, name != "unknown" else { return true }
        return name.hasPrefix("pymalloc")
    }

    /// `heapscope run --leaks` recorded the capture.
    public var leaksMode: Bool { json["leaks_mode"]?.boolValue ?? false }

    /// `run --leaks` set PYTHONMALLOC=malloc for the program (false: the
    /// user's environment set PYTHONMALLOC, and it was kept).
    public var pythonMallocSetByHeapscope: Bool { json["pythonmalloc_set_by_heapscope"]?.boolValue ?? false }

    /// The user's PYTHONMALLOC when `run --leaks` kept it.
    public var userPythonMalloc: String? { json["user_pythonmalloc"]?.stringValue }
}

/// What the allocator recorded in a capture means for its figures: one line
/// every report can show, and for leak views a warning when pymalloc hid frees.
public enum AllocatorNotes {
    /// "pymalloc (CPython's small-object allocator: objects up to 512 bytes come
    /// from arenas it keeps)", "malloc (every object is a system malloc)"...
    public static func describe(_ metadata: CaptureMetadata) -> String {
        let name = metadata.pythonAllocator ?? "not recorded"
        var text: String
        switch name {
        case "pymalloc":
            text = "pymalloc: objects up to 512 bytes come from arenas pymalloc keeps; a freed object goes back to its pool, not to the system"
        case "pymalloc_debug":
            text = "pymalloc_debug: pymalloc with CPython's debug hooks (guard bytes around every block)"
        case "malloc":
            text = "malloc: every Python object is a system malloc (PYTHONMALLOC=malloc), so a leak is a leak"
        case "malloc_debug":
            text = "malloc_debug: system malloc with CPython's debug hooks"
        case "mimalloc", "mimalloc_debug":
            text = "\(name): CPython's mimalloc; freed objects stay in mimalloc's pages"
        default:
            text = name
        }
        if metadata.leaksMode {
            if metadata.pythonMallocSetByHeapscope {
                text += " (set by heapscope run --leaks)"
            } else if let user = metadata.userPythonMalloc {
                text += " (PYTHONMALLOC=\(user) from the environment, kept by heapscope run --leaks)"
            }
        }
        return text
    }

    /// True when leak figures mislead: pymalloc active and Python allocators
    /// not traced, so objects freed into arenas never show as freed.
    public static func leaksMislead(_ header: CaptureHeader) -> Bool {
        header.metadata.pymallocActive && !header.flags.contains(.pythonAllocators)
    }

    /// The warning a leak view shows on such a capture (report and terminal).
    public static let leaksWarning =
        "Warning: recorded with pymalloc active and Python allocators not traced. pymalloc serves objects "
        + "up to 512 bytes from arenas it keeps; a freed object goes back to its arena, not to the system, so "
        + "these figures are arenas still held (blamed on whatever created each arena), not objects never freed. "
        + "For exact leaks rerun with `heapscope run --leaks ...` (traces Python allocators and runs with "
        + "PYTHONMALLOC=malloc), or at least without --no-trace-python-allocators."
}
