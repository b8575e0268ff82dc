// Live mode's copy of the capture stream (docs/FORMAT.md, "The live stream"):
// every frame received is appended to a temporary file, so the figures
// always come from the whole stream. A viewer (or the replay behind the
// screen) reads it at its own pace: a slow one shows older figures or skips
// screen refreshes, and no event is ever dropped; a viewer connecting later
// is sent the file from its first byte, its tables included.

import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension ChildStatus {
    var description: String {
        switch self {
        case .exited(let code): return "the program exited with status \(code)"
        case .signaled(let sig): return "the program was killed by signal \(sig) (\(String(cString: strsignal(sig))))"
        }
    }

    /// The live stream's last frame, which says how the program ended.
    var liveFrame: [UInt8] {
        let (how, value): (Int32, Int32) = switch self {
        case .exited(let code): (0, code)
        case .signaled(let sig): (1, sig)
        }
        var bytes = LiveStream.frameHeader(type: LiveStream.exitFrame, length: 8)
        for word in [how, value] { withUnsafeBytes(of: word.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }
}

final class LiveStore: @unchecked Sendable {
    /// The capture so far, in a file unlinked at once: nothing is left behind, however heapscope ends.
    private let fd: Int32
    private var mutex = pthread_mutex_t()
    private var grown = pthread_cond_t()
    private var length = 0
    private var ended = false
    private var exit: ChildStatus?
    /// Why the stream ended, when no exit status says it (`attach`: detached, the process exited).
    private var reason: String?

    init() throws {
        let directory = getenvString("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(directory)/heapscope-live-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkostemp($0.baseAddress!, O_CLOEXEC) }
        guard fd >= 0 else {
            throw commandFail("cannot create the live view's file in \(directory): \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&grown, nil)
    }

    deinit { close(fd) }

    /// The state now: bytes stored, whether the stream ended, how the program ended (or why the stream did).
    func snapshot() -> (length: Int, ended: Bool, exit: ChildStatus?, reason: String?) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return (length, ended, exit, reason)
    }

    /// Waits (at most `milliseconds`) until more than `offset` bytes are stored or the stream ended.
    func wait(beyond offset: Int, milliseconds: Int) -> (length: Int, ended: Bool, exit: ChildStatus?) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let ns = deadline.tv_nsec + milliseconds * 1_000_000
        deadline.tv_sec += ns / 1_000_000_000
        deadline.tv_nsec = ns % 1_000_000_000
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while length <= offset && !ended {
            if pthread_cond_timedwait(&grown, &mutex, &deadline) == ETIMEDOUT { break }
        }
        return (length, ended, exit)
    }

    /// Bytes `[offset, offset + count)` of the stream.
    func read(at offset: Int, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n <= 0 { break }
            done += n
        }
        return Array(bytes.prefix(done))
    }

    /// Gives the disk space of bytes `[0, offset)` back: a reader that
    /// replays the stream once (`--aggregate`) never reads them again, so a
    /// long run keeps only what it has not read yet. Reading them gives zeros.
    func release(before offset: Int) {
        let punchHole: Int32 = 0x02, keepSize: Int32 = 0x01   // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (linux/falloc.h)
        _ = fallocate(fd, punchHole | keepSize, 0, off_t(offset))
    }

    private func append(_ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(length + done)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        pthread_mutex_lock(&mutex)
        length += bytes.count
        pthread_cond_broadcast(&grown)
        pthread_mutex_unlock(&mutex)
        return true
    }

    /// Nothing more will be stored; `exit`, if known, is how the program ended;
    /// else `reason`, if given, says why the stream ended.
    func end(exit: ChildStatus?, reason: String? = nil) {
        pthread_mutex_lock(&mutex)
        ended = true
        if let exit { self.exit = exit }
        if let reason { self.reason = reason }
        pthread_cond_broadcast(&grown)
        pthread_mutex_unlock(&mutex)
    }

    /// Stores the frames read from `socket` until it closes (or sends garbage,
    /// or an exit frame, the last one). Returns how the program ended, when a
    /// frame said so. Does not end the store.
    func receive(from socket: Int32) -> ChildStatus? {
        while true {
            guard let header = readExactly(socket, LiveStream.frameHeaderSize) else { return nil }
            let count = Int(header[1]) | Int(header[2]) << 8 | Int(header[3]) << 16 | Int(header[4]) << 24
            guard let payload = readExactly(socket, count) else { return nil }
            switch header[0] {
            case LiveStream.captureFrame:
                guard append(payload) else { return nil }
            case LiveStream.exitFrame where count == 8:
                let how = payload.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: Int32.self)) }
                let value = payload.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: Int32.self)) }
                return how == 0 ? .exited(value) : .signaled(value)
            default:
                return nil
            }
        }
    }
}

/// `count` bytes from `fd`, or nil at its end or on an error.
func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
        let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return nil }
        done += n
    }
    return bytes
}

/// All of `bytes` to a socket; false once the other side is gone.
func sendAll(_ socket: Int32, _ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { send(socket, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

/// Runs `body` on a new detached thread.
func startThread(_ body: @escaping () -> Void) {
    final class Box: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    if rc == 0 { pthread_detach(thread) } else { Unmanaged<Box>.fromOpaque(box).release() }
}
