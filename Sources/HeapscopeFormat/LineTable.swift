/// Line numbers of a code object, decoded from its `co_linetable`: the
/// location table of CPython 3.11 and later (PEP 657), or 3.10's line table.
///
/// Location table: each entry starts with a byte whose high bit is set: bits 3-6 are the entry's
/// code, bits 0-2 its length in code units minus one. Codes 0-9 (short form) and
/// 10-12 (one-line forms, line delta = code - 10) carry columns we skip; 13 (no
/// columns) and 14 (long form) start with a signed varint line delta; 15 means the
/// instructions have no location.
public struct LineTable: Sendable, Equatable {
    /// One run of instructions on one line, ending (exclusive) at `end` code units.
    struct Run: Sendable, Equatable {
        var end: Int32
        /// -1: no location.
        var line: Int32
    }

    /// The two layouts of `co_linetable`.
    public enum Format: Sendable {
        /// CPython 3.10 (PEP 626): pairs of (byte-offset delta, signed line delta).
        case lineTable310
        /// CPython 3.11 and later (PEP 657).
        case locationTable

        /// The layout a CPython version writes, or nil for one before 3.10
        /// (whose `co_lnotab` is not recorded).
        public init?(pythonMajor major: Int, minor: Int) {
            if major == 3 && minor < 10 || major < 3 { return nil }
            self = major == 3 && minor == 10 ? .lineTable310 : .locationTable
        }
    }

    private var runs: [Run] = []

    public init<Bytes: RandomAccessCollection<UInt8>>(_ format: Format, table bytes: Bytes, firstLine: Int) where Bytes.Index == Int {
        switch format {
        case .lineTable310: self.init(lineTable310: bytes, firstLine: firstLine)
        case .locationTable: self.init(locationTable: bytes, firstLine: firstLine)
        }
    }

    /// Decodes a 3.10 table: each pair advances the end of the current range by
    /// the unsigned byte (in bytes, two per code unit) and the line by the
    /// signed one; -128 means the range has no line (the running line is kept).
    public init<Bytes: RandomAccessCollection<UInt8>>(lineTable310 bytes: Bytes, firstLine: Int) where Bytes.Index == Int {
        var line = firstLine
        var address = 0
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            address += Int(bytes[index])
            let delta = Int8(bitPattern: bytes[index + 1])
            index += 2
            var runLine: Int32 = -1
            if delta != -128 {
                line &+= Int(delta)
                runLine = Int32(clamping: line)
            }
            append(end: address / 2, line: runLine)
        }
    }

    /// Decodes `bytes`. Damaged tables never trap: decoding stops where they stop making sense.
    public init<Bytes: RandomAccessCollection<UInt8>>(locationTable bytes: Bytes, firstLine: Int) where Bytes.Index == Int {
        var line = firstLine
        var address = 0
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let head = bytes[index]
            index += 1
            guard head & 0x80 != 0 else { continue }  // not an entry start: resynchronise
            let code = (head >> 3) & 0x0F
            address += Int(head & 0x07) + 1
            switch code {
            case 13, 14: line &+= Self.signedVarint(bytes, at: index)
            case 10...12: line &+= Int(code) - 10
            default: break
            }
            append(end: address, line: code == 15 ? -1 : Int32(clamping: line))
            while index < bytes.endIndex && bytes[index] & 0x80 == 0 { index += 1 }
        }
    }

    /// Ends the last run at `end` if it has the same line, else starts a new one
    /// (an empty range adds nothing).
    private mutating func append(end: Int, line: Int32) {
        let end = Int32(clamping: end)
        if let last = runs.last {
            if last.end >= end { return }
            if last.line == line {
                runs[runs.count - 1].end = end
                return
            }
        } else if end <= 0 {
            return
        }
        runs.append(Run(end: end, line: line))
    }

    /// The line of the instruction at `offset` code units, or nil when it has no
    /// location or lies past the table.
    public func line(atOffset offset: Int) -> Int? {
        var low = 0
        var high = runs.count
        while low < high {  // first run ending after `offset`
            let middle = (low + high) / 2
            if Int(runs[middle].end) <= offset { low = middle + 1 } else { high = middle }
        }
        guard low < runs.count, offset >= 0, runs[low].line >= 0 else { return nil }
        return Int(runs[low].line)
    }

    /// CPython's location-table varint: 6-bit chunks, low first, 0x40 = more follow.
    private static func varint<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, at start: Int) -> UInt32 where Bytes.Index == Int {
        var index = start
        var value: UInt32 = 0
        var shift: UInt32 = 0
        while index < bytes.endIndex && shift < 32 {
            let byte = bytes[index]
            value |= UInt32(byte & 0x3F) << shift
            guard byte & 0x40 != 0 else { break }
            shift += 6
            index += 1
        }
        return value
    }

    /// Signed varint: the low bit is the sign, the rest the magnitude.
    private static func signedVarint<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, at start: Int) -> Int where Bytes.Index == Int {
        let raw = varint(bytes, at: start)
        let magnitude = Int(raw >> 1)
        return raw & 1 != 0 ? -magnitude : magnitude
    }
}
