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

    @Flag(help: ArgumentHelp(
        "Write an aggregated capture: per-stack totals instead of every event, rewritten at least every second, so its size grows with the distinct stacks, not with time, and a killed program loses nothing that reached heapscope (docs/CLI.md, \"Aggregated captures\").",
        discussion: "Default name: heapscope-<script>.<pid>.aggregated.hsc. Reports that need the order of events (--temporary-allocations, --temporal, pymalloc) refuse it."))
    var aggregate = false

    @Flag(help: "Leave the capture uncompressed (by default it is zstd-compressed as it is written).")
    var noCompress = false

    @Option(help: ArgumentHelp("Period of the memory (RSS) snapshots.", valueName: "ms"))
    var memoryIntervalMs: Int = 10

    @Option(help: memoryLimitHelp)
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
