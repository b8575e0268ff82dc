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
import HeapscopeReports

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
            a signal kills heapscope with the same signal (SIGTERM and SIGINT leave a \
            complete capture); a program stopped at --memory-limit or its memory floor \
            makes it exit with 120. A program killed by SIGKILL (the OOM killer's \
            signal) gets the flame graph of its capture's peak next to the capture.
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

    @Flag(name: .shortAndLong, help: "Print no summary, only errors (the tracker then keeps no totals for one).")
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

    @Option(help: ArgumentHelp(
        "Stop the program when its traced heap exceeds SIZE (e.g. 500MB, 2GiB), or when the memory it can still get (MemAvailable, its cgroup's limit) falls under 100 MiB or 2% of the total, whichever is more: the capture ends there, a flame graph of that moment is written next to it, and heapscope exits with status 120.",
        valueName: "size"))
    var memoryLimit: String?

    @Flag(help: ArgumentHelp(
        "Show the program's heap live in this terminal while it runs (docs/CLI.md, \"Live mode\"); with -o, also write the capture.",
        discussion: "The program's output goes to the file --live-output names; q asks, then stops the program."))
    var live = false

    @Option(help: ArgumentHelp("With --live: the file the program's stdout and stderr go to (default: heapscope-<script>.<pid>.out).", valueName: "file"))
    var liveOutput: String?

    @Flag(help: ArgumentHelp(
        "Serve the live view on 127.0.0.1 (--live-port, default a free port, printed): the program starts when a viewer connects with `heapscope live PORT`; with -o, also write the capture."))
    var liveRemote = false

    @Option(help: ArgumentHelp("With --live-remote: the port to listen on, on 127.0.0.1 only.", valueName: "port"))
    var livePort: Int?

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

struct RunPlan {
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
    /// --memory-limit, in bytes.
    var memoryLimit: UInt64?
    /// --live or --live-remote.
    var live: LiveMode?
    /// False in live mode without -o: the tracker's capture then goes to /dev/null.
    var writesCapture = true

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
        var memoryLimit: UInt64?
        if let text = cmd.memoryLimit {
            guard let bytes = Formatting.parseSize(text), bytes > 0 else {
                throw commandFail("--memory-limit: not a size: '\(text)' (e.g. 500MB, 2GiB, 1048576)")
            }
            memoryLimit = bytes
        }
        if let file = cmd.suppressions {
            if !cmd.leaks { throw commandFail("--suppressions works with --leaks") }
            if case .failure(let message) = loadSuppressions(file) { throw commandFail(message) }
        }
        let live = try LiveMode.make(cmd)
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
        let writesCapture = live == nil || cmd.output != nil
        let output = writesCapture
            ? try CaptureOutput.check(cmd.output, default: "heapscope-\(stem.replacingSlashes()).{pid}.hsc", force: cmd.force)
            : CaptureOutput(display: "/dev/null", absolute: "/dev/null", previous: nil)

        return RunPlan(
            mode: mode, target: first, arguments: arguments, commandLine: commandLine,
            python: python, packageDir: packageDir, bootstrapDir: bootstrapDir,
            displayOutput: output.display, absoluteOutput: output.absolute, pidInOutput: cmd.output == nil && writesCapture,
            options: cmd, previousOutput: output.previous, memoryLimit: memoryLimit,
            live: try live.map { try $0.withOutput(stem: stem.replacingSlashes()) }, writesCapture: writesCapture)
    }

    /// The JSON object the bootstrap reads from HEAPSCOPE_RUN_OPTIONS.
    func bootstrapOptions(userPythonPath: String?, readyFD: Int32, liveFD: Int32?) -> String {
        let optionalString = { (text: String?) in text.map(JSONValue.string) ?? .null }
        var fields: [(key: String, value: JSONValue)] = [
            ("native", .bool(options.tracking.native)),
            ("trace_python_allocators", .bool(options.tracking.tracePythonAllocators || options.leaks)),
            ("leaks_mode", .bool(options.leaks)),
            ("pythonmalloc_set_by_heapscope", .bool(setsPythonMalloc)),
            ("user_pythonmalloc", optionalString(userPythonMalloc)),
            ("follow_fork", .bool(options.tracking.followFork)),
            ("compress", .bool(!options.noCompress)),
            ("overwrite", .bool(options.force || !writesCapture)),
            ("memory_interval_ms", .int(Int64(options.memoryIntervalMs))),
            ("memory_limit", memoryLimit.map { .int(Int64($0)) } ?? .null),
            ("package_dir", .string(packageDir)),
            ("bootstrap_dir", .string(bootstrapDir)),
            ("pythonpath", optionalString(userPythonPath)),
            ("pid_in_output", .bool(pidInOutput)),
            ("referrers", .bool(options.referrers)),
            ("ready_fd", .int(Int64(readyFD))),
            // The totals of the summary; -q prints none, so its run does not pay for them.
            ("count_totals", .bool(!options.quiet)),
        ]
        if mode == .module { fields.append(("module", .string(target))) }
        if let liveFD { fields.append(("live_fd", .int(Int64(liveFD)))) }
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

    func childEnvironment(readyFD: Int32, liveFD: Int32?) -> [String] {
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
        env.append(("HEAPSCOPE_RUN_OPTIONS", bootstrapOptions(userPythonPath: userPythonPath, readyFD: readyFD, liveFD: liveFD)))
        return env.map { "\($0.0)=\($0.1)" }
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
