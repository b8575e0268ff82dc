/// One object (executable or shared library) loaded in the profiled process,
/// as a capture's MAPPINGS record describes it.
public struct LoadedObject: Sendable {
    /// The path the process loaded it from.
    public var path: String
    /// What the dynamic loader added to the file's virtual addresses.
    public var loadBias: UInt64
    /// The GNU build id recorded in the process; empty when it had none.
    public var buildID: [UInt8]
    /// The PT_LOAD segments, in absolute addresses of the process.
    public var segments: [(start: UInt64, size: UInt64)]

    public init(path: String, loadBias: UInt64, buildID: [UInt8], segments: [(start: UInt64, size: UInt64)]) {
        self.path = path
        self.loadBias = loadBias
        self.buildID = buildID
        self.segments = segments
    }

    /// The file name without its directory, as reports show it.
    public var name: String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

/// One source-level frame at a native address: a function, or a function
/// inlined into another at that address.
public struct NativeFrame: Hashable, Sendable {
    /// Demangled function name; "libfoo.so+0x1234" when the object cannot be
    /// symbolicated, "0x7f..." when no recorded object holds the address.
    public var function: String
    public var file: String?
    public var line: Int?
    /// Path of the object holding the address ("" when none does).
    public var object: String
    /// The looked-up address minus the object's load bias (a file address).
    public var offset: UInt64

    public init(function: String, file: String? = nil, line: Int? = nil, object: String, offset: UInt64) {
        self.function = function
        self.file = file
        self.line = line
        self.object = object
        self.offset = offset
    }
}
