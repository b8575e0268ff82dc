// The tracker of this installation that attach loads into its target: the
// _tracker.cpython-3XY-*.so built for the target's CPython (docs/ATTACH.md).

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct TrackerLibrary {
    /// heapscope/_tracker<EXT_SUFFIX>, absolute.
    var path: String
    /// heapscope's package directory.
    var packageDir: String
    /// The directory holding it: first on sys.path while the target imports heapscope.
    var packageParent: String { parentDirectory(of: packageDir) }
    /// The CPython minor version it was built for, from its name: "3.11".
    var pythonVersion: String

    /// The tracker for CPython `version`; refuses a version none was built for.
    static func locate(for target: AttachTarget, version: String) throws -> TrackerLibrary {
        let built = try installed()
        if let match = built.first(where: { $0.pythonVersion == version }) { return match }
        let versions = built.map(\.pythonVersion).sorted().joined(separator: ", ")
        throw commandFail(
            "\(target.described) runs CPython \(version), but this heapscope's tracker was built for CPython \(versions)")
    }

    /// Every _tracker.cpython-3XY-*.so in heapscope's package directory.
    static func installed() throws -> [TrackerLibrary] {
        let packageDir = try resolvePackageDir()
        guard let dir = opendir(packageDir) else {
            throw commandFail("cannot read heapscope's package directory \(packageDir)")
        }
        defer { closedir(dir) }
        var found: [TrackerLibrary] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            // _tracker.cpython-311-x86_64-linux-gnu.so
            guard name.hasPrefix("_tracker.cpython-"), name.hasSuffix(".so") else { continue }
            let tag = name.dropFirst("_tracker.cpython-".count).prefix(while: { $0.isNumber })
            guard tag.count >= 2 else { continue }
            found.append(TrackerLibrary(
                path: packageDir + "/" + name, packageDir: packageDir,
                pythonVersion: "\(tag.first!).\(tag.dropFirst())"))
        }
        if found.isEmpty {
            throw commandFail("heapscope's tracker is not built (no _tracker.cpython-*.so in \(packageDir)): run `make build`")
        }
        return found
    }
}
