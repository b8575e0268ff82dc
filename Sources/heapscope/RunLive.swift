// `heapscope run --live` and `--live-remote`: the tracker's writer thread
// sends the record stream over a socket pair (its `live_fd`) to this process,
// which stores all of it (LiveStore) and shows it (LiveViewer) or serves it to
// viewers on loopback (LiveServer). The program's own capture, with -o, is
// written as in any run.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum LiveMode {
    /// The view in this terminal; `run`'s program's stdout and stderr go to `output`.
    case local(output: String?)
    /// Serve viewers on 127.0.0.1:`port` (0: a free one).
    case remote(port: Int)

    /// The live mode `run`'s options ask for, checked: nil without one.
    static func make(_ cmd: RunCommand) throws -> LiveMode? {
        if cmd.liveOutput != nil && !cmd.live { throw commandFail("--live-output works with --live") }
        guard let mode = try make(live: cmd.live, liveRemote: cmd.liveRemote, livePort: cmd.livePort,
                                  followFork: cmd.tracking.followFork) else { return nil }
        if cmd.referrers && cmd.output == nil { throw commandFail("--referrers in live mode needs -o FILE (it writes next to the capture)") }
        if case .local = mode { return .local(output: cmd.liveOutput) }
        return mode
    }

    /// The live mode the flags `run` and `attach` share ask for, checked: nil without one.
    static func make(live: Bool, liveRemote: Bool, livePort: Int?, followFork: Bool) throws -> LiveMode? {
        if live && liveRemote { throw commandFail("--live and --live-remote cannot be used together") }
        if livePort != nil && !liveRemote { throw commandFail("--live-port works with --live-remote") }
        guard live || liveRemote else { return nil }
        if followFork { throw commandFail("live mode does not follow child processes: leave out --follow-fork") }
        if live {
            guard LiveTerminal.isAvailable else {
                throw commandFail("--live needs a terminal: standard input and output are not one (use --live-remote and watch with `heapscope live PORT` from a terminal)")
            }
            return .local(output: nil)
        }
        let port = livePort ?? 0
        guard (1...65535).contains(port) || livePort == nil else {
            throw commandFail("--live-port must be between 1 and 65535, not \(port)")
        }
        return .remote(port: port)
    }

    /// With the default output file named, and refused if it exists.
    func withOutput(stem: String) throws -> LiveMode {
        guard case .local(let output) = self else { return self }
        let path = output ?? "heapscope-\(stem).\(getpid()).out"
        if path.isEmpty { throw commandFail("--live-output is empty") }
        var st = stat()
        if lstat(path, &st) == 0 { throw commandFail("--live-output: the file already exists: \(path)") }
        return .local(output: path)
    }
}

extension RunPlan {
    /// The program's stdout and stderr for --live (created; never replaced).
    static func openLiveOutput(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw commandFail("--live-output: cannot create \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Stores the feed until the program closes it, then waits for the program:
    /// the store ends with how it ended.
    func followFeed(_ feed: Int32, pid: pid_t, store: LiveStore) -> ChildStatus {
        _ = store.receive(from: feed)
        close(feed)
        let status = waitForChild(pid).status
        store.end(exit: status)
        return status
    }

    /// `run --live`: the view in this terminal until the user quits or, after
    /// q stopped it, the program ended.
    func showLive(feed: Int32, pid: pid_t, store: LiveStore, output: String) -> ChildStatus {
        let plan = self
        startThread { _ = plan.followFeed(feed, pid: pid, store: store) }
        let stop = {
            kill(pid, SIGINT)
            startThread {
                for _ in 0..<300 where !store.snapshot().ended { usleep(10_000) }
                if !store.snapshot().ended { kill(pid, SIGKILL) }
            }
        }
        LiveViewer(store: store,
                   stop: LiveStop(prompt: "Stop the program? It gets SIGINT, then SIGKILL if it does not end. (y/n)",
                                  note: "stopping the program (SIGINT sent; SIGKILL if it has not ended in 3 s)", action: stop),
                   note: "program output: \(output)", lostText: "the program's stream ended").run()
        writeStderr("heapscope: the program's output is in \(output)\n")
        // The view only ends once the program has (q asks to stop it first).
        return store.snapshot().exit ?? waitForChild(pid).status
    }

    /// `run --live-remote`: serves viewers while the program runs, then lets
    /// them read the end of the stream (a few seconds at most).
    func serveLive(feed: Int32, pid: pid_t, store: LiveStore, listener: LiveListener, first: Int32) -> ChildStatus {
        let viewers = LiveViewers()
        listener.serve(first: first, store: store, viewers: viewers)
        let status = followFeed(feed, pid: pid, store: store)
        viewers.waitUntilServed(seconds: 5)
        return status
    }
}
