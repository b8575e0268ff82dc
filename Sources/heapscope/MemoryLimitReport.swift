// `run --memory-limit`: the tracker stopped the program when its traced heap
// went over the limit (the capture ends at that moment, so its peak view is
// what was live then). heapscope writes that view's flame graph next to the
// capture and names the top functions holding memory.

import ArgumentParser
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Whether the program ended because the tracker stopped it at `limit`: the
/// tracker's exit status, and a capture whose heap went over the limit (a
/// program that exits with the same status on its own never reaches it).
func stoppedAtMemoryLimit(_ status: ChildStatus, limit: UInt64?, totals: CaptureTotals?) -> Bool {
    guard let limit, case .exited(let code) = status, code == CaptureFile.memoryLimitExitStatus else { return false }
    return (totals?.peakBytes ?? 0) > limit
}

/// Writes the flame graph of the moment the limit was reached and returns
/// the lines that tell what held the memory then, and where the files are.
/// (`path` is as the user gave it, from this directory: the page is named after it.)
func memoryLimitReport(capture path: String, limit: UInt64, rows: Int = 5) -> [String] {
    var lines = ["  memory limit:      \(formatBytes(limit)) (--memory-limit): the program was stopped when its traced heap went over it"]
    let page = defaultOutputPath(capture: path, report: "flamegraph", ext: "html")
    do {
        let views = try ViewOptions.parse([])
        let analysis = try views.analyze(path)
        var info = stat()
        if stat(page, &info) == 0 {
            lines.append("  flame graph:       not written: \(page) exists (heapscope flamegraph -f \(shellQuoted([path])) replaces it)")
        } else {
            let options = ReportOptions(view: views.view, temporal: false, splitThreads: false, inverted: false)
            let context = try StackOptions.parse([]).context(capture: path, options: options, analysis: analysis)
            try writeReport(FlameGraphReport(context: context).html(), to: page)
            lines.append("  flame graph:       \(page) (what was live at that moment)")
        }
        // By own bytes: the allocating functions first, not their callers (from the
        // flame graph's replay: the capture is read once).
        let summary = SummaryReport(analysis: analysis, capturePath: path, sortedBy: .own, limit: rows)
        lines.append("")
        lines += summary.text().split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { "  " + $0 }
    } catch {
        lines.append("  flame graph:       not written: \(error)")
    }
    return lines
}
