import Foundation
import Glibc
import HeapscopeAnalysis
import HeapscopeFormat
import Testing
import HeapscopeTestSupport

/// The interpreter the installed `heapscope` package runs in (HEAPSCOPE_PYTHON, else python3).
private let python = ProcessInfo.processInfo.environment["HEAPSCOPE_PYTHON"] ?? "python3"

/// `hs_e2e_alloc` calls malloc on line 5.
private let cSource = """
    #include <stdlib.h>
    #include <string.h>

    void *hs_e2e_alloc(size_t n) {
        void *block = malloc(n);
        if (block) memset(block, 1, n);
        return block;
    }

    void hs_e2e_free(void *block) {
        free(block);
    }

    """
private let mallocLine = 5
private let blockSize = 7_654_321

/// The library is loaded inside the tracked block, so its frames resolve
/// against the MAPPINGS written after that dlopen.
private let script = """
    import ctypes, sys
    import heapscope

    def allocate_block(lib):
        return lib.hs_e2e_alloc(\(blockSize))

    def outer(lib):
        return allocate_block(lib)

    with heapscope.Tracker(sys.argv[2], native=True, overwrite=True):
        lib = ctypes.CDLL(sys.argv[1])
        lib.hs_e2e_alloc.restype = ctypes.c_void_p
        lib.hs_e2e_alloc.argtypes = [ctypes.c_size_t]
        block = outer(lib)
        assert block

    """

@Suite struct RealCaptureTests {
    /// Python -> ctypes -> a C function compiled with -g that mallocs: the
    /// hybrid stack shows the Python callers, then the C function with its
    /// file and line, innermost.
    /// Needs the installed package (`make test` runs the Swift tests after `make install`).
    @Test func pythonCallsIntoCThatMallocs() throws {
        _ = try run(python, ["-c", "import heapscope"])
        var template = Array("/tmp/heapscope-hybrid-e2e-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = directory + "/e2e.c", library = directory + "/libe2e.so"
        let scriptPath = directory + "/e2e_script.py", capture = directory + "/e2e.hsc"
        try cSource.write(toFile: source, atomically: true, encoding: .utf8)
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        try run("cc", ["-g", "-O0", "-shared", "-fPIC", "-Wl,--build-id", "-o", library, source])
        try run(python, [scriptPath, library, capture])

        var reader = try CaptureReader(path: capture)
        #expect(reader.header.flags.contains(.native))
        var found: Allocation?
        while let record = try reader.next() {
            if case .alloc(let allocation) = record, allocation.size == UInt64(blockSize) { found = allocation }
        }
        let allocation = try #require(found)
        let key = StackKey(frame: allocation.frame, nativeFrame: allocation.nativeFrame)
        #expect(key.frame != 0 && key.nativeFrame != 0)
        let tables = reader.tables

        let hybrid = StackResolver(tables: tables, mode: .hybrid)
        let stack = hybrid.stack(key)
        let described = stack.map(\.description).joined(separator: "\n")
        let leaf = try #require(stack.last, "empty stack")
        #expect(leaf.kind == .native)
        #expect(leaf.function == "hs_e2e_alloc", "\(described)")
        #expect(leaf.file == source)
        #expect(leaf.line == mallocLine)
        #expect(leaf.object == "libe2e.so")
        let outer = try #require(stack.firstIndex { $0.kind == .python && $0.function == "outer" }, "\(described)")
        let allocate = try #require(stack.firstIndex { $0.kind == .python && $0.function == "allocate_block" }, "\(described)")
        #expect(outer < allocate && allocate < stack.count - 1)
        #expect(stack[outer].file == scriptPath && stack[outer].line == 8)
        #expect(stack[allocate].line == 5)
        // Python frames are the innermost ones only down to the call into C:
        // ctypes' native frames sit between them and the allocating function.
        #expect(stack[(allocate + 1)...].allSatisfy { $0.kind == .native })
        #expect(stack.contains { $0.kind == .python && $0.function == "<module>" })
        // Spliced: no eval loop and no interpreter start-up left.
        #expect(!stack.contains { $0.isInterpreterEvalFrame || $0.isInterpreterStartup }, "\(described)")
        #expect(hybrid.warnings.isEmpty, "\(hybrid.warnings)")

        let native = StackResolver(tables: tables, mode: .native).stack(key)
        #expect(native.allSatisfy { $0.kind == .native })
        #expect(native.last?.function == "hs_e2e_alloc")
        #expect(native.contains { $0.function == "_PyEval_EvalFrameDefault" })
        #expect(native.contains { $0.function == "Py_BytesMain" || $0.function == "main" })

        let pythonOnly = StackResolver(tables: tables, mode: .python).stack(key)
        #expect(pythonOnly.map(\.function).suffix(2) == ["outer", "allocate_block"])
        #expect(pythonOnly.allSatisfy { $0.kind == .python })
    }

    /// Resolves every stack of the capture named by HEAPSCOPE_HYBRID_CAPTURE
    /// in each mode and prints the time it took, and the biggest stack
    /// (e.g. a `heapscope run --native` of examples/numpy_native.py).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["HEAPSCOPE_HYBRID_CAPTURE"] != nil))
    func timingOnACapture() throws {
        let path = ProcessInfo.processInfo.environment["HEAPSCOPE_HYBRID_CAPTURE"]!
        let clock = ContinuousClock()
        var reader = try CaptureReader(path: path)
        var stacks = StackKeyTable(header: reader.header)
        var bytes: [StackKeyTable.ID: UInt64] = [:]
        let readTime = clock.measure {
            while let record = try? reader.next() {
                if case .alloc(let allocation) = record {
                    bytes[stacks.id(frame: allocation.frame, nativeFrame: allocation.nativeFrame), default: 0] += allocation.size
                }
            }
        }
        print("read \(path): \(readTime), \(stacks.count) distinct stacks, \(reader.tables.nativeFrameCount) native frames, "
              + "\(reader.tables.mappingSets.count) mapping sets")
        for mode in StackMode.allCases {
            let resolver = StackResolver(tables: reader.tables, mode: mode)
            var frames = 0
            let time = clock.measure {
                for id in 0..<StackKeyTable.ID(stacks.count) { frames += resolver.stackIndices(stacks.key(id)).count }
            }
            print("\(mode): \(time) for \(stacks.count) stacks (\(resolver.cachedStackCount) distinct), \(frames) frames, "
                  + "\(resolver.frames.count) interned; warnings: \(resolver.warnings)")
            if let (id, size) = bytes.max(by: { $0.value < $1.value }) {
                print("  biggest (\(size) bytes):\n    " + resolver.stack(stacks.key(id)).map(\.description).joined(separator: "\n    "))
            }
        }
    }
}
