// Fixtures the Swift tests share: shared libraries compiled and loaded for a
// test, the objects loaded in this process as the tracker records them, and
// running a program.

import Foundation
import Glibc
import HeapscopeFormat
import HeapscopeSymbols

public struct FixtureError: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) { self.description = description }
}

/// A shared library compiled for a test from `source`, and loaded. Its
/// directory is removed when the fixture goes away.
public final class Fixture {
    public let directory: String
    public let sourcePath: String
    public let libraryPath: String
    public let handle: UnsafeMutableRawPointer

    /// Compiles `source` with `compiler` (`cc -shared -fPIC` plus `flags`)
    /// into a fresh directory and dlopens the result. The library always gets
    /// a build id (clang does not ask the linker for one by default).
    public convenience init(source: String, fileName: String, compiler: String = "cc", flags: [String] = ["-g", "-O2"]) throws {
        try self.init(source: source, fileName: fileName) { source, library in
            [compiler] + flags + ["-shared", "-fPIC", "-Wl,--build-id", "-o", library, source]
        }
    }

    /// Builds `source` with the command `build(sourcePath, libraryPath)`.
    public init(source: String, fileName: String, build: (String, String) -> [String]) throws {
        var template = Array("/tmp/heapscope-fixture-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw FixtureError(description: "mkdtemp failed") }
        directory = String(cString: created)
        sourcePath = directory + "/" + fileName
        libraryPath = directory + "/lib" + fileName.split(separator: ".")[0] + ".so"
        try source.write(toFile: sourcePath, atomically: true, encoding: .utf8)
        let command = build(sourcePath, libraryPath)
        try run(command[0], Array(command.dropFirst()))
        guard let handle = dlopen(libraryPath, RTLD_NOW | RTLD_LOCAL) else {
            throw FixtureError(description: "dlopen \(libraryPath): \(String(cString: dlerror()))")
        }
        self.handle = handle
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    public func address(of symbol: String) throws -> UInt64 {
        guard let pointer = dlsym(handle, symbol) else { throw FixtureError(description: "no symbol \(symbol)") }
        return UInt64(UInt(bitPattern: pointer))
    }

    /// The library as the tracker records it in MAPPINGS.
    public var recordedObject: HeapscopeFormat.LoadedObject {
        get throws {
            guard let object = recordedObjects().first(where: { $0.path == libraryPath }) else {
                throw FixtureError(description: "\(libraryPath) is not loaded")
            }
            return object
        }
    }

    /// The library as the symbolizer takes it.
    public var loadedObject: HeapscopeSymbols.LoadedObject {
        get throws { try recordedObject.symbolsObject }
    }

    /// Whether the library has a section named `name`.
    public func hasSection(_ name: String) throws -> Bool {
        try run("readelf", ["-S", "-W", libraryPath]).contains(" \(name) ")
    }
}

extension HeapscopeFormat.LoadedObject {
    public var symbolsObject: HeapscopeSymbols.LoadedObject {
        HeapscopeSymbols.LoadedObject(path: path, loadBias: loadBias, buildID: buildID,
                                      segments: segments.map { ($0.start, $0.size) })
    }
}

/// Runs a program and returns its standard output; throws if it fails.
@discardableResult
public func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
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

/// The objects loaded in this process, as the symbolizer takes them.
public func loadedObjects() -> [HeapscopeSymbols.LoadedObject] {
    recordedObjects().map(\.symbolsObject)
}

/// The objects loaded in this process, read the way the tracker reads them
/// for MAPPINGS: dl_iterate_phdr for bias and PT_LOAD segments, PT_NOTE for
/// the build id (the executable, which has no name there, by its path).
public func recordedObjects() -> [HeapscopeFormat.LoadedObject] {
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
        var path = info.dlpi_name.map { String(cString: $0) } ?? ""
        if path.isEmpty, let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            path = executable
        }
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
