import Glibc
import HeapscopeHooks
import HeapscopeWire

/// The encoder: turns hook calls into capture records (docs/FORMAT.md) in
/// chunks that the writer thread compresses and writes, interning strings,
/// code objects and stacks as it goes. One per session, in malloc'ed memory
/// reached through `hs_state.recorder`, and only ever touched under
/// `hs_state.lock`.
struct Recorder {
    private var chunk: UnsafeMutablePointer<hs_chunk>
    private var buffer: UnsafeMutablePointer<UInt8>
    private let capacity = Int(HS_CHUNK_SIZE)
    private var used = 0

    private var lastAddress: UInt = 0
    /// The stacks of the last ALLOC written: an ALLOC with the same ones omits them.
    private var lastFrame: UInt32 = 0
    private var lastNativeFrame: UInt32 = 0
    private var currentThread: UInt32 = 0
    private var strings = InternTable<UInt64>(capacity: 1 << 10)
    private var codes = InternTable<CodeKey>(capacity: 1 << 12)
    private var frames = InternTable<FrameKey>(capacity: 1 << 14)
    private var natives = InternTable<NativeKey>(capacity: 1 << 14)
    private var threads = InternTable<UInt64>(capacity: 64)
    private var nextString: UInt32 = 1
    private var nextCode: UInt32 = 1
    private var nextFrame: UInt32 = 1
    private var nextNative: UInt32 = 1
    private var nextThread: UInt32 = 1
    /// ALLOC records carry a native stack id (header flag `native`).
    let native: Bool
    /// Bytes of traced heap the program may hold (0: no limit), and the heap
    /// kept to check it (only with a limit: it costs a table update per event).
    private let memoryLimit: UInt64
    private var liveHeap: LiveHeap?
    /// ALLOC and FREE records so far (for the message when writing stops).
    private(set) var events: UInt64 = 0
    private let startMonotonic: UInt64
    /// /proc/self/statm, for the SNAPSHOT records' RSS (read outside the lock).
    let statmFD: Int32

    init?(native: Bool, memoryLimit: UInt64, countsArenas: Bool) {
        guard let chunk = hs_chunk_take() else { return nil }
        self.memoryLimit = memoryLimit
        liveHeap = memoryLimit > 0 ? LiveHeap(countsArenas: countsArenas) : nil
        self.chunk = chunk
        buffer = hs_chunk_data(chunk)
        self.native = native
        startMonotonic = monotonicMicroseconds()
        statmFD = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
    }

    /// Frees the tables; the current chunk goes to the writer with `submit` first.
    func release() {
        strings.release()
        codes.release()
        frames.release()
        natives.release()
        threads.release()
        liveHeap?.release()
        if statmFD >= 0 { close(statmFD) }
    }

    // MARK: Events

    /// The traced heap exceeds the memory limit.
    var isOverLimit: Bool { liveHeap.map { $0.bytes > memoryLimit } ?? false }

    /// Inlined into the one caller (hs_record_alloc): a call less per event.
    @inline(__always)
    mutating func recordAlloc(_ t: UnsafeMutablePointer<hs_thread>, session: UInt64, kind: UInt8, address: UInt, size: Int) {
        liveHeap?.alloc(kind: kind, address: address, size: UInt64(size))
        enter(t, session: session)
        events &+= 1
        let frame = internStack(t)
        let nativeFrame = native ? internNativeStack(t) : 0
        reserve(1 + 4 * VarInt.maxBytes)
        if frame == lastFrame && nativeFrame == lastNativeFrame {
            put(RecordTag.allocSameStackBase + kind)
            putAddress(address)
            putVarint(UInt64(size))
            return
        }
        lastFrame = frame
        lastNativeFrame = nativeFrame
        put(RecordTag.allocBase + kind)
        putAddress(address)
        putVarint(UInt64(size))
        putVarint(UInt64(frame))
        if native { putVarint(UInt64(nativeFrame)) }
    }

    @inline(__always)
    mutating func recordFree(_ t: UnsafeMutablePointer<hs_thread>, session: UInt64, kind: UInt8, address: UInt) {
        liveHeap?.free(kind: kind, address: address)
        enter(t, session: session)
        events &+= 1
        reserve(1 + VarInt.maxBytes)
        put(RecordTag.freeBase + kind)
        putAddress(address)
    }

    mutating func recordMunmap(_ t: UnsafeMutablePointer<hs_thread>, session: UInt64, address: UInt, length: Int) {
        liveHeap?.munmap(address: address, length: UInt64(length))
        enter(t, session: session)
        reserve(1 + 2 * VarInt.maxBytes)
        put(RecordTag.munmap)
        putAddress(address)
        putVarint(UInt64(length))
    }

    /// `rss`: read before taking the lock (residentBytes), so the lock is held only to encode.
    mutating func recordSnapshot(rss: UInt64) {
        reserve(1 + 2 * VarInt.maxBytes)
        put(RecordTag.snapshot)
        putVarint(monotonicMicroseconds() &- startMonotonic)
        putVarint(rss)
    }

    mutating func recordEnd() {
        reserve(1 + VarInt.maxBytes)
        put(RecordTag.end)
        putVarint(monotonicMicroseconds() &- startMonotonic)
    }

    /// Names a thread (by OS id) whether or not it has allocated yet.
    mutating func nameThread(osTid: UInt32, name: UnsafeRawBufferPointer) {
        let number = threadNumber(osTid: osTid).number
        let nameID = internString(name)
        reserve(1 + 3 * VarInt.maxBytes)
        put(RecordTag.threadInfo)
        putVarint(UInt64(number))
        putVarint(UInt64(osTid))
        putVarint(UInt64(nameID))
    }

    // MARK: Threads and stacks

    /// Makes `t` the current thread of the stream, giving it a number (and its
    /// OS name) the first time this session sees it.
    @inline(__always)
    private mutating func enter(_ t: UnsafeMutablePointer<hs_thread>, session: UInt64) {
        if t.pointee.session != session {
            t.pointee.session = session
            t.pointee.cached_depth = 0
            t.pointee.cached_native_depth = 0   // its ids are the last session's too
            t.pointee.walk_shared = HS_SHARED_UNKNOWN   // compared with a cache that is gone
            let (number, isNew) = threadNumber(osTid: t.pointee.os_tid)
            t.pointee.number = number
            if isNew {
                var name = [CChar](repeating: 0, count: 32)
                hs_thread_os_name(&name, name.count)
                name.withUnsafeBytes { bytes in
                    nameThread(osTid: t.pointee.os_tid, name: UnsafeRawBufferPointer(rebasing: bytes[..<strlen(name)]))
                }
            }
        }
        if t.pointee.number != currentThread {
            currentThread = t.pointee.number
            reserve(1 + VarInt.maxBytes)
            put(RecordTag.thread)
            putVarint(UInt64(currentThread))
        }
    }

    private mutating func threadNumber(osTid: UInt32) -> (number: UInt32, isNew: Bool) {
        let (id, isNew) = threads.intern(UInt64(osTid), next: &nextThread)
        return (id, isNew)
    }

    /// The frame id of the stack in `t.walk` (innermost first). Compared with
    /// the thread's previous stack from the outermost frame in: the frames
    /// they share keep their ids, and only the rest is looked up.
    @inline(__always)
    private mutating func internStack(_ t: UnsafeMutablePointer<hs_thread>) -> UInt32 {
        let depth = Int(t.pointee.walk_depth)
        let cachedDepth = Int(t.pointee.cached_depth)
        let walkCode = t.pointee.walk_code!, walkOffset = t.pointee.walk_offset!
        let cachedCode = t.pointee.cached_code!, cachedOffset = t.pointee.cached_offset!
        let cachedCodeID = t.pointee.cached_code_id!, cachedFrameID = t.pointee.cached_frame_id!
        var level = 0
        if t.pointee.walk_shared != HS_SHARED_UNKNOWN {
            level = Int(t.pointee.walk_shared)
        } else {
            while level < depth && level < cachedDepth {
                let w = depth - 1 - level
                if walkCode[w] != cachedCode[level] || walkOffset[w] != cachedOffset[level] { break }
                level += 1
            }
        }
        var parent: UInt32 = level > 0 ? cachedFrameID[level - 1] : 0
        while level < depth {
            let w = depth - 1 - level
            let code = walkCode[w], offset = walkOffset[w]
            let codeID = level < cachedDepth && cachedCode[level] == code ? cachedCodeID[level] : internCode(code)
            parent = internFrame(parent: parent, code: codeID, offset: offset)
            cachedCode[level] = code
            cachedOffset[level] = offset
            cachedCodeID[level] = codeID
            cachedFrameID[level] = parent
            level += 1
        }
        t.pointee.cached_depth = UInt32(depth)
        return parent
    }

    /// The native frame id of the stack in `t.native_ip`, interned like the Python stack.
    private mutating func internNativeStack(_ t: UnsafeMutablePointer<hs_thread>) -> UInt32 {
        let depth = Int(t.pointee.native_depth)
        let cachedDepth = Int(t.pointee.cached_native_depth)
        let ips = t.pointee.native_ip!, cachedIPs = t.pointee.cached_native_ip!, cachedIDs = t.pointee.cached_native_id!
        var level = 0
        while level < depth && level < cachedDepth && ips[depth - 1 - level] == cachedIPs[level] { level += 1 }
        var parent: UInt32 = level > 0 ? cachedIDs[level - 1] : 0
        while level < depth {
            let ip = ips[depth - 1 - level]
            let (id, isNew) = natives.intern(NativeKey(parent: parent, ip: ip), next: &nextNative)
            if isNew {
                reserve(1 + 2 * VarInt.maxBytes)
                put(RecordTag.nativeFrame)
                putVarint(UInt64(parent))
                putVarint(UInt64(ip))
            }
            parent = id
            cachedIPs[level] = ip
            cachedIDs[level] = parent
            level += 1
        }
        t.pointee.cached_native_depth = UInt32(depth)
        return parent
    }

    /// The objects loaded now, replacing the list recorded before.
    mutating func recordMappings(_ mappings: UnsafeBufferPointer<hs_mapping>) {
        // Definitions come before the record that uses them, never inside it.
        var paths: [UInt32] = []
        for m in mappings { paths.append(internString(UnsafeRawBufferPointer(start: m.path, count: strlen(m.path)))) }
        reserve(1 + VarInt.maxBytes)
        put(RecordTag.mappings)
        putVarint(UInt64(mappings.count))
        for (var m, path) in zip(mappings, paths) {
            reserve(4 * VarInt.maxBytes)
            putVarint(UInt64(path))
            putVarint(UInt64(m.base))
            putVarint(UInt64(m.build_id_len))
            withUnsafeBytes(of: &m.build_id) { putBytes(UnsafeRawBufferPointer(rebasing: $0[..<m.build_id_len])) }
            reserve((1 + 2 * Int(HS_MAX_SEGMENTS)) * VarInt.maxBytes)
            putVarint(UInt64(m.segments))
            withUnsafeBytes(of: &m.segment_start) { starts in
                withUnsafeBytes(of: &m.segment_size) { sizes in
                    for i in 0..<Int(m.segments) {
                        putVarint(UInt64(starts.load(fromByteOffset: i * 8, as: UInt.self)))
                        putVarint(UInt64(sizes.load(fromByteOffset: i * 8, as: Int.self)))
                    }
                }
            }
        }
    }

    private mutating func internFrame(parent: UInt32, code: UInt32, offset: UInt32) -> UInt32 {
        let (id, isNew) = frames.intern(FrameKey(parent: parent, code: code, offset: offset), next: &nextFrame)
        guard isNew else { return id }
        reserve(1 + 3 * VarInt.maxBytes)
        put(RecordTag.frame)
        putVarint(UInt64(parent))
        putVarint(UInt64(code))
        putVarint(UInt64(offset))
        return id
    }

    private mutating func internCode(_ code: UnsafeRawPointer?) -> UInt32 {
        let key = CodeKey(address: UInt(bitPattern: code), fingerprint: hs_code_fingerprint(code))
        let (id, isNew) = codes.intern(key, next: &nextCode)
        guard isNew else { return id }
        // Its strings are defined before the CODE record that names them.
        var info = hs_code_info()
        hs_code_describe(code, &info)
        let name = internString(UnsafeRawBufferPointer(start: info.name, count: info.name_len))
        let qualname = internString(UnsafeRawBufferPointer(start: info.qualname, count: info.qualname_len))
        let filename = internString(UnsafeRawBufferPointer(start: info.filename, count: info.filename_len))
        reserve(1 + 5 * VarInt.maxBytes)
        put(RecordTag.code)
        putVarint(UInt64(name))
        putVarint(UInt64(qualname))
        putVarint(UInt64(filename))
        putVarint(UInt64(info.firstlineno))
        putVarint(UInt64(info.linetable_len))
        putBytes(UnsafeRawBufferPointer(start: info.linetable, count: info.linetable_len))
        return id
    }

    private mutating func internString(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        let (id, isNew) = strings.intern(contentHash(bytes), next: &nextString)
        guard isNew else { return id }
        reserve(1 + VarInt.maxBytes)
        put(RecordTag.string)
        putVarint(UInt64(bytes.count))
        putBytes(bytes)
        return id
    }

    // MARK: Encoding

    @inline(__always)
    private mutating func reserve(_ bytes: Int) {
        if used + bytes > capacity { submit() }
    }

    @inline(__always)
    private mutating func put(_ byte: UInt8) {
        buffer[used] = byte
        used += 1
    }

    @inline(__always)
    private mutating func putVarint(_ value: UInt64) {
        used += VarInt.write(value, to: buffer + used)
    }

    @inline(__always)
    private mutating func putAddress(_ address: UInt) {
        putVarint(VarInt.zigzag(Int64(bitPattern: UInt64(address &- lastAddress))))
        lastAddress = address
    }

    private mutating func putBytes(_ bytes: UnsafeRawBufferPointer) {
        var rest = bytes
        while !rest.isEmpty {
            if used == capacity { submit() }
            let n = min(rest.count, capacity - used)
            (buffer + used).update(from: rest.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n)
            used += n
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
    }

    /// Hands the current chunk to the writer thread and starts an empty one.
    /// Records are whole in every chunk but the last of a long string.
    mutating func submit() {
        chunk.pointee.used = used
        chunk = hs_chunk_submit(chunk)
        buffer = hs_chunk_data(chunk)
        used = 0
    }

    /// Forgets what is buffered: a forked child must not write its parent's records.
    mutating func discardBuffer() { used = 0 }

}

/// The process's resident set size, from /proc/self/statm ("size resident
/// shared ...", in pages); 0 if it cannot be read. No allocation: it may run
/// in any thread while the program's threads record.
func residentBytes(statm fd: Int32) -> UInt64 {
    guard fd >= 0 else { return 0 }
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { text in
        let n = pread(fd, text.baseAddress, 63, 0)
        guard n > 0 else { return 0 }
        var i = 0
        while i < n && text[i] != UInt8(ascii: " ") { i += 1 }
        i += 1
        var pages: UInt64 = 0
        while i < n, text[i] >= 48, text[i] <= 57 {
            pages = pages * 10 + UInt64(text[i] - 48)
            i += 1
        }
        return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
    }
}

func monotonicMicroseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}

func realtimeMicroseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}

extension Recorder {
    /// The fixed header and metadata, before any record.
    mutating func writeHeader(_ bytes: UnsafeRawBufferPointer) { putBytes(bytes) }
}
