// What `attach` and `detach` share: the target process as /proc shows it,
// the tracker to inject, gdb, and the status file the target writes
// (docs/ATTACH.md). The entry points gdb calls are in
// Sources/HeapscopeHooks/attach.c; the Python half that they run is
// PythonHarness/heapscope/_attach.py.

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - The tracker of this installation

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

// MARK: - The target process

struct AttachTarget {
    var pid: Int32
    var commandLine: [String]
    var uid: UInt32
    var gid: UInt32
    /// Every file mapped into the process.
    var mappedFiles: Set<String>

    /// Reads /proc/<pid>: refuses a missing or finished process.
    static func inspect(_ argument: String) throws -> AttachTarget {
        guard let pid = Int32(argument), pid > 0 else {
            throw commandFail("not a process id: \(argument)")
        }
        guard isRunning(pid) else { throw commandFail("no such process: \(pid)") }
        let raw = readWholeFile("/proc/\(pid)/cmdline") ?? []
        let commandLine = raw.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
            String(decoding: $0, as: UTF8.self)
        }
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        for line in textLines("/proc/\(pid)/status") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            // "Uid:	real	effective	saved	fs": the effective one decides ptrace.
            if fields.count > 2, fields[0] == "Uid:" { uid = UInt32(fields[2]) ?? 0 }
            if fields.count > 2, fields[0] == "Gid:" { gid = UInt32(fields[2]) ?? 0 }
        }
        var mapped: Set<String> = []
        for line in textLines("/proc/\(pid)/maps") {
            if let slash = line.firstIndex(of: "/") { mapped.insert(String(line[slash...])) }
        }
        return AttachTarget(pid: pid, commandLine: commandLine, uid: uid, gid: gid, mappedFiles: mapped)
    }

    /// Alive and not a zombie (a finished child its parent has not waited for yet).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = readWholeFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")),
              close + 2 < stat.count
        else { return false }
        let state = stat[close + 2]
        return state != UInt8(ascii: "Z") && state != UInt8(ascii: "X")
    }

    var isRunning: Bool { AttachTarget.isRunning(pid) }

    var executable: String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/\(pid)/exe", &buf, 4096)
        return n > 0 ? cStringBuffer(buf) : (commandLine.first ?? "?")
    }

    /// "3.11" from libpython3.11.so mapped in, or from an executable named python3.11
    /// (a CPython linked statically); nil if it is not CPython.
    var pythonVersion: String? {
        func version(after prefix: String, in name: Substring) -> String? {
            guard name.hasPrefix(prefix) else { return nil }
            let rest = name.dropFirst(prefix.count)
            let major = rest.prefix(while: { $0.isNumber })
            let afterMajor = rest.dropFirst(major.count)
            guard !major.isEmpty, afterMajor.first == "." else { return nil }
            let minor = afterMajor.dropFirst().prefix(while: { $0.isNumber })
            return minor.isEmpty ? nil : "\(major).\(minor)"
        }
        for file in mappedFiles {
            let base = file.split(separator: "/").last ?? ""
            if let v = version(after: "libpython", in: base) { return v }
        }
        let base = executable.split(separator: "/").last ?? ""
        return version(after: "python", in: base)
    }

    /// The description the messages use: `process 123 (python3 app.py)`.
    var described: String {
        let command = commandLine.isEmpty ? executable : shellQuoted(commandLine)
        return "process \(pid) (\(command.count > 60 ? String(command.prefix(57)) + "..." : command))"
    }

    /// A heapscope tracker mapped in, from any installation.
    var loadedTrackers: [String] {
        mappedFiles.filter {
            $0.contains("/heapscope/_tracker.cpython-") && $0.hasSuffix(".so")
        }.sorted()
    }

    /// Refuses what gdb would fail at, saying which setting stands in the way.
    func checkPtracePermission() throws {
        let canTraceAny = geteuid() == 0 && hasCapSysPtrace()
        if canTraceAny { return }
        let advice = "run heapscope as root or with CAP_SYS_PTRACE (in a container: the SYS_PTRACE capability)"
        if uid != geteuid() {
            throw commandFail(
                "ptrace is not permitted: process \(pid) belongs to user \(uid), heapscope runs as user "
                    + "\(geteuid()) without CAP_SYS_PTRACE; \(advice), or as that user")
        }
        switch ptraceScope() {
        case 1?:
            throw commandFail(
                "ptrace is not permitted: kernel.yama.ptrace_scope is 1 (only a process's own ancestors may trace it); "
                    + "\(advice), or set it to 0: sysctl kernel.yama.ptrace_scope=0")
        case 2?:
            throw commandFail("ptrace is not permitted: kernel.yama.ptrace_scope is 2 (admin only); \(advice)")
        case 3?:
            throw commandFail("ptrace is not permitted: kernel.yama.ptrace_scope is 3 (no process may be traced until reboot)")
        default:
            return
        }
    }
}

/// kernel.yama.ptrace_scope, when the Yama module is there.
func ptraceScope() -> Int? {
    textLines("/proc/sys/kernel/yama/ptrace_scope").first.flatMap { Int($0) }
}

private func hasCapSysPtrace() -> Bool {
    for line in textLines("/proc/self/status") where line.hasPrefix("CapEff:") {
        let hex = line.dropFirst("CapEff:".count).trimmingCharacters(in: " \t")
        guard let caps = UInt64(hex, radix: 16) else { return false }
        return caps & (1 << 19) != 0   // CAP_SYS_PTRACE
    }
    return false
}

private func textLines(_ path: String) -> [Substring] {
    guard let bytes = readWholeFile(path) else { return [] }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n")
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

// MARK: - gdb

struct Gdb {
    var path: String

    /// HEAPSCOPE_GDB, else gdb on PATH.
    static func locate() throws -> Gdb {
        if let configured = getenvString("HEAPSCOPE_GDB"), !configured.isEmpty {
            if access(configured, X_OK) == 0 { return Gdb(path: configured) }
            throw commandFail("HEAPSCOPE_GDB is not an executable: \(configured)")
        }
        if let found = searchPath("gdb") { return Gdb(path: found) }
        throw commandFail("gdb is not installed: heapscope attach and detach need it (Debian package gdb: apt-get install gdb)")
    }

    /// Attaches to `target` in batch mode, runs `commands` and detaches (the
    /// target then runs on). Each command prints `<marker> <value>` lines;
    /// returns the values by marker.
    func run(_ target: AttachTarget, _ commands: [String]) throws -> [String: String] {
        var argv = [path, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set auto-load off",
                    "-p", String(target.pid)]
        for command in commands { argv += ["-ex", command] }
        let (status, output) = try runCapturingOutput(argv)
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("hs-") {
            let marker = line.prefix(while: { $0 != " " })
            values[String(marker)] = String(line.dropFirst(marker.count + 1))
        }
        if values.isEmpty {
            if output.contains("ptrace: Operation not permitted") {
                var detail = ""
                if let scope = ptraceScope() { detail = " (kernel.yama.ptrace_scope is \(scope))" }
                throw commandFail(
                    "ptrace is not permitted on process \(target.pid)\(detail): run heapscope as the process's user "
                        + "with kernel.yama.ptrace_scope 0, or as root / with CAP_SYS_PTRACE "
                        + "(in a container: the SYS_PTRACE capability)")
            }
            if output.contains("No such process") || !target.isRunning {
                throw commandFail("no such process: \(target.pid) (it exited)")
            }
            let last = output.split(separator: "\n").last(where: { !$0.hasPrefix("warning") }) ?? "exit status \(status)"
            throw commandFail("gdb could not attach to process \(target.pid): \(last)")
        }
        return values
    }
}

/// A C string literal as gdb's expression parser reads it.
func gdbString(_ text: String) -> String {
    var out = "\""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            out += "\\" + String(UnicodeScalar(byte))
        case 0x20..<0x7f:
            out.append(Character(UnicodeScalar(byte)))
        default:
            let octal = String(byte, radix: 8)
            out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
        }
    }
    return out + "\""
}

/// Runs a program with stdin from /dev/null and stdout and stderr into one
/// pipe; returns its exit status and output.
private func runCapturingOutput(_ argv: [String]) throws -> (Int32, String) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw commandFail("cannot create a pipe: \(String(cString: strerror(errno)))") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    posix_spawn_file_actions_addclose(&actions, fds[1])
    // A group of its own: Ctrl-C on the terminal must not interrupt gdb in
    // the middle of a call it is making in the target (attach handles Ctrl-C).
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    posix_spawnattr_setpgroup(&attr, 0)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
    var pid: pid_t = 0
    let rc = withCStrings(argv) { cArgv in posix_spawn(&pid, cArgv[0]!, &actions, &attr, cArgv, environ) }
    close(fds[1])
    if rc != 0 {
        close(fds[0])
        throw commandFail("cannot run \(argv[0]): \(String(cString: strerror(rc)))")
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        output += buffer[0..<n]
    }
    close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return ((status >> 8) & 0xff, String(decoding: output, as: UTF8.self))
}

// MARK: - One attach

/// Why recording ended.
enum AttachEnd { case requested, detached, exited }

/// One attach, from the gdb call that schedules the start to the stop.
struct AttachSession {
    var target: AttachTarget
    var gdb: Gdb
    var status: StatusFile
    var timeout: Double

    /// Loads the tracker and schedules the start; returns once tracking runs
    /// (the monotonic time it was seen running).
    func start(tracker: TrackerLibrary, options: String) throws -> Double {
        let deadline = monotonicSeconds() + timeout
        let values = try gdb.run(target, [
            "printf \"hs-handle %lu\\n\", (unsigned long)dlopen(\(gdbString(tracker.path)), 2)",
            // Prints nothing when dlopen worked (dlerror() is NULL).
            "printf \"hs-dlerror %s\\n\", (char *)dlerror()",
            "printf \"hs-start %d\\n\", (int)hs_attach_start(\(gdbString(tracker.packageParent)), "
                + "\(gdbString(status.path)), \(gdbString(options)), \(UInt64(deadline * 1e9))ULL)",
        ])
        if values["hs-handle"] == "0" || values["hs-handle"] == nil {
            let reason = values["hs-dlerror"].map { ": \($0)" } ?? ""
            throw commandFail("gdb could not load heapscope's tracker into \(target.described)\(reason)")
        }
        switch values["hs-start"] {
        case "0"?: break
        case "1"?: throw commandFail("\(target.described) is already being tracked by heapscope")
        case "2"?: throw commandFail("\(target.described) has too many pending calls queued; try again")
        default: throw commandFail("gdb could not start heapscope's tracker in \(target.described)")
        }
        // Waits for the pending start; a start claimed just before the
        // deadline still gets to say how it went.
        var claimed = false
        while true {
            switch status.read() {
            case .running: return monotonicSeconds()
            case .failed(let message): throw commandFail("tracking could not start in process \(target.pid): \(message)")
            case .starting: claimed = true
            case .none, .stopped, .removed: break
            }
            if !target.isRunning {
                throw commandFail("\(target.described) exited before tracking started")
            }
            let now = monotonicSeconds()
            if interrupted() || (!claimed && now > deadline + 0.5) || now > deadline + 30 {
                try cancelStart(deadline: deadline, interrupted: interrupted())
            }
            pollPause()
        }
    }

    /// Gives up on a start still pending; if the target claimed it after all,
    /// that tracking is stopped again.
    private func cancelStart(deadline: Double, interrupted: Bool) throws -> Never {
        let result = try? requestStop()
        let why = interrupted
            ? "attach was interrupted before \(target.described) reached a safe point"
            : "\(target.described) did not reach a safe point within \(formatSeconds(timeout)) "
                + "(its main thread runs no Python code: blocked in a system call, a lock or C code)"
        if result == .scheduled || result == .alreadyStopping {
            _ = waitForStop(timeout: timeout)
            throw commandFail("\(why); it started just then and was stopped again")
        }
        throw commandFail("\(why); tracking was not started (the scheduled start is cancelled, the process runs on)")
    }

    /// Records until `end` (monotonic), Ctrl-C, detach or the target's exit;
    /// then stops tracking and waits for the capture to be finished.
    func record(until end: Double?) throws -> AttachEnd {
        while true {
            switch status.read() {
            case .stopped(let atExit, _): return atExit ? .exited : .detached
            case .failed(let message): throw commandFail("process \(target.pid): \(message)")
            default: break
            }
            // Gone without a word: os._exit (the _exit hook finished the capture) or a kill.
            if !target.isRunning { return .exited }
            if interrupted() || (end.map { monotonicSeconds() >= $0 } ?? false) { break }
            pollPause()
        }
        if (try? requestStop()) == nil && !target.isRunning { return .exited }
        switch waitForStop(timeout: timeout) {
        case .stopped: return .requested
        case .gone: return .exited
        case .stillRunning:
            throw commandFail(
                "\(target.described) did not reach a safe point within \(formatSeconds(timeout)) to stop tracking; "
                    + "it stops when its main thread next runs Python code, and the capture is finished then")
        }
    }

    /// hs_attach_stop's answers (attach.c).
    enum StopRequest: Int { case notTracked = 0, scheduled, alreadyStopping, otherTracker, queueFull, cancelled }

    /// Has gdb call hs_attach_stop: stops tracking at the target's next safe
    /// point, or cancels a start still waiting for one.
    func requestStop() throws -> StopRequest {
        let values = try gdb.run(target, ["printf \"hs-stop %d\\n\", (int)hs_attach_stop()"])
        guard let answer = values["hs-stop"].flatMap({ Int($0) }).flatMap(StopRequest.init(rawValue:)) else {
            throw commandFail("gdb could not call heapscope's tracker in \(target.described)")
        }
        return answer
    }

    enum StopWait { case stopped, gone, stillRunning }

    func waitForStop(timeout: Double) -> StopWait {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            switch status.read() {
            // (removed: the attach that watched the file has seen the stop)
            case .stopped, .removed: return .stopped
            case .failed(let message):
                writeStderr("heapscope: error: process \(target.pid): \(message)\n")
                return .stopped
            default: break
            }
            if !target.isRunning { return .gone }
            pollPause()
        }
        return .stillRunning
    }
}

// MARK: - Interrupts

nonisolated(unsafe) private var interruptCount: Int32 = 0

/// Ctrl-C, SIGTERM and SIGHUP end the recording cleanly instead of killing attach.
func watchInterrupts() {
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal(sig) { _ in interruptCount += 1 }
    }
}

func interrupted() -> Bool { interruptCount > 0 }

/// Ends the recording as Ctrl-C does (`attach --live`: q, then y).
func endRecording() { interruptCount += 1 }

// MARK: - The status file

/// One line the target rewrites at each step (attach.c, _attach.py).
enum AttachStatus: Equatable {
    case none
    case starting
    case running(capture: String)
    /// `atExit`: the process's exit stopped it, not a request (detach, --duration).
    case stopped(atExit: Bool, capture: String)
    case failed(String)
    /// The file is gone: the attach that watched it has finished.
    case removed
}

struct StatusFile {
    var path: String

    /// A new empty file the target (maybe another user, when we are root) can
    /// write, next to the capture: a directory the target must see and write
    /// anyway (its /tmp may be private, as with systemd's PrivateTmp).
    static func create(for target: AttachTarget, next output: CaptureOutput) throws -> StatusFile {
        let dir = parentDirectory(of: output.absolute)
        var template = Array("\(dir)/.heapscope-attach-\(target.pid).XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw commandFail("cannot create the status file in \(dir): \(String(cString: strerror(errno)))")
        }
        if geteuid() == 0 && target.uid != 0 { _ = fchown(fd, target.uid, target.gid) }
        close(fd)
        return StatusFile(path: cStringBuffer(template))
    }

    func read() -> AttachStatus {
        guard let bytes = readWholeFile(path) else { return .removed }
        // Only a whole line counts: the target may be writing it.
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return .none }
        let line = String(decoding: bytes[..<newline], as: UTF8.self)
        let word = line.prefix(while: { $0 != " " })
        let rest = String(line.dropFirst(word.count + 1))
        switch word {
        case "starting": return .starting
        case "running": return .running(capture: rest)
        case "stopped":
            let how = rest.prefix(while: { $0 != " " })
            return .stopped(atExit: how == "exit", capture: String(rest.dropFirst(how.count + 1)))
        case "error": return .failed(rest)
        default: return .none
        }
    }

    func remove() { unlink(path) }
}

/// Sleeps a little between two looks at the status file.
func pollPause() {
    var ts = timespec(tv_sec: 0, tv_nsec: 20_000_000)
    nanosleep(&ts, nil)
}
