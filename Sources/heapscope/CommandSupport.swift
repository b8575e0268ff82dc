// What the commands that start or watch a Python process share (`run`,
// `attach`, `detach`): errors, locating heapscope's package, paths, time.

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - Errors

/// Prints `heapscope: error: <message>` on stderr and fails with exit status 2.
func commandFail(_ message: String) -> ExitCode {
    writeStderr("heapscope: error: \(message)\n")
    return ExitCode(2)
}

/// While the live view owns the terminal, messages wait here (they would be
/// drawn over, then lost with the alternate screen) until it closes.
nonisolated(unsafe) private var heldStderr: [UInt8]?
nonisolated(unsafe) private var heldStderrMutex = pthread_mutex_t()   // all zeros: PTHREAD_MUTEX_INITIALIZER

/// true: hold what writeStderr writes; false: write what was held, and hold no more.
func holdStderr(_ hold: Bool) {
    pthread_mutex_lock(&heldStderrMutex)
    let held = heldStderr
    heldStderr = hold ? (held ?? []) : nil
    pthread_mutex_unlock(&heldStderrMutex)
    if !hold, let held, !held.isEmpty { writeStderr(String(decoding: held, as: UTF8.self)) }
}

func writeStderr(_ text: String) {
    pthread_mutex_lock(&heldStderrMutex)
    if heldStderr != nil {
        heldStderr! += Array(text.utf8)
        pthread_mutex_unlock(&heldStderrMutex)
        return
    }
    pthread_mutex_unlock(&heldStderrMutex)
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { buf in
            write(2, buf.baseAddress! + offset, buf.count - offset)
        }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += n
    }
    bytes.removeAll()
}

// MARK: - The capture file

/// Where a new capture goes, checked before anything starts: nothing the user
/// recorded is replaced without -f.
struct CaptureOutput {
    /// The path to show the user.
    var display: String
    /// The path handed to the tracker.
    var absolute: String
    /// Identity of a file already there (with -f): to tell a new capture from the old file.
    var previous: FileIdentity?

    static func check(_ output: String?, default defaultName: String, force: Bool) throws -> CaptureOutput {
        var previous: FileIdentity? = nil
        let display = output ?? defaultName
        if let out = output {
            if out.isEmpty { throw commandFail("the output path is empty") }
            var st = stat()
            if lstat(out, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    throw commandFail("output path is a directory: \(out)")
                }
                if !force {
                    throw commandFail("output file already exists: \(out) (use -f to overwrite)")
                }
                previous = FileIdentity(path: out)
            }
        }
        let absolute = absolutePath(display)
        let dir = parentDirectory(of: absolute)
        var dst = stat()
        if stat(dir, &dst) != 0 || (dst.st_mode & S_IFMT) != S_IFDIR {
            throw commandFail("output directory does not exist: \(parentDirectory(of: display))")
        }
        if access(dir, W_OK | X_OK) != 0 {
            throw commandFail("output directory is not writable: \(parentDirectory(of: display))")
        }
        return CaptureOutput(display: display, absolute: absolute, previous: previous)
    }
}

/// Whether a capture was written at `path`: a file that is not the one -f was to replace.
func captureWritten(at path: String, replacing previous: FileIdentity?) -> Bool {
    guard let now = FileIdentity(path: path) else { return false }
    return now != previous
}

// MARK: - Locating programs and the package

func searchPath(_ name: String) -> String? {
    let path = getenvString("PATH") ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
        let d = dir.isEmpty ? "." : String(dir)
        let candidate = d + "/" + name
        var st = stat()
        if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
            return candidate
        }
    }
    return nil
}

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

/// The package directory, or the command fails with the one line saying why.
func resolvePackageDir() throws -> String {
    do { return try packageDirectory() } catch { throw commandFail(error.message) }
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

func executablePath() -> String? {
    var buf = [CChar](repeating: 0, count: 4097)
    let n = readlink("/proc/self/exe", &buf, 4096)
    guard n > 0 else { return nil }
    return cStringBuffer(buf)
}

/// `status` of a file, to tell whether a run replaced it.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtimeSeconds: Int
    var mtimeNanos: Int

    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeSeconds = Int(st.st_mtim.tv_sec)
        mtimeNanos = Int(st.st_mtim.tv_nsec)
    }
}

func getenvString(_ name: String) -> String? {
    guard let v = getenv(name) else { return nil }
    return String(cString: v)
}

func currentDirectory() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buf, buf.count) != nil else { return "." }
    return cStringBuffer(buf)
}

func cStringBuffer(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : currentDirectory() + "/" + path
}

func parentDirectory(of path: String) -> String {
    var p = path
    while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
    guard let slash = p.lastIndex(of: "/") else { return "." }
    if slash == p.startIndex { return "/" }
    return String(p[..<slash])
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return body(pointers)
}


/// A command line as a POSIX shell would need it typed.
func shellQuoted(_ words: [String]) -> String {
    words.map { word -> String in
        let safe = !word.isEmpty && word.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9")
                || "-_./=:,+@%".unicodeScalars.contains(c)
        }
        if safe { return word }
        return "'" + word.replacing("'", with: "'\\''") + "'"
    }.joined(separator: " ")
}

/// This process's environment as (name, value) pairs, in its order.
func currentEnvironment() -> [(String, String)] {
    var out: [(String, String)] = []
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") {
            out.append((String(s[..<eq]), String(s[s.index(after: eq)...])))
        }
        p += 1
    }
    return out
}
