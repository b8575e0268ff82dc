import HeapscopeAnalysis
/// A fast JSON writer into bytes, for the data embedded in HTML reports and the
/// JSON export formats. Strings escape `<`, `>` and `&` as \u00XX so the output can
/// sit inside a `<script>` element.
public struct ReportJSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 1 << 16) { bytes.reserveCapacity(capacity) }

    @inline(__always)
    public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// `"key":`
    public mutating func key(_ name: String) {
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20, UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "&"):
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    public mutating func int(_ value: Int64) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            unsigned(value.magnitude)
        } else {
            unsigned(UInt64(value))
        }
    }

    @inline(__always)
    public mutating func unsigned(_ value: UInt64) {
        if value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits: (UInt64, UInt64) = (0, 0)  // 20 digits at most
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            while rest > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(buffer[index]) }
        }
    }

    public mutating func bool(_ value: Bool) { raw(value ? "true" : "false") }

    public mutating func null() { raw("null") }

    /// A number with up to `decimals` places (no exponent).
    public mutating func double(_ value: Double, decimals: Int = 6) {
        guard value.isFinite else { return null() }
        raw(Formatting.fixed(value, decimals: decimals))
    }

    public mutating func comma() { bytes.append(UInt8(ascii: ",")) }

    public mutating func unsignedArray<S: Sequence>(_ values: S) where S.Element: BinaryInteger {
        bytes.append(UInt8(ascii: "["))
        var first = true
        for value in values {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            if value < 0 { int(Int64(value)) } else { unsigned(UInt64(value)) }
        }
        bytes.append(UInt8(ascii: "]"))
    }

    public mutating func stringArray<S: Sequence<String>>(_ values: S) {
        bytes.append(UInt8(ascii: "["))
        var first = true
        for value in values {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }
}

extension ReportJSONWriter {
    /// The temporal data a page needs to recompute its view for a time range:
    /// bucket ends, and per entry its allocation and free buckets, its totals,
    /// and what it maps to in the page (`targets`, under the key `entryTarget`:
    /// a flame graph node, a table row). null without temporal data.
    mutating func temporal<T: BinaryInteger>(_ temporal: TemporalAggregate?, entryTarget: String, targets: [T]) {
        guard let temporal else { return null() }
        raw("{")
        key("ends"); unsignedArray(temporal.bucketEndMicros); comma()
        key("never"); unsigned(UInt64(TemporalAggregate.never)); comma()
        key(entryTarget); unsignedArray(targets); comma()
        key("a"); unsignedArray(temporal.entries.map(\.allocBucket)); comma()
        key("f"); unsignedArray(temporal.entries.map(\.freeBucket)); comma()
        key("bytes"); unsignedArray(temporal.entries.map(\.totals.bytes)); comma()
        key("count"); unsignedArray(temporal.entries.map(\.totals.count))
        raw("}")
    }
}

extension ReportJSONWriter {
    /// The fields every HTML page's script reads the same way: view, units,
    /// warnings, the capture's metadata lines, peak and duration.
    mutating func pageFields(_ context: ReportContext) {
        let analysis = context.analysis
        key("view"); string(context.options.view.name); comma()
        key("viewText"); string(context.options.description + ": " + context.options.view.explanation); comma()
        key("units"); string(ReportContext.units); comma()
        key("truncated"); bool(analysis.isTruncated); comma()
        key("warnings"); stringArray(context.warnings); comma()
        key("meta"); raw("[")
        for (index, line) in context.metadataLines.enumerated() {
            if index > 0 { comma() }
            stringArray([line.0, line.1])
        }
        raw("]"); comma()
        key("peakBytes"); unsigned(analysis.peakBytes); comma()
        key("peakTime"); if let time = analysis.peakTimeMicros { unsigned(time) } else { null() }; comma()
        key("duration"); unsigned(analysis.durationMicros ?? 0); comma()
    }
}
