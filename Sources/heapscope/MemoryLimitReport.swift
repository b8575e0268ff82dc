// `run --memory-limit`: the tracker stopped the program when its traced heap
// went over the limit, or heapscope did when the memory it could still get
// fell below the floor (MemoryFloor.swift); the capture ends at that moment,
// so its peak view is what was live then. A program killed by SIGKILL (the
// OOM killer's signal) gets the same report of its capture's peak. heapscope
// writes that view's flame graph next to the capture and names the top
// functions holding memory.

import ArgumentParser
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HeapscopeSystem

/// --memory-limit of run and attach.
let memoryLimitHelp = ArgumentHelp(
    "Stop the program when its traced heap exceeds SIZE (e.g. 500MB, 2GiB), or when the memory it can still get (MemAvailable, its cgroup's limit) falls under 100 MiB or 2% of the total, whichever is more: the capture ends there, a flame graph of that moment is written next to it, and heapscope exits with status 120.",
    valueName: "size")

/// --memory-limit's SIZE in bytes, or the one-line error.
func parseMemoryLimit(_ text: String?) throws -> UInt64? {
    guard let text else { return nil }
    guard let bytes = Formatting.parseSize(text), bytes > 0 else {
        throw commandFail("--memory-limit: not a size: '\(text)' (e.g. 500MB, 2GiB, 1048576)")
    }
    return bytes
}

/// Whether the program ended because the tracker stopped it at `limit`: the
/// tracker's exit status, and a capture whose heap went over the limit (a
/// program that exits with the same status on its own never reaches it).
func stoppedAtMemoryLimit(_ status: ChildStatus, limit: UInt64?, totals: CaptureTotals?) -> Bool {
    guard let limit, stoppedByTracker(status, limit: limit) else { return false }
    return (totals?.peakBytes ?? 0) > limit
}

/// The program's status is the one the tracker exits with at the limit (the
/// program may exit so itself: the capture's peak tells).
func stoppedByTracker(_ status: ChildStatus, limit: UInt64?) -> Bool {
    guard limit != nil, case .exited(let code) = status else { return false }
    return code == CaptureFile.memoryLimitExitStatus
}

/// At the limit: the tracker stopped the program.
func memoryLimitReport(capture path: String, limit: UInt64) -> [String] {
    peakReport(capture: path, heading: "  memory limit:      \(formatBytes(limit)) (--memory-limit): the program was stopped when its traced heap went over it",
               page: "what was live at that moment")
}

/// The same when the floor was reached: heapscope stopped the program with SIGTERM.
func memoryFloorReport(capture path: String, room: MemoryRoom) -> [String] {
    let bound = room.boundBy == "MemAvailable" ? "the system's MemAvailable" : "cgroup \(room.boundBy)"
    return peakReport(
        capture: path,
        heading: "  memory floor:      the program could get only \(formatBytes(room.available)) more (\(bound)), under the floor of "
            + "\(formatBytes(room.floor)) (--memory-limit): heapscope stopped it (SIGTERM)",
        page: "what was live at that moment")
}

/// A program killed by SIGKILL: its capture reads to its last complete record.
func killedReport(capture path: String, byOOMKiller: Bool) -> [String] {
    peakReport(
        capture: path,
        heading: byOOMKiller
            ? "  out of memory:     the kernel's OOM killer killed the program; the capture reads to its last complete record"
            : "  SIGKILL:           the capture reads to its last complete record (the OOM killer's signal: no OOM kill was counted)",
        page: "its peak")
}

/// Writes the flame graph of the capture's peak (after a stop, the moment of
/// the stop) and returns the lines that tell what held the memory then, and
/// where the files are. (`path` is as the user gave it, from this directory:
/// the page is named after it.)
private func peakReport(capture path: String, heading: String, page pageNote: String, rows: Int = 5) -> [String] {
    var lines = [heading]
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
            lines.append("  flame graph:       \(page) (\(pageNote))")
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
