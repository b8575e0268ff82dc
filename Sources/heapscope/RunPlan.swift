// What `heapscope run` is to do, from its command line: the program's argv,
// its environment and the options the bootstrap reads (the protocol: RunCommand.swift).

import ArgumentParser
import HeapscopeFormat
import HeapscopeReports

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
    /// --aggregate: the tracker streams to this process only (its file is
    /// /dev/null), which writes the aggregated capture at the output path.
    var aggregate = false

    /// The file the tracker writes.
    var trackerOutput: String { aggregate ? "/dev/null" : absoluteOutput }

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
        let memoryLimit = try parseMemoryLimit(cmd.memoryLimit)
        if let file = cmd.suppressions {
            if !cmd.leaks { throw commandFail("--suppressions works with --leaks") }
            if case .failure(let message) = loadSuppressions(file) { throw commandFail(message) }
        }
        let live = try LiveMode.make(cmd)
        if cmd.aggregate {
            if live != nil { throw commandFail("--aggregate cannot be used with live mode (--live, --live-remote)") }
            if cmd.tracking.followFork { throw commandFail("--aggregate does not follow child processes: leave out --follow-fork") }
            if cmd.referrers { throw commandFail("--referrers needs the addresses of blocks, which --aggregate does not keep") }
            if memoryLimit != nil { throw commandFail("--memory-limit cannot be used with --aggregate") }
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
        let writesCapture = live == nil || cmd.output != nil
        let output = writesCapture
            ? try CaptureOutput.check(cmd.output, default: "heapscope-\(stem.replacingSlashes()).{pid}\(cmd.aggregate ? ".aggregated" : "").hsc",
                                      force: cmd.force)
            : CaptureOutput(display: "/dev/null", absolute: "/dev/null", previous: nil)

        return RunPlan(
            mode: mode, target: first, arguments: arguments, commandLine: commandLine,
            python: python, packageDir: packageDir, bootstrapDir: bootstrapDir,
            displayOutput: output.display, absoluteOutput: output.absolute, pidInOutput: cmd.output == nil && writesCapture,
            options: cmd, previousOutput: output.previous, memoryLimit: memoryLimit,
            live: try live.map { try $0.withOutput(stem: stem.replacingSlashes()) }, writesCapture: writesCapture,
            aggregate: cmd.aggregate)
    }

    /// The JSON object the bootstrap reads from HEAPSCOPE_RUN_OPTIONS.
    func bootstrapOptions(userPythonPath: String?, readyFD: Int32, liveFD: Int32?) -> String {
        let optionalString = { (text: String?) in text.map(JSONValue.string) ?? .null }
        var fields = options.tracking.trackerFields(leaks: options.leaks) + [
            ("leaks_mode", .bool(options.leaks)),
            ("pythonmalloc_set_by_heapscope", .bool(setsPythonMalloc)),
            ("user_pythonmalloc", optionalString(userPythonMalloc)),
            ("compress", .bool(!options.noCompress)),
            ("overwrite", .bool(options.force || !writesCapture || aggregate)),
            ("memory_interval_ms", .int(Int64(options.memoryIntervalMs))),
            ("memory_limit", memoryLimit.map { .int(Int64($0)) } ?? .null),
            ("package_dir", .string(packageDir)),
            ("bootstrap_dir", .string(bootstrapDir)),
            ("pythonpath", optionalString(userPythonPath)),
            ("pid_in_output", .bool(pidInOutput && !aggregate)),
            ("referrers", .bool(options.referrers)),
            ("ready_fd", .int(Int64(readyFD))),
            // The totals of the summary; -q prints none, so its run does not pay for them.
            // --aggregate: this process has them.
            ("count_totals", .bool(!options.quiet && !aggregate)),
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
        env.append(("HEAPSCOPE_RUN_OUTPUT", trackerOutput))
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
