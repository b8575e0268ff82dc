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

/// Reports over a process tree: stats, summary, tree, flamegraph and table.
struct ProcessTreeOptions: ParsableArguments {
    @Flag(help: ArgumentHelp(
        "Read the capture with those of every child process of its --follow-fork run (<capture>.<pid>...): one root frame per process, totals summed, the peak the sum of each process's own peak (docs/REPORTS.md, \"Process trees\")."))
    var children = false
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

// MARK: Replays for a view
//
// `summary` and `stats` keep their own reports (SummaryReport, StatsReport); with
// --leaks or --temporary-allocations their per-location figures are the view's
// (the JSON keeps the same keys) and their text says which view. Every command
// replays its capture once.

extension ViewOptions {
    /// Replays the capture for the chosen view. A leak view drops the sites the
    /// suppressions file matches, and says on the terminal how much it hid.
    /// `children`: with the captures of its child processes (`--children`).
    func analyze(_ capture: String, temporal: Bool = false, sizes: Bool = false, children: Bool = false) throws -> ViewAnalysis {
        var analysis = children
            ? ViewAnalysis.merging(try replayTree(capture) { try analyzeView(at: $0, view: view, sizes: sizes) })
            : try analyzeView(at: capture, view: view, temporal: temporal, sizes: sizes)
        guard let rules = try loadedSuppressions() else { return analysis }
        let (kept, hidden) = rules.filter(sites: analysis.sites, tables: analysis.tables)
        analysis.sites = kept
        analysis.total = kept.reduce(.zero) { $0 + $1.totals }
        noteHidden(hidden)
        return analysis
    }

    /// One replay for `summary` and `stats`: their figures, and the view's per
    /// stack. A leak view warns when leaks mislead and drops the stacks the
    /// suppressions file matches.
    func captureAnalysis(_ capture: String, children: Bool = false) throws -> CaptureAnalysis {
        var analysis = children
            ? CaptureAnalysis.merging(try replayTree(capture) { try analyzeCapture(at: $0, view: view) })
            : try analyzeCapture(at: capture, view: view)
        if view == .leaks && analysis.leaksMislead { printWarning(AllocatorNotes.leaksWarning) }
        guard let rules = try loadedSuppressions() else { return analysis }
        let (kept, hidden) = rules.filter(byStack: analysis.viewByStack, tables: analysis.tables)
        analysis.viewByStack = kept
        noteHidden(hidden)
        return analysis
    }

    /// The capture and its children's (ProcessTree.find), each replayed on its
    /// own by `replay`. What is left out or cut short is a note, not a failure;
    /// only the root's capture must be readable.
    private func replayTree<Analysis>(_ capture: String, _ replay: (String) throws -> Analysis) throws
        -> [(capture: ProcessCapture, analysis: Analysis)]
    {
        let found: (captures: [ProcessCapture], notes: [String])
        do { found = try ProcessTree.find(root: capture) } catch { throw captureFailure(capture, error) }
        for note in found.notes { printError("heapscope: note: \(note)") }
        var parts: [(capture: ProcessCapture, analysis: Analysis)] = []
        for process in found.captures {
            if process.parent == nil {
                parts.append((process, try replay(process.path)))
            } else if let analysis = try? replay(process.path) {
                parts.append((process, analysis))
            } else {
                printError("heapscope: note: \(process.path): left out (the error above)")
            }
        }
        if parts.count == 1 { printError("heapscope: note: \(capture): no child process captures found next to it") }
        return parts
    }

    /// The suppressions file's rules, if one was given; a bad file is the one-line error.
    private func loadedSuppressions() throws -> Suppressions? {
        guard let file = suppressions else { return nil }
        switch loadSuppressions(file) {
        case .failure(let message):
            printError("heapscope: error: \(message)")
            throw ExitCode.failure
        case .success(let rules):
            return rules
        }
    }

    private func noteHidden(_ hidden: Totals) {
        printError("heapscope: suppressions in \(suppressions ?? "") hid \(Formatting.bytes(hidden.bytes)) in \(Formatting.allocations(hidden.count))")
    }
}
