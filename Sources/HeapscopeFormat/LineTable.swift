/// Line numbers of a code object, decoded from its `co_linetable` in the
/// location-table format of CPython 3.11 and later (PEP 657).
///
/// Each entry starts with a byte whose high bit is set: bits 3-6 are the entry's
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

    private var runs: [Run] = []

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
            let runLine = code == 15 ? -1 : Int32(clamping: line)
            if let last = runs.last, last.line == runLine {
                runs[runs.count - 1].end = Int32(clamping: address)
            } else {
                runs.append(Run(end: Int32(clamping: address), line: runLine))
            }
            while index < bytes.endIndex && bytes[index] & 0x80 == 0 { index += 1 }
        }
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
