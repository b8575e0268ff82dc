// The summary `run` and `attach` print when a capture is written: the totals
// the tracker counted as it wrote the capture (its summary trailer), else,
// for a capture cut short, from the analysis library (the replay of
// `heapscope stats`). Both count alike, so the figures are stats' figures.

import HeapscopeAnalysis
import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes the summary on stderr: the capture's path, what was recorded
/// (`facts`), its totals, what follows them (`more`) and what to run next.
func writeCaptureSummary(capture path: String, facts: [String], totals: CaptureTotals?, more: [String] = []) {
    let lines = ["heapscope: capture written to \(path)"] + facts + captureTotalsLines(totals) + more + [nextStepLine(path: path)]
    writeStderr(lines.joined(separator: "\n") + "\n")
}

/// One line of the summary: `  label:   value`, values aligned.
func summaryLine(_ label: String, _ value: String) -> String {
    let head = label + ":"
    return "  " + head + String(repeating: " ", count: max(1, 19 - head.count)) + value
}

/// The totals lines of the summary (nothing if the capture cannot be read: that is said on stderr).
private func captureTotalsLines(_ totals: CaptureTotals?) -> [String] {
    guard let totals else { return [] }
    var lines: [String] = []
    if let note = totals.note { lines.append(summaryLine("note", note)) }
    lines.append(summaryLine("total allocations", groupedThousands(totals.allocations)))
    lines.append(summaryLine("total allocated", formatBytes(totals.allocatedBytes)))
    lines.append(summaryLine("peak memory", formatBytes(totals.peakBytes)))
    return lines
}

/// The summary's last line: what to run next on the capture.
private func nextStepLine(path: String) -> String {
    let quoted = shellQuoted([path])
    return "next: heapscope summary \(quoted)   (or: heapscope stats \(quoted))"
}

struct CaptureTotals {
    var allocations: UInt64
    var allocatedBytes: UInt64
    var peakBytes: UInt64
    /// e.g. the reader's "cut short" notice
    var note: String?
}

/// Totals of a capture for the summary printed after `run` and `attach`: its
/// trailer's, read from the file's last bytes, or a replay when it has none.
func captureTotals(path: String) -> CaptureTotals? {
    if let trailer = SummaryTrailer.read(path: path) {
        return CaptureTotals(allocations: trailer.allocations, allocatedBytes: trailer.allocatedBytes,
                             peakBytes: trailer.peakBytes, note: nil)
    }
    do {
        let analysis = try CaptureAnalysis.analyze(path: path)
        return CaptureTotals(
            allocations: UInt64(analysis.allocated.count),
            allocatedBytes: analysis.allocated.bytes,
            peakBytes: analysis.peak.bytes,
            note: !analysis.isTruncated ? nil : analysis.stopCause.map { "the capture was cut short because \($0)" }
                ?? "the capture was cut short (tracking did not stop cleanly)")
    } catch {
        writeStderr("heapscope: cannot read the capture for the summary: \(error)\n")
        return nil
    }
}

func formatSeconds(_ s: Double) -> String {
    if s < 10 { return formatFixed(s, digits: 2) + " s" }
    if s < 120 { return formatFixed(s, digits: 1) + " s" }
    let total = Int(s.rounded())
    return "\(total / 60) min \(total % 60) s"
}

func formatFixed(_ value: Double, digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale)
    var frac = String(scaled % Int(scale))
    while frac.count < digits { frac = "0" + frac }
    return digits == 0 ? "\(whole)" : "\(whole).\(frac)"
}

/// Bytes in binary units, e.g. "38.1 MiB (40,000,056 bytes)".
func formatBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    if unit == 0 { return "\(bytes) B" }
    return "\(formatFixed(value, digits: 1)) \(units[unit]) (\(groupedThousands(bytes)) bytes)"
}

func groupedThousands(_ n: UInt64) -> String {
    let digits = Array(String(n))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(d)
    }
    return out
}
