internal import CZstd
internal import Glibc

/// Where compressed bytes come from.
enum CompressedInput {
    case file(fd: Int32)
    case memory([UInt8], position: Int)
}

/// How far a ZstdStream has got: `finished` once its input is used up or
/// cannot be read or decompressed; what was decompressed before stays good.
struct ZstdProgress {
    var inputConsumed = 0
    var finished = false
    /// The input ended inside a frame.
    var cutShort = false
    var failure: CaptureError?
}

/// A zstd stream decompressed into the caller's buffers, reading its input in
/// 1 MiB chunks.
struct ZstdStream {
    private let context: OpaquePointer
    private var input: CompressedInput
    private let inputChunk: UnsafeMutablePointer<UInt8>
    private var inputBuffer = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
    let inputLength: Int
    /// Last result of ZSTD_decompressStream: 0 at the end of a frame.
    private var frameRemaining = 0
    private(set) var progress = ZstdProgress()

    static let inputChunkSize = 1 << 20

    init(input: CompressedInput, length: Int) throws(CaptureError) {
        guard let context = ZSTD_createDCtx() else { throw .unreadable(reason: "out of memory") }
        self.context = context
        self.input = input
        inputLength = length
        inputChunk = malloc(max(1, min(Self.inputChunkSize, length)))!.assumingMemoryBound(to: UInt8.self)
    }

    /// Frees the context and the input (closing a file): the last use.
    func release() {
        ZSTD_freeDCtx(context)
        Glibc.free(inputChunk)
        if case .file(let fd) = input { close(fd) }
    }

    /// Decompresses into `buffer` until it is full or the stream finishes; returns the bytes written.
    mutating func fill(_ buffer: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int {
        var count = 0
        while count < capacity && !progress.finished {
            if inputBuffer.pos == inputBuffer.size && !readInput() {
                // All input consumed: a frame still open was cut short.
                progress.cutShort = frameRemaining != 0
                progress.finished = true
                break
            }
            var target = ZSTD_outBuffer(dst: buffer + count, size: capacity - count, pos: 0)
            let result = ZSTD_decompressStream(context, &target, &inputBuffer)
            if ZSTD_isError(result) != 0 {
                progress.failure = .damagedCompression(String(cString: ZSTD_getErrorName(result)))
                progress.finished = true
                break
            }
            frameRemaining = result
            count += target.pos
        }
        return count
    }

    /// Reads the next chunk of compressed input; false at its end.
    private mutating func readInput() -> Bool {
        switch input {
        case .file(let fd):
            while true {
                let got = read(fd, inputChunk, min(Self.inputChunkSize, inputLength))
                if got < 0 && errno == EINTR { continue }
                guard got > 0 else {
                    if got < 0 { progress.failure = .unreadable(reason: String(cString: strerror(errno))) }
                    return false
                }
                progress.inputConsumed += got
                inputBuffer = ZSTD_inBuffer(src: inputChunk, size: got, pos: 0)
                return true
            }
        case .memory(let bytes, let position):
            guard position < bytes.count else { return false }
            let length = min(Self.inputChunkSize, inputLength, bytes.count - position)
            bytes.withUnsafeBufferPointer { inputChunk.initialize(from: $0.baseAddress! + position, count: length) }
            input = .memory(bytes, position: position + length)
            progress.inputConsumed += length
            inputBuffer = ZSTD_inBuffer(src: inputChunk, size: length, pos: 0)
            return true
        }
    }
}

/// A ZstdStream run on a thread of its own, up to four 1 MiB blocks ahead of
/// the reader: on two cores a report's replay and the decompression of what
/// it reads next run side by side. The reader sees the stream's bytes and its
/// end exactly as it would decompressing them itself.
final class DecompressionAhead {
    /// What the thread shares with the reader. The thread holds a reference of
    /// its own: this object goes when the reader drops it, and its deinit
    /// stops the thread and waits for it, wherever the thread had got.
    private let pipeline: Pipeline
    private var thread = pthread_t()
    private var running = false
    /// The block the reader takes bytes from, how many it has taken, and the
    /// stream's progress as of the last block it finished.
    private var current = 0
    private var taken = 0
    let inputLength: Int
    private(set) var progress = ZstdProgress()

    init(_ stream: ZstdStream) {
        pipeline = Pipeline(stream)
        inputLength = stream.inputLength
        let retained = Unmanaged.passRetained(pipeline).toOpaque()
        running = pthread_create(&thread, nil, { raw in
            Unmanaged<Pipeline>.fromOpaque(raw!).takeRetainedValue().produce()
            return nil
        }, retained) == 0
        // No thread: the reader decompresses (`read`).
        if !running { Unmanaged<Pipeline>.fromOpaque(retained).release() }
    }

    deinit {
        if running {
            pipeline.stop()
            pthread_join(thread, nil)
        }
    }

    /// Copies the stream's next bytes into `buffer`, up to `capacity`, waiting
    /// for the thread as needed; fewer only once `finished`.
    func read(into buffer: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int {
        guard running else {
            let n = pipeline.stream.fill(buffer, capacity: capacity)
            progress = pipeline.stream.progress
            return n
        }
        var written = 0
        while written < capacity && !progress.finished {
            let block = pipeline.waitFull(current)
            // A full block's bytes are the reader's until it hands it back.
            let n = min(block.count - taken, capacity - written)
            (buffer + written).update(from: block.data + taken, count: n)
            written += n
            taken += n
            guard taken == block.count else { continue }
            progress = block.progress
            if !progress.finished {
                pipeline.handBack(current)
                current = (current + 1) % Pipeline.blockCount
                taken = 0
            }
        }
        return written
    }
}

/// The blocks between the decompressing thread and the reader, under one mutex.
private final class Pipeline: @unchecked Sendable {
    struct Block {
        let data: UnsafeMutablePointer<UInt8>
        var count = 0
        var full = false
        /// The stream's progress once this block was decompressed.
        var progress = ZstdProgress()
    }

    static let blockCount = 4
    static let blockSize = 1 << 20
    /// The thread's, or the reader's where there is no thread.
    var stream: ZstdStream
    /// Guarded by `mutex`, but for the bytes of `data`: the thread writes them
    /// only while `full` is false, the reader reads them only while it is true.
    private var blocks: [Block]
    private var stopping = false
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    private let changed: UnsafeMutablePointer<pthread_cond_t> = .allocate(capacity: 1)

    init(_ stream: ZstdStream) {
        self.stream = stream
        blocks = (0..<Self.blockCount).map { _ in Block(data: malloc(Self.blockSize)!.assumingMemoryBound(to: UInt8.self)) }
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
    }

    deinit {
        stream.release()
        for block in blocks { free(block.data) }
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        changed.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// The thread: fills the blocks in turn, each once the reader has handed it back.
    func produce() {
        var next = 0
        while true {
            pthread_mutex_lock(mutex)
            while blocks[next].full && !stopping { pthread_cond_wait(changed, mutex) }
            let stop = stopping
            let data = blocks[next].data
            pthread_mutex_unlock(mutex)
            if stop { return }
            let count = stream.fill(data, capacity: Self.blockSize)
            locked {
                blocks[next].count = count
                blocks[next].progress = stream.progress
                blocks[next].full = true
                pthread_cond_broadcast(changed)
            }
            if stream.progress.finished { return }
            next = (next + 1) % Self.blockCount
        }
    }

    func stop() {
        locked {
            stopping = true
            pthread_cond_broadcast(changed)
        }
    }

    /// Block `index` once the thread has filled it.
    func waitFull(_ index: Int) -> Block {
        locked {
            while !blocks[index].full { pthread_cond_wait(changed, mutex) }
            return blocks[index]
        }
    }

    /// The reader is done with block `index`: the thread may fill it again.
    func handBack(_ index: Int) {
        locked {
            blocks[index].full = false
            pthread_cond_broadcast(changed)
        }
    }
}
