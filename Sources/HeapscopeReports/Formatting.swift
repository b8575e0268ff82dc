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

    /// A change in bytes with its sign: "+1.50 KiB", "-512 B", "0 B".
    public static func signedBytes(_ value: Int64) -> String {
        (value > 0 ? "+" : value < 0 ? "-" : "") + bytes(value.magnitude)
    }

    /// Bytes in a size such as "50 MB", "1.5GiB", "512 B" or "4096", with the
    /// rules of the pytest plugin's `parse_size`: decimal units KB, MB, GB, TB
    /// (powers of 1000), binary KiB, MiB, GiB, TiB (1024), case-insensitive,
    /// the space optional. Nil for anything else.
    public static func parseSize(_ text: String) -> UInt64? {
        let trimmed = text.trimmingPrefix(while: \.isWhitespace)
        var number = Substring(trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") })
        var unit = trimmed.dropFirst(number.count).trimmingPrefix(while: \.isWhitespace)
        while unit.last?.isWhitespace == true { unit.removeLast() }
        if number.hasPrefix(".") { number = "0" + number }
        guard !number.isEmpty, number.filter({ $0 == "." }).count <= 1, let value = Double(number + (number.hasSuffix(".") ? "0" : "")),
              value.isFinite else { return nil }
        let factors: [String: Double] = ["": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
                                         "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824, "tib": 1_099_511_627_776]
        guard let factor = factors[unit.lowercased()], value * factor < 1.8e19 else { return nil }
        return UInt64((value * factor).rounded())
    }

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
    /// Said after the peak of a report over a process tree (`--children`):
    /// which peak that is. Empty for one process.
    public static func peakScope(processes: Int) -> String {
        processes > 1 ? " (the sum of the \(processes) processes' own peaks, not the tree's peak at one moment)" : ""
    }

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
