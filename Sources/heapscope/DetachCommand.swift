// `heapscope detach PID`: ends the recording `heapscope attach` started in a
// process. It calls hs_attach_stop in it, which schedules the stop at the
// next safe point; detach waits for the capture to be finished, and the
// attach that started it prints the summary.

import ArgumentParser

struct DetachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Stop recording a process that `heapscope attach` is recording.",
        discussion: "The `heapscope attach` that started the recording prints its summary. See docs/ATTACH.md."
    )

    @Option(help: ArgumentHelp("How long to wait for the process to reach a safe point.", valueName: "seconds"))
    var timeout: Double = 10

    @Argument(help: ArgumentHelp("The id of the Python process.", valueName: "pid"))
    var pid: String

    func run() throws {
        if !(timeout > 0) { throw commandFail("--timeout must be a positive number of seconds") }
        let target = try AttachTarget.inspect(pid)
        if target.loadedTrackers.isEmpty {
            throw commandFail("\(target.described) is not being tracked by heapscope (no heapscope tracker is loaded in it)")
        }
        try target.checkPtracePermission()
        let status = StatusFile(path: try TrackerCalls(target: target).statusPath())
        let capture: String? = if case .running(let path) = status.read() { path } else { nil }
        let session = AttachSession(target: target, status: status, timeout: timeout)
        switch try session.requestStop() {
        case .notTracked:
            throw commandFail("\(target.described) is not being tracked by heapscope")
        case .otherTracker:
            throw commandFail(
                "\(target.described) is tracked by heapscope run or a heapscope.Tracker, not by attach: "
                    + "that recording ends with the program or its Tracker")
        case .queueFull:
            throw commandFail("\(target.described) has too many pending calls queued; try again")
        case .cancelled:
            writeStderr("heapscope: cancelled the start still waiting for \(target.described) to reach a safe point\n")
            return
        case .scheduled, .alreadyStopping:
            break
        }
        switch session.waitForStop(timeout: timeout) {
        case .stopped, .gone:
            writeStderr("heapscope: detached from \(target.described)"
                        + (capture.map { "; capture: \($0)" } ?? "") + "\n")
        case .stillRunning:
            throw commandFail(
                "\(target.described) did not reach a safe point within \(formatSeconds(timeout)); tracking stops "
                    + "when its main thread next runs Python code")
        }
    }
}
