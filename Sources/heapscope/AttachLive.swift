// `heapscope attach --live` and `--live-remote`: the attached tracker sends
// its record stream, as under `run --live` (RunLive.swift), to a Unix socket
// heapscope listens on in a private directory; heapscope._attach connects to
// it in the target and hands the descriptor to the Tracker (its `live_fd`).
// The same store, view and server as `run` follow it. The target is not
// heapscope's child: the view's q detaches (the target runs on) and the
// stream ends when tracking stops (--duration, detach, q, the target's exit).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The listener the target's feed connects to: `feed` in a 0700 directory
/// next to the capture (a directory the target must see anyway, as for the
/// status file); only a connection from the target itself is accepted.
struct FeedListener {
    let directory: String
    let path: String
    let socket: Int32

    static func open(for target: AttachTarget, next output: CaptureOutput) throws -> FeedListener {
        let parent = parentDirectory(of: output.absolute)
        var template = Array("\(parent)/.heapscope-live-\(target.pid).XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw commandFail("cannot create the live feed's directory in \(parent): \(String(cString: strerror(errno)))")
        }
        let directory = cStringBuffer(template)
        let path = directory + "/feed"
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            rmdir(directory)
            throw commandFail("the live feed's socket path is too long (\(path.utf8.count) bytes, at most \(capacity - 1)): use -o in a shorter directory")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = fd >= 0 && withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, __CONST_SOCKADDR_ARG(__sockaddr__: $0), socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0 && listen(fd, 1) == 0
        guard bound else {
            let code = errno
            if fd >= 0 { close(fd) }
            unlink(path)
            rmdir(directory)
            throw commandFail("cannot listen on \(path): \(String(cString: strerror(code)))")
        }
        // root attaching to another user's process: that user must reach the socket.
        if geteuid() == 0 && target.uid != 0 {
            _ = chown(directory, target.uid, target.gid)
            _ = chown(path, target.uid, target.gid)
        }
        return FeedListener(directory: directory, path: path, socket: fd)
    }

    /// The target's connection: it connected before it reported tracking as
    /// running, so it is already queued; nil if it is not (or another process's).
    func accept(from pid: Int32) -> Int32? {
        var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 2000) > 0 else { return nil }
        let fd = Glibc.accept4(socket, __SOCKADDR_ARG(__sockaddr__: nil), nil, Int32(SOCK_CLOEXEC.rawValue))
        guard fd >= 0 else { return nil }
        var peer = ucred()
        var length = socklen_t(MemoryLayout<ucred>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) == 0, peer.pid == pid else {
            close(fd)
            return nil
        }
        return fd
    }

    func remove() {
        close(socket)
        unlink(path)
        rmdir(directory)
    }
}

/// A value one thread sets and another waits for.
private final class Handoff<Value>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var set = pthread_cond_t()
    private var value: Value?

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&set, nil)
    }

    func put(_ value: Value) {
        pthread_mutex_lock(&mutex)
        self.value = value
        pthread_cond_broadcast(&set)
        pthread_mutex_unlock(&mutex)
    }

    /// The value, waiting for it at most `seconds` (forever: nil).
    func take(seconds: Double? = nil) -> Value? {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let ns = deadline.tv_nsec + Int((seconds ?? 0).truncatingRemainder(dividingBy: 1) * 1e9)
        deadline.tv_sec += Int(seconds ?? 0) + ns / 1_000_000_000
        deadline.tv_nsec = ns % 1_000_000_000
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while value == nil {
            if seconds == nil {
                pthread_cond_wait(&set, &mutex)
            } else if pthread_cond_timedwait(&set, &mutex, &deadline) == ETIMEDOUT {
                break
            }
        }
        return value
    }
}

extension AttachEnd {
    /// What the view says once the stream has ended.
    var liveReason: String {
        switch self {
        case .requested: return "detached: the process runs on untracked"
        case .detached: return "detached by heapscope detach: the process runs on untracked"
        case .exited: return "the process exited"
        }
    }
}

extension AttachSession {
    /// Records as `record(until:)` does while the feed fills `store`, shown in
    /// this terminal, served to viewers (`remote`) or aggregated into the
    /// capture at `aggregateTo` (--aggregate); the store ends with why
    /// recording ended.
    func recordLive(feed: Int32, store: LiveStore, remote: (listener: LiveListener, first: Int32)?,
                    aggregateTo: String? = nil, until end: Double?) throws -> AttachEnd {
        let received = Handoff<Bool>()
        startThread {
            _ = store.receive(from: feed)
            received.put(true)
        }
        let session = self
        // The tracker closes the feed when it stops: the stream's end. If it
        // did not stop, shutting our end down makes its sends fail, and it
        // records on into the capture alone.
        let recordAndEnd = { () -> Result<AttachEnd, Error> in
            var noFloor: FloorWatch?
            let result = Result { try session.record(until: end, floor: &noFloor) }
            if (try? result.get()) == nil || received.take(seconds: session.timeout) == nil {
                shutdown(feed, Int32(SHUT_RDWR))
                _ = received.take()
            }
            close(feed)
            store.end(exit: nil, reason: (try? result.get())?.liveReason ?? "recording ended with an error (shown when this view closes)")
            return result
        }
        if let remote {
            let viewers = LiveViewers()
            remote.listener.serve(first: remote.first, store: store, viewers: viewers)
            let result = recordAndEnd()
            viewers.waitUntilServed(seconds: 5)
            return try result.get()
        }
        let outcome = Handoff<Result<AttachEnd, Error>>()
        startThread { outcome.put(recordAndEnd()) }
        if let aggregateTo {
            AggregateWriter.follow(store, to: aggregateTo)
            return try outcome.take()!.get()
        }
        LiveViewer(store: store,
                   stop: LiveStop(prompt: "Detach from process \(target.pid)? Tracking stops; the process runs on. (y/n)",
                                  note: "detaching (the process runs on)", quit: "detach", onSignals: true,
                                  action: endRecording),
                   note: "process \(target.pid); q detaches (the process runs on)",
                   lostText: "the stream ended").run()
        // A view closed after the stream ended early (the feed failed), or by a signal, still ends the recording.
        endRecording()
        return try outcome.take()!.get()
    }
}
