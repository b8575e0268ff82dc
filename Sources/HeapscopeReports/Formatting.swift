import HeapscopeFormat

/// Number and size formatting for text reports (no Foundation: fixed rules, same
/// output everywhere).
public enum Formatting {
    /// "512 B", "1.50 KiB", "12.25 MiB", "3.00 GiB".
    public static func bytes(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        guard value >= 1024 else { return "\(value) B" }
        var scaled = Double(value)
        var unit = 0
        while scaled >= 1024 && unit < units.count - 1 {
            scaled /= 1024
            unit += 1
        }
        return "\(fixed(scaled, decimals: 2)) \(units[unit])"
    }

    /// "1,234,567".
    /// "1 allocation", "2,048 allocations".
    public static func allocations<T: BinaryInteger>(_ value: T) -> String {
        "\(count(value)) allocation\(value == 1 ? "" : "s")"
    }

    public static func count<T: BinaryInteger>(_ value: T) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// `value` rounded to `decimals` places, e.g. fixed(2.5, decimals: 2) = "2.50".
    public static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return String(value) }
        let whole = UInt64(scaled)
        let integerPart = whole / UInt64(scale)
        let fraction = String(whole % UInt64(scale))
        let sign = value < 0 && whole > 0 ? "-" : ""
        guard decimals > 0 else { return "\(sign)\(integerPart)" }
        return "\(sign)\(integerPart).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
    }

    /// Percentage of `part` in `whole`, "12.34%".
    public static func percent(_ part: UInt64, of whole: UInt64) -> String {
        whole == 0 ? "-" : fixed(Double(part) / Double(whole) * 100, decimals: 2) + "%"
    }

    /// "1.234 s" from microseconds.
    public static func seconds(micros: UInt64) -> String {
        fixed(Double(micros) / 1_000_000, decimals: 3) + " s"
    }

    /// `text` cut to `width` characters with "..." in the middle, keeping both ends.
    public static func truncated(_ text: String, to width: Int) -> String {
        guard text.count > width, width > 3 else { return text }
        let keep = width - 3
        return String(text.prefix(keep - keep / 2)) + "..." + String(text.suffix(keep / 2))
    }

    /// The allocator line: "Python 3.11.7, allocator pymalloc".
    public static func pythonDescription(_ metadata: CaptureMetadata) -> String {
        let version = metadata.pythonVersion.map { "Python \($0)" } ?? "Python (version not recorded)"
        let allocator = metadata.pythonAllocator.map { ", allocator \($0)" } ?? ""
        return version + allocator
    }
}

/// A plain text table: columns padded to their widest cell, numbers right-aligned.
public struct TextTable {
    public enum Alignment { case left, right }

    public var headers: [String]
    public var alignments: [Alignment]
    public var rows: [[String]] = []

    public init(headers: [String], alignments: [Alignment]) {
        self.headers = headers
        self.alignments = alignments
    }

    public mutating func add(_ row: [String]) { rows.append(row) }

    public func render(indent: String = "") -> String {
        let all = [headers] + rows
        let widths = headers.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            let padded = cells.indices.map { column -> String in
                let padding = String(repeating: " ", count: widths[column] - cells[column].count)
                return alignments[column] == .left ? cells[column] + padding : padding + cells[column]
            }
            var text = indent + padded.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        let rule = indent + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n")
    }
}
