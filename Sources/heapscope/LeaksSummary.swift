// The exit summary of `heapscope run --leaks` (docs/PYMALLOC.md, "Leak hunts"):
// which allocator ran, the top leaking sites with their sizes, what suppressions
// hid, and the floor every program keeps.

import Glibc
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports
import HeapscopeSystem

enum SuppressionsLoad {
    case success(Suppressions)
    case failure(String)
}

/// Reads and parses a suppressions file; the failure is the CLI's error text.
func loadSuppressions(_ path: String) -> SuppressionsLoad {
    guard let bytes = readWholeFile(path) else {
        return .failure("cannot read the suppressions file \(path): \(String(cString: strerror(errno)))")
    }
    do {
        return .success(try Suppressions(text: String(decoding: bytes, as: UTF8.self)))
    } catch {
        return .failure("suppressions file \(path): \(error)")
    }
}

/// How many leaking sites the summary names.
let leaksSummarySites = 5

/// The lines `run --leaks` adds to its exit summary.
func leaksSummaryLines(capture: String, suppressionsFile: String?, userPythonMalloc: String?) -> [String] {
    var suppressions = Suppressions(patterns: [])
    if let file = suppressionsFile, case .success(let parsed) = loadSuppressions(file) { suppressions = parsed }
    let analysis: CaptureAnalysis
    do {
        analysis = try CaptureAnalysis.analyze(path: capture)
    } catch {
        return ["  leaks:             cannot read the capture: \(error)"]
    }
    return leaksSummaryText(analysis: analysis, suppressions: suppressions, suppressionsFile: suppressionsFile)
}

func leaksSummaryText(analysis: CaptureAnalysis, suppressions: Suppressions, suppressionsFile: String?) -> [String] {
    let metadata = analysis.header.metadata
    var lines: [String] = []
    lines.append("  allocator:         \(AllocatorNotes.describe(metadata))")
    if metadata.pymallocActive {
        lines.append("  note:              PYTHONMALLOC=\(metadata.userPythonMalloc ?? "pymalloc") was set by the environment and kept;")
        lines.append("                     Python allocators were traced, so freed objects still count as freed")
        lines.append("                     (unset PYTHONMALLOC to let heapscope run the program with PYTHONMALLOC=malloc)")
    }
    let summary = LeakSummary(analysis: analysis, suppressions: suppressions)
    lines.append("  still allocated:   \(Formatting.bytes(summary.total.bytes)) in \(Formatting.allocations(summary.total.count)) when tracking stopped")
    if let file = suppressionsFile {
        var text = "  suppressed:        \(Formatting.bytes(summary.suppressed.bytes)) in \(Formatting.allocations(summary.suppressed.count)) hidden by \(file)"
        if summary.suppressed.count == 0 { text += " (no pattern matched)" }
        lines.append(text)
        for entry in summary.suppressedByPattern {
            lines.append("                       \(entry.pattern): \(Formatting.bytes(entry.totals.bytes)) in \(Formatting.allocations(entry.totals.count))")
        }
    }
    if summary.sites.isEmpty {
        lines.append("  leaks:             none above the floor (\(Formatting.bytes(summary.siteFloor)) per site)")
    } else {
        let shown = summary.sites.prefix(leaksSummarySites)
        lines.append("  top leaking sites: \(Formatting.bytes(summary.leaked.bytes)) in \(Formatting.allocations(summary.leaked.count)) at \(summary.sites.count) site\(summary.sites.count == 1 ? "" : "s") above the floor")
        for (index, site) in shown.enumerated() {
            let stack = analysis.tables.stack(ofFrame: site.frame)
            let callers = stack.dropFirst().prefix(3).map { $0.function }.joined(separator: " <- ")
            lines.append("    \(index + 1). \(site.location.function) (\(site.location.file):\(site.location.line)): "
                         + "\(Formatting.bytes(site.totals.bytes)) in \(Formatting.allocations(site.totals.count))"
                         + (callers.isEmpty ? "" : "  [called from \(callers)]"))
        }
        if summary.sites.count > shown.count {
            lines.append("    ... and \(summary.sites.count - shown.count) more (heapscope flamegraph --leaks CAPTURE)")
        }
    }
    lines.append("  floor:             \(Formatting.bytes(summary.floor.bytes)) not counted as leaks: "
                 + "\(Formatting.bytes(summary.interpreter.bytes)) interpreter (no Python frame), "
                 + "\(Formatting.bytes(summary.imports.bytes)) imports, "
                 + "\(Formatting.bytes(summary.belowFloor.bytes)) at \(summary.belowFloorSites) sites under \(Formatting.bytes(summary.siteFloor)) each")
    for line in wrap(LeakSummary.floorExplanation(siteFloor: summary.siteFloor), width: 76) {
        lines.append("                     " + line)
    }
    return lines
}

private func wrap(_ text: String, width: Int) -> [String] {
    var lines: [String] = []
    var current = ""
    for word in text.split(separator: " ") {
        if !current.isEmpty && current.count + 1 + word.count > width {
            lines.append(current)
            current = ""
        }
        current += (current.isEmpty ? "" : " ") + word
    }
    if !current.isEmpty { lines.append(current) }
    return lines
}
