// `heapscope attach PID`: records a CPython process that is already running.
// It loads this installation's tracker into it and calls hs_attach_start
// (TrackerCalls.swift, on the target's main thread stopped with ptrace),
// which schedules the start at the interpreter's next safe point; attach then
// watches the status file until tracking has started, records for
// --duration (or until `heapscope detach`, Ctrl-C or the process's exit),
// schedules the stop the same way, and prints the summary `run` prints.
// With --live or --live-remote the stream is also shown (AttachLive.swift).
// The method and what it changes in the target: docs/ATTACH.md.

import ArgumentParser
import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HeapscopeSystem

struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Record the allocations of a Python process that is already running.",
        discussion: """
            heapscope loads its tracker into process <pid> (through ptrace, as a debugger \
            would) and starts tracking at the interpreter's next safe point: on its main thread, between \
            two bytecodes. Recording ends when --duration is over, `heapscope detach <pid>` \
            is run, attach is interrupted (Ctrl-C) or the process exits; the hooks then come \
            out and the process runs on unchanged. Needs ptrace permission (the process's \
            user with kernel.yama.ptrace_scope 0, or root / CAP_SYS_PTRACE). See docs/ATTACH.md.

            --live shows the process's heap live in this terminal while recording, as \
            `heapscope run --live` does; its q detaches (the process runs on, its output \
            untouched). --live-remote serves that view to `heapscope live PORT` instead.
            """
    )

    @Option(
        name: .shortAndLong,
        help: ArgumentHelp(
            "Capture file to write (default: heapscope-attach-<pid>.<time>.hsc in the current directory).",
            valueName: "file"))
    var output: String?

    @Flag(name: .shortAndLong, help: "Overwrite the output file if it exists.")
    var force = false

    @Option(help: ArgumentHelp("Stop recording after this long (default: until detach, Ctrl-C or the process's exit).",
                               valueName: "seconds"))
    var duration: Double?

    @Option(help: ArgumentHelp(
        "How long to wait for the process to reach a safe point (to start, and to stop).", valueName: "seconds"))
    var timeout: Double = 10

    @OptionGroup var tracking: TrackingOptions

    @Option(help: memoryLimitHelp)
    var memoryLimit: String?

    @Flag(help: ArgumentHelp(
        "Show the process's heap live in this terminal while recording (docs/CLI.md, \"Live mode\"); the capture is written as without it.",
        discussion: "q asks, then detaches: tracking stops and the process runs on."))
    var live = false

    @Flag(help: ArgumentHelp(
        "Serve the live view on 127.0.0.1 (--live-port, default a free port, printed): tracking starts when a viewer connects with `heapscope live PORT`."))
    var liveRemote = false

    @Option(help: ArgumentHelp("With --live-remote: the port to listen on, on 127.0.0.1 only.", valueName: "port"))
    var livePort: Int?

    @Flag(help: ArgumentHelp(
        "Write an aggregated capture: per-stack totals instead of every event, rewritten at least every second (docs/CLI.md, \"Aggregated captures\"); default name heapscope-attach-<pid>.<time>.aggregated.hsc."))
    var aggregate = false

    @Argument(help: ArgumentHelp("The id of the Python process.", valueName: "pid"))
    var pid: String

    func run() throws {
        let liveMode = try LiveMode.make(live: live, liveRemote: liveRemote, livePort: livePort, followFork: tracking.followFork)
        if aggregate {
            if liveMode != nil { throw commandFail("--aggregate cannot be used with live mode (--live, --live-remote)") }
            if tracking.followFork { throw commandFail("--aggregate does not follow child processes: leave out --follow-fork") }
            if memoryLimit != nil { throw commandFail("--memory-limit cannot be used with --aggregate") }
        }
        // The stream's feed: live mode's, or --aggregate's.
        let streams = liveMode != nil || aggregate
        if let duration, !(duration > 0) { throw commandFail("--duration must be a positive number of seconds") }
        if !(timeout > 0) { throw commandFail("--timeout must be a positive number of seconds") }

        let plan = try AttachPlan.make(self)
        let (target, output) = (plan.target, plan.output)

        // The first viewer before any file is made: Ctrl-C while waiting leaves nothing behind.
        var remote: (listener: LiveListener, first: Int32)?
        if case .remote(let port)? = liveMode {
            remote = try LiveListener.waitForFirstViewer(port: port, starting: "tracking starts")
        }
        let status = try StatusFile.create(for: target, next: output)
        defer { status.remove() }
        let feed = streams ? try FeedListener.open(for: target, next: output) : nil
        defer { feed?.remove() }
        let store = streams ? try LiveStore() : nil
        let session = AttachSession(target: target, status: status, timeout: timeout)
        watchInterrupts()
        let startedAt = try session.start(
            tracker: plan.tracker, options: plan.trackerOptions(liveSocket: feed?.path))
        var connection: Int32?
        if let feed {
            connection = feed.accept(from: target.pid)
            if connection == nil {
                _ = try? session.requestStop()
                _ = session.waitForStop(timeout: timeout)
                throw commandFail("\(target.described) did not connect to the live feed; tracking was stopped again")
            }
        }
        var line = "heapscope: attached to \(target.described), recording into \(output.display)"
        if let duration { line += " for \(formatSeconds(duration))" }
        writeStderr(line + " (heapscope detach \(target.pid) stops it)\n")

        let until = duration.map { startedAt + $0 }
        // The floor is watched by the plain recording loop; the live views leave it to the tracker's limit, as in run.
        var floor = plan.memoryLimit.map { _ in FloorWatch(cgroups: MemoryCgroups(of: target.pid)) }
        let end = try connection.map {
            try session.recordLive(feed: $0, store: store!, remote: remote, aggregateTo: aggregate ? output.absolute : nil, until: until)
        } ?? session.record(until: until, floor: &floor)
        let elapsed = monotonicSeconds() - startedAt
        guard captureWritten(at: output.absolute, replacing: output.previous) else {
            throw commandFail("no capture was written to \(output.display)")
        }
        var facts = [summaryLine("process", "\(target.pid) (\(shellQuoted(target.commandLine)))"),
                     summaryLine("attached for", formatSeconds(elapsed))]
        switch end {
        case .detached: facts.append(summaryLine("ended by", "heapscope detach"))
        case .exited: facts.append(summaryLine("ended by", "the process's exit"))
        case .requested: break
        }
        let totals = captureTotals(path: output.absolute)
        // Stopped at the limit: the tracker ended the process over it (its capture's peak tells).
        var limitLines: [String] = []
        if let room = floor?.reached {
            limitLines = memoryFloorReport(capture: output.display, room: room)
        } else if end == .exited, let limit = plan.memoryLimit, (totals?.peakBytes ?? 0) > limit {
            limitLines = memoryLimitReport(capture: output.display, limit: limit)
        }
        writeCaptureSummary(capture: output.display, facts: facts, totals: totals, more: limitLines)
        if !limitLines.isEmpty { throw ExitCode(CaptureFile.memoryLimitExitStatus) }
    }
}
