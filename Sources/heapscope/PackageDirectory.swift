import Glibc

/// Why the `heapscope` Python package was not found.
struct PackageDirectoryError: Error {
    var message: String
}

/// The directory of the `heapscope` Python package: it holds _bootstrap/, the
/// tracker and VERSION. HEAPSCOPE_PACKAGE_DIR if set (the console script sets
/// it), else found from this executable's own path.
func packageDirectory() throws(PackageDirectoryError) -> String {
    func hasBootstrap(_ dir: String) -> Bool {
        access(dir + "/_bootstrap/sitecustomize.py", R_OK) == 0
    }
    if let configured = getenvString("HEAPSCOPE_PACKAGE_DIR"), !configured.isEmpty {
        let dir = absolutePath(configured)
        if hasBootstrap(dir) { return dir }
        throw PackageDirectoryError(
            message: "HEAPSCOPE_PACKAGE_DIR has no heapscope bootstrap (_bootstrap/sitecustomize.py): \(configured)")
    }
    if let exe = executablePath() {
        // Installed layout: <package>/bin/heapscope.
        let pkg = parentDirectory(of: parentDirectory(of: exe))
        if hasBootstrap(pkg) { return pkg }
        // Development layout: <repo>/.build*/<triple>/release/heapscope.
        var dir = parentDirectory(of: exe)
        while dir != "/" && !dir.isEmpty {
            let candidate = dir + "/PythonHarness/heapscope"
            if hasBootstrap(candidate) { return candidate }
            dir = parentDirectory(of: dir)
        }
    }
    throw PackageDirectoryError(
        message: "cannot find the heapscope Python package (install it with `pip install ./PythonHarness`, "
            + "or set HEAPSCOPE_PACKAGE_DIR to its directory)")
}

/// heapscope's version: the package's VERSION file, the one place it is kept
/// (pyproject and `heapscope.__version__` read the same file).
func heapscopeVersion() -> String {
    guard let dir = try? packageDirectory(), let file = fopen(dir + "/VERSION", "r") else {
        return "unknown (the heapscope Python package, which holds VERSION, was not found)"
    }
    defer { fclose(file) }
    var buf = [CChar](repeating: 0, count: 64)
    guard fgets(&buf, Int32(buf.count), file) != nil else { return "unknown (empty VERSION file)" }
    var version = cStringBuffer(buf)
    while let last = version.last, last == "\n" || last == "\r" || last == " " { version.removeLast() }
    return version
}

private func executablePath() -> String? {
    var buf = [CChar](repeating: 0, count: 4097)
    let n = readlink("/proc/self/exe", &buf, 4096)
    guard n > 0 else { return nil }
    return cStringBuffer(buf)
}
