// `--memory-limit`'s floor under `run` and `attach`: heapscope run looks at
// the program's room while it waits for it (RunProcess.swift), heapscope
// attach while it records (AttachCommand.swift). The room and the floor are
// HeapscopeSystem's (MemoryRoom.swift), shared with the tracker, which
// watches them itself under a `heapscope.Tracker` with a memory limit.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HeapscopeSystem

/// Stops a process whose memory room fell under the floor, as a supervisor
/// would: SIGTERM (the tracker then ends the capture at once: docs/CLI.md,
/// "Signals"), and SIGKILL if it is still running 10 s later.
struct FloorWatch {
    var cgroups: MemoryCgroups
    /// The room the process had when it was stopped.
    private(set) var reached: MemoryRoom?
    private var killAfter = Double.infinity

    init(cgroups: MemoryCgroups) { self.cgroups = cgroups }

    /// One look at the room (run: every 10 ms; attach: every status poll).
    mutating func check(_ pid: pid_t) {
        if reached == nil, let room = cgroups.room(), room.isBelowFloor {
            reached = room
            kill(pid, SIGTERM)
            killAfter = monotonicSeconds() + 10
        } else if monotonicSeconds() > killAfter {
            kill(pid, SIGKILL)
            killAfter = .infinity
        }
    }
}
