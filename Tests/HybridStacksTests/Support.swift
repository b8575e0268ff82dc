import Foundation
import Glibc
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeSymbols

struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

/// A shared library compiled for the test (`cc -g -O0 -shared -fPIC`, with a
/// build id) and dlopened, as HeapscopeSymbolsTests does. Its directory is
/// removed when the fixture goes away.
final class Fixture {
    let directory: String
    let sourcePath: String
    let libraryPath: String
    let handle: UnsafeMutableRawPointer

    init(source: String, fileName: String, flags: [String] = ["-g", "-O0"]) throws {
        var template = Array("/tmp/heapscope-hybrid-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw FixtureError(description: "mkdtemp failed") }
        directory = String(cString: created)
        sourcePath = directory + "/" + fileName
        libraryPath = directory + "/lib" + fileName.split(separator: ".")[0] + ".so"
        try source.write(toFile: sourcePath, atomically: true, encoding: .utf8)
        try run("cc", flags + ["-shared", "-fPIC", "-Wl,--build-id", "-o", libraryPath, sourcePath])
        guard let handle = dlopen(libraryPath, RTLD_NOW | RTLD_LOCAL) else {
            throw FixtureError(description: "dlopen \(libraryPath): \(String(cString: dlerror()))")
        }
        self.handle = handle
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func address(of symbol: String) throws -> UInt64 {
        guard let pointer = dlsym(handle, symbol) else { throw FixtureError(description: "no symbol \(symbol)") }
        return UInt64(UInt(bitPattern: pointer))
    }

    /// The library as the tracker records it in MAPPINGS.
    var loadedObject: HeapscopeFormat.LoadedObject {
        get throws {
            guard let object = loadedObjects().first(where: { $0.path == libraryPath }) else {
                throw FixtureError(description: "\(libraryPath) is not loaded")
            }
            return object
        }
    }

    /// A return address inside `function` whose call instruction is on
    /// `line` of the source (for the function itself, i.e. the outermost of
    /// the frames there), found by asking the symbolizer about every byte.
    /// `innermost`: the innermost frame there must be this (inlined) function.
    func returnAddress(in function: String, line: Int, innermost: String? = nil) throws -> UInt64 {
        let symbolizer = Symbolizer(objects: [try symbolsObject])
        let entry = try address(of: function)
        for address in entry..<entry + 4096 {
            let frames = symbolizer.frames(at: address + 1)
            guard frames.last?.function == function else { break }
            if frames.last?.line == line && (innermost == nil || frames.first?.function == innermost) { return address + 1 }
        }
        throw FixtureError(description: "no instruction of \(function) on line \(line)")
    }

    var symbolsObject: HeapscopeSymbols.LoadedObject {
        get throws {
            let object = try loadedObject
            return HeapscopeSymbols.LoadedObject(path: object.path, loadBias: object.loadBias, buildID: object.buildID,
                                                 segments: object.segments.map { ($0.start, $0.size) })
        }
    }
}

/// Runs a program and returns its standard output; throws if it fails.
@discardableResult
func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [program] + arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw FixtureError(description: "\(program) \(arguments.joined(separator: " ")) failed: \(errorText)")
    }
    return text
}

/// The objects loaded in this process, read the way the tracker reads them:
/// dl_iterate_phdr for bias and PT_LOAD segments, PT_NOTE for the build id.
func loadedObjects() -> [HeapscopeFormat.LoadedObject] {
    var objects: [HeapscopeFormat.LoadedObject] = []
    withUnsafeMutablePointer(to: &objects) { collected in _ = dl_iterate_phdr({ info, _, context in
        let info = info!.pointee
        var segments: [HeapscopeFormat.LoadedObject.Segment] = []
        var buildID: [UInt8] = []
        for index in 0..<Int(info.dlpi_phnum) {
            let header = info.dlpi_phdr[index]
            let start = info.dlpi_addr + header.p_vaddr
            if header.p_type == PT_LOAD {
                segments.append(.init(start: start, size: header.p_memsz))
            } else if header.p_type == PT_NOTE, buildID.isEmpty {
                buildID = gnuBuildID(notes: UnsafeRawBufferPointer(
                    start: UnsafeRawPointer(bitPattern: UInt(start)), count: Int(header.p_memsz)))
            }
        }
        let path = info.dlpi_name.map { String(cString: $0) } ?? ""
        context!.assumingMemoryBound(to: [HeapscopeFormat.LoadedObject].self).pointee.append(
            HeapscopeFormat.LoadedObject(path: path, loadBias: info.dlpi_addr, buildID: buildID, segments: segments))
        return 0
    }, collected) }
    return objects
}

private func gnuBuildID(notes: UnsafeRawBufferPointer) -> [UInt8] {
    func aligned(_ size: Int) -> Int { (size + 3) & ~3 }
    var offset = 0
    while offset + 12 <= notes.count {
        let nameSize = Int(notes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        let descriptionSize = Int(notes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        let type = notes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
        let name = offset + 12, description = name + aligned(nameSize)
        guard description + descriptionSize <= notes.count else { break }
        if type == NT_GNU_BUILD_ID, nameSize == 4, Array(notes[name..<name + 4]) == Array("GNU\0".utf8) {
            return Array(notes[description..<description + descriptionSize])
        }
        offset = description + aligned(descriptionSize)
    }
    return []
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
