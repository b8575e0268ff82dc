import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeSymbols
import HeapscopeTestSupport

extension Fixture {
    /// A return address inside `function` whose call instruction is on
    /// `line` of the source (for the function itself, i.e. the outermost of
    /// the frames there), found by asking the symbolizer about every byte.
    /// `innermost`: the innermost frame there must be this (inlined) function.
    func returnAddress(in function: String, line: Int, innermost: String? = nil) throws -> UInt64 {
        let symbolizer = Symbolizer(objects: [try loadedObject])
        let entry = try address(of: function)
        for address in entry..<entry + 4096 {
            let frames = symbolizer.frames(at: address + 1)
            guard frames.last?.function == function else { break }
            if frames.last?.line == line && (innermost == nil || frames.first?.function == innermost) { return address + 1 }
        }
        throw FixtureError(description: "no instruction of \(function) on line \(line)")
    }
}

/// Python frames for `CaptureWriter`, with their entry bits: one code object
/// per (function, file), starting at line 1 of its file.
struct PythonFrames {
    private var codes: [String: CodeID] = [:]

    /// Defines the stack (outermost first) and returns its innermost frame id.
    mutating func stack(_ frames: [(function: String, file: String, line: Int, entry: Bool)],
                        in writer: inout CaptureWriter) -> FrameID {
        var parent: FrameID = 0
        for frame in frames {
            let key = frame.file + "\0" + frame.function
            let code = codes[key] ?? {
                let name = writer.string(frame.function)
                let file = writer.string(frame.file)
                let id = writer.code(name: name, qualifiedName: name, fileName: file, firstLine: 1,
                                     lineTable: CaptureWriter.lineTable(firstLine: 1, lines: (1...200).map { $0 }))
                codes[key] = id
                return id
            }()
            parent = writer.frame(parent: parent, code: code, offset: frame.line - 1, isEntry: frame.entry)
        }
        return parent
    }
}

extension CaptureWriter {
    /// A native stack given outermost frame first; returns the innermost id.
    mutating func nativeStack(_ returnAddresses: [UInt64]) -> NativeFrameID {
        var parent: NativeFrameID = 0
        for address in returnAddresses { parent = nativeFrame(parent: parent, returnAddress: address) }
        return parent
    }
}

/// Reads a capture built in memory to its end and returns its tables.
func readTables(_ bytes: [UInt8]) throws -> (tables: CaptureTables, allocations: [Allocation]) {
    var reader = try CaptureReader(bytes: bytes)
    var allocations: [Allocation] = []
    while let record = try reader.next() {
        if case .alloc(let allocation) = record { allocations.append(allocation) }
    }
    return (reader.tables, allocations)
}

/// "function@line" per frame, for compact expectations; native frames
/// without a line are just the function.
func names(_ frames: [DisplayFrame]) -> [String] {
    frames.map { frame in frame.line.map { "\(frame.function)@\($0)" } ?? frame.function }
}
