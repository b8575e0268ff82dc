// `heapscope run`: runs a Python program exactly as `python script.py args`
// (or `-m module` / `-c code`) would, with tracking started by a bootstrap
// `sitecustomize.py` that the heapscope Python package ships in
// heapscope/_bootstrap/. The program's argv, sys.path[0], standard streams,
// tracebacks and exit status are those of the un-profiled program.
//
// Protocol with the bootstrap (PythonHarness/heapscope/_bootstrap/sitecustomize.py):
//   PYTHONPATH             <bootstrap dir>[:<the user's PYTHONPATH>]
//   HEAPSCOPE_RUN_OUTPUT   absolute capture path; "{pid}" is replaced by the
//                          child's pid when options.pid_in_output is true
//   HEAPSCOPE_RUN_OPTIONS  JSON object (see `bootstrapOptions`)
// The bootstrap removes all three before the program starts, and first writes
// a byte to the pipe `ready_fd` names (and closes it): without that byte the
// interpreter never ran it (it ignores PYTHONPATH: -E, -I, -S), and heapscope
// says so rather than exit 0 without a capture. The program's command line is
// not passed: the bootstrap reads it from /proc/self/cmdline, since it may be
// longer than one environment variable can hold.

import ArgumentParser
import HeapscopeAnalysis
import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a Python program and record its allocations into a capture file.",
        usage: """
            heapscope run [<options>] <script.py> [<arg> ...]
            heapscope run [<options>] -m <module> [<arg> ...]
            heapscope run [<options>] -c <code> [<arg> ...]
            """,
        discussion: """
            The program runs under the Python interpreter named by HEAPSCOPE_PYTHON \
            (set by the `heapscope` console script to the interpreter it is installed \
            in), else `python3` on PATH, with exactly the command line it would have \
            without heapscope. Everything after the script, module or code belongs to \
            the program. heapscope's options come before it.

            The program's exit status is heapscope's exit status; a program killed by \
            a signal kills heapscope with the same signal.
            """
    )

    @Option(
        name: .shortAndLong,
        help: ArgumentHelp(
            "Capture file to write (default: heapscope-<script>.<pid>.hsc in the current directory).",
            valueName: "file"))
    var output: String?

    @Flag(name: .shortAndLong, help: "Overwrite the output file if it exists.")
    var force = false

    @Flag(name: .shortAndLong, help: "Print no summary: only errors.")
    var quiet = false

    @OptionGroup var tracking: TrackingOptions

    @Flag(help: ArgumentHelp(
        "Prepare a leak hunt: trace Python allocators, run with PYTHONMALLOC=malloc (unless the environment sets PYTHONMALLOC) and name the top leaking sites at exit.",
        discussion: "See docs/PYMALLOC.md."))
    var leaks = false

    @Option(help: ArgumentHelp("With --leaks: hide known leaks matching the patterns in FILE from the summary (docs/CLI.md, \"Leak suppressions\").", valueName: "file"))
    var suppressions: String?

    @Flag(help: ArgumentHelp(
        "When tracking stops, note which containers hold the small objects still alive, in <capture>.refs, for `heapscope pymalloc` (costs the program up to 2 s at exit).",
        discussion: "See docs/PYMALLOC.md."))
    var referrers = false

    @Flag(help: "Leave the capture uncompressed (by default it is zstd-compressed as it is written).")
    var noCompress = false

    @Option(help: ArgumentHelp("Period of the memory (RSS) snapshots.", valueName: "ms"))
    var memoryIntervalMs: Int = 10

    @Flag(name: .customShort("m"), help: "Run a library module as a script, like python -m: the first argument is the module.")
    var module = false

    @Flag(name: .customShort("c"), help: "Run a program passed as a string, like python -c: the first argument is the code.")
    var code = false

    @Argument(
        parsing: .captureForPassthrough,
        help: ArgumentHelp("The script (or module, or code), then the program's own arguments.", valueName: "program"))
    var program: [String] = []

    mutating func run() throws {
        let plan = try RunPlan.make(self)
        let status = try plan.execute(quiet: quiet)
        switch status {
        case .exited(let code):
            if code != 0 { throw ExitCode(code) }
        case .signaled(let sig):
            reraise(signal: sig)
        }
    }
}

// MARK: - The plan

private enum ChildStatus {
    case exited(Int32)
    case signaled(Int32)
}

private struct RunPlan {
    enum Mode { case script, module, code }

    var mode: Mode
    /// script path, module name or code string
    var target: String
    var arguments: [String]
    /// The program's command line as the user typed it after `heapscope run`.
    var commandLine: [String]
    var python: String
    var packageDir: String
    var bootstrapDir: String
    /// Path to report to the user ("{pid}" still in it for the default name).
    var displayOutput: String
    /// Absolute path handed to the bootstrap.
    var absoluteOutput: String
    var pidInOutput: Bool
    var options: RunCommand
    /// Identity of a file already at the output path (with -f): to tell a new capture from the old file.
    var previousOutput: FileIdentity?

    static func make(_ cmd: RunCommand) throws -> RunPlan {
        var rest = cmd.program
        if rest.first == "--" { rest.removeFirst() }
        if cmd.module && cmd.code {
            throw commandFail("-m and -c cannot be used together")
        }
        let mode: Mode = cmd.module ? .module : (cmd.code ? .code : .script)
        guard let first = rest.first else {
            switch mode {
            case .script: throw commandFail("no script given (usage: heapscope run [<options>] <script.py> [<arg> ...])")
            case .module: throw commandFail("-m needs a module name (usage: heapscope run [<options>] -m <module> [<arg> ...])")
            case .code: throw commandFail("-c needs the code to run (usage: heapscope run [<options>] -c <code> [<arg> ...])")
            }
        }
        if first == "-h" || first == "--help" || first == "-help" {
            throw CleanExit.helpRequest(RunCommand.self)
        }
        if mode != .code, first.hasPrefix("-"), first != "-" {
            throw commandFail("unknown option '\(first)' (see heapscope run --help; the program's own options go after the script)")
        }
        if cmd.memoryIntervalMs <= 0 {
            throw commandFail("--memory-interval-ms must be a positive number of milliseconds")
        }
        if let file = cmd.suppressions {
            if !cmd.leaks { throw commandFail("--suppressions works with --leaks") }
            if case .failure(let message) = loadSuppressions(file) { throw commandFail(message) }
        }
        let arguments = Array(rest.dropFirst())

        var stem: String
        var commandLine: [String]
        switch mode {
        case .script:
            if first != "-" {
                var st = stat()
                if stat(first, &st) != 0 {
                    throw commandFail("no such script: \(first)")
                }
            }
            stem = first == "-" ? "stdin" : scriptStem(first)
            commandLine = [first] + arguments
        case .module:
            if first.isEmpty { throw commandFail("-m needs a module name") }
            stem = first
            commandLine = ["-m", first] + arguments
        case .code:
            stem = "c"
            commandLine = ["-c", first] + arguments
        }
        if stem.isEmpty { stem = "program" }

        let python = try resolvePython()
        let packageDir = try resolvePackageDir()
        let bootstrapDir = packageDir + "/_bootstrap"

        // Output: checked before anything starts.
        let output = try CaptureOutput.check(
            cmd.output, default: "heapscope-\(stem.replacingSlashes()).{pid}.hsc", force: cmd.force)

        return RunPlan(
            mode: mode, target: first, arguments: arguments, commandLine: commandLine,
            python: python, packageDir: packageDir, bootstrapDir: bootstrapDir,
            displayOutput: output.display, absoluteOutput: output.absolute, pidInOutput: cmd.output == nil,
            options: cmd, previousOutput: output.previous)
    }

    /// The JSON object the bootstrap reads from HEAPSCOPE_RUN_OPTIONS.
    func bootstrapOptions(userPythonPath: String?, readyFD: Int32) -> String {
        let optionalString = { (text: String?) in text.map(JSONValue.string) ?? .null }
        var fields: [(key: String, value: JSONValue)] = [
            ("native", .bool(options.tracking.native)),
            ("trace_python_allocators", .bool(options.tracking.tracePythonAllocators || options.leaks)),
            ("leaks_mode", .bool(options.leaks)),
            ("pythonmalloc_set_by_heapscope", .bool(setsPythonMalloc)),
            ("user_pythonmalloc", optionalString(userPythonMalloc)),
            ("follow_fork", .bool(options.tracking.followFork)),
            ("compress", .bool(!options.noCompress)),
            ("overwrite", .bool(options.force)),
            ("memory_interval_ms", .int(Int64(options.memoryIntervalMs))),
            ("package_dir", .string(packageDir)),
            ("bootstrap_dir", .string(bootstrapDir)),
            ("pythonpath", optionalString(userPythonPath)),
            ("pid_in_output", .bool(pidInOutput)),
            ("referrers", .bool(options.referrers)),
            ("ready_fd", .int(Int64(readyFD))),
        ]
        if mode == .module { fields.append(("module", .string(target))) }
        return JSONValue.object(fields).serialized()
    }

    /// The user's PYTHONMALLOC (kept by --leaks when set).
    var userPythonMalloc: String? { getenvString("PYTHONMALLOC").flatMap { $0.isEmpty ? nil : $0 } }

    /// --leaks sets PYTHONMALLOC=malloc for the program unless the environment sets it.
    var setsPythonMalloc: Bool { options.leaks && userPythonMalloc == nil }

    func childArgv() -> [String] {
        switch mode {
        case .script: return [python, target] + arguments
        case .module: return [python, "-m", target] + arguments
        case .code: return [python, "-c", target] + arguments
        }
    }

    func childEnvironment(readyFD: Int32) -> [String] {
        var env = currentEnvironment()
        // Variables the Python entry point added for us, not the user's.
        var drop: Set<String> = ["HEAPSCOPE_ENTRY_SET", "HEAPSCOPE_RUN_OUTPUT", "HEAPSCOPE_RUN_OPTIONS"]
        if let added = env.first(where: { $0.0 == "HEAPSCOPE_ENTRY_SET" })?.1 {
            for name in added.split(separator: ",") { drop.insert(String(name)) }
        }
        env.removeAll { drop.contains($0.0) }
        let userPythonPath = env.first(where: { $0.0 == "PYTHONPATH" })?.1
        env.removeAll { $0.0 == "PYTHONPATH" }
        var pythonPath = bootstrapDir
        if let user = userPythonPath, !user.isEmpty { pythonPath += ":" + user }
        env.append(("PYTHONPATH", pythonPath))
        // --leaks: every object a real malloc, unless the user chose an allocator.
        if setsPythonMalloc {
            env.removeAll { $0.0 == "PYTHONMALLOC" }
            env.append(("PYTHONMALLOC", "malloc"))
        }
        env.append(("HEAPSCOPE_RUN_OUTPUT", absoluteOutput))
        env.append(("HEAPSCOPE_RUN_OPTIONS", bootstrapOptions(userPythonPath: userPythonPath, readyFD: readyFD)))
        return env.map { "\($0.0)=\($0.1)" }
    }

    func execute(quiet: Bool) throws -> ChildStatus {
        let argv = childArgv()
        // The bootstrap's "I ran" pipe: only its write end is inherited.
        var ready: [Int32] = [-1, -1]
        guard pipe2(&ready, O_CLOEXEC | O_NONBLOCK) == 0 else {
            throw commandFail("cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        defer { close(ready[0]) }
        _ = fcntl(ready[1], F_SETFD, 0)
        let envp = childEnvironment(readyFD: ready[1])

        // The terminal sends SIGINT/SIGQUIT to the whole foreground group: the
        // child handles them; we only wait. Signals that were ignored when we
        // started stay ignored in the child, as they would without heapscope.
        let oldInt = signal(SIGINT, SIG_IGN)
        let oldQuit = signal(SIGQUIT, SIG_IGN)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        if !isIgnored(oldInt) { sigaddset(&defaults, SIGINT) }
        if !isIgnored(oldQuit) { sigaddset(&defaults, SIGQUIT) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var currentMask = sigset_t()
        sigprocmask(SIG_SETMASK, nil, &currentMask)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setsigmask(&attr, &currentMask)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let start = monotonicSeconds()
        let wallStart = time(nil)
        var pid: pid_t = 0
        let rc = withCStrings(argv) { cArgv in
            withCStrings(envp) { cEnv in
                if argv[0].contains("/") {
                    return posix_spawn(&pid, cArgv[0]!, nil, &attr, cArgv, cEnv)
                }
                return posix_spawnp(&pid, cArgv[0]!, nil, &attr, cArgv, cEnv)
            }
        }
        close(ready[1])
        if rc != 0 {
            throw commandFail("cannot run the Python interpreter \(python): \(String(cString: strerror(rc)))")
        }

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR {
                throw commandFail("waiting for the program failed: \(String(cString: strerror(errno)))")
            }
        }
        let elapsed = monotonicSeconds() - start

        var result: ChildStatus
        if (status & 0x7f) == 0 {
            result = .exited((status >> 8) & 0xff)
        } else {
            result = .signaled(status & 0x7f)
        }
        var byte: UInt8 = 0
        if read(ready[0], &byte, 1) != 1 {
            writeStderr("heapscope: error: the program ran untracked: \(python) did not run heapscope's bootstrap "
                + "(an interpreter that ignores PYTHONPATH, e.g. one started with -E, -I or -S, cannot be profiled by heapscope run)\n")
            if case .exited(0) = result { result = .exited(2) }
            return result
        }

        let path = pidInOutput ? displayOutput.replacing("{pid}", with: String(pid)) : displayOutput
        let absolutePath = pidInOutput ? absoluteOutput.replacing("{pid}", with: String(pid)) : absoluteOutput
        if !quiet, captureWritten(at: absolutePath, replacing: previousOutput) {
            let children = options.tracking.followFork ? childCaptures(of: path, since: wallStart) : []
            reportCapture(path: path, absolutePath: absolutePath, elapsed: elapsed, status: result, children: children)
        }
        return result
    }

    /// Captures written by forked children (`--follow-fork`): `<path>.<pid>`.
    func childCaptures(of path: String, since: time_t) -> [String] {
        let dir = parentDirectory(of: path)
        let base = path.split(separator: "/").last.map(String.init) ?? path
        guard let handle = opendir(dir) else { return [] }
        defer { closedir(handle) }
        var found: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            guard name.hasPrefix(base + "."), name.count > base.count + 1 else { continue }
            let suffix = name.dropFirst(base.count + 1)
            guard suffix.allSatisfy({ $0.isASCII && $0.isNumber }) else { continue }
            let full = (path.contains("/") ? dir + "/" : "") + name
            var st = stat()
            if stat(full, &st) == 0, st.st_mtim.tv_sec >= since - 1 { found.append(full) }
        }
        return found.sorted()
    }

    func reportCapture(path: String, absolutePath: String, elapsed: Double, status: ChildStatus, children: [String]) {
        var lines: [String] = []
        lines.append("heapscope: capture written to \(path)")
        lines.append("  command line:      \(shellQuoted(commandLine))")
        lines.append("  duration:          \(formatSeconds(elapsed))")
        switch status {
        case .exited(let code) where code != 0:
            lines.append("  exit status:       \(code)")
        case .signaled(let sig):
            lines.append("  killed by signal:  \(sig) (the capture may be cut short)")
        default:
            break
        }
        lines += captureTotalsLines(path: absolutePath)
        if !children.isEmpty {
            lines.append("  forked children:   \(children.count) captures: \(children.joined(separator: ", "))")
        }
        if options.leaks {
            // LEAKS SUMMARY (run --leaks): LeaksSummary.swift.
            lines += leaksSummaryLines(capture: absolutePath, suppressionsFile: options.suppressions,
                                       userPythonMalloc: userPythonMalloc)
        }
        lines.append(nextStepLine(path: path))
        writeStderr(lines.joined(separator: "\n") + "\n")
    }
}

// MARK: - Locating Python and the package

private func resolvePython() throws -> String {
    if let configured = getenvString("HEAPSCOPE_PYTHON"), !configured.isEmpty {
        if configured.contains("/") {
            if access(configured, X_OK) != 0 {
                throw commandFail("HEAPSCOPE_PYTHON is not an executable: \(configured)")
            }
            return configured
        }
        if let found = searchPath(configured) { return found }
        throw commandFail("HEAPSCOPE_PYTHON names no program on PATH: \(configured)")
    }
    if let found = searchPath("python3") { return found }
    throw commandFail("no python3 on PATH (set HEAPSCOPE_PYTHON to the interpreter to profile with)")
}

private func isIgnored(_ handler: __sighandler_t?) -> Bool {
    guard let handler else { return false }
    return unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
}

/// Dies of `sig` the way the child did, so the shell sees the same status.
private func reraise(signal sig: Int32) -> Never {
    // One core file is enough: the child's.
    var limit = rlimit(rlim_cur: 0, rlim_max: 0)
    _ = withUnsafeMutablePointer(to: &limit) { getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), $0) }
    limit.rlim_cur = 0
    _ = withUnsafePointer(to: &limit) { setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), $0) }
    signal(sig, SIG_DFL)
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, sig)
    sigprocmask(SIG_UNBLOCK, &set, nil)
    kill(getpid(), sig)
    // A signal whose default action does not kill (SIGCHLD, SIGWINCH...).
    exit(128 + sig)
}

private func currentEnvironment() -> [(String, String)] {
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

private func scriptStem(_ path: String) -> String {
    var p = path
    while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
    var name = p.split(separator: "/").last.map(String.init) ?? p
    if let dot = name.lastIndex(of: "."), dot != name.startIndex {
        name = String(name[..<dot])
    }
    return name
}

extension String {
    fileprivate func replacingSlashes() -> String {
        String(map { $0 == "/" ? "_" : $0 })
    }
}
