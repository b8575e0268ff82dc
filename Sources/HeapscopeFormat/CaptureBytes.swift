internal import Glibc

/// The uncompressed capture stream, as a window the reader moves along: all of
/// a raw capture (a read-only mapping), or the next few MiB of a zstd one,
/// decompressed a few MiB ahead of the reader on a thread of its own
/// (DecompressionAhead). Memory stays flat however long the capture is: the
/// compressed file is read in 1 MiB chunks, the window holds 4 MiB (256 KiB for
/// a capture under 256 KiB; more only while one record is larger), and the
/// pages of a mapping the reader has passed are given back.
final class CaptureBytes {
    /// The window: stream bytes `offset ..< offset + count`.
    private(set) var start: UnsafePointer<UInt8>
    private(set) var count: Int
    private(set) var offset = 0
    let wasCompressed: Bool
    /// No bytes will follow the window's.
    private(set) var isComplete: Bool
    /// The zstd frame ended early: the stream holds what could be decompressed.
    private(set) var compressedFrameCutShort = false
    /// Decompressing failed after the bytes in the window (the stream ends there).
    private(set) var failure: CaptureError?
    /// Compressed bytes consumed, and the compressed length (0 when not known).
    var inputConsumed: Int { decompression?.progress.inputConsumed ?? 0 }
    let inputLength: Int

    private let release: Release
    /// Compressed captures only.
    private var decompression: DecompressionAhead?
    private var windowCapacity = 0
    /// Raw mappings: bytes before this offset were given back to the kernel.
    private var discardedUpTo = 0

    private enum Release {
        case unmapFile(length: Int)
        case free
    }

    static let windowSize = 4 << 20

    private init(start: UnsafePointer<UInt8>, count: Int, release: Release) {
        self.start = start
        self.count = count
        wasCompressed = false
        isComplete = true
        inputLength = count
        self.release = release
    }

    private init(compressed input: CompressedInput, length: Int) throws(CaptureError) {
        decompression = DecompressionAhead(try ZstdStream(input: input, length: length))
        inputLength = length
        wasCompressed = true
        isComplete = false
        release = .free
        // A small capture gets a small window (it widens for a long record).
        windowCapacity = length < Self.windowSize / 16 ? Self.windowSize / 16 : Self.windowSize
        start = UnsafePointer(malloc(windowCapacity)!.assumingMemoryBound(to: UInt8.self))
        count = 0
        refill(keepingFrom: 0, wanting: windowCapacity)
        if let failure, count == 0 { throw failure }
    }

    deinit {
        let memory = UnsafeMutableRawPointer(mutating: start)
        switch release {
        case .unmapFile(let length): munmap(memory, length)
        case .free: Glibc.free(memory)
        }
    }

    var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: start, count: count) }

    /// Maps the file at `path`, or opens it for decompression if it is zstd.
    static func load(path: String) throws(CaptureError) -> CaptureBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw code == ENOENT ? .fileNotFound : .unreadable(reason: errorText(code))
        }
        var keepOpen = false
        defer { if !keepOpen { close(fd) } }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(reason: errorText(errno)) }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw .unreadable(reason: "it is a directory") }

        if (info.st_mode & S_IFMT) == S_IFREG {
            let length = Int(info.st_size)
            guard length > 0 else { throw .emptyFile }
            var magic = [UInt8](repeating: 0, count: 4)
            let got = pread(fd, &magic, 4, 0)
            if got == 4 && magic == CaptureFile.zstdMagic {
                posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
                keepOpen = true
                return try CaptureBytes(compressed: .file(fd: fd), length: length)
            }
            guard let mapping = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else {
                throw .unreadable(reason: errorText(errno))
            }
            // Sequential scan: let the kernel read ahead generously.
            madvise(mapping, length, MADV_SEQUENTIAL)
            return CaptureBytes(start: mapping.assumingMemoryBound(to: UInt8.self), count: length,
                                release: .unmapFile(length: length))
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

    /// `head` then `tail`, as they are (no zstd detection), complete: the
    /// unread rest of a live stream and what followed it.
    static func joining(_ head: UnsafeBufferPointer<UInt8>, _ tail: [UInt8]) -> CaptureBytes {
        let copy = malloc(max(1, head.count + tail.count))!.assumingMemoryBound(to: UInt8.self)
        if let start = head.baseAddress { copy.initialize(from: start, count: head.count) }
        (copy + head.count).initialize(from: tail, count: tail.count)
        return CaptureBytes(start: copy, count: head.count + tail.count, release: .free)
    }

    /// `bytes`, decompressed as read if they are zstd, else a copy.
    static func load(bytes: [UInt8]) throws(CaptureError) -> CaptureBytes {
        guard !bytes.isEmpty else { throw .emptyFile }
        if bytes.starts(with: CaptureFile.zstdMagic) {
            return try CaptureBytes(compressed: .memory(bytes, position: 0), length: bytes.count)
        }
        let copy = malloc(bytes.count)!.assumingMemoryBound(to: UInt8.self)
        copy.initialize(from: bytes, count: bytes.count)
        return CaptureBytes(start: copy, count: bytes.count, release: .free)
    }

    /// Moves the window so that it starts at window position `keep` (the bytes
    /// from there on are kept) and fills it with what follows; it grows to
    /// `wanting` bytes first if smaller (a record larger than the window).
    func refill(keepingFrom keep: Int, wanting: Int) {
        guard !isComplete, let decompression else { return }
        let kept = count - keep
        if wanting > windowCapacity {
            windowCapacity = max(wanting, windowCapacity * 2)
            start = UnsafePointer(realloc(UnsafeMutableRawPointer(mutating: start), windowCapacity)!
                .assumingMemoryBound(to: UInt8.self))
        }
        let window = UnsafeMutablePointer(mutating: start)
        if keep > 0 && kept > 0 { memmove(window, window + keep, kept) }
        offset += keep
        count = kept
        count += decompression.read(into: window + count, capacity: windowCapacity - count)
        let progress = decompression.progress
        if progress.finished {
            isComplete = true
            compressedFrameCutShort = progress.cutShort
            failure = progress.failure
        }
    }

    /// A raw mapping: gives back the pages before `position` (the reader has
    /// passed them), so a long capture does not stay resident.
    func discard(before position: Int) {
        guard case .unmapFile = release, position - discardedUpTo >= 64 << 20 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let end = position / page * page
        madvise(UnsafeMutableRawPointer(mutating: start) + discardedUpTo, end - discardedUpTo, MADV_DONTNEED)
        discardedUpTo = end
    }
}

private func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
