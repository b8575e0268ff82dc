import Foundation
import Glibc
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeSymbols
import Testing
import HeapscopeTestSupport

/// A fake interpreter: the functions a native stack under CPython passes
/// through, with their real names, so symbolication and splicing are real.
/// Line numbers matter (the tests name them).
private let interpreterSource = """
    #include <stdlib.h>

    static inline __attribute__((always_inline)) void *fill(size_t n) {
        return malloc(n);
    }

    void *c_alloc(size_t n) {
        return fill(n + 1);
    }

    void *_PyEval_EvalFrameDefault(void *frame, int depth) {
        if (depth > 0) return _PyEval_EvalFrameDefault(frame, depth - 1);
        return c_alloc(16);
    }

    void *cfunction_call(void *frame) {
        return _PyEval_EvalFrameDefault(frame, 0);
    }

    void *_PyEval_Vector(void *frame) {
        return cfunction_call(frame);
    }

    int Py_BytesMain(int argc) {
        return _PyEval_Vector(0) != 0;
    }

    int main(void) {
        return Py_BytesMain(1);
    }

    void __libc_start_call_main(void) {
        main();
    }

    """

/// Return addresses in the fixture, each on the line of its call.
private struct Interpreter {
    let fixture: Fixture
    let object: HeapscopeFormat.LoadedObject
    let start, main, bytesMain, vector, cfunctionCall, evalCallsEval, evalCallsAlloc, cAlloc: UInt64

    init() throws {
        fixture = try Fixture(source: interpreterSource, fileName: "interp.c", flags: ["-g", "-O0"])
        object = try fixture.recordedObject
        start = try fixture.returnAddress(in: "__libc_start_call_main", line: 33)
        main = try fixture.returnAddress(in: "main", line: 29)
        bytesMain = try fixture.returnAddress(in: "Py_BytesMain", line: 25)
        vector = try fixture.returnAddress(in: "_PyEval_Vector", line: 21)
        cfunctionCall = try fixture.returnAddress(in: "cfunction_call", line: 17)
        evalCallsEval = try fixture.returnAddress(in: "_PyEval_EvalFrameDefault", line: 12)
        evalCallsAlloc = try fixture.returnAddress(in: "_PyEval_EvalFrameDefault", line: 13)
        // c_alloc's call to malloc, inside `fill` inlined on line 8.
        cAlloc = try fixture.returnAddress(in: "c_alloc", line: 8, innermost: "fill")
    }

    /// Start-up down to the first eval frame.
    var startup: [UInt64] { [start, main, bytesMain, vector, cfunctionCall] }

    /// The display names of the start-up frames in native mode.
    static let startupNames = ["__libc_start_call_main@33", "main@29", "Py_BytesMain@25", "_PyEval_Vector@21", "cfunction_call@17"]
}

private let nativeFlags: CaptureFlags = [.native, .pythonAllocators]

@Suite(.serialized) struct HybridStackTests {
    private let interpreter: Interpreter

    init() throws {
        interpreter = try Interpreter()
    }

    /// A capture with one allocation per (Python stack, native stack) given.
    private func capture(_ stacks: [(python: [(String, String, Int, Bool)], native: [UInt64])],
                         objects: [HeapscopeFormat.LoadedObject]? = nil) throws -> (CaptureTables, [StackKey]) {
        var writer = CaptureWriter(flags: nativeFlags)
        writer.mappings(objects ?? [interpreter.object])
        var python = PythonFrames()
        writer.thread(1)
        var keys: [StackKey] = []
        for (index, stack) in stacks.enumerated() {
            let frame = python.stack(stack.python.map { (function: $0.0, file: $0.1, line: $0.2, entry: $0.3) }, in: &writer)
            let native = writer.nativeStack(stack.native)
            writer.alloc(.malloc, address: 0x1000 * UInt64(index + 1), size: 100, frame: frame, nativeFrame: native)
            keys.append(StackKey(frame: frame, nativeFrame: native))
        }
        writer.end(timeMicros: 10)
        let (tables, allocations) = try readTables(writer.bytes)
        #expect(allocations.map { StackKey(frame: $0.frame, nativeFrame: $0.nativeFrame) } == keys)
        return (tables, keys)
    }

    @Test func twoEvalFramesTakeOneGroupEach() throws {
        let i = interpreter
        let (tables, keys) = try capture([(
            python: [("run", "main.py", 3, true), ("helper", "main.py", 10, false),
                     ("work", "lib.py", 20, true), ("inner", "lib.py", 30, false)],
            native: i.startup + [i.evalCallsEval, i.evalCallsAlloc, i.cAlloc]
        )])
        let resolver = StackResolver(tables: tables, mode: .hybrid)
        let stack = resolver.stack(keys[0])
        #expect(names(stack) == ["run@3", "helper@10",
                                 "work@20", "inner@30", "c_alloc@8", "fill@4"])
        #expect(stack.map(\.kind) == [.python, .python, .python, .python, .native, .native])
        let alloc = try #require(stack.last)
        #expect(alloc.file == i.fixture.sourcePath)
        #expect(alloc.object == "libinterp.so")
        #expect(stack[0].file == "main.py" && stack[0].object == nil)
        #expect(resolver.warnings.isEmpty)
    }

    @Test func moreGroupsThanEvalFramesGoToTheInnermostOne() throws {
        let i = interpreter
        let (tables, keys) = try capture([(
            python: [("a", "a.py", 1, true), ("b", "b.py", 2, true), ("c", "c.py", 3, false), ("d", "d.py", 4, true)],
            native: i.startup + [i.evalCallsAlloc, i.cAlloc]
        )])
        let stack = StackResolver(tables: tables, mode: .hybrid).stack(keys[0])
        #expect(names(stack) == ["a@1", "b@2", "c@3", "d@4", "c_alloc@8", "fill@4"])
    }

    @Test func evalFramesBeyondTheGroupsAreLeftOut() throws {
        let i = interpreter
        let (tables, keys) = try capture([(
            python: [("only", "only.py", 5, true), ("next", "only.py", 6, false)],
            native: i.startup + [i.evalCallsEval, i.evalCallsEval, i.evalCallsAlloc, i.cAlloc]
        )])
        let stack = StackResolver(tables: tables, mode: .hybrid).stack(keys[0])
        #expect(names(stack) == ["only@5", "next@6", "c_alloc@8", "fill@4"])
        #expect(!stack.contains { $0.function == "_PyEval_EvalFrameDefault" })
    }

    /// Native frames between eval frames stay where they are.
    @Test func nativeFramesBetweenEvalFramesStay() throws {
        let i = interpreter
        let (tables, keys) = try capture([(
            python: [("outer", "o.py", 1, true), ("mid", "o.py", 2, true), ("leaf", "o.py", 3, true)],
            native: i.startup + [i.evalCallsEval, i.cfunctionCall, i.evalCallsEval, i.vector, i.evalCallsAlloc, i.cAlloc]
        )])
        let stack = StackResolver(tables: tables, mode: .hybrid).stack(keys[0])
        #expect(names(stack) == ["outer@1", "cfunction_call@17", "mid@2",
                                 "_PyEval_Vector@21", "leaf@3", "c_alloc@8", "fill@4"])
    }

    /// A first Python frame without its entry bit still opens the first group.
    @Test func firstFrameOpensAGroupWithoutItsEntryBit() throws {
        let i = interpreter
        let (tables, keys) = try capture([(
            python: [("x", "x.py", 1, false), ("y", "x.py", 2, true)],
            native: i.startup + [i.evalCallsEval, i.evalCallsAlloc, i.cAlloc]
        )])
        let stack = StackResolver(tables: tables, mode: .hybrid).stack(keys[0])
        #expect(names(stack) == ["x@1", "y@2", "c_alloc@8", "fill@4"])
    }

    @Test func stacksWithoutEvalFramesOrWithOneSideOnly() throws {
        let i = interpreter
        let (tables, keys) = try capture([
            // No eval frame (e.g. libpython not found): Python first, start-up dropped.
            (python: [("p", "p.py", 7, true)], native: [i.start, i.main, i.cfunctionCall, i.cAlloc]),
            // Neither: the native stack whole (interpreter start-up before any Python).
            (python: [], native: [i.start, i.main, i.bytesMain]),
            // Python only.
            (python: [("q", "q.py", 8, true)], native: []),
            // Eval frames but no Python frame: left out.
            (python: [], native: i.startup + [i.evalCallsAlloc, i.cAlloc]),
        ])
        let resolver = StackResolver(tables: tables, mode: .hybrid)
        #expect(names(resolver.stack(keys[0])) == ["p@7", "cfunction_call@17", "c_alloc@8", "fill@4"])
        #expect(names(resolver.stack(keys[1])) == ["__libc_start_call_main@33", "main@29", "Py_BytesMain@25"])
        #expect(names(resolver.stack(keys[2])) == ["q@8"])
        #expect(names(resolver.stack(keys[3])) == ["c_alloc@8", "fill@4"])
        #expect(resolver.stack(.none).isEmpty)
    }

    @Test func pythonAndNativeModes() throws {
        let i = interpreter
        let native = i.startup + [i.evalCallsEval, i.evalCallsAlloc, i.cAlloc]
        let (tables, keys) = try capture([
            (python: [("run", "main.py", 3, true), ("work", "lib.py", 20, true)], native: native),
            (python: [("run", "main.py", 3, true), ("work", "lib.py", 20, true)], native: i.startup + [i.evalCallsAlloc]),
        ])
        let python = StackResolver(tables: tables, mode: .python)
        #expect(python.symbols == nil)
        #expect(names(python.stack(keys[0])) == ["run@3", "work@20"])
        #expect(python.stack(keys[0]).allSatisfy { $0.kind == .python && $0.object == nil })
        // The two keys share their Python stack: one cached stack.
        #expect(names(python.stack(keys[1])) == ["run@3", "work@20"])
        #expect(python.cachedStackCount == 1)
        #expect(python.cacheHits == 2)  // keys[0] twice, then keys[1]

        let nativeOnly = StackResolver(tables: tables, mode: .native)
        #expect(names(nativeOnly.stack(keys[0])) == Interpreter.startupNames
            + ["_PyEval_EvalFrameDefault@12", "_PyEval_EvalFrameDefault@13", "c_alloc@8", "fill@4"])
        #expect(nativeOnly.stack(keys[0]).allSatisfy { $0.kind == .native && $0.object == "libinterp.so" })
        #expect(nativeOnly.stack(StackKey(frame: keys[0].frame)).isEmpty)
    }

    @Test func stacksAreCachedPerPairAndFramesInterned() throws {
        let i = interpreter
        let (tables, keys) = try capture([
            (python: [("run", "main.py", 3, true), ("a", "lib.py", 20, true)], native: i.startup + [i.evalCallsEval, i.evalCallsAlloc, i.cAlloc]),
            (python: [("run", "main.py", 3, true), ("b", "lib.py", 40, true)], native: i.startup + [i.evalCallsEval, i.evalCallsAlloc, i.cAlloc]),
        ])
        let resolver = StackResolver(tables: tables, mode: .hybrid)
        let first = resolver.stackIndices(keys[0])
        let second = resolver.stackIndices(keys[1])
        #expect(resolver.cachedStackCount == 2)
        #expect(resolver.cacheHits == 0)
        #expect(resolver.stackIndices(keys[0]) == first)
        #expect(resolver.stack(keys[1]) == second.map(resolver.frame))
        #expect(resolver.cacheHits == 2)
        // Same frames, same indices: only the Python leaf differs.
        #expect(first.count == second.count)
        #expect(zip(first, second).filter { $0 != $1 }.count == 1)
        #expect(resolver.innermost(keys[1])?.function == "fill")
        #expect(Set(first + second).count == first.count + 1)
        // Interned too: the dropped start-up and plumbing frames, and the replaced eval frames.
        #expect(resolver.frames.count == first.count + 1 + 3 + 2 + 2)
    }

    /// Each native frame resolves against the MAPPINGS written before it: the
    /// same addresses mean different objects before and after a dlopen.
    @Test func framesResolveAgainstTheirOwnMappings() throws {
        let i = interpreter
        let shift: UInt64 = 0x1000_0000_0000
        var moved = i.object
        moved.loadBias &+= shift
        moved.segments = moved.segments.map { .init(start: $0.start &+ shift, size: $0.size) }

        var writer = CaptureWriter(flags: nativeFlags)
        writer.mappings([i.object])
        writer.thread(1)
        let before = writer.nativeStack([i.cAlloc])
        let beforeShifted = writer.nativeStack([i.cAlloc &+ shift])
        writer.mappings([moved])
        let after = writer.nativeStack([i.cAlloc &+ shift])
        let afterUnshifted = writer.nativeStack([i.cAlloc])
        writer.end(timeMicros: 1)
        let (tables, _) = try readTables(writer.bytes)
        #expect(tables.mappingSets.count == 2)

        let symbolizer = CaptureSymbolizer(tables: tables)
        #expect(symbolizer.objectCount == 2)
        let resolver = StackResolver(tables: tables, symbols: symbolizer, mode: .native)
        #expect(names(resolver.stack(StackKey(frame: 0, nativeFrame: before))) == ["c_alloc@8", "fill@4"])
        #expect(names(resolver.stack(StackKey(frame: 0, nativeFrame: after))) == ["c_alloc@8", "fill@4"])
        #expect(resolver.stack(StackKey(frame: 0, nativeFrame: beforeShifted)).map(\.function)
            == ["0x" + String(i.cAlloc &+ shift, radix: 16)])
        #expect(resolver.stack(StackKey(frame: 0, nativeFrame: afterUnshifted)).map(\.function)
            == ["0x" + String(i.cAlloc, radix: 16)])
        #expect(resolver.warnings.isEmpty)
    }

    /// One Symbolizer for the whole capture works too (a single mapping set).
    @Test func aPlainSymbolizerServesOneMappingSet() throws {
        let i = interpreter
        let (tables, keys) = try capture([(python: [("run", "main.py", 3, true)], native: i.startup + [i.evalCallsAlloc, i.cAlloc])])
        let resolver = StackResolver(tables: tables, symbols: Symbolizer(objects: [try i.fixture.loadedObject]), mode: .hybrid)
        #expect(names(resolver.stack(keys[0])) == ["run@3", "c_alloc@8", "fill@4"])
    }

    @Test func symbolizerWarningsSurfaceOnce() throws {
        let i = interpreter
        let gone = HeapscopeFormat.LoadedObject(path: "/nonexistent/libgone.so", loadBias: 0x7000_0000_0000, buildID: [1, 2, 3],
                                                segments: [.init(start: 0x7000_0000_0000, size: 0x10000)])
        var rebuilt = i.object
        rebuilt.buildID[0] ^= 0xFF
        rebuilt.path = i.fixture.libraryPath
        // The fixture under another build id, in a second mapping set.
        let (tables, keys) = try capture([
            (python: [("run", "main.py", 3, true)], native: i.startup + [i.evalCallsAlloc, 0x7000_0000_1235, 0x7000_0000_2001]),
            (python: [("run", "main.py", 3, true)], native: i.startup + [i.evalCallsAlloc, 0x7000_0000_3001]),
        ], objects: [i.object, gone])
        let resolver = StackResolver(tables: tables, mode: .hybrid)
        #expect(resolver.warnings.isEmpty)  // nothing looked up yet
        #expect(names(resolver.stack(keys[0])) == ["run@3",
                                                   "libgone.so+0x1235", "libgone.so+0x2001"])
        #expect(resolver.stack(keys[0]).last?.object == "libgone.so")
        _ = resolver.stack(keys[1])
        #expect(resolver.warnings == ["/nonexistent/libgone.so: not found; its frames are shown as object+offset"])

        var writer = CaptureWriter(flags: nativeFlags)
        writer.mappings([rebuilt])
        writer.thread(1)
        let native = writer.nativeStack([i.cAlloc])
        writer.end(timeMicros: 1)
        let rebuiltResolver = StackResolver(tables: try readTables(writer.bytes).tables, mode: .native)
        #expect(rebuiltResolver.stack(StackKey(frame: 0, nativeFrame: native)).map(\.file) == [nil])
        #expect(rebuiltResolver.warnings == [
            "\(i.fixture.libraryPath): build id differs from the capture's; its frames are shown as object+offset",
        ])
    }

    @Test func displayFrameLocationsAndDescriptions() {
        let python = DisplayFrame(function: "run", file: "main.py", line: 3, kind: .python)
        let native = DisplayFrame(function: "c_alloc", file: "/src/a.c", line: 9, kind: .native, object: "liba.so")
        let bare = DisplayFrame(function: "liba.so+0x10", kind: .native, object: "liba.so")
        #expect(python.location == Location(function: "run", file: "main.py", line: 3))
        #expect(bare.location == Location(function: "liba.so+0x10", file: "liba.so", line: 0))
        #expect(python.description == "run at main.py:3")
        #expect(native.description == "c_alloc at /src/a.c:9 (liba.so)")
        #expect(bare.description == "liba.so+0x10 in liba.so")
        #expect(DisplayFrame(function: "_PyEval_EvalFrameDefault.cold", kind: .native).isInterpreterEvalFrame)
        #expect(!DisplayFrame(function: "_PyEval_EvalFrameDefault", kind: .python).isInterpreterEvalFrame)
        #expect(!DisplayFrame(function: "_PyEval_Vector", kind: .native).isInterpreterEvalFrame)
        #expect(!DisplayFrame(function: "PyEval_EvalCode", kind: .native).isInterpreterStartup)
        for name in ["main", "_start", "Py_BytesMain", "Py_RunMain", "pymain_run_python", "__libc_start_main_impl"] {
            #expect(DisplayFrame(function: name, kind: .native).isInterpreterStartup)
        }
        #expect(StackMode(rawValue: "hybrid") == .hybrid && StackMode.allCases.count == 3)
    }
}

@Suite struct StackKeyTests {
    @Test func nativeCapturesInternPairs() {
        var table = StackKeyTable(nativeStacks: true)
        #expect(table.id(frame: 0, nativeFrame: 0) == 0)
        let a = table.id(frame: 5, nativeFrame: 9)
        let b = table.id(frame: 5, nativeFrame: 10)
        #expect(a == 1 && b == 2)
        #expect(table.id(frame: 5, nativeFrame: 9) == a)
        #expect(table.id(of: StackKey(frame: 5, nativeFrame: 10)) == b)
        #expect(table.key(a) == StackKey(frame: 5, nativeFrame: 9))
        #expect(table.key(0) == .none)
        #expect(table.count == 3)
    }

    @Test func pythonCapturesUseFrameIds() {
        var table = StackKeyTable(nativeStacks: false)
        #expect(table.id(frame: 42, nativeFrame: 0) == 42)
        #expect(table.key(42) == StackKey(frame: 42))
        #expect(table.count == 1)
    }

    @Test func totalsByKeyAndByFrame() {
        var totals = StackKeyTotals()
        totals.add(StackKey(frame: 1, nativeFrame: 3), bytes: 100)
        totals.add(StackKey(frame: 1, nativeFrame: 4), bytes: 50, count: 2)
        totals.add(StackKey(frame: 2, nativeFrame: 3), bytes: 7)
        totals.add(StackKey(frame: 1, nativeFrame: 3), bytes: 1)
        #expect(totals[StackKey(frame: 1, nativeFrame: 3)] == Totals(count: 2, bytes: 101))
        #expect(totals.total == Totals(count: 5, bytes: 158))
        #expect(totals.keys == [StackKey(frame: 1, nativeFrame: 3), StackKey(frame: 1, nativeFrame: 4), StackKey(frame: 2, nativeFrame: 3)])
        let byFrame = totals.byFrame(frameCount: 3)
        #expect(byFrame[1] == Totals(count: 4, bytes: 151))
        #expect(byFrame[2] == Totals(count: 1, bytes: 7))
        #expect(byFrame.frames == [1, 2])
    }
}
