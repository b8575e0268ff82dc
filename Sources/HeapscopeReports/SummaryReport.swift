import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope summary`: a table of functions by the memory live at the peak,
/// with what each held itself (own) and with its callees (total).
public struct SummaryReport {
    public enum Column: String, CaseIterable, Sendable {
        case total, own, count
    }

    public var rows: [FunctionTotals]
    public var peakBytes: UInt64
    public var capturePath: String
    public var isTruncated: Bool
    public var stopCause: StopCause?

    /// The functions sorted by `column`, at most `limit` of them.
    public init(analysis: CaptureAnalysis, capturePath: String, sortedBy column: Column = .total, limit: Int = 10) {
        let functions = analysis.peak.live.byFunction(analysis.tables)
        func key(_ row: FunctionTotals) -> (UInt64, UInt64) {
            switch column {
            case .total: return (row.total.bytes, row.own.bytes)
            case .own: return (row.own.bytes, row.total.bytes)
            case .count: return (UInt64(row.total.count), row.total.bytes)
            }
        }
        rows = Array(functions.sorted { a, b in
            key(a) != key(b) ? key(a) > key(b) : a.function < b.function
        }.prefix(limit))
        peakBytes = analysis.peak.bytes
        self.capturePath = capturePath
        isTruncated = analysis.isTruncated
        stopCause = analysis.stopCause
    }

    public func text() -> String {
        var lines = ["\(capturePath): memory live at the peak (\(Formatting.bytes(peakBytes))); sizes in B, KiB, MiB, GiB"]
        if isTruncated { lines.append(StatsReport.cutShortNote(stopCause)) }
        lines.append("")
        guard !rows.isEmpty else { return (lines + ["No memory was live at the peak."]).joined(separator: "\n") + "\n" }
        var table = TextTable(headers: ["Function", "Location", "Total", "Total %", "Own", "Own %", "Allocations"],
                              alignments: [.left, .left, .right, .right, .right, .right, .right])
        for row in rows {
            let location = row.function == .unknown ? "-" : "\(Formatting.truncated(row.function.file, to: 50)):\(row.function.line)"
            table.add([Formatting.truncated(row.function.function, to: 40), location,
                       Formatting.bytes(row.total.bytes), Formatting.percent(row.total.bytes, of: peakBytes),
                       Formatting.bytes(row.own.bytes), Formatting.percent(row.own.bytes, of: peakBytes),
                       Formatting.count(row.total.count)])
        }
        lines.append(table.render())
        lines.append("")
        lines.append("Total: the function and its callees; Own: allocated in the function itself; "
                     + "Allocations: live at the peak, callees included. Location: where the function is defined.")
        return lines.joined(separator: "\n") + "\n"
    }
}
