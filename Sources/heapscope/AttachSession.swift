// One attach, from the call that schedules the start to the stop; the
// Python half that the entry points run is PythonHarness/heapscope/_attach.py.

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why recording ended.
enum AttachEnd { case requested, detached, exited }

/// One attach, from the call that schedules the start to the stop.
struct AttachSession {
    var target: AttachTarget
    var status: StatusFile
    var timeout: Double

    /// Loads the tracker and schedules the start; returns once tracking runs
    /// (the monotonic time it was seen running).
    func start(tracker: TrackerLibrary, options: String) throws -> Double {
        let deadline = monotonicSeconds() + timeout
        let answer = try TrackerCalls(target: target).loadAndStart(
            tracker, status: status, options: options, deadlineNanoseconds: UInt64(deadline * 1e9))
        switch answer {
        case 0: break
        case 1: throw commandFail("\(target.described) is already being tracked by heapscope")
        case 2: throw commandFail("\(target.described) has too many pending calls queued; try again")
        case 3: throw commandFail("heapscope's tracker could not start in \(target.described): out of memory")
        default: throw commandFail("heapscope's tracker in \(target.described) gave an unknown answer (\(answer)) to the start")
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
    /// `floor`: with --memory-limit, the target's memory room is watched meanwhile.
    func record(until end: Double?, floor: inout FloorWatch?) throws -> AttachEnd {
        while true {
            switch status.read() {
            case .stopped(let atExit, _): return atExit ? .exited : .detached
            case .failed(let message): throw commandFail("process \(target.pid): \(message)")
            default: break
            }
            // Gone without a word: os._exit (the _exit hook finished the capture) or a kill.
            if !target.isRunning { return .exited }
            if interrupted() || (end.map { monotonicSeconds() >= $0 } ?? false) { break }
            floor?.check(target.pid)
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

    /// Calls hs_attach_stop: stops tracking at the target's next safe point,
    /// or cancels a start still waiting for one.
    func requestStop() throws -> StopRequest {
        let answer = try TrackerCalls(target: target).stop()
        guard let request = StopRequest(rawValue: Int(answer)) else {
            throw commandFail("heapscope's tracker in \(target.described) gave an unknown answer (\(answer)) to the stop")
        }
        return request
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

/// Sleeps a little between two looks at the status file.
func pollPause() {
    var ts = timespec(tv_sec: 0, tv_nsec: 20_000_000)
    nanosleep(&ts, nil)
}
