import Foundation
import Glibc
import HeapscopeSymbols
import Testing
import HeapscopeTestSupport

/// `fill` is always inlined into `fixture_alloc`; its malloc call is on
/// line 5, and `fixture_alloc` calls it on line 11.
private let cSource = """
    #include <stdlib.h>
    #include <string.h>

    static inline __attribute__((always_inline)) void *fill(size_t n) {
        void *block = malloc(n);
        if (block) memset(block, 0x5a, n);
        return block;
    }

    __attribute__((noinline)) void *fixture_alloc(size_t n) {
        void *block = fill(n * 2 + 1);
        return block;
    }

    """
private let mallocLine = 5
private let inlinedCallLine = 11

/// `fill` (line 4) is inlined into `rust_fixture_alloc` (call on line 10).
private let rustSource = """
    pub mod pool {
        #[inline(always)]
        pub fn fill<T: Copy>(value: T, n: usize) -> Vec<T> {
            vec![value; n]
        }
    }

    #[no_mangle]
    pub extern "C" fn rust_fixture_alloc(n: usize) -> usize {
        let block = pool::fill(7u32, n + 1);
        block.len()
    }

    """

/// `make` calls malloc on line 6; `build` starts on line 9.
private let cxxSource = """
    #include <cstdlib>

    namespace demo {
    template <typename T> struct Pool {
        __attribute__((noinline)) static T *make(std::size_t n) {
            return static_cast<T *>(std::malloc(n * sizeof(T)));
        }
    };
    __attribute__((noinline)) double *build(int n) {
        return Pool<double>::make(n) + 1;
    }
    }

    """

/// The frames at every instruction byte of the function at `entry`, until
/// the outermost frame is another function. `frames(at:)` takes a return
/// address, so each byte `a` is looked up as `a + 1`.
private func framesAcrossFunction(at entry: UInt64, named name: String, _ symbolizer: Symbolizer) -> [[NativeFrame]] {
    var all: [[NativeFrame]] = []
    for address in entry..<entry + 4096 {
        let frames = symbolizer.frames(at: address + 1)
        guard frames.last?.function == name else { break }
        all.append(frames)
    }
    return all
}

@Suite struct SymbolizerTests {
    /// GCC writes .debug_aranges; clang does not, which sends the lookup
    /// through the scan of every CU's ranges.
    @Test(arguments: ["cc", clang].compactMap { $0 })
    func inlinedMallocCallResolvesToHelperAndCaller(compiler: String) throws {
        let fixture = try Fixture(source: cSource, fileName: "inlined.c", compiler: compiler)
        #expect(try fixture.hasSection(".debug_aranges") == (compiler == "cc"))
        let object = try fixture.loadedObject
        #expect(!object.buildID.isEmpty)
        let symbolizer = Symbolizer(objects: loadedObjects())
        let entry = try fixture.address(of: "fixture_alloc")

        let first = symbolizer.frames(at: entry + 1)
        #expect(first.count == 1)
        #expect(first.first?.function == "fixture_alloc")
        #expect(first.first?.file == fixture.sourcePath)

        let all = framesAcrossFunction(at: entry, named: "fixture_alloc", symbolizer)
        let inlined = try #require(all.first { $0.count == 2 && $0[0].line == mallocLine })
        let offset = inlined[0].offset
        #expect(inlined == [
            NativeFrame(function: "fill", file: fixture.sourcePath, line: mallocLine,
                        object: fixture.libraryPath, offset: offset),
            NativeFrame(function: "fixture_alloc", file: fixture.sourcePath, line: inlinedCallLine,
                        object: fixture.libraryPath, offset: offset),
        ])
        #expect(offset > entry - object.loadBias)
        #expect(symbolizer.warnings.isEmpty)
    }

    @Test func withoutDebugInfoTheSymbolTableNamesTheFunction() throws {
        let fixture = try Fixture(source: cSource, fileName: "stripped.c", flags: ["-O2"])
        let symbolizer = Symbolizer(objects: [try fixture.loadedObject])
        let entry = try fixture.address(of: "fixture_alloc")
        let all = framesAcrossFunction(at: entry, named: "fixture_alloc", symbolizer)
        #expect(all.count > 8)
        #expect(all.allSatisfy { $0.count == 1 && $0[0].file == nil && $0[0].line == nil })
        #expect(all.first?.first?.offset == entry + 1 - (try fixture.loadedObject).loadBias)
    }

    @Test func missingObjectIsWarnedOnceAndShownAsObjectPlusOffset() {
        let path = "/nonexistent/libgone.so"
        let object = LoadedObject(path: path, loadBias: 0x7000_0000_0000, buildID: [1, 2, 3],
                                  segments: [(start: 0x7000_0000_0000, size: 0x10000)])
        let symbolizer = Symbolizer(objects: [object])
        #expect(symbolizer.warnings.isEmpty)  // nothing looked up there yet
        #expect(symbolizer.frames(at: 0x7000_0000_1234) == [
            NativeFrame(function: "libgone.so+0x1234", object: path, offset: 0x1234),
        ])
        _ = symbolizer.frames(at: 0x7000_0000_5678)
        #expect(symbolizer.warnings == ["\(path): not found; its frames are shown as object+offset"])
    }

    @Test func unreadableObjectIsWarned() throws {
        let path = "/tmp/heapscope-symbols-not-elf-\(getpid()).so"
        try "not an ELF file".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let symbolizer = Symbolizer(objects: [
            LoadedObject(path: path, loadBias: 0x10000, buildID: [], segments: [(start: 0x10000, size: 0x1000)]),
        ])
        #expect(symbolizer.frames(at: 0x10010).map(\.function) == ["heapscope-symbols-not-elf-\(getpid()).so+0x10"])
        #expect(symbolizer.warnings.count == 1)
        #expect(symbolizer.warnings.first?.hasPrefix("\(path): cannot be read (") == true)
    }

    @Test func objectWithAnotherBuildIDIsNeverSymbolicated() throws {
        let fixture = try Fixture(source: cSource, fileName: "rebuilt.c")
        var object = try fixture.loadedObject
        object.buildID[0] ^= 0xFF
        let symbolizer = Symbolizer(objects: [object])
        let entry = try fixture.address(of: "fixture_alloc")
        for address in entry + 1...entry + 32 {
            let offset = address - object.loadBias
            #expect(symbolizer.frames(at: address) == [
                NativeFrame(function: "librebuilt.so+0x\(String(offset, radix: 16))",
                            object: fixture.libraryPath, offset: offset),
            ])
        }
        #expect(symbolizer.warnings == [
            "\(fixture.libraryPath): build id differs from the capture's; its frames are shown as object+offset",
        ])
    }

    @Test func addressOutsideEveryObject() {
        let symbolizer = Symbolizer(objects: [])
        #expect(symbolizer.frames(at: 0x1234_5678) == [NativeFrame(function: "0x12345678", object: "", offset: 0x1234_5678)])
    }

    @Test(arguments: [true, false])
    func cxxFunctionsAreDemangled(debugInfo: Bool) throws {
        let fixture = try Fixture(source: cxxSource, fileName: "pool.cpp", compiler: "c++",
                                  flags: debugInfo ? ["-g", "-O2"] : ["-O2"])
        let symbolizer = Symbolizer(objects: [try fixture.loadedObject])
        let build = symbolizer.frames(at: try fixture.address(of: "_ZN4demo5buildEi") + 1)
        let make = symbolizer.frames(at: try fixture.address(of: "_ZN4demo4PoolIdE4makeEm") + 1)
        #expect(build.map(\.function) == ["demo::build(int)"])
        #expect(make.map(\.function) == ["demo::Pool<double>::make(unsigned long)"])
        #expect(build.first?.file == (debugInfo ? fixture.sourcePath : nil))
        #expect(build.first?.line == (debugInfo ? 9 : nil))
        // No prologue: make's first instruction already belongs to its body.
        #expect(make.first?.line == (debugInfo ? 6 : nil))
    }

    /// rustc writes v0 names and no .debug_aranges for the crate's CU; the
    /// inlined generic must come back demangled, with its caller.
    @Test(.enabled(if: rustc != nil))
    func rustInlinedGenericIsDemangled() throws {
        let fixture = try Fixture(source: rustSource, fileName: "rustfixture.rs") { source, library in
            [rustc!, "--crate-type", "cdylib", "-g", "-C", "opt-level=2",
             "-C", "symbol-mangling-version=v0", "-C", "link-arg=-Wl,--build-id", "-o", library, source]
        }
        let symbolizer = Symbolizer(objects: [try fixture.loadedObject])
        let entry = try fixture.address(of: "rust_fixture_alloc")
        let all = framesAcrossFunction(at: entry, named: "rust_fixture_alloc", symbolizer)
        let inlined = try #require(all.first { $0.count >= 2 && $0[$0.count - 2].function.hasPrefix("rustfixture::") })
        let caller = Array(inlined.suffix(2))
        #expect(caller.map(\.function) == ["rustfixture::pool::fill::<u32>", "rust_fixture_alloc"])
        #expect(caller.map(\.file) == [fixture.sourcePath, fixture.sourcePath])
        #expect(caller.map(\.line) == [4, 10])
        #expect(symbolizer.warnings.isEmpty)
    }

    /// libc's debug info may or may not be installed; either way malloc has a
    /// name: __libc_malloc in DWARF (not its asm label __GI___libc_malloc),
    /// malloc among the symbol table's aliases.
    @Test func libcMallocResolves() throws {
        let objects = loadedObjects()
        let libc = try #require(objects.first { $0.path.hasSuffix("/libc.so.6") })
        let handle = try #require(dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD))
        let malloc = UInt64(UInt(bitPattern: dlsym(handle, "malloc")))
        try #require(malloc != 0)
        let symbolizer = Symbolizer(objects: objects)
        let frames = symbolizer.frames(at: malloc + 1)
        #expect(frames.count == 1)
        #expect(["malloc", "__libc_malloc"].contains(frames.first?.function))
        #expect(frames.first?.object == libc.path)
        #expect(symbolizer.warnings.isEmpty)
    }

    /// The Swift runtime ships without DWARF: its mangled symbols are named.
    @Test func swiftRuntimeSymbolsAreDemangled() throws {
        let objects = loadedObjects()
        let runtime = try #require(objects.first { $0.path.hasSuffix("/libswiftCore.so") })
        let handle = try #require(dlopen(runtime.path, RTLD_NOW | RTLD_NOLOAD))
        let count = UInt64(UInt(bitPattern: dlsym(handle, "$sSS5countSivg")))
        try #require(count != 0)
        let frames = Symbolizer(objects: objects).frames(at: count + 1)
        #expect(frames.map(\.function) == ["Swift.String.count.getter : Swift.Int"])
        #expect(frames.first?.object == runtime.path)
    }
}
