internal import CDwarf
internal import Glibc

/// Turns the native return addresses of a capture into source frames, offline,
/// from the objects the capture recorded (MAPPINGS). Results are cached per
/// address. Not thread-safe.
public final class Symbolizer {
    /// Objects whose frames cannot be trusted or found, each named once, when
    /// the first address inside it is looked up.
    public private(set) var warnings: [String] = []

    /// Owns every module; kept for the symbolizer's lifetime.
    private let session: DwflSession?
    private let objects: [ObjectSymbols]
    /// Absolute address ranges of the recorded segments → index in `objects`.
    private let segments: RangeTable<Int>
    private var cache: [UInt64: [NativeFrame]] = [:]

    public init(objects: [LoadedObject]) {
        let session = DwflSession()
        self.objects = objects.map { ObjectSymbols($0, session: session) }
        session?.endReporting()
        self.session = session
        segments = RangeTable(objects.enumerated().flatMap { index, object in
            object.segments.map { (range: $0.start..<$0.start + $0.size, value: index) }
        })
    }

    /// The frames at return address `address`, innermost first: the functions
    /// inlined there, then the function containing it.
    public func frames(at address: UInt64) -> [NativeFrame] {
        if let frames = cache[address] { return frames }
        // A return address points after its call, possibly at the next line
        // or even the next function: look up the call instruction itself.
        let pc = address &- 1
        let frames: [NativeFrame]
        if let index = segments.value(containing: pc) {
            let object = objects[index]
            if let warning = object.takeWarning() { warnings.append(warning) }
            frames = object.frames(at: pc, returnAddress: address)
        } else {
            frames = [NativeFrame(function: "0x" + String(address, radix: 16), object: "", offset: address)]
        }
        cache[address] = frames
        return frames
    }
}

/// One recorded object and, when its file matches the capture, its module.
private final class ObjectSymbols {
    let object: LoadedObject
    let module: DwflModule?
    /// Why `module` is nil; nil for pseudo-objects such as the vdso.
    private var problem: String?

    lazy var debugInfo: DebugInfo? = module.flatMap(DebugInfo.init)
    lazy var symbols: SymbolTable = SymbolTable(module?.functionSymbols() ?? [])

    init(_ object: LoadedObject, session: DwflSession?) {
        self.object = object
        let path = object.path
        // The vdso (and the like) has no file to read.
        if path.isEmpty || path.hasPrefix("[") || path.hasPrefix("linux-vdso") || path.hasPrefix("linux-gate") {
            module = nil
            return
        }
        guard let session else {
            module = nil
            problem = "\(path): libdwfl could not start; its frames are shown as object+offset"
            return
        }
        let reported: DwflModule
        do {
            reported = try session.report(path: path, bias: object.loadBias)
        } catch {
            module = nil
            let reason = access(path, F_OK) == 0 ? "cannot be read (\(error.message))" : "not found"
            problem = "\(path): \(reason); its frames are shown as object+offset"
            return
        }
        // Without a recorded build id there is nothing to check against.
        if !object.buildID.isEmpty && reported.buildID != object.buildID {
            module = nil
            problem = "\(path): build id differs from the capture's; its frames are shown as object+offset"
        } else {
            module = reported
        }
    }

    /// The warning about this object, the first time only.
    func takeWarning() -> String? {
        defer { problem = nil }
        return problem
    }

    private func symbolName(at pc: UInt64) -> String? {
        symbols.name(containing: pc).map(demangle)
    }

    /// Frames at absolute `pc` (the call instruction of `returnAddress`).
    func frames(at pc: UInt64, returnAddress: UInt64) -> [NativeFrame] {
        let offset = returnAddress &- object.loadBias
        func frame(_ function: String?, _ file: String? = nil, _ line: Int? = nil) -> NativeFrame {
            NativeFrame(
                function: function ?? "\(object.name)+0x\(String(offset, radix: 16))",
                file: file, line: line, object: object.path, offset: offset)
        }
        guard module != nil else { return [frame(nil)] }

        guard let debugInfo, let unit = debugInfo.compileUnit(containing: pc) else {
            return [frame(symbolName(at: pc))]
        }
        let address = pc - debugInfo.bias
        let location = unit.location(of: address)
        guard let function = debugInfo.function(in: unit, containing: address) else {
            return [frame(symbolName(at: pc), location?.file, location?.line)]
        }
        // Innermost first; each inlined scope says where its caller called it.
        let scopes = [function] + debugInfo.inlinedScopes(in: function, containing: address)
        var frames: [NativeFrame] = []
        var file = location?.file, line = location?.line
        for (depth, scope) in scopes.enumerated().reversed() {
            let name = scope.functionName ?? (depth == 0 ? symbolName(at: pc) : nil)
            frames.append(frame(name, file, line))
            guard depth > 0 else { break }
            file = scope.unsigned(DW_AT_call_file).flatMap(unit.file(at:))
            line = scope.unsigned(DW_AT_call_line).map { Int($0) }
        }
        return frames
    }
}
