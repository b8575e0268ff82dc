// The wire vocabulary of the capture format (docs/FORMAT.md): magic, version,
// record tags, allocator kinds, the varint primitives and the summary
// trailer. Shared by the tracker's hot-path encoder and by the reader
// (HeapscopeFormat re-exports it), so both speak one format; the tracker
// links this module only, not the reader.

public enum CaptureFile {
    /// `\x89HSC\r\n\x1a\n`: the high byte and the CR/LF catch text-mode damage.
    public static let magic: [UInt8] = [0x89, 0x48, 0x53, 0x43, 0x0D, 0x0A, 0x1A, 0x0A]
    /// The version of an event capture (what the tracker writes).
    public static let version: UInt16 = 1
    /// An aggregated capture (flag `aggregated`) is version 2: format 1's
    /// definitions plus the site and totals records, so a reader of format 1
    /// refuses it as newer instead of calling its new tags corrupt.
    public static let aggregatedVersion: UInt16 = 2
    /// The newest version this build reads.
    public static let newestVersion: UInt16 = 2
    /// The status a process stopped at its memory limit exits with, and
    /// `heapscope run` then (docs/CLI.md, "Exit status").
    public static let memoryLimitExitStatus: Int32 = 120
    /// Magic, version, flags, pid, parent pid, reserved, start time, metadata length.
    public static let fixedHeaderSize = 36
    public static let zstdMagic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]
}

/// The live stream (docs/FORMAT.md, "The live stream"): the capture's bytes as
/// the tracker writes its file, in frames; from the tracker to `heapscope run`
/// over a socket pair, and from `run --live-remote` to `heapscope live` over
/// loopback TCP.
public enum LiveStream {
    /// What a live port sends first: a viewer tells heapscope from anything else by it.
    public static let greeting: [UInt8] = Array("HEAPSCOPE-LIVE 1\n".utf8)
    /// A frame is a type byte, a u32 little-endian payload length, then the payload.
    public static let frameHeaderSize = 5
    /// The next bytes of the capture (zstd-compressed unless `--no-compress`),
    /// from its first byte on; frames need not end between records.
    public static let captureFrame: UInt8 = 1
    /// The program ended (the stream's last frame): i32 LE how (0: exited, 1: killed by a signal), i32 LE status or signal.
    public static let exitFrame: UInt8 = 2

    public static func frameHeader(type: UInt8, length: Int) -> [UInt8] {
        let n = UInt32(length)
        return [type, UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
    }
}

public struct CaptureFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let native = CaptureFlags(rawValue: 1 << 0)
    public static let pythonAllocators = CaptureFlags(rawValue: 1 << 1)
    public static let followFork = CaptureFlags(rawValue: 1 << 2)
    /// Per-site totals instead of events (`--aggregate`; docs/FORMAT.md, "Aggregated captures").
    public static let aggregated = CaptureFlags(rawValue: 1 << 3)
}

public enum RecordTag {
    public static let string: UInt8 = 0x01
    public static let code: UInt8 = 0x02
    public static let frame: UInt8 = 0x03
    public static let thread: UInt8 = 0x04
    public static let threadInfo: UInt8 = 0x05
    public static let snapshot: UInt8 = 0x06
    public static let end: UInt8 = 0x07
    public static let munmap: UInt8 = 0x08
    public static let nativeFrame: UInt8 = 0x09
    public static let mappings: UInt8 = 0x0A
    /// The tracker could not go on writing (disk full, file deleted): nothing follows.
    public static let stopped: UInt8 = 0x0B
    // Aggregated captures only (format 2).
    /// One site's figures: at the peak, live at the end, allocated in all.
    public static let site: UInt8 = 0x0C
    /// The capture's totals and whether the program ended.
    public static let aggregateTotals: UInt8 = 0x0D
    /// A SNAPSHOT with the heap's live bytes then (the events that tell it are not kept).
    public static let heapSample: UInt8 = 0x0E
    /// ALLOC of kind k is `allocBase + k`; FREE of kind k is `freeBase + k`;
    /// an ALLOC with the same stacks as the previous ALLOC is `allocSameStackBase + k`.
    public static let allocBase: UInt8 = 0x20
    public static let freeBase: UInt8 = 0x40
    public static let allocSameStackBase: UInt8 = 0x60
    public static let kindMask: UInt8 = 0x1F
}

/// Which allocator handed out (or took back) a block. Raw values are part of the format.
public enum AllocatorKind: UInt8, CaseIterable, Sendable {
    case malloc = 0
    case calloc = 1
    case realloc = 2
    case posixMemalign = 3
    case alignedAlloc = 4
    case memalign = 5
    case valloc = 6
    case pvalloc = 7
    case mmap = 8
    case pymemRaw = 9
    case pymemMem = 10
    case pymemObj = 11
    case pymallocArena = 12

    /// The name used in reports and JSON.
    public var name: String {
        switch self {
        case .malloc: return "malloc"
        case .calloc: return "calloc"
        case .realloc: return "realloc"
        case .posixMemalign: return "posix_memalign"
        case .alignedAlloc: return "aligned_alloc"
        case .memalign: return "memalign"
        case .valloc: return "valloc"
        case .pvalloc: return "pvalloc"
        case .mmap: return "mmap"
        case .pymemRaw: return "pymem_raw"
        case .pymemMem: return "pymem_mem"
        case .pymemObj: return "pymem_obj"
        case .pymallocArena: return "pymalloc_arena"
        }
    }
}

public enum VarInt {
    /// Longest encoding of a 64-bit value.
    public static let maxBytes = 10

    /// Writes `value` as unsigned LEB128 at `out`; returns the bytes written.
    /// Raw pointers and no bounds checks: the tracker calls this inside allocator
    /// hooks, where the caller has already reserved `maxBytes`.
    @inlinable @inline(__always)
    public static func write(_ value: UInt64, to out: UnsafeMutablePointer<UInt8>) -> Int {
        var v = value
        var n = 0
        while v >= 0x80 {
            out[n] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            n += 1
        }
        out[n] = UInt8(truncatingIfNeeded: v)
        return n + 1
    }

    @inlinable @inline(__always)
    public static func zigzag(_ v: Int64) -> UInt64 {
        UInt64(bitPattern: (v << 1) ^ (v >> 63))
    }

    @inlinable @inline(__always)
    public static func unzigzag(_ v: UInt64) -> Int64 {
        Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }
}

/// Why the tracker stopped writing a capture before tracking ended (a STOPPED
/// record). Raw values are part of the format.
public enum StopCause: Equatable, Sendable, CustomStringConvertible {
    /// ENOSPC or EDQUOT.
    case diskFull
    case fileDeleted
    /// Any other write error, with its errno.
    case writeFailed(errno: Int32)

    public init(code: UInt64, errno: UInt64) {
        switch code {
        case 1: self = .diskFull
        case 2: self = .fileDeleted
        default: self = .writeFailed(errno: Int32(truncatingIfNeeded: errno))
        }
    }

    public var code: UInt64 {
        switch self {
        case .diskFull: return 1
        case .fileDeleted: return 2
        case .writeFailed: return 3
        }
    }

    /// The STOPPED record saying so, `timeMicros` after the start (docs/FORMAT.md).
    public func record(timeMicros: UInt64) -> [UInt8] {
        var out = [RecordTag.stopped]
        var errno: UInt64 = 0
        if case .writeFailed(let code) = self { errno = UInt64(UInt32(bitPattern: code)) }
        for value in [code, errno, timeMicros] {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: VarInt.maxBytes) { scratch in
                out += scratch[0..<VarInt.write(value, to: scratch.baseAddress!)]
            }
        }
        return out
    }

    /// Completes "the capture was cut short because ...".
    public var description: String {
        switch self {
        case .diskFull: return "the disk was full"
        case .fileDeleted: return "the capture file was deleted while recording"
        case .writeFailed(let errno): return "writing it failed (errno \(errno))"
        }
    }
}

/// " because <cause>" for a capture cut short with a known cause, else "": the
/// reports' "cut short" notes end with it.
public func cutShortBecause(_ cause: StopCause?) -> String {
    cause.map { " because \($0)" } ?? ""
}

/// The totals a cleanly stopped capture ends with, after its END record (and
/// after the zstd frame, as a skippable frame that zstd decoders pass over):
/// what `heapscope run` and `attach` print without replaying the capture
/// (docs/FORMAT.md, "Summary trailer"). The tracker counts them from the
/// records it wrote, as the analysis counts them.
public struct SummaryTrailer: Equatable, Sendable {
    /// Counted allocations (arenas only when Python allocators are not traced).
    public var allocations: UInt64
    public var allocatedBytes: UInt64
    public var peakBytes: UInt64
    /// The most heap blocks live at once (mappings not included), which a
    /// replay sizes its table of live blocks for; 0 in a version-1 trailer.
    public var mostBlocksLive: UInt64

    public init(allocations: UInt64, allocatedBytes: UInt64, peakBytes: UInt64, mostBlocksLive: UInt64) {
        self.allocations = allocations
        self.allocatedBytes = allocatedBytes
        self.peakBytes = peakBytes
        self.mostBlocksLive = mostBlocksLive
    }

    /// A zstd skippable frame's magic (0x184D2A50...5F), little-endian, then its payload size.
    static let frameMagic: UInt32 = 0x184D_2A5E
    static let payloadMagic: [UInt8] = Array("HSCS".utf8)
    static let payloadVersion: UInt32 = 2
    /// Version 1 had no `mostBlocksLive`.
    static func payloadSize(version: UInt32) -> Int { 8 + (version == 1 ? 3 : 4) * 8 }
    /// The trailer's length, from the end of the file (a version-1 trailer is 8 bytes shorter).
    public static let size = 8 + payloadSize(version: payloadVersion)

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        append(Self.frameMagic)
        append(UInt32(Self.payloadSize(version: Self.payloadVersion)))
        out += Self.payloadMagic
        append(Self.payloadVersion)
        append(allocations)
        append(allocatedBytes)
        append(peakBytes)
        append(mostBlocksLive)
        return out
    }

    /// The trailer the last `size` bytes end with (version 2, or version 1 in
    /// the last 40), or nil (a capture cut short has none).
    public init?(trailing bytes: some Collection<UInt8>) {
        for version: UInt32 in [2, 1] {
            let b = Array(bytes.suffix(8 + Self.payloadSize(version: version)))
            guard b.count == 8 + Self.payloadSize(version: version) else { continue }
            func load<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
                b[offset..<offset + MemoryLayout<T>.size].reversed().reduce(0) { $0 << 8 | T($1) }
            }
            guard load(0, as: UInt32.self) == Self.frameMagic,
                  load(4, as: UInt32.self) == UInt32(Self.payloadSize(version: version)),
                  Array(b[8..<12]) == Self.payloadMagic, load(12, as: UInt32.self) == version else { continue }
            self.init(allocations: load(16, as: UInt64.self), allocatedBytes: load(24, as: UInt64.self),
                      peakBytes: load(32, as: UInt64.self), mostBlocksLive: version == 1 ? 0 : load(40, as: UInt64.self))
            return
        }
        return nil
    }
}
