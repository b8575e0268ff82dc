// Display stacks for reports: Python frames, native frames, or both spliced
// together ("hybrid"), built at report time from a capture's two stack tries
// (docs/FORMAT.md: FRAME with its is_entry bit, NATIVE_FRAME, MAPPINGS).
import HeapscopeFormat
import HeapscopeSymbols

/// Which frames a report shows for an allocation.
public enum StackMode: String, Sendable, CaseIterable {
    /// Native frames, with each interpreter evaluation frame replaced by the
    /// Python frames it was running. The default for native captures.
    case hybrid
    /// Python frames only (the only choice without native stacks).
    case python
    /// Native frames only, interpreter frames and start-up included.
    case native

    /// `.hybrid` for a capture with native stacks, else `.python`.
    public static func defaultMode(for header: CaptureHeader) -> StackMode {
        header.flags.contains(.native) ? .hybrid : .python
    }
}

/// One frame of a display stack.
public struct DisplayFrame: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: UInt8, Sendable { case python, native }

    /// Python: the qualified name. Native: the demangled function, or
    /// "libfoo.so+0x1234" / "0x7f..." when it cannot be symbolicated.
    public var function: String
    public var file: String?
    public var line: Int?
    public var kind: Kind
    /// Native frames: the file name of the object holding the address
    /// ("libc.so.6"), nil when no recorded object holds it. Nil for Python.
    public var object: String?

    public init(function: String, file: String? = nil, line: Int? = nil, kind: Kind, object: String? = nil) {
        self.function = function
        self.file = file
        self.line = line
        self.kind = kind
        self.object = object
    }

    /// As the reports key frames: a native frame without a source file is
    /// placed in its object, without a line at line 0.
    public var location: Location {
        Location(function: function, file: file ?? object ?? "", line: line ?? 0)
    }

    /// "f at file.py:3", "malloc in libc.so.6", "g at g.c:12 (libg.so)".
    public var description: String {
        var text = function
        if let file { text += " at \(file)" + (line.map { ":\($0)" } ?? "") }
        if kind == .native, let object { text += file == nil ? " in \(object)" : " (\(object))" }
        return text
    }

    /// The interpreter's evaluation loop: one C call per entry Python frame.
    /// GCC's split-off cold part (".cold") is the same call.
    public var isInterpreterEvalFrame: Bool {
        kind == .native && (function == "_PyEval_EvalFrameDefault" || function.hasPrefix("_PyEval_EvalFrameDefault."))
    }

    /// The C start-up of the interpreter, above every Python frame: hidden in
    /// hybrid stacks.
    public var isInterpreterStartup: Bool {
        guard kind == .native else { return false }
        switch function {
        case "main", "_start", "Py_BytesMain", "Py_RunMain", "Py_Main": return true
        default: return function.hasPrefix("pymain_") || function.hasPrefix("__libc_start")
        }
    }
}

/// Symbolication of native return addresses for `StackResolver`.
public protocol NativeSymbolSource: AnyObject {
    /// The source frames at `returnAddress`, innermost first (inlined
    /// functions, then the function holding it), resolved against
    /// `CaptureTables.mappingSets[mappings]` (-1: before any MAPPINGS).
    func frames(at returnAddress: UInt64, mappings: Int) -> [NativeFrame]
    /// Objects that could not be used (missing, unreadable, another build id),
    /// each named once, in the order they were met.
    var warnings: [String] { get }
}

/// One symbolizer for a single set of objects, whatever the mapping set.
extension Symbolizer: NativeSymbolSource {
    public func frames(at returnAddress: UInt64, mappings: Int) -> [NativeFrame] {
        frames(at: returnAddress)
    }
}

/// Symbolizes a capture's native frames against the MAPPINGS in force when
/// each was written: every distinct recorded object (path, load bias, build
/// id, segments) gets one `Symbolizer`, made the first time an address falls
/// in it and shared by every mapping set that holds it, so an object loaded
/// once is read once however many MAPPINGS records follow (one per dlopen).
public final class CaptureSymbolizer: NativeSymbolSource {
    private struct ObjectKey: Hashable {
        var path: String
        var loadBias: UInt64
        var buildID: [UInt8]
        var segments: [UInt64]
    }

    private let objects: [HeapscopeFormat.LoadedObject]
    /// Per mapping set: sorted (start, end, object index).
    private let sets: [[(start: UInt64, end: UInt64, object: Int)]]
    private var symbolizers: [Symbolizer?]
    /// Symbolizers in the order they were made, for warnings.
    private var made: [Int] = []

    public init(mappingSets: [[HeapscopeFormat.LoadedObject]]) {
        var objects: [HeapscopeFormat.LoadedObject] = []
        var index: [ObjectKey: Int] = [:]
        var sets: [[(start: UInt64, end: UInt64, object: Int)]] = []
        for set in mappingSets {
            var ranges: [(start: UInt64, end: UInt64, object: Int)] = []
            for object in set {
                let key = ObjectKey(path: object.path, loadBias: object.loadBias, buildID: object.buildID,
                                    segments: object.segments.flatMap { [$0.start, $0.size] })
                let number = index[key] ?? {
                    objects.append(object)
                    index[key] = objects.count - 1
                    return objects.count - 1
                }()
                for segment in object.segments where segment.size > 0 {
                    let (end, overflow) = segment.start.addingReportingOverflow(segment.size)
                    ranges.append((segment.start, overflow ? .max : end, number))
                }
            }
            sets.append(ranges.sorted { $0.start < $1.start })
        }
        self.objects = objects
        self.sets = sets
        symbolizers = [Symbolizer?](repeating: nil, count: objects.count)
    }

    public convenience init(tables: CaptureTables) {
        self.init(mappingSets: tables.mappingSets)
    }

    /// Distinct objects over all mapping sets.
    public var objectCount: Int { objects.count }

    public var warnings: [String] {
        var seen = Set<String>()
        var result: [String] = []
        for index in made {
            for warning in symbolizers[index]!.warnings where seen.insert(warning).inserted { result.append(warning) }
        }
        return result
    }

    public func frames(at returnAddress: UInt64, mappings: Int) -> [NativeFrame] {
        // Frames written before the first MAPPINGS (none in practice) use the first.
        let set = mappings >= 0 && mappings < sets.count ? mappings : (sets.isEmpty ? -1 : 0)
        let pc = returnAddress &- 1
        guard set >= 0, let object = Self.object(containing: pc, in: sets[set]) else {
            return [NativeFrame(function: "0x" + String(returnAddress, radix: 16), object: "", offset: returnAddress)]
        }
        return symbolizer(object).frames(at: returnAddress)
    }

    private func symbolizer(_ index: Int) -> Symbolizer {
        if let known = symbolizers[index] { return known }
        let object = objects[index]
        let made = Symbolizer(objects: [HeapscopeSymbols.LoadedObject(
            path: object.path, loadBias: object.loadBias, buildID: object.buildID,
            segments: object.segments.map { (start: $0.start, size: $0.size) })])
        symbolizers[index] = made
        self.made.append(index)
        return made
    }

    private static func object(containing address: UInt64, in ranges: [(start: UInt64, end: UInt64, object: Int)]) -> Int? {
        var low = 0, high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].start <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0, address < ranges[low - 1].end else { return nil }
        return ranges[low - 1].object
    }
}

/// Turns (Python frame id, native frame id) pairs into display stacks in one
/// `StackMode`, for every report. Frames are interned (`frame(_:)`), stacks
/// are cached per pair as frame ids, symbolication is cached per address.
/// Not thread-safe.
///
///     let resolver = StackResolver(tables: analysis.tables, mode: .hybrid)
///     for site in sites { let frames = resolver.stack(StackKey(frame: site.frame, nativeFrame: site.nativeFrame)) }
///     for warning in resolver.warnings { print("warning: \(warning)") }
///
/// Hybrid stacks (outermost first): the native stack, where the k-th
/// `_PyEval_EvalFrameDefault` from the outside is replaced by the k-th group
/// of Python frames (an entry frame, `Frame.isEntry`, and the frames after it
/// up to the next entry frame). Python groups beyond the last eval frame are
/// added at the innermost one; eval frames beyond the last group are left out.
/// Native frames above the outermost eval frame (start-up, `PyEval_EvalCode`,
/// a thread's bootstrap) are left out. With no
/// eval frame at all (libpython not symbolicated, or not found) the Python
/// frames come first, then the native frames without start-up ones; a stack
/// with neither eval frame nor Python frame is shown whole.
public final class StackResolver {
    public typealias FrameIndex = UInt32

    public let tables: CaptureTables
    public let mode: StackMode
    public let symbols: (any NativeSymbolSource)?

    /// Interned display frames; index = `FrameIndex`.
    public private(set) var frames: [DisplayFrame] = []
    private var frameIndex: [DisplayFrame: FrameIndex] = [:]
    private var isEval: [Bool] = []
    private var isStartup: [Bool] = []

    /// Per Python frame id: its display frame + 1 (0: not yet made).
    private var pythonFrame: [FrameIndex]
    /// Per native frame id: its display frames, outermost first (inlined expanded).
    private var nativeFrames: [[FrameIndex]?]
    private var stacks: [StackKey: [FrameIndex]] = [:]
    private var hits = 0

    /// `symbols`: nil makes native frames show as bare addresses.
    public init(tables: CaptureTables, symbols: (any NativeSymbolSource)?, mode: StackMode) {
        self.tables = tables
        self.mode = mode
        self.symbols = symbols
        pythonFrame = [FrameIndex](repeating: 0, count: tables.frames.count)
        nativeFrames = [[FrameIndex]?](repeating: nil, count: tables.nativeFrames.count)
    }

    /// With a `CaptureSymbolizer` over the capture's own MAPPINGS (none when
    /// the mode shows no native frame).
    public convenience init(tables: CaptureTables, mode: StackMode) {
        self.init(tables: tables, symbols: mode == .python ? nil : CaptureSymbolizer(tables: tables), mode: mode)
    }

    /// Symbolizer warnings so far (resolve the stacks first, then print them once).
    public var warnings: [String] { symbols?.warnings ?? [] }

    /// Distinct pairs resolved so far, and lookups answered from that cache.
    public var cachedStackCount: Int { stacks.count }
    public var cacheHits: Int { hits }

    public func frame(_ index: FrameIndex) -> DisplayFrame { frames[Int(index)] }

    /// The display stack of `key`, outermost frame first.
    public func stack(_ key: StackKey) -> [DisplayFrame] {
        stackIndices(key).map { frames[Int($0)] }
    }

    public func stack(frame: FrameID, nativeFrame: NativeFrameID) -> [DisplayFrame] {
        stack(StackKey(frame: frame, nativeFrame: nativeFrame))
    }

    /// The display stack of `key` as interned frame indices, outermost first:
    /// what a tree builder walks (equal frames have equal indices).
    public func stackIndices(_ key: StackKey) -> [FrameIndex] {
        // Modes that ignore one side share the stacks of the other.
        let key = mode == .python ? StackKey(frame: key.frame) : mode == .native ? StackKey(frame: 0, nativeFrame: key.nativeFrame) : key
        if let known = stacks[key] {
            hits += 1
            return known
        }
        let result: [FrameIndex]
        switch mode {
        case .python: result = pythonStack(key.frame)
        case .native: result = nativeStack(key.nativeFrame)
        case .hybrid: result = hybridStack(key)
        }
        stacks[key] = result
        return result
    }

    /// The innermost display frame of `key`, if the stack has any frame.
    public func innermost(_ key: StackKey) -> DisplayFrame? {
        stackIndices(key).last.map { frames[Int($0)] }
    }

    // MARK: Building

    private func intern(_ frame: DisplayFrame) -> FrameIndex {
        if let known = frameIndex[frame] { return known }
        let index = FrameIndex(frames.count)
        frames.append(frame)
        isEval.append(frame.isInterpreterEvalFrame)
        isStartup.append(frame.isInterpreterStartup)
        frameIndex[frame] = index
        return index
    }

    private func display(pythonFrame id: FrameID) -> FrameIndex {
        let known = pythonFrame[Int(id)]
        if known != 0 { return known - 1 }
        let location = tables.location(ofFrame: id)
        let index = intern(DisplayFrame(function: location.function, file: location.file, line: location.line, kind: .python))
        pythonFrame[Int(id)] = index + 1
        return index
    }

    /// Python frames outermost first, each with its entry bit.
    private func pythonFrames(_ id: FrameID) -> [(index: FrameIndex, isEntry: Bool)] {
        var result: [(index: FrameIndex, isEntry: Bool)] = []
        var current = id
        while current != 0 {
            result.append((display(pythonFrame: current), tables.frame(current).isEntry))
            current = tables.frame(current).parent
        }
        return result.reversed()
    }

    private func pythonStack(_ id: FrameID) -> [FrameIndex] {
        pythonFrames(id).map(\.index)
    }

    /// The display frames of one native frame, outermost first.
    private func display(nativeFrame id: NativeFrameID) -> [FrameIndex] {
        if let known = nativeFrames[Int(id)] { return known }
        let node = tables.nativeFrame(id)
        let symbolized = symbols?.frames(at: node.returnAddress, mappings: node.mappings)
            ?? [NativeFrame(function: "0x" + String(node.returnAddress, radix: 16), object: "", offset: node.returnAddress)]
        let result = symbolized.reversed().map { frame in
            intern(DisplayFrame(function: frame.function, file: frame.file, line: frame.line, kind: .native,
                                object: frame.object.isEmpty ? nil : Self.fileName(frame.object)))
        }
        nativeFrames[Int(id)] = result
        return result
    }

    private func nativeStack(_ id: NativeFrameID) -> [FrameIndex] {
        var nodes: [NativeFrameID] = []
        var current = id
        while current != 0 {
            nodes.append(current)
            current = tables.nativeFrame(current).parent
        }
        var result: [FrameIndex] = []
        for node in nodes.reversed() { result += display(nativeFrame: node) }
        return result
    }

    private func hybridStack(_ key: StackKey) -> [FrameIndex] {
        let native = nativeStack(key.nativeFrame)
        let python = pythonFrames(key.frame)
        guard !native.isEmpty else { return python.map(\.index) }

        // Python frames in groups, one per C-level eval call.
        var groups: [[FrameIndex]] = []
        for frame in python {
            if frame.isEntry || groups.isEmpty { groups.append([]) }
            groups[groups.count - 1].append(frame.index)
        }
        let evalPositions = native.indices.filter { isEval[Int(native[$0])] }
        guard let outermostEval = evalPositions.first, let innermostEval = evalPositions.last else {
            if python.isEmpty { return native }
            return python.map(\.index) + native.filter { !isStartup[Int($0)] }
        }

        var result: [FrameIndex] = []
        result.reserveCapacity(native.count + python.count)
        var evalNumber = 0
        for (position, frame) in native.enumerated() {
            if position < outermostEval {
                // Above the first eval frame is how the interpreter came to run
                // Python code (start-up, PyEval_EvalCode, a thread's bootstrap):
                // plumbing, left out.
                continue
            } else if isEval[Int(frame)] {
                if evalNumber < groups.count {
                    if position == innermostEval {
                        for group in groups[evalNumber...] { result += group }
                    } else {
                        result += groups[evalNumber]
                    }
                }
                evalNumber += 1
            } else {
                result.append(frame)
            }
        }
        return result
    }

    private static func fileName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
