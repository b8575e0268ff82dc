import Foundation
import Glibc
import HeapscopeSymbols
import Testing
import HeapscopeTestSupport

/// A real, large object with DWARF: the libpython of the interpreter heapscope
/// is built for (HEAPSCOPE_PYTHON, else python3), loaded into this process.
private let libpythonPath: String = {
    let python = ProcessInfo.processInfo.environment["HEAPSCOPE_PYTHON"] ?? "python3"
    let query = "import os, sysconfig; print(os.path.realpath(os.path.join(sysconfig.get_config_var('LIBDIR'), sysconfig.get_config_var('INSTSONAME'))))"
    return (try? run(python, ["-c", query]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? "(\(python) did not answer)"
}()

@Suite struct LibpythonTests {
    let object: LoadedObject
    let objects: [LoadedObject]
    /// 50,000 return addresses spread evenly over libpython's text segment.
    let addresses: [UInt64]

    init() throws {
        let handle = try #require(dlopen(libpythonPath, RTLD_NOW | RTLD_LOCAL), "cannot load libpython at \(libpythonPath)")
        let function = UInt64(UInt(bitPattern: dlsym(handle, "PyObject_Malloc")))
        objects = loadedObjects()
        object = try #require(objects.first { $0.path == libpythonPath })
        let text = try #require(object.segments.first { function >= $0.start && function - $0.start < $0.size })
        let step = text.size / 50_000
        addresses = (0..<50_000).map { text.start + UInt64($0) * step + 1 }
    }

    /// Prints the time; speed is measured, not asserted (use a release build).
    @Test func symbolicatesFiftyThousandAddresses() {
        let clock = ContinuousClock()
        let start = clock.now
        let symbolizer = Symbolizer(objects: objects)
        let frames = addresses.map(symbolizer.frames(at:))
        let elapsed = clock.now - start
        print("symbolicated \(addresses.count) libpython addresses in \(elapsed)")

        #expect(symbolizer.warnings.isEmpty)
        #expect(frames.allSatisfy { $0.allSatisfy { $0.object == libpythonPath } })
        let withLines = frames.filter { $0.first?.line != nil }.count
        #expect(withLines > addresses.count * 9 / 10)
        #expect(frames.contains { $0.count > 1 })  // inlined frames
    }

    /// Every frame's function and line, inlined ones included, agree with
    /// binutils' addr2line -i on a sample. Not files: binutils 2.40 names
    /// the CU's main file for lines of an #included one (DWARF 5 file 0/1).
    /// Addresses in the padding between functions and in the PLT are
    /// skipped: no return address is there; addr2line names the function
    /// before, we answer object+offset.
    @Test(.enabled(if: (try? run("sh", ["-c", "command -v addr2line"])) != nil))
    func agreesWithAddr2line() throws {
        let sample = stride(from: 0, to: addresses.count, by: 97).map { addresses[$0] }
        let symbolizer = Symbolizer(objects: objects)
        // addr2line looks up exactly what it is given: the call, address - 1.
        let offsets = sample.map { "0x" + String($0 - 1 - object.loadBias, radix: 16) }
        let output = try run("addr2line", ["-a", "-f", "-i", "-e", libpythonPath] + offsets)
        let expected = parseAddr2line(output)
        try #require(expected.count == sample.count)
        var disagreements: [String] = []
        var compared = 0
        for (address, reference) in zip(sample, expected) {
            let frames = symbolizer.frames(at: address)
            if frames.first?.function.hasPrefix(object.name + "+0x") == true { continue }
            compared += 1
            let ours = frames.map { "\($0.function):\($0.line ?? 0)" }
            if ours != reference { disagreements.append("\(ours) vs addr2line \(reference)") }
        }
        #expect(compared > sample.count * 9 / 10)
        #expect(disagreements.isEmpty, "\(disagreements.count) of \(compared): \(disagreements.prefix(5))")
    }
}

/// addr2line -a -f -i output, as "function:line" per frame, innermost first:
/// per address a "0x..." line, then function and file:line lines per frame.
private func parseAddr2line(_ output: String) -> [[String]] {
    var groups: [[String]] = []
    var lines = output.split(separator: "\n").makeIterator()
    var pendingFunction: Substring?
    while let line = lines.next() {
        if line.hasPrefix("0x") {
            groups.append([])
        } else if let function = pendingFunction {
            let location = line.split(separator: " (discriminator").first ?? line
            let number = Int(location.split(separator: ":").last ?? "") ?? 0
            groups[groups.count - 1].append("\(function):\(number)")
            pendingFunction = nil
        } else {
            pendingFunction = line
        }
    }
    return groups
}
