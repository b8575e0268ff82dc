// `heapscope run`'s child process: the interpreter is spawned with the
// bootstrap's environment and waited for; its end (exit status or signal) is
// heapscope's own.

import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HeapscopeSystem

enum ChildStatus: Equatable {
    case exited(Int32)
    case signaled(Int32)
}

extension RunPlan {
    func execute(quiet: Bool) throws -> ChildStatus {
        let argv = childArgv()
        // The bootstrap's "I ran" pipe: only its write end is inherited.
        var ready: [Int32] = [-1, -1]
        guard pipe2(&ready, O_CLOEXEC | O_NONBLOCK) == 0 else {
            throw commandFail("cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        defer { close(ready[0]) }
        _ = fcntl(ready[1], F_SETFD, 0)

        // Live mode: the feed's socket pair (the child's end inherited), the
        // store, and for --live-remote a first viewer before anything runs.
        var feed: [Int32] = [-1, -1]
        var store: LiveStore?
        var remote: (listener: LiveListener, first: Int32)?
        var liveOutput: Int32 = -1
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        if live != nil || aggregate {
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &feed) == 0 else {
                throw commandFail("cannot create a socket pair: \(String(cString: strerror(errno)))")
            }
            _ = fcntl(feed[1], F_SETFD, 0)
            store = try LiveStore()
            switch live {
            case nil: break
            case .local(let output):
                // The view owns the terminal: the program reads nothing from it and writes to the file.
                liveOutput = try Self.openLiveOutput(output!)
                posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_adddup2(&fileActions, liveOutput, 1)
                posix_spawn_file_actions_adddup2(&fileActions, liveOutput, 2)
            case .remote(let port):
                remote = try LiveListener.waitForFirstViewer(port: port, starting: "the program starts")
            }
        }
        let envp = childEnvironment(readyFD: ready[1], liveFD: store == nil ? nil : feed[1])

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
        var pid: pid_t = 0
        let rc = withCStrings(argv) { cArgv in
            withCStrings(envp) { cEnv in
                if argv[0].contains("/") {
                    return posix_spawn(&pid, cArgv[0]!, &fileActions, &attr, cArgv, cEnv)
                }
                return posix_spawnp(&pid, cArgv[0]!, &fileActions, &attr, cArgv, cEnv)
            }
        }
        close(ready[1])
        if feed[1] >= 0 { close(feed[1]) }
        if liveOutput >= 0 { close(liveOutput) }
        if rc != 0 {
            throw commandFail("cannot run the Python interpreter \(python): \(String(cString: strerror(rc)))")
        }

        let cgroups = MemoryCgroups()
        let oomKillsBefore = cgroups.oomKills()
        var result: ChildStatus
        // The memory floor is watched while heapscope only waits; the live
        // views wait in their own loops and leave it to the tracker's limit.
        var floorReached: MemoryRoom?
        switch live {
        case .local(let output)?: result = showLive(feed: feed[0], pid: pid, store: store!, output: output!)
        case .remote?: result = serveLive(feed: feed[0], pid: pid, store: store!, listener: remote!.listener, first: remote!.first)
        case nil where aggregate:
            let path = pidInOutput ? absoluteOutput.replacing("{pid}", with: String(pid)) : absoluteOutput
            result = followAggregate(feed: feed[0], pid: pid, store: store!, path: path)
        case nil: (result, floorReached) = waitForChild(pid, floorIn: memoryLimit == nil ? nil : cgroups)
        }
        let elapsed = monotonicSeconds() - start

        var byte: UInt8 = 0
        if read(ready[0], &byte, 1) != 1 {
            writeStderr("heapscope: error: the program ran untracked: \(python) did not run heapscope's bootstrap "
                + "(an interpreter that ignores PYTHONPATH, e.g. one started with -E, -I or -S, cannot be profiled by heapscope run)\n")
            if case .exited(0) = result { result = .exited(2) }
            return result
        }

        guard writesCapture else { return result }
        let path = pidInOutput ? displayOutput.replacing("{pid}", with: String(pid)) : displayOutput
        let absolutePath = pidInOutput ? absoluteOutput.replacing("{pid}", with: String(pid)) : absoluteOutput
        guard captureWritten(at: absolutePath, replacing: previousOutput) else { return result }
        // Read only for what is printed: without a summary trailer (`-q`
        // counts none, a capture cut short has none) it is a replay.
        let totals = !quiet || stoppedByTracker(result, limit: memoryLimit) ? captureTotals(path: absolutePath) : nil
        var atLimit = stoppedAtMemoryLimit(result, limit: memoryLimit, totals: totals)
        var limitLines = atLimit ? memoryLimitReport(capture: path, limit: memoryLimit!) : []
        if let room = floorReached {
            // Whatever the program did on SIGTERM, heapscope stopped it.
            atLimit = true
            result = .exited(CaptureFile.memoryLimitExitStatus)
            limitLines = memoryFloorReport(capture: path, room: room)
        } else if case .signaled(SIGKILL) = result {
            limitLines = killedReport(capture: path, byOOMKiller: cgroups.oomKills() > oomKillsBefore)
        }
        let children = options.tracking.followFork ? childCaptures(of: path) : []
        if !quiet {
            reportCapture(path: path, absolutePath: absolutePath, elapsed: elapsed, status: result, totals: totals, atLimit: atLimit,
                          limitLines: limitLines, children: children)
        }
        return result
    }

}

/// Waits for the program to end; its status is heapscope's. With `floorIn`,
/// watches the memory it can still get every 10 ms meanwhile (`FloorWatch`);
/// `floor` is the room it had if it was stopped at the floor.
func waitForChild(_ pid: pid_t, floorIn cgroups: MemoryCgroups? = nil) -> (status: ChildStatus, floor: MemoryRoom?) {
    var status: Int32 = 0
    var watch = cgroups.map(FloorWatch.init)
    while true {
        let rc = waitpid(pid, &status, watch == nil ? 0 : WNOHANG)
        if rc == pid { break }
        if rc < 0 && errno != EINTR {
            writeStderr("heapscope: error: waiting for the program failed: \(String(cString: strerror(errno)))\n")
            return (.exited(2), watch?.reached)
        }
        guard rc == 0 else { continue }
        watch?.check(pid)
        usleep(10_000)
    }
    return ((status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f), watch?.reached)
}

private func isIgnored(_ handler: __sighandler_t?) -> Bool {
    guard let handler else { return false }
    return unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
}

/// Dies of `sig` the way the child did, so the shell sees the same status.
func reraise(signal sig: Int32) -> Never {
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

