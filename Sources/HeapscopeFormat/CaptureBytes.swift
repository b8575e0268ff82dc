internal import CZstd
internal import Glibc

/// The uncompressed capture stream in memory: a read-only mapping of a raw
/// capture, or the decompressed bytes of a zstd one. Owns the memory.
final class CaptureBytes {
    let start: UnsafePointer<UInt8>
    let count: Int
    let wasCompressed: Bool
    /// The zstd frame ended early: the bytes hold what could be decompressed.
    let compressedFrameCutShort: Bool
    private let release: Release

    /// How the memory goes back.
    private enum Release {
        case unmapFile(length: Int)
        case free
    }

    private init(start: UnsafePointer<UInt8>, count: Int, wasCompressed: Bool, cutShort: Bool, release: Release) {
        self.start = start
        self.count = count
        self.wasCompressed = wasCompressed
        self.compressedFrameCutShort = cutShort
        self.release = release
    }

    deinit {
        let memory = UnsafeMutableRawPointer(mutating: start)
        switch release {
        case .unmapFile(let length): munmap(memory, length)
        case .free: Glibc.free(memory)
        }
    }

    var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: start, count: count) }

    /// Maps (or reads) the file at `path`, decompressing it if it is zstd.
    static func load(path: String) throws(CaptureError) -> CaptureBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw code == ENOENT ? .fileNotFound : .unreadable(reason: errorText(code))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(reason: errorText(errno)) }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw .unreadable(reason: "it is a directory") }

        if (info.st_mode & S_IFMT) == S_IFREG {
            let length = Int(info.st_size)
            guard length > 0 else { throw .emptyFile }
            guard let mapping = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else {
                throw .unreadable(reason: errorText(errno))
            }
            // Sequential scan: let the kernel read ahead generously.
            madvise(mapping, length, MADV_SEQUENTIAL)
            let raw = CaptureBytes(start: mapping.assumingMemoryBound(to: UInt8.self), count: length,
                                   wasCompressed: false, cutShort: false, release: .unmapFile(length: length))
            return try raw.isZstd ? decompress(raw.buffer) : raw
        }
        // A pipe or a device: read it to the end.
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 {
                if errno == EINTR { continue }
                throw .unreadable(reason: errorText(errno))
            }
            if got == 0 { break }
            bytes.append(contentsOf: chunk[0..<got])
        }
        return try load(bytes: bytes)
    }

    /// A copy of `bytes`, decompressed if they are zstd.
    static func load(bytes: [UInt8]) throws(CaptureError) -> CaptureBytes {
        guard !bytes.isEmpty else { throw .emptyFile }
        if bytes.starts(with: CaptureFile.zstdMagic) {
            return try bytes.withUnsafeBufferPointer { (input) throws(CaptureError) in try decompress(input) }
        }
        let copy = malloc(bytes.count)!.assumingMemoryBound(to: UInt8.self)
        copy.initialize(from: bytes, count: bytes.count)
        return CaptureBytes(start: copy, count: bytes.count, wasCompressed: false, cutShort: false, release: .free)
    }

    /// `head` then `tail`, as they are (no zstd detection): the unread rest of
    /// a live stream and what followed it.
    static func joining(_ head: UnsafeBufferPointer<UInt8>, _ tail: [UInt8]) -> CaptureBytes {
        let copy = malloc(max(1, head.count + tail.count))!.assumingMemoryBound(to: UInt8.self)
        if let start = head.baseAddress { copy.initialize(from: start, count: head.count) }
        (copy + head.count).initialize(from: tail, count: tail.count)
        return CaptureBytes(start: copy, count: head.count + tail.count, wasCompressed: false, cutShort: false, release: .free)
    }

    private var isZstd: Bool { buffer.starts(with: CaptureFile.zstdMagic) }

    /// Streams every zstd frame in `input` into one growing buffer.
    private static func decompress(_ input: UnsafeBufferPointer<UInt8>) throws(CaptureError) -> CaptureBytes {
        guard let context = ZSTD_createDCtx() else { throw .unreadable(reason: "out of memory") }
        defer { ZSTD_freeDCtx(context) }

        // A damaged header may claim any size: the declared size is trusted only up to
        // a bound set by the input's own length (which also excludes zstd's "unknown"
        // and "error" markers). Beyond it the buffer grows with what really decompresses.
        let bound = max(input.count &* 32, 1 << 20)
        var capacity = bound
        let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if declared <= UInt64(bound) { capacity = max(Int(declared), 1) }
        guard var output = malloc(capacity) else { throw .unreadable(reason: "out of memory decompressing the capture") }
        var produced = 0
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var cutShort = false
        while true {
            if produced == capacity {
                capacity *= 2
                guard let grown = realloc(output, capacity) else {
                    Glibc.free(output)
                    throw .unreadable(reason: "out of memory decompressing the capture")
                }
                output = grown
            }
            var target = ZSTD_outBuffer(dst: output + produced, size: capacity - produced, pos: 0)
            let result = ZSTD_decompressStream(context, &target, &source)
            if ZSTD_isError(result) != 0 {
                Glibc.free(output)
                throw .damagedCompression(String(cString: ZSTD_getErrorName(result)))
            }
            produced += target.pos
            let inputDone = source.pos == source.size
            if inputDone && result == 0 { break }
            // All input consumed and room left in the output: the decoder has given
            // everything it can, and wants more input than the file holds.
            if inputDone && target.pos < target.size {
                cutShort = true
                break
            }
        }
        return CaptureBytes(start: UnsafePointer(output.assumingMemoryBound(to: UInt8.self)), count: produced,
                            wasCompressed: true, cutShort: cutShort, release: .free)
    }
}

private func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
