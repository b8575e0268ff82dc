import CZstd
import Glibc

/// Where the recorded bytes go: the capture file, through one streaming zstd
/// frame unless compression is off. Used only by the writer thread, and by
/// stop (or `_exit`, or a fork child) once that thread is gone.
struct FileSink {
    let fd: Int32
    private let stream: OpaquePointer?   // ZSTD_CStream, nil when writing raw
    private let out: UnsafeMutablePointer<UInt8>
    private let outCapacity: Int
    /// errno (or -1 for a zstd failure) of the first failed write; nothing is written after it.
    private(set) var error: Int32 = 0

    init(fd: Int32, compress: Bool) {
        self.fd = fd
        outCapacity = ZSTD_CStreamOutSize()
        out = .allocate(capacity: outCapacity)
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

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let stream else { return writeAll(bytes) }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size && error == 0 { compress(stream, &input, ZSTD_e_continue) }
    }

    /// Ends the current zstd block, so everything written so far decodes
    /// (a capture cut off by SIGKILL reads up to here).
    mutating func syncPoint() {
        guard let stream else { return }
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while error == 0 && compress(stream, &input, ZSTD_e_flush) != 0 {}
    }

    /// Ends the frame and closes the file; returns the first error, 0 if none.
    /// Not `releasing` the buffers: for a process about to die of a signal.
    mutating func finish(releasing: Bool = true) -> Int32 {
        if let stream {
            var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
            while error == 0 && compress(stream, &input, ZSTD_e_end) != 0 {}
            if releasing { ZSTD_freeCStream(stream) }
        }
        if releasing { out.deallocate() }
        if close(fd) != 0 && error == 0 { error = errno }
        return error
    }

    /// One compression step; returns what zstd says is left to flush.
    @discardableResult
    private mutating func compress(_ stream: OpaquePointer, _ input: inout ZSTD_inBuffer, _ mode: ZSTD_EndDirective) -> Int {
        var output = ZSTD_outBuffer(dst: out, size: outCapacity, pos: 0)
        let remaining = ZSTD_compressStream2(stream, &output, &input, mode)
        if ZSTD_isError(remaining) != 0 {
            error = -1
            return 0
        }
        writeAll(UnsafeRawBufferPointer(start: out, count: output.pos))
        return remaining
    }

    private mutating func writeAll(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count && error == 0 {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno != EINTR { error = errno }
                continue
            }
            offset += n
        }
    }
}
