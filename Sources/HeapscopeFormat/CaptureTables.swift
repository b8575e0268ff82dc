/// Ids of interned records: 1, 2, 3... in order of appearance; 0 means "none".
public typealias StringID = UInt32
public typealias CodeID = UInt32
public typealias FrameID = UInt32
public typealias ThreadNumber = UInt32
public typealias NativeFrameID = UInt32

public struct CodeObject: Sendable, Equatable {
    public var name: StringID
    public var qualifiedName: StringID
    public var fileName: StringID
    public var firstLine: Int
    /// Nil when the capture's Python predates the PEP 657 location table.
    public var lineTable: LineTable?

    public init(name: StringID, qualifiedName: StringID, fileName: StringID, firstLine: Int, lineTable: LineTable? = nil) {
        self.name = name
        self.qualifiedName = qualifiedName
        self.fileName = fileName
        self.firstLine = firstLine
        self.lineTable = lineTable
    }
}

/// One Python frame: a node of the stack trie.
public struct Frame: Sendable, Equatable {
    public var parent: FrameID
    public var code: CodeID
    /// Instruction offset in code units.
    public var offset: Int
    /// Resolved once, when the frame is read: the instruction's line, or the
    /// code object's first line when the instruction has no location.
    public var line: Int
    /// The first Python frame that its C-level eval call ran: where a hybrid
    /// stack splices Python frames in at an interpreter frame.
    public var isEntry: Bool

    public init(parent: FrameID, code: CodeID, offset: Int, line: Int, isEntry: Bool = false) {
        self.parent = parent
        self.code = code
        self.offset = offset
        self.line = line
        self.isEntry = isEntry
    }
}

public struct ThreadInfo: Sendable, Equatable {
    public var number: ThreadNumber
    /// 0 until a THREAD_INFO record names it.
    public var osThreadID: UInt64
    public var name: String?

    public init(number: ThreadNumber, osThreadID: UInt64, name: String? = nil) {
        self.number = number
        self.osThreadID = osThreadID
        self.name = name
    }
}

/// One native frame: a node of the native stack trie (native captures only).
public struct NativeFrameNode: Sendable, Equatable {
    public var parent: NativeFrameID
    /// Absolute, in the profiled process.
    public var returnAddress: UInt64
    /// Index in `CaptureTables.mappingSets` of the MAPPINGS in force when the
    /// frame was written (its address resolves against them); -1 if none yet.
    public var mappings: Int

    public init(parent: NativeFrameID, returnAddress: UInt64, mappings: Int) {
        self.parent = parent
        self.returnAddress = returnAddress
        self.mappings = mappings
    }
}

/// An object (executable or shared library) loaded in the profiled process.
public struct LoadedObject: Sendable, Equatable {
    public struct Segment: Sendable, Equatable {
        /// Absolute start address of the PT_LOAD segment.
        public var start: UInt64
        public var size: UInt64

        public init(start: UInt64, size: UInt64) {
            self.start = start
            self.size = size
        }
    }

    public var path: String
    public var loadBias: UInt64
    /// GNU build id; empty if the object has none.
    public var buildID: [UInt8]
    public var segments: [Segment]

    public init(path: String, loadBias: UInt64, buildID: [UInt8], segments: [Segment]) {
        self.path = path
        self.loadBias = loadBias
        self.buildID = buildID
        self.segments = segments
    }
}

/// Where a frame is: its function's qualified name, file and line.
public struct Location: Hashable, Sendable, Comparable {
    public var function: String
    public var file: String
    public var line: Int

    public init(function: String, file: String, line: Int) {
        self.function = function
        self.file = file
        self.line = line
    }

    /// Allocations with no Python frame (frame id 0).
    public static let unknown = Location(function: "<unknown>", file: "<unknown>", line: 0)

    public static func < (a: Location, b: Location) -> Bool {
        (a.file, a.line, a.function) < (b.file, b.line, b.function)
    }
}

/// The interned tables of a capture, filled in while it is read: strings, code
/// objects, frames and threads. Any frame id seen so far resolves to a stack.
public struct CaptureTables: Sendable {
    /// Index = id; index 0 is a placeholder for "none".
    public private(set) var strings: [String] = [""]
    public private(set) var codes: [CodeObject] = [CodeObject(name: 0, qualifiedName: 0, fileName: 0, firstLine: 0)]
    public private(set) var frames: [Frame] = [Frame(parent: 0, code: 0, offset: 0, line: 0)]
    /// Index = thread number; index 0 stands for records before any THREAD record.
    public private(set) var threads: [ThreadInfo] = [ThreadInfo(number: 0, osThreadID: 0)]
    /// Index = native frame id; index 0 is a placeholder.
    public private(set) var nativeFrames: [NativeFrameNode] = [NativeFrameNode(parent: 0, returnAddress: 0, mappings: -1)]
    /// Every MAPPINGS record in order; each replaced the one before.
    public private(set) var mappingSets: [[LoadedObject]] = []

    public init() {}

    public var stringCount: Int { strings.count - 1 }
    public var codeCount: Int { codes.count - 1 }
    public var frameCount: Int { frames.count - 1 }
    public var threadCount: Int { threads.count - 1 }
    public var nativeFrameCount: Int { nativeFrames.count - 1 }

    public func string(_ id: StringID) -> String { strings[Int(id)] }
    public func code(_ id: CodeID) -> CodeObject { codes[Int(id)] }
    public func frame(_ id: FrameID) -> Frame { frames[Int(id)] }
    public func thread(_ number: ThreadNumber) -> ThreadInfo { threads[Int(number)] }
    public func nativeFrame(_ id: NativeFrameID) -> NativeFrameNode { nativeFrames[Int(id)] }

    /// The native stack of `id`, innermost frame first; empty for id 0.
    public func nativeStack(ofFrame id: NativeFrameID) -> [NativeFrameNode] {
        var result: [NativeFrameNode] = []
        var current = id
        while current != 0 {
            result.append(nativeFrames[Int(current)])
            current = nativeFrames[Int(current)].parent
        }
        return result
    }

    /// The innermost location of the stack `id` names.
    public func location(ofFrame id: FrameID) -> Location {
        guard id != 0 else { return .unknown }
        let frame = frames[Int(id)]
        let code = codes[Int(frame.code)]
        return Location(function: strings[Int(code.qualifiedName)], file: strings[Int(code.fileName)], line: frame.line)
    }

    /// The whole Python stack of `id`, innermost frame first; empty for id 0.
    public func stack(ofFrame id: FrameID) -> [Location] {
        var result: [Location] = []
        var current = id
        while current != 0 {
            result.append(location(ofFrame: current))
            current = frames[Int(current)].parent
        }
        return result
    }

    /// The function a frame runs in, named by its definition.
    public func function(ofFrame id: FrameID) -> Location {
        guard id != 0 else { return .unknown }
        let code = codes[Int(frames[Int(id)].code)]
        return Location(function: strings[Int(code.qualifiedName)], file: strings[Int(code.fileName)], line: code.firstLine)
    }

    // The reader validates ids before it adds records.
    mutating func addString(_ string: String) { strings.append(string) }
    mutating func addCode(_ code: CodeObject) { codes.append(code) }
    mutating func addFrame(_ frame: Frame) { frames.append(frame) }
    mutating func addNativeFrame(_ frame: NativeFrameNode) { nativeFrames.append(frame) }
    mutating func addMappings(_ objects: [LoadedObject]) { mappingSets.append(objects) }

    mutating func noteThread(_ number: ThreadNumber) {
        if Int(number) == threads.count { threads.append(ThreadInfo(number: number, osThreadID: 0)) }
    }

    mutating func setThreadInfo(_ number: ThreadNumber, osThreadID: UInt64, name: String?) {
        noteThread(number)
        threads[Int(number)].osThreadID = osThreadID
        threads[Int(number)].name = name
    }
}
