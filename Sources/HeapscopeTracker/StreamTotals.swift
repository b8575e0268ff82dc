import HeapscopeWire

/// The capture's totals (allocations, bytes allocated, peak), kept by the
/// writer thread as it compresses: it decodes each chunk's records before
/// writing them, so the figures are those of the records in the file, counted
/// as the analysis counts them (`LiveHeap`). At stop they go into the
/// capture's summary trailer (docs/FORMAT.md), and `heapscope run` prints them
/// without replaying the capture. The program's threads pay nothing for this:
/// it runs on the writer's core.
///
/// Records are whole inside a chunk except the payloads of STRING and CODE
/// (and the header), which `skip` carries across chunks, and a MAPPINGS list,
/// which may straddle two: its start waits in `carry` for the next chunk.
struct StreamTotals {
    private var counted = SummaryTrailer(allocations: 0, allocatedBytes: 0, peakBytes: 0, mostBlocksLive: 0)
    /// False once a record was not one the recorder writes: no trailer then.
    private(set) var isValid = true
    private var heap: LiveHeap
    private let native: Bool
    private var lastAddress: UInt64 = 0
    /// Bytes still to pass over before the next record.
    private var skip: Int
    private var carry: UnsafeMutablePointer<UInt8>?
    private var carryCount = 0
    /// Heap events decoded but not yet applied: a batch is applied after
    /// prefetching the table slots of all its addresses (see `flush`).
    private struct Event {
        enum Action: UInt8 { case alloc, free, munmap }
        var action: Action
        var kind: UInt8
        var address: UInt
        var size: UInt64
    }
    private let batch = UnsafeMutablePointer<Event>.allocate(capacity: StreamTotals.batchCapacity)
    private var batchCount = 0
    private static let batchCapacity = 64

    /// `headerBytes`: the fixed header and metadata that open the stream.
    init(native: Bool, countsArenas: Bool, headerBytes: Int) {
        self.native = native
        heap = LiveHeap(countsArenas: countsArenas)
        skip = headerBytes
    }

    func release() {
        heap.release()
        carry?.deallocate()
        batch.deallocate()
    }

    /// The totals so far.
    var summary: SummaryTrailer {
        mutating get {
            flush()
            return counted
        }
    }

    /// Reads the records of one chunk, in stream order.
    mutating func consume(_ chunk: UnsafeRawBufferPointer) {
        guard isValid, chunk.count > 0 else { return }
        var rest = UnsafeBufferPointer(start: chunk.baseAddress!.assumingMemoryBound(to: UInt8.self), count: chunk.count)
        if let carry {
            // A record began in the last chunk: join its start with this chunk.
            let joined = UnsafeMutablePointer<UInt8>.allocate(capacity: carryCount + rest.count)
            joined.update(from: carry, count: carryCount)
            (joined + carryCount).update(from: rest.baseAddress!, count: rest.count)
            carry.deallocate()
            self.carry = nil
            let count = carryCount + rest.count
            carryCount = 0
            consumeRecords(UnsafeBufferPointer(start: joined, count: count))
            joined.deallocate()
        } else {
            if skip > 0 {
                let n = min(skip, rest.count)
                skip -= n
                rest = UnsafeBufferPointer(rebasing: rest[n...])
            }
            consumeRecords(rest)
        }
        flush()
    }

    /// A table that fits in the caches is updated at once; a bigger one in
    /// prefetched batches (in stream order either way).
    @inline(__always)
    private mutating func add(_ event: Event) {
        if batchCount == 0 && heap.fitsInCache {
            apply(event)
            return
        }
        batch[batchCount] = event
        batchCount += 1
        if batchCount == Self.batchCapacity { flush() }
    }

    @inline(__always)
    private mutating func apply(_ e: Event) {
        switch e.action {
        case .alloc:
            heap.alloc(kind: e.kind, address: e.address, size: e.size)
            if heap.bytes > counted.peakBytes { counted.peakBytes = heap.bytes }
            if heap.blockCount > counted.mostBlocksLive { counted.mostBlocksLive = heap.blockCount }
        case .free:
            heap.free(kind: e.kind, address: e.address)
        case .munmap:
            heap.munmap(address: e.address, length: e.size)
        }
    }

    /// Applies the batched events in order. A table of millions of live blocks
    /// misses the cache on nearly every lookup: prefetching the whole batch
    /// first makes those misses overlap instead of queueing one by one.
    private mutating func flush() {
        for i in 0..<batchCount where batch[i].action != .munmap { heap.prefetch(address: batch[i].address) }
        for i in 0..<batchCount { apply(batch[i]) }
        batchCount = 0
    }

    private mutating func consumeRecords(_ bytes: UnsafeBufferPointer<UInt8>) {
        let base = bytes.baseAddress!
        var position = 0
        while position < bytes.count && isValid {
            let tag = base[position]
            // Heap events, nearly every record, are read without bounds checks
            // while the longest one fits before the end.
            if tag >= RecordTag.allocBase && tag < RecordTag.allocSameStackBase + 0x20
                && position + Self.longestEvent <= bytes.count {
                position += 1
                decodeEvent(tag, base, &position)
                continue
            }
            var cursor = WireCursor(bytes, at: position)
            guard decode(&cursor) else {
                // Cut by the chunk's end: wait for the next chunk.
                carryCount = bytes.count - position
                carry = .allocate(capacity: carryCount)
                carry!.update(from: base + position, count: carryCount)
                return
            }
            if cursor.position > bytes.count {
                // A STRING or CODE payload goes on in the next chunk(s).
                skip = cursor.position - bytes.count
                return
            }
            position = cursor.position
        }
    }

    /// An ALLOC, ALLOC_SAME_STACK or FREE after its tag.
    @inline(__always)
    private mutating func decodeEvent(_ tag: UInt8, _ base: UnsafePointer<UInt8>, _ position: inout Int) {
        lastAddress &+= UInt64(bitPattern: VarInt.unzigzag(Self.varint(base, &position)))
        let kind = tag & RecordTag.kindMask
        if tag >= RecordTag.freeBase && tag < RecordTag.allocSameStackBase {
            add(Event(action: .free, kind: kind, address: UInt(lastAddress), size: 0))
            return
        }
        let size = Self.varint(base, &position)
        if tag < RecordTag.freeBase {
            _ = Self.varint(base, &position)
            if native { _ = Self.varint(base, &position) }
        }
        guard heap.counts(kind: kind) else { return }
        counted.allocations &+= 1
        counted.allocatedBytes &+= size
        add(Event(action: .alloc, kind: kind, address: UInt(lastAddress), size: size))
    }

    /// ALLOC: tag, address, size, frame, native frame.
    private static let longestEvent = 1 + 4 * VarInt.maxBytes

    @inline(__always)
    private static func varint(_ p: UnsafePointer<UInt8>, _ position: inout Int) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = p[position]
            position += 1
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
        }
    }

    /// Decodes one record at the cursor, counting it; false if the bytes end first
    /// (a payload that runs past the end only moves the cursor past it).
    private mutating func decode(_ c: inout WireCursor) -> Bool {
        guard let tag = c.byte() else { return false }
        switch tag {
        case RecordTag.string:
            guard let length = c.varint() else { return false }
            c.position += Int(length)
        case RecordTag.code:
            guard c.varints(4), let length = c.varint() else { return false }
            c.position += Int(length)
        case RecordTag.frame, RecordTag.threadInfo:
            return c.varints(3)
        case RecordTag.thread, RecordTag.end:
            return c.varints(1)
        case RecordTag.snapshot, RecordTag.nativeFrame:
            return c.varints(2)
        case RecordTag.munmap:
            guard let address = c.address(&lastAddress), let length = c.varint() else { return false }
            add(Event(action: .munmap, kind: 0, address: UInt(address), size: length))
        case RecordTag.mappings:
            return decodeMappings(&c)
        case RecordTag.allocBase..<RecordTag.allocSameStackBase + 0x20:
            // Near the chunk's end: checked to be whole, then read as always.
            let start = c.position
            let fields = tag < RecordTag.freeBase ? (native ? 4 : 3) : tag < RecordTag.allocSameStackBase ? 1 : 2
            guard c.varints(fields) else { return false }
            var position = start
            decodeEvent(tag, c.bytes.baseAddress!, &position)
        default:
            isValid = false
        }
        return true
    }

    private func decodeMappings(_ c: inout WireCursor) -> Bool {
        guard let count = c.varint() else { return false }
        for _ in 0..<count {
            guard c.varints(2), let idLength = c.varint() else { return false }
            c.position += Int(idLength)
            guard let segments = c.varint(), c.varints(2 * Int(segments)) else { return false }
        }
        return true
    }
}

/// Reads varints forward over a chunk; nil (or false) where the bytes end.
private struct WireCursor {
    let bytes: UnsafeBufferPointer<UInt8>
    var position: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>, at position: Int) {
        self.bytes = bytes
        self.position = position
    }

    @inline(__always)
    mutating func byte() -> UInt8? {
        guard position < bytes.count else { return nil }
        defer { position += 1 }
        return bytes[position]
    }

    @inline(__always)
    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let b = byte() {
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
        }
        return nil
    }

    mutating func varints(_ n: Int) -> Bool {
        for _ in 0..<n { guard varint() != nil else { return false } }
        return true
    }

    /// An svarint address delta from `last`, which it advances.
    @inline(__always)
    mutating func address(_ last: inout UInt64) -> UInt64? {
        guard let delta = varint() else { return nil }
        last = last &+ UInt64(bitPattern: VarInt.unzigzag(delta))
        return last
    }
}
