// The live stream over loopback TCP (docs/FORMAT.md, "The live stream"):
// `run --live-remote` listens on 127.0.0.1 only and sends every viewer the
// greeting, then the whole stream from its first byte (so a viewer that comes
// later has every table it needs), then the frames as they come, then how the
// program ended. Viewers are served side by side, each by its own thread at
// its own pace; none of them can slow the program.

import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How long a viewer waits for the greeting before it says the port is not heapscope's.
let liveGreetingTimeoutMilliseconds: Int32 = 3000

struct LiveListener {
    let socket: Int32
    let port: Int

    /// Listens on 127.0.0.1:`port` (0: a free port the system picks).
    static func open(port: Int) throws -> LiveListener {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw commandFail("cannot create a socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, __CONST_SOCKADDR_ARG(__sockaddr__: $0), socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            let code = errno
            close(fd)
            if code == EADDRINUSE { throw commandFail("--live-port \(port): the port is already in use on 127.0.0.1") }
            throw commandFail("cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(code)))")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, __SOCKADDR_ARG(__sockaddr__: $0), &length) }
        }
        return LiveListener(socket: fd, port: Int(UInt16(bigEndian: actual.sin_port)))
    }

    /// Before recording starts: the listener for --live-remote, and its first
    /// viewer, greeted at once (so it does not give up while attach loads
    /// the tracker); `starting` says what waits for it ("the program starts").
    static func waitForFirstViewer(port: Int, starting: String) throws -> (LiveListener, Int32) {
        let listener = try LiveListener.open(port: port)
        writeStderr("heapscope: live view on 127.0.0.1:\(listener.port): watch it with `heapscope live \(listener.port)`; "
            + "\(starting) when a viewer connects\n")
        guard let first = listener.accept() else {
            throw commandFail("cannot accept a viewer on 127.0.0.1:\(listener.port): \(String(cString: strerror(errno)))")
        }
        _ = sendAll(first, LiveStream.greeting)
        return (listener, first)
    }

    /// The next viewer's connection (blocking).
    func accept() -> Int32? {
        while true {
            let fd = Glibc.accept4(socket, __SOCKADDR_ARG(__sockaddr__: nil), nil, Int32(SOCK_CLOEXEC.rawValue))
            if fd >= 0 { return fd }
            if errno != EINTR && errno != ECONNABORTED { return nil }
        }
    }

    /// Serves `first` (already greeted), then every viewer that connects, until the process ends.
    func serve(first: Int32, store: LiveStore, viewers: LiveViewers) {
        viewers.serve(first, store: store, greeted: true)
        startThread {
            while let fd = accept() { viewers.serve(fd, store: store) }
        }
    }
}

/// The viewers being served, so `run --live-remote` can let them read the end
/// of the stream before it exits.
final class LiveViewers: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var active = 0

    init() { pthread_mutex_init(&mutex, nil) }

    func serve(_ socket: Int32, store: LiveStore, greeted: Bool = false) {
        change(by: 1)
        startThread { [self] in
            defer {
                close(socket)
                change(by: -1)
            }
            guard greeted || sendAll(socket, LiveStream.greeting) else { return }
            var offset = 0
            while true {
                let stored = store.wait(beyond: offset, milliseconds: 200)
                if stored.length > offset {
                    let payload = store.read(at: offset, count: min(stored.length - offset, 1 << 20))
                    guard !payload.isEmpty,
                          sendAll(socket, LiveStream.frameHeader(type: LiveStream.captureFrame, length: payload.count) + payload)
                    else { return }
                    offset += payload.count
                } else if stored.ended {
                    if let exit = stored.exit { _ = sendAll(socket, exit.liveFrame) }
                    return
                }
            }
        }
    }

    /// Waits until every viewer was sent the whole stream, at most `seconds`.
    func waitUntilServed(seconds: Double) {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            pthread_mutex_lock(&mutex)
            let busy = active
            pthread_mutex_unlock(&mutex)
            if busy == 0 { return }
            usleep(20_000)
        }
    }

    private func change(by delta: Int) {
        pthread_mutex_lock(&mutex)
        active += delta
        pthread_mutex_unlock(&mutex)
    }
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
    return address
}

/// Connects to a live port on 127.0.0.1 and reads its greeting; one clear
/// error when nothing listens there or what answers is not heapscope.
func connectToLive(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw commandFail("cannot create a socket: \(String(cString: strerror(errno)))") }
    var address = loopback(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, __CONST_SOCKADDR_ARG(__sockaddr__: $0), socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        let code = errno
        close(fd)
        if code == ECONNREFUSED {
            throw commandFail("nothing listens on 127.0.0.1:\(port) (start the program with `heapscope run --live-remote --live-port \(port) ...`)")
        }
        throw commandFail("cannot connect to 127.0.0.1:\(port): \(String(cString: strerror(code)))")
    }
    let greeting = LiveStream.greeting
    var received: [UInt8] = []
    let deadline = monotonicSeconds() + Double(liveGreetingTimeoutMilliseconds) / 1000
    while received.count < greeting.count {
        let left = Int32(max(0, (deadline - monotonicSeconds()) * 1000))
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard left > 0, poll(&poller, 1, left) > 0 else {
            close(fd)
            throw commandFail("127.0.0.1:\(port) is not a heapscope live port: it sent no greeting in \(liveGreetingTimeoutMilliseconds / 1000) s")
        }
        var buffer = [UInt8](repeating: 0, count: greeting.count - received.count)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, greeting.starts(with: received + buffer.prefix(n)) else {
            close(fd)
            throw commandFail("127.0.0.1:\(port) is not a heapscope live port (it \(n > 0 ? "answered something else" : "closed the connection"))")
        }
        received += buffer.prefix(n)
    }
    return fd
}
