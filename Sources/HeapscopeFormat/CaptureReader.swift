/// One record of the stream, with plain value payloads. Definitions (STRING,
/// CODE, FRAME, THREAD_INFO) are added to the reader's tables before they are
/// returned; the record carries only their id.
public enum Record: Equatable, Sendable {
    case string(StringID)
    case code(CodeID)
    case frame(FrameID)
    case thread(ThreadNumber)
    case threadInfo(ThreadNumber)
    case snapshot(timeMicros: UInt64, rssBytes: UInt64)
    case end(timeMicros: UInt64)
    case munmap(address: UInt64, length: UInt64)
    case nativeFrame(NativeFrameID)
    /// A MAPPINGS record: `tables.mappingSets.last` holds its objects.
    case mappings(objectCount: Int)
    /// STOPPED: the tracker stopped writing; the capture is cut short for `cause`.
    case stopped(cause: StopCause, timeMicros: UInt64)
    case alloc(Allocation)
    case free(kind: AllocatorKind, address: UInt64, thread: ThreadNumber)
    // Aggregated captures only (docs/FORMAT.md, "Aggregated captures").
    case site(AggregatedSite)
    case aggregateTotals(AggregateTotals)
    case heapSample(timeMicros: UInt64, rssBytes: UInt64, heapBytes: UInt64)
}

public struct Allocation: Equatable, Sendable {
    public var kind: AllocatorKind
    public var address: UInt64
    public var size: UInt64
    /// Innermost Python frame; 0 when there was none.
    public var frame: FrameID
    public var thread: ThreadNumber
    /// Innermost native frame; 0 when there was none or the capture has no native stacks.
    public var nativeFrame: NativeFrameID

    public init(kind: AllocatorKind, address: UInt64, size: UInt64, frame: FrameID, thread: ThreadNumber,
                nativeFrame: NativeFrameID = 0) {
        self.kind = kind
        self.address = address
        self.size = size
        self.frame = frame
        self.thread = thread
        self.nativeFrame = nativeFrame
    }
}

/// An ALLOC or FREE record as `CaptureReader.nextEvents(into:)` decodes it in
/// bulk. Its thread is the reader's `currentThread`: a THREAD record ends a batch.
public struct Event: Equatable, Sendable {
    public var address: UInt64
    /// Bytes allocated; 0 for a FREE.
    public var size: UInt64
    /// Innermost Python frame of an ALLOC; 0 for a FREE or when there was none.
    public var frame: FrameID
    /// Innermost native frame of an ALLOC in a native capture, else 0.
    public var nativeFrame: NativeFrameID
    public var kind: AllocatorKind
    public var isFree: Bool

    public init(address: UInt64, size: UInt64, frame: FrameID, nativeFrame: NativeFrameID = 0,
                kind: AllocatorKind, isFree: Bool) {
        self.address = address
        self.size = size
        self.frame = frame
        self.nativeFrame = nativeFrame
        self.kind = kind
        self.isFree = isFree
    }
}

/// Reads a capture record by record, keeping the interned tables up to date.
///
///     var reader = try CaptureReader(path: "run.hsc")
///     while let record = try reader.next() { ... reader.tables.stack(ofFrame: id) ... }
///     if reader.isTruncated { ... }
///
/// Consumers that need speed take ALLOC and FREE records in bulk with
/// `nextEvents(into:)` and everything else with `next()`.
///
/// Decoding works on the mapped (or decompressed) bytes in place: ALLOC, FREE
/// and MUNMAP records allocate nothing.
public struct CaptureReader {
    public let header: CaptureHeader
    /// The file was zstd-compressed; byte offsets refer to the decompressed stream.
    public let isCompressed: Bool
    public private(set) var tables = CaptureTables()
    /// The thread the records now being read happened on (0 before any THREAD record).
    public private(set) var currentThread: ThreadNumber = 0
    /// The stream ended without an END record, or inside a record. Final once
    /// `next()` has returned nil.
    public private(set) var isTruncated: Bool
    /// Why the tracker stopped writing early, when it said so (a STOPPED record).
    public private(set) var stopCause: StopCause?
    /// An aggregated capture's TOTALS said how far the program got.
    public private(set) var aggregateState: AggregateTotals.State?
    /// `next()` returned nil: END was read or the stream ran out.
    public private(set) var isFinished = false
    /// Byte offset in the (decompressed) stream of the record `next()` returned last.
    public private(set) var recordOffset = 0
    /// Records returned so far.
    public private(set) var recordCount = 0
    /// Length of the (decompressed) stream: of what has been decompressed so
    /// far until a compressed capture has been read to its end.
    public var streamLength: Int { windowOffset + end }
    /// How far reading has got, and out of how much: stream bytes of a raw
    /// capture, file bytes of a compressed one.
    public var progress: (done: Int, total: Int) {
        isCompressed ? (bytes.inputConsumed, bytes.inputLength) : (recordOffset, end)
    }

    private var bytes: CaptureBytes
    /// The window of the stream in memory (`CaptureBytes`): stream offset
    /// `windowOffset` is at `base[0]`; `position` and `end` are window positions.
    private var base: UnsafePointer<UInt8>
    private var end: Int
    private var windowOffset = 0
    /// `next()` stopped at the end of the bytes so far, inside or before a record.
    private var ranOut = false
    private var position: Int
    private var previousAddress: UInt64 = 0
    /// The stacks of the last ALLOC, which an ALLOC_SAME_STACK repeats.
    private var previousFrame: UInt64 = 0
    private var previousNativeFrame: UInt64 = 0
    /// The layout of the code objects' line tables (nil: not decoded).
    private let lineTableFormat: LineTable.Format?
    /// ALLOC records carry a native frame id.
    private let hasNativeStacks: Bool

    /// The totals the capture ends with (docs/FORMAT.md, "Summary trailer"),
    /// if it has them: a hint for a replay, never trusted as its figures.
    public private(set) var summaryTrailer: SummaryTrailer?

    public init(path: String) throws(CaptureError) {
        try self.init(bytes: CaptureBytes.load(path: path))
        summaryTrailer = SummaryTrailer.read(path: path)
    }

    /// The most blocks the capture holds live at once, as its summary trailer
    /// says (0: no trailer), for sizing a table ahead (the file could lie:
    /// `LiveHeap` only grows towards it).
    public var liveBlocksHint: Int { Int(clamping: summaryTrailer?.mostBlocksLive ?? 0) }

    /// Reads a capture held in memory (raw or zstd-compressed).
    public init(bytes: [UInt8]) throws(CaptureError) {
        try self.init(bytes: CaptureBytes.load(bytes: bytes))
        summaryTrailer = SummaryTrailer(trailing: bytes)
    }

    private init(bytes: CaptureBytes) throws(CaptureError) {
        // The header (with its metadata) must be in the window at once.
        var header: CaptureHeader
        while true {
            do throws(CaptureError) {
                header = try CaptureHeader.parse(bytes.buffer)
                break
            } catch {
                guard case .headerCutShort = error, !bytes.isComplete else { throw error }
                bytes.refill(keepingFrom: 0, wanting: bytes.count * 2)
            }
        }
        self.header = header
        self.bytes = bytes
        self.base = bytes.start
        self.end = bytes.count
        self.isCompressed = bytes.wasCompressed
        self.isTruncated = bytes.compressedFrameCutShort
        self.position = header.size
        self.hasNativeStacks = header.flags.contains(.native)
        if let version = header.metadata.pythonMajorMinor {
            lineTableFormat = LineTable.Format(pythonMajor: version.major, minor: version.minor)
        } else {
            lineTableFormat = .locationTable
        }
    }

    /// The next record, or nil at END or where the stream was cut short.
    /// Throws `CaptureError.corrupt` on an unknown tag, an undefined id or an
    /// overlong varint; records before it were valid.
    public mutating func next() throws(CaptureError) -> Record? {
        if isFinished { return nil }
        ensureWindow()
        var cursor = Cursor(base: base, position: position, end: end)
        // A record cut off may have moved these before it ran out: it is
        // decoded again from its start (a wider window, a resumed stream).
        let saved = (previousAddress, previousFrame, previousNativeFrame)
        do throws(DecodeFailure) {
            let record = try decode(&cursor)
            recordOffset = windowOffset + position
            position = cursor.position
            recordCount += 1
            switch record {
            case .end:
                isFinished = true
                // A checkpoint, or the last one of a killed program, ends with END too.
                if let state = aggregateState, state != .ended { isTruncated = true }
            case .stopped(let cause, _):
                isFinished = true
                isTruncated = true
                stopCause = cause
            case .aggregateTotals(let totals):
                aggregateState = totals.state
            default:
                break
            }
            return record
        } catch {
            isFinished = true
            switch error {
            case .truncated:
                (previousAddress, previousFrame, previousNativeFrame) = saved
                if !bytes.isComplete {
                    // A record longer than what the window holds: widen it and read again.
                    isFinished = false
                    moveWindow(wanting: 2 * (end - position) + CaptureBytes.windowSize)
                    return try next()
                }
                if let failure = bytes.failure { throw failure }
                isTruncated = true
                ranOut = true
                return nil
            case .corrupt(let reason):
                throw .corrupt(offset: windowOffset + position, reason: reason)
            }
        }
    }

    /// The bytes of the record `next()` returned last, as they are in the stream
    /// (an aggregated capture copies the definitions so).
    public var lastRecordBytes: [UInt8] {
        Array(UnsafeBufferPointer(start: base + (recordOffset - windowOffset), count: windowOffset + position - recordOffset))
    }

    /// A stream that is still being written goes on (live mode, docs/FORMAT.md
    /// "The live stream"): `more` are the uncompressed bytes that follow those
    /// given so far. Reading goes on where `next()` ran out, the tables and
    /// the decoding state kept. Nothing changes once the stream ended (END,
    /// STOPPED) or was found corrupt.
    public mutating func resume(appending more: [UInt8]) {
        guard !isFinished || ranOut else { return }
        bytes = CaptureBytes.joining(UnsafeBufferPointer(start: base + position, count: end - position), more)
        base = bytes.start
        windowOffset += position
        end = bytes.count
        position = 0
        isFinished = false
        isTruncated = false
        ranOut = false
    }

    /// Decodes the ALLOC and FREE records that come next, up to `buffer.count`,
    /// and returns how many. Returns 0 when the next record is anything else, or
    /// lies near the end of the stream, or is damaged: `next()` then reads it
    /// (and reports truncation or corruption). The records are counted as read.
    public mutating func nextEvents(into buffer: UnsafeMutableBufferPointer<Event>) -> Int {
        guard !isFinished, let out = buffer.baseAddress else { return 0 }
        ensureWindow()
        // Local copies: the loop must not write through `self` per record.
        var position = self.position
        var previousAddress = self.previousAddress
        var previousFrame = self.previousFrame
        var previousNativeFrame = self.previousNativeFrame
        var lastStart = recordOffset - windowOffset
        var count = 0
        let frameCount = UInt64(tables.frames.count)
        let nativeFrameCount = UInt64(tables.nativeFrames.count)
        // From here on a whole event (tag and four 10-byte varints) fits: no bounds checks.
        let lastSafeStart = end - (1 + 4 * VarInt.maxBytes)
        while count < buffer.count && position <= lastSafeStart {
            let start = position
            let tag = base[position]
            let family = tag & ~RecordTag.kindMask
            let isFree = family == RecordTag.freeBase
            let sameStack = family == RecordTag.allocSameStackBase
            let rawKind = tag & RecordTag.kindMask
            guard isFree || sameStack || family == RecordTag.allocBase,
                  rawKind <= AllocatorKind.pymallocArena.rawValue else { break }
            position &+= 1
            guard let delta = Self.varint(base, &position) else { position = start; break }
            var size: UInt64 = 0
            var frame: UInt64 = 0
            var nativeFrame: UInt64 = 0
            if !isFree {
                guard let decodedSize = Self.varint(base, &position) else { position = start; break }
                size = decodedSize
                if sameStack {
                    frame = previousFrame
                    nativeFrame = previousNativeFrame
                } else {
                    guard let decodedFrame = Self.varint(base, &position), decodedFrame < frameCount else {
                        position = start
                        break
                    }
                    frame = decodedFrame
                    if hasNativeStacks {
                        guard let decodedNative = Self.varint(base, &position), decodedNative < nativeFrameCount else {
                            position = start
                            break
                        }
                        nativeFrame = decodedNative
                    }
                    previousFrame = frame
                    previousNativeFrame = nativeFrame
                }
            }
            previousAddress &+= UInt64(bitPattern: VarInt.unzigzag(delta))
            out[count] = Event(address: previousAddress, size: size, frame: FrameID(truncatingIfNeeded: frame),
                               nativeFrame: NativeFrameID(truncatingIfNeeded: nativeFrame),
                               kind: unsafeBitCast(rawKind, to: AllocatorKind.self), isFree: isFree)
            count &+= 1
            lastStart = start
        }
        self.position = position
        self.previousAddress = previousAddress
        self.previousFrame = previousFrame
        self.previousNativeFrame = previousNativeFrame
        recordOffset = windowOffset + lastStart
        recordCount += count
        return count
    }

    /// Bytes the window keeps ahead of `position`: a batch of events (at most
    /// 41 bytes each) and nearly every other record fit.
    private static let windowMargin = 64 << 10

    /// Moves the window along the stream when the reader nears its end.
    @inline(__always)
    private mutating func ensureWindow() {
        if end - position < Self.windowMargin && !bytes.isComplete { moveWindow(wanting: 0) }
        if !isCompressed { bytes.discard(before: position) }
    }

    private mutating func moveWindow(wanting: Int) {
        let kept = position
        bytes.refill(keepingFrom: kept, wanting: wanting)
        windowOffset += kept
        position = 0
        base = bytes.start
        end = bytes.count
        if bytes.compressedFrameCutShort { isTruncated = true }
    }

    /// A varint with no bounds checks (the caller made sure 10 bytes are there);
    /// nil if it runs over 10 bytes. One and two bytes (most sizes, frame ids
    /// and address deltas) are tested first; up to eight (every address delta
    /// below 2^56) are decoded from one 8-byte load without a loop: the first
    /// clear top bit ends the varint, and the 7-bit groups below it are packed
    /// together in three shifts.
    @inline(__always)
    private static func varint(_ base: UnsafePointer<UInt8>, _ position: inout Int) -> UInt64? {
        let first = UInt64(base[position])
        if first < 0x80 {
            position &+= 1
            return first
        }
        let second = UInt64(base[position &+ 1])
        if second < 0x80 {
            position &+= 2
            return first & 0x7F | second << 7
        }
        let word = UInt64(littleEndian: UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self))
        let ends = ~word & 0x8080_8080_8080_8080
        guard ends != 0 else { return longVarint(base, &position) }
        // The bytes up to and including the last one, without their top bits.
        var value = word & (ends ^ (ends &- 1)) & 0x7F7F_7F7F_7F7F_7F7F
        value = value & 0x007F_007F_007F_007F | (value & 0x7F00_7F00_7F00_7F00) >> 1
        value = value & 0x0000_3FFF_0000_3FFF | (value & 0x3FFF_0000_3FFF_0000) >> 2
        value = value & 0x0000_0000_0FFF_FFFF | (value & 0x0FFF_FFFF_0000_0000) >> 4
        position &+= ends.trailingZeroBitCount &>> 3 &+ 1
        return value
    }

    private static func longVarint(_ base: UnsafePointer<UInt8>, _ position: inout Int) -> UInt64? {
        var byte = base[position]
        position &+= 1
        var value = UInt64(byte & 0x7F)
        var shift: UInt64 = 7
        while byte >= 0x80 {
            byte = base[position]
            position &+= 1
            if shift == 63 && byte > 1 { return nil }
            value |= UInt64(byte & 0x7F) << shift
            shift &+= 7
        }
        return value
    }

    private mutating func decode(_ cursor: inout Cursor) throws(DecodeFailure) -> Record {
        let tag = try cursor.byte()
        // Allocations and frees are nearly every record: test for them first.
        let family = tag & ~RecordTag.kindMask
        if family == RecordTag.allocBase || family == RecordTag.allocSameStackBase {
            let kind = try allocatorKind(tag)
            let address = try nextAddress(&cursor)
            let size = try cursor.varint()
            if family == RecordTag.allocBase {
                let frame = try cursor.varint()
                guard frame < UInt64(tables.frames.count) else { throw .corrupt("undefined frame \(frame)") }
                let nativeFrame = hasNativeStacks ? try cursor.varint() : 0
                guard nativeFrame < UInt64(tables.nativeFrames.count) else { throw .corrupt("undefined native frame \(nativeFrame)") }
                previousFrame = frame
                previousNativeFrame = nativeFrame
            }
            let frame = previousFrame, nativeFrame = previousNativeFrame
            return .alloc(Allocation(kind: kind, address: address, size: size, frame: FrameID(truncatingIfNeeded: frame),
                                     thread: currentThread, nativeFrame: NativeFrameID(truncatingIfNeeded: nativeFrame)))
        }
        if tag & ~RecordTag.kindMask == RecordTag.freeBase {
            let kind = try allocatorKind(tag)
            return .free(kind: kind, address: try nextAddress(&cursor), thread: currentThread)
        }
        switch tag {
        case RecordTag.string:
            let length = try cursor.varint()
            let text = try cursor.bytes(length)
            tables.addString(String(decoding: text, as: UTF8.self))
            return .string(StringID(tables.stringCount))
        case RecordTag.code:
            let name = try stringID(&cursor)
            let qualifiedName = try stringID(&cursor)
            let fileName = try stringID(&cursor)
            let firstLine = Int(truncatingIfNeeded: try cursor.varint())
            let tableLength = try cursor.varint()
            let table = try cursor.bytes(tableLength)
            let lineTable = lineTableFormat.map { LineTable($0, table: table, firstLine: firstLine) }
            tables.addCode(CodeObject(name: name, qualifiedName: qualifiedName, fileName: fileName,
                                      firstLine: firstLine, lineTable: lineTable))
            return .code(CodeID(tables.codeCount))
        case RecordTag.frame:
            let parent = try cursor.varint()
            guard parent < UInt64(tables.frames.count) else { throw .corrupt("undefined parent frame \(parent)") }
            let code = try cursor.varint()
            guard code > 0 && code < UInt64(tables.codes.count) else { throw .corrupt("undefined code object \(code)") }
            let position = try cursor.varint()
            let offset = Int(truncatingIfNeeded: position >> 1)
            let codeObject = tables.codes[Int(code)]
            let line = codeObject.lineTable?.line(atOffset: offset) ?? codeObject.firstLine
            tables.addFrame(Frame(parent: FrameID(parent), code: CodeID(code), offset: offset, line: line,
                                  isEntry: position & 1 == 1))
            return .frame(FrameID(tables.frameCount))
        case RecordTag.thread:
            let number = try threadNumber(&cursor)
            tables.noteThread(number)
            currentThread = number
            return .thread(number)
        case RecordTag.threadInfo:
            let number = try threadNumber(&cursor)
            let osThreadID = try cursor.varint()
            let name = try stringID(&cursor)
            tables.setThreadInfo(number, osThreadID: osThreadID, name: name == 0 ? nil : tables.string(name))
            return .threadInfo(number)
        case RecordTag.snapshot:
            let time = try cursor.varint()
            return .snapshot(timeMicros: time, rssBytes: try cursor.varint())
        case RecordTag.end:
            return .end(timeMicros: try cursor.varint())
        case RecordTag.stopped:
            let code = try cursor.varint()
            let errno = try cursor.varint()
            return .stopped(cause: StopCause(code: code, errno: errno), timeMicros: try cursor.varint())
        case RecordTag.munmap:
            let address = try nextAddress(&cursor)
            return .munmap(address: address, length: try cursor.varint())
        case RecordTag.nativeFrame:
            let parent = try cursor.varint()
            guard parent < UInt64(tables.nativeFrames.count) else { throw .corrupt("undefined parent native frame \(parent)") }
            let returnAddress = try cursor.varint()
            tables.addNativeFrame(NativeFrameNode(parent: NativeFrameID(parent), returnAddress: returnAddress,
                                                  mappings: tables.mappingSets.count - 1))
            return .nativeFrame(NativeFrameID(tables.nativeFrameCount))
        case RecordTag.mappings:
            let objects = try loadedObjects(&cursor)
            tables.addMappings(objects)
            return .mappings(objectCount: objects.count)
        case RecordTag.site where header.flags.contains(.aggregated):
            let thread = try cursor.varint()
            guard thread < UInt64(tables.threads.count) else { throw .corrupt("undefined thread \(thread)") }
            let kind = try cursor.varint()
            guard kind <= UInt64(AllocatorKind.pymallocArena.rawValue) else { throw .corrupt("unknown allocator kind \(kind)") }
            let frame = try cursor.varint()
            guard frame < UInt64(tables.frames.count) else { throw .corrupt("undefined frame \(frame)") }
            let nativeFrame = try cursor.varint()
            guard nativeFrame < UInt64(tables.nativeFrames.count) else { throw .corrupt("undefined native frame \(nativeFrame)") }
            let bucket = try cursor.varint()
            guard bucket <= 64 else { throw .corrupt("size bucket \(bucket) out of range") }
            var figures: [BlockFigures] = []
            for _ in 0..<3 { figures.append(BlockFigures(count: try cursor.varint(), bytes: try cursor.varint())) }
            return .site(AggregatedSite(thread: ThreadNumber(thread), kind: unsafeBitCast(UInt8(kind), to: AllocatorKind.self),
                                        frame: FrameID(frame), nativeFrame: NativeFrameID(nativeFrame),
                                        sizeBucket: UInt8(bucket), atPeak: figures[0], live: figures[1], allocated: figures[2]))
        case RecordTag.aggregateTotals where header.flags.contains(.aggregated):
            let rawState = try cursor.varint()
            guard rawState <= 2, let state = AggregateTotals.State(rawValue: UInt8(rawState)) else {
                throw .corrupt("unknown aggregate state \(rawState)")
            }
            let peakBytes = try cursor.varint()
            let peakSerial = try cursor.varint()
            let peakTime = try cursor.varint()
            var figures: [BlockFigures] = []
            for _ in 0..<3 { figures.append(BlockFigures(count: try cursor.varint(), bytes: try cursor.varint())) }
            let kinds = try cursor.varint()
            guard kinds <= UInt64(AllocatorKind.allCases.count) else { throw .corrupt("\(kinds) allocator kinds") }
            var byAllocator: [BlockFigures] = []
            for _ in 0..<kinds { byAllocator.append(BlockFigures(count: try cursor.varint(), bytes: try cursor.varint())) }
            return .aggregateTotals(AggregateTotals(state: state, peakBytes: peakBytes, peakSerial: peakSerial,
                                                    peakTimeMicros: peakTime == 0 ? nil : peakTime - 1,
                                                    allocated: figures[0], freed: figures[1], live: figures[2],
                                                    byAllocator: byAllocator))
        case RecordTag.heapSample where header.flags.contains(.aggregated):
            let time = try cursor.varint()
            let rss = try cursor.varint()
            return .heapSample(timeMicros: time, rssBytes: rss, heapBytes: try cursor.varint())
        default:
            throw .corrupt("unknown record tag 0x\(String(tag, radix: 16))")
        }
    }

    /// The body of a MAPPINGS record. Counts are not trusted for reserving memory:
    /// every object and segment takes bytes, so a damaged count runs out of stream.
    private func loadedObjects(_ cursor: inout Cursor) throws(DecodeFailure) -> [LoadedObject] {
        let count = try cursor.varint()
        var objects: [LoadedObject] = []
        var index: UInt64 = 0
        while index < count {
            let path = try stringID(&cursor)
            let loadBias = try cursor.varint()
            let buildID = Array(try cursor.bytes(try cursor.varint()))
            let segmentCount = try cursor.varint()
            var segments: [LoadedObject.Segment] = []
            var segment: UInt64 = 0
            while segment < segmentCount {
                let start = try cursor.varint()
                segments.append(LoadedObject.Segment(start: start, size: try cursor.varint()))
                segment += 1
            }
            objects.append(LoadedObject(path: tables.string(path), loadBias: loadBias, buildID: buildID, segments: segments))
            index += 1
        }
        return objects
    }

    @inline(__always)
    private func allocatorKind(_ tag: UInt8) throws(DecodeFailure) -> AllocatorKind {
        let raw = tag & RecordTag.kindMask
        guard raw <= AllocatorKind.pymallocArena.rawValue else {
            throw .corrupt("unknown record tag 0x\(String(tag, radix: 16))")
        }
        // The kinds are declared in raw-value order from 0, so the raw value is the
        // enum's own representation (a test checks it); init(rawValue:) is not
        // inlined here and costs a call per record.
        return unsafeBitCast(raw, to: AllocatorKind.self)
    }

    @inline(__always)
    private mutating func nextAddress(_ cursor: inout Cursor) throws(DecodeFailure) -> UInt64 {
        let delta = VarInt.unzigzag(try cursor.varint())
        let address = previousAddress &+ UInt64(bitPattern: delta)
        previousAddress = address
        return address
    }

    private func stringID(_ cursor: inout Cursor) throws(DecodeFailure) -> StringID {
        let id = try cursor.varint()
        guard id < UInt64(tables.strings.count) else { throw .corrupt("undefined string \(id)") }
        return StringID(id)
    }

    /// Thread numbers count up from 1 in order of first appearance.
    private func threadNumber(_ cursor: inout Cursor) throws(DecodeFailure) -> ThreadNumber {
        let number = try cursor.varint()
        guard number >= 1 && number <= UInt64(tables.threads.count) else {
            throw .corrupt("thread number \(number) out of sequence")
        }
        return ThreadNumber(number)
    }
}

enum DecodeFailure: Error {
    /// The stream ends inside this record.
    case truncated
    case corrupt(String)
}

/// A read position over the stream; every read checks the end.
struct Cursor {
    let base: UnsafePointer<UInt8>
    var position: Int
    let end: Int

    @inline(__always)
    mutating func byte() throws(DecodeFailure) -> UInt8 {
        guard position < end else { throw .truncated }
        let value = base[position]
        position &+= 1
        return value
    }

    @inline(__always)
    mutating func varint() throws(DecodeFailure) -> UInt64 {
        guard position < end else { throw .truncated }
        let first = base[position]
        if first < 0x80 {
            position &+= 1
            return UInt64(first)
        }
        guard end - position >= VarInt.maxBytes else { return try varintNearEnd() }
        // Room for the longest varint: no bounds checks.
        var value = UInt64(first & 0x7F)
        var shift: UInt64 = 7
        var index = position &+ 1
        while true {
            let byte = base[index]
            index &+= 1
            if shift == 63 && byte > 1 { throw .corrupt("varint longer than 10 bytes") }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift &+= 7
        }
        position = index
        return value
    }

    private mutating func varintNearEnd() throws(DecodeFailure) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var index = position
        while true {
            guard index < end else { throw .truncated }
            let byte = base[index]
            index &+= 1
            if shift == 63 && byte > 1 { throw .corrupt("varint longer than 10 bytes") }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        position = index
        return value
    }

    /// The next `count` bytes, in place.
    mutating func bytes(_ count: UInt64) throws(DecodeFailure) -> UnsafeBufferPointer<UInt8> {
        guard count <= UInt64(end - position) else { throw .truncated }
        let slice = UnsafeBufferPointer(start: base + position, count: Int(count))
        position += Int(count)
        return slice
    }
}
