import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope summary`: a table of functions by the memory live at the peak,
/// with what each held itself (own) and with its callees (total).
public struct SummaryReport {
    public enum Column: String, CaseIterable, Sendable {
        case total, own, count
    }

    public var rows: [FunctionTotals]
    /// The view's total bytes (the peak's for the peak view).
    public var peakBytes: UInt64
    public var view: ReportView
    public var capturePath: String
    public var isTruncated: Bool
    public var stopCause: StopCause?
    /// Processes of a process tree (`--children`); 0 for one capture.
    public var processCount = 0

    /// The functions sorted by `column`, at most `limit` of them, in the
    /// analysis's view (`viewByStack`).
    public init(analysis: CaptureAnalysis, capturePath: String, sortedBy column: Column = .total, limit: Int = 10) {
        self.init(byStack: analysis.viewByStack, view: analysis.view,
                  totalBytes: analysis.view == .peak ? analysis.peak.bytes : analysis.viewByStack.total.bytes,
                  tables: analysis.tables, capturePath: capturePath, isTruncated: analysis.isTruncated,
                  stopCause: analysis.stopCause, sortedBy: column, limit: limit)
        processCount = analysis.processes.count
    }

    /// The same from a view's replay (the one a flame graph of it was made from).
    public init(analysis: ViewAnalysis, capturePath: String, sortedBy column: Column = .total, limit: Int = 10) {
        self.init(byStack: analysis.byStack, view: analysis.view,
                  totalBytes: analysis.view == .peak ? analysis.peakBytes : analysis.total.bytes,
                  tables: analysis.tables, capturePath: capturePath, isTruncated: analysis.isTruncated,
                  stopCause: analysis.stopCause, sortedBy: column, limit: limit)
        processCount = analysis.processes.count
    }

    private init(byStack: StackTotals, view: ReportView, totalBytes: UInt64, tables: CaptureTables, capturePath: String,
                 isTruncated: Bool, stopCause: StopCause?, sortedBy column: Column, limit: Int) {
        let functions = byStack.byFunction(tables)
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
        self.view = view
        peakBytes = totalBytes
        self.capturePath = capturePath
        self.isTruncated = isTruncated
        self.stopCause = stopCause
    }

    public func text() -> String {
        var lines = ["\(capturePath): \(view == .peak ? "memory live at the peak" : view.explanation) (\(Formatting.bytes(peakBytes))\(view == .peak ? Formatting.peakScope(processes: processCount) : "")); sizes in B, KiB, MiB, GiB"]
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
                     + "Allocations: \(view == .peak ? "live at the peak" : "in the \(view.name) view"), callees included. Location: where the function is defined.")
        return lines.joined(separator: "\n") + "\n"
    }
}
