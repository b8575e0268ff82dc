import ArgumentParser
import Glibc
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

/// The view options every report takes (flamegraph, table, tree, transform,
/// summary, stats): peak by default, or leaks, or temporary allocations.
struct ViewOptions: ParsableArguments {
    @Flag(help: "Show leaks: memory allocated while tracking and not freed when tracking ended.")
    var leaks = false

    @Flag(name: .customLong("temporary-allocations"),
          help: "Show temporary allocations: freed on the same thread before N other allocations there (N from --temporary-allocation-threshold, default 1).")
    var temporaryAllocations = false

    @Option(name: .customLong("temporary-allocation-threshold"), help: ArgumentHelp(
        "With temporary allocations: at most N other allocations on the thread between an allocation and its free (0: freed at once). Implies --temporary-allocations.",
        valueName: "N"))
    var temporaryAllocationThreshold: Int?

    @Option(help: ArgumentHelp(
        "With --leaks: hide known leaks matching the patterns in FILE, and say how much they hid (docs/CLI.md, \"Leak suppressions\").",
        valueName: "file"))
    var suppressions: String?

    func validate() throws {
        if suppressions != nil && !leaks { throw ValidationError("--suppressions works with --leaks") }
        if let threshold = temporaryAllocationThreshold, threshold < 0 {
            throw ValidationError("--temporary-allocation-threshold must be 0 or more")
        }
        if leaks && (temporaryAllocations || temporaryAllocationThreshold != nil) {
            throw ValidationError("--leaks and --temporary-allocations show different things: choose one")
        }
    }

    var view: ReportView {
        if leaks { return .leaks }
        if temporaryAllocations || temporaryAllocationThreshold != nil {
            return .temporary(threshold: temporaryAllocationThreshold ?? 1)
        }
        return .peak
    }
}

/// How stacks are laid out: flamegraph, table (split threads only) and transform.
struct ShapeOptions: ParsableArguments {
    @Flag(help: "One root per thread, named after it.")
    var splitThreads = false

    @Flag(help: "Allocating functions at the root, their callers above them.")
    var inverted = false
}

/// Replays a capture for a view, with a progress bar on a terminal; read failures
/// become the one-line CLI error.
func analyzeView(at path: String, view: ReportView, temporal: Bool = false, sizes: Bool = false) throws -> ViewAnalysis {
    let bar = ProgressBar(label: "Reading \(path)")
    defer { bar.finish() }
    do {
        return try ViewAnalysis.analyze(path: path, view: view, temporal: temporal, sizes: sizes) { done, total in
            bar.update(done: done, total: total)
        }
    } catch {
        bar.finish()
        throw captureFailure(path, error)
    }
}

/// The default output next to the capture: `<dir>/heapscope-<report>-<name>.<ext>`.
func defaultOutputPath(capture: String, report: String, ext: String) -> String {
    var directory = ""
    var name = capture
    if let slash = capture.lastIndex(of: "/") {
        directory = String(capture[...slash])
        name = String(capture[capture.index(after: slash)...])
    }
    if name.hasSuffix(".hsc") { name.removeLast(4) }
    return "\(directory)heapscope-\(report)-\(name).\(ext)"
}

/// Refuses to replace an existing file unless forced.
func checkOutput(_ path: String, force: Bool) throws {
    guard path != "-" else { return }
    var info = stat()
    if stat(path, &info) == 0 && !force {
        printError("heapscope: error: \(path) exists: use -f to replace it")
        throw ExitCode.failure
    }
}

func writeOutput(_ bytes: [UInt8], to path: String) throws {
    do {
        try writeReport(bytes, to: path)
    } catch {
        printError("heapscope: error: cannot write \(error)")
        throw ExitCode.failure
    }
}

// MARK: summary and stats with a view
//
// `summary` and `stats` keep their own reports (SummaryReport, StatsReport); with
// --leaks or --temporary-allocations their per-location figures come from the
// view instead (the JSON keeps the same keys), and the text says which view.

extension ViewOptions {
    /// Replays the capture for the chosen view. A leak view drops the sites the
    /// suppressions file matches, and says on the terminal how much it hid.
    func analyze(_ capture: String, temporal: Bool = false, sizes: Bool = false) throws -> ViewAnalysis {
        var analysis = try analyzeView(at: capture, view: view, temporal: temporal, sizes: sizes)
        guard let file = suppressions else { return analysis }
        switch loadSuppressions(file) {
        case .failure(let message):
            printError("heapscope: error: \(message)")
            throw ExitCode.failure
        case .success(let rules):
            let (kept, hidden) = rules.filter(sites: analysis.sites, tables: analysis.tables)
            analysis.sites = kept
            analysis.total = kept.reduce(.zero) { $0 + $1.totals }
            printError("heapscope: suppressions in \(file) hid \(Formatting.bytes(hidden.bytes)) in \(Formatting.allocations(hidden.count))")
        }
        return analysis
    }

    /// The analysis with its per-stack figures replaced by the view's: for
    /// `summary` the "peak" figures, for `stats` the top lists.
    func apply(to analysis: CaptureAnalysis, capture: String, forSummary: Bool) throws -> CaptureAnalysis {
        guard view != .peak else { return analysis }
        let figures = try analyze(capture)
        if view == .leaks && figures.leaksMislead { printWarning(AllocatorNotes.leaksWarning) }
        var adjusted = analysis
        if forSummary {
            adjusted.peak.live = figures.byStack
            adjusted.peak.bytes = figures.total.bytes
        } else {
            adjusted.allocatedByStack = figures.byStack
        }
        return adjusted
    }
}

/// The report's text with its wording switched to the view.
func viewText(_ text: String, view: ReportView) -> String {
    guard view != .peak else { return text }
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    for index in lines.indices {
        lines[index] = lines[index]
            .replacing("memory live at the peak (", with: "\(view.explanation) (")
            .replacing("locations by memory allocated:", with: "locations by memory, \(view.name) view:")
            .replacing("locations by number of allocations:", with: "locations by number of allocations, \(view.name) view:")
            .replacing("live at the peak, callees included", with: "in the \(view.name) view, callees included")
    }
    if let capture = lines.firstIndex(where: { $0.hasPrefix("Capture: ") }) {
        lines.insert("View: \(view.explanation) (top lists)", at: capture + 1)
    }
    return lines.joined(separator: "\n")
}
