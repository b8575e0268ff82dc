import CZstd
import Glibc
import HeapscopeWire

/// Where the recorded bytes go: the capture file, through one streaming zstd
/// frame unless compression is off. Used only by the writer thread, and by
/// stop (or `_exit`, or a fork child) once that thread is gone.
///
/// When the file cannot take more (disk full, file deleted, any write error)
/// nothing more is written and `stopCause` says why; on a full disk the file is
/// cut back to its last record boundary and ends with a STOPPED record
/// (docs/FORMAT.md), so it reads to there and says why it ends.
struct FileSink {
    let fd: Int32
    private let stream: OpaquePointer?   // ZSTD_CStream, nil when writing raw
    private let out: UnsafeMutablePointer<UInt8>
    private let outCapacity: Int
    /// errno (or -1 for a zstd failure) of the first failed write; nothing is written after it.
    private(set) var error: Int32 = 0
    private(set) var stopCause: StopCause?
    /// Bytes in the file so far.
    private var offset = 0
    /// File offsets where the stream ends between records (raw: after a chunk;
    /// zstd: after a flush), the newest at `boundaryCount - 1`, oldest dropped.
    private let boundaries: UnsafeMutablePointer<Int>
    private static let boundaryCapacity = 8
    private var boundaryCount = 0
    /// The recorder's clock origin, for the STOPPED record's time.
    private let startMonotonic = monotonicMicroseconds()
    /// Live mode: a socket to `heapscope run` that gets a copy of every byte
    /// written to the file, compressed as it is, in frames (docs/FORMAT.md,
    /// "The live stream"); -1 when none or once the other side is gone (the
    /// capture file goes on).
    private var feed: Int32

    init(fd: Int32, compress: Bool, feed: Int32 = -1) {
        self.fd = fd
        self.feed = feed
        outCapacity = ZSTD_CStreamOutSize()
        out = .allocate(capacity: outCapacity)
        boundaries = .allocate(capacity: Self.boundaryCapacity)
        if compress, let stream = ZSTD_createCStream() {
            // Level 3. Level 1 saves ~40% of this thread's CPU but made
            // captures 10-80% larger in bench/ (RESULTS.md); compression runs
            // on the writer's own core, off the program's path.
            ZSTD_initCStream(stream, 3)
            self.stream = stream
        } else {
            stream = nil
        }
    }

    /// Microseconds since the session started.
    var elapsedMicros: UInt64 { monotonicMicroseconds() &- startMonotonic }

    /// Writes one chunk (whole records).
    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let stream else {
            writeAll(bytes)
            if error == 0 { noteBoundary() }
            return
        }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size && error == 0 { compress(stream, &input, ZSTD_e_continue) }
        // The first chunk ends a block: a disk that fills before the first
        // sync point (the writer behind) still leaves a boundary to cut back to.
        if boundaryCount == 0 { syncPoint() }
    }

    /// Ends the current zstd block, so everything written so far decodes
    /// (a capture cut off by SIGKILL reads up to here). Also notices a capture
    /// file deleted (or its directory removed) while recording.
    mutating func syncPoint() {
        guard error == 0 else { return }
        var info = stat()
        if fstat(fd, &info) == 0 && info.st_nlink == 0 {
            error = ENOENT
            stopCause = .fileDeleted
            return
        }
        guard let stream else { return }
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while error == 0 && compress(stream, &input, ZSTD_e_flush) != 0 {}
        if error == 0 { noteBoundary() }
    }

    /// Ends the frame, appends `trailer` (raw, after the frame) and closes the
    /// file; returns the first error, 0 if none.
    /// Not `releasing` the buffers: for a process about to die of a signal.
    mutating func finish(releasing: Bool = true, trailer: [UInt8] = []) -> Int32 {
        if let stream {
            var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
            while error == 0 && compress(stream, &input, ZSTD_e_end) != 0 {}
            if releasing { ZSTD_freeCStream(stream) }
        }
        if error == 0 && !trailer.isEmpty { trailer.withUnsafeBytes { writeAll($0) } }
        if releasing {
            out.deallocate()
            boundaries.deallocate()
        }
        if feed >= 0 { close(feed) }
        if close(fd) != 0 && error == 0 { error = errno }
        return error
    }

    /// One frame to the live feed. Blocking, on the writer thread only: the
    /// hooks never wait (they queue chunks), and `heapscope run` reads the feed
    /// into its own store at once, whatever its viewers do. Compressed, the
    /// feed costs a tenth of the records' size.
    private mutating func sendToFeed(_ bytes: UnsafeRawBufferPointer) {
        let header = LiveStream.frameHeader(type: LiveStream.captureFrame, length: bytes.count)
        let sent = header.withUnsafeBytes { sendAll(feed, $0) } && sendAll(feed, bytes)
        if !sent {
            close(feed)
            feed = -1
        }
    }

    /// One compression step; returns what zstd says is left to flush.
    @discardableResult
    private mutating func compress(_ stream: OpaquePointer, _ input: inout ZSTD_inBuffer, _ mode: ZSTD_EndDirective) -> Int {
        var output = ZSTD_outBuffer(dst: out, size: outCapacity, pos: 0)
        let remaining = ZSTD_compressStream2(stream, &output, &input, mode)
        if ZSTD_isError(remaining) != 0 {
            error = -1
            stopCause = .writeFailed(errno: -1)
            return 0
        }
        writeAll(UnsafeRawBufferPointer(start: out, count: output.pos))
        return remaining
    }

    private mutating func writeAll(_ bytes: UnsafeRawBufferPointer) {
        var written = 0
        while written < bytes.count && error == 0 {
            let n = Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 {
                if errno != EINTR { failed(errno) }
                continue
            }
            written += n
            offset += n
        }
        if feed >= 0 && error == 0 { sendToFeed(bytes) }
    }

    private func sendAll(_ socket: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = send(socket, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }

    private mutating func noteBoundary() {
        if boundaryCount == Self.boundaryCapacity {
            boundaries.update(from: boundaries + 1, count: Self.boundaryCapacity - 1)
            boundaryCount -= 1
        }
        boundaries[boundaryCount] = offset
        boundaryCount += 1
    }

    private mutating func failed(_ code: Int32) {
        error = code
        guard code == ENOSPC || code == EDQUOT else {
            stopCause = .writeFailed(errno: code)
            return
        }
        stopCause = .diskFull
        endAtBoundary()
    }

    /// On a full disk: cuts the file back to a record boundary (giving back the
    /// blocks of what came after, a chunk or a zstd block at least) and ends it
    /// there with a STOPPED record. An older boundary is tried when the newest
    /// frees too little; with none left the file stays as it is.
    private mutating func endAtBoundary() {
        var record = StopCause.diskFull.record(timeMicros: elapsedMicros)
        if stream != nil {
            // A raw zstd block, the frame's last: 3-byte header (size << 3 | last).
            let header = UInt32(record.count) << 3 | 1
            record = [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16)] + record
        }
        while boundaryCount > 0 {
            boundaryCount -= 1
            let boundary = boundaries[boundaryCount]
            guard ftruncate(fd, off_t(boundary)) == 0, lseek(fd, off_t(boundary), SEEK_SET) == off_t(boundary) else { return }
            offset = boundary
            let written = record.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(boundary)) }
            if written == record.count { return }
            _ = ftruncate(fd, off_t(boundary))
        }
    }
}
