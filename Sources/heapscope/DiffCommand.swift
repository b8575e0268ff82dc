import ArgumentParser
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two captures site by site: an HTML page, a terminal table or JSON.",
        discussion: """
            A site is a function with its file and line (the innermost frame, as in
            `table`); sites are matched by name, never by address, so captures of two
            runs, builds or machines compare. Views: the peak (default), --leaks,
            --temporary-allocations, or --allocated (everything allocated, freed or
            not). Without --json or --summary, writes one self-contained page with a
            flame graph of the difference and a table of the sites that changed.
            --fail-over SIZE exits with status 3 when the total or any one site grew
            by more than SIZE, naming what grew (docs/CLI.md, "diff").
            """
    )

    @Argument(help: "The capture to compare against (.hsc).")
    var base: String

    @Argument(help: "The capture to compare (.hsc).")
    var new: String

    @Option(name: .shortAndLong, help: "Output page (default: heapscope-diff-<base name>-<new name>.html next to NEW).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace the output page if it exists.")
    var force = false

    @Flag(help: "Write the difference as one JSON object to standard output (docs/DIFF_JSON.md).")
    var json = false

    @Flag(help: "Print a table of the sites that changed most to standard output.")
    var summary = false

    @Option(name: [.short, .customLong("num-sites")], help: "How many sites --summary shows.")
    var n = 10

    @Flag(help: "Compare everything allocated while tracking, freed or not.")
    var allocated = false

    @Option(name: .customLong("fail-over"), help: ArgumentHelp(
        "Exit with status 3 when the total or any one site grew by more than SIZE, such as \"1 MB\", \"512KiB\" or \"4096\" (bytes).",
        valueName: "size"))
    var failOver: String?

    @OptionGroup var viewOptions: ViewOptions
    @OptionGroup var stackOptions: StackOptions

    func validate() throws {
        if json && summary { throw ValidationError("--json and --summary write different things: choose one") }
        if (json || summary) && (output != nil || force) {
            throw ValidationError("-o and -f are for the page: --json and --summary write to standard output")
        }
        if n < 0 { throw ValidationError("-n must be 0 or more") }
        if allocated && viewOptions.view != .peak {
            throw ValidationError("--allocated and --\(viewOptions.leaks ? "leaks" : "temporary-allocations") show different things: choose one")
        }
        if let failOver, Formatting.parseSize(failOver) == nil {
            throw ValidationError("--fail-over: malformed size '\(failOver)': expected a number of bytes, optionally with a unit, such as \"1 MB\" (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        }
    }

    func run() throws {
        let view = allocated ? ReportView.allocated : viewOptions.view
        let path = json || summary ? nil : output ?? defaultPagePath()
        if let path { try checkOutput(path, force: force) }
        let options = ReportOptions(view: view)
        func analysis(_ capture: String) throws -> ViewAnalysis {
            allocated ? try analyzeView(at: capture, view: .allocated) : try viewOptions.analyze(capture)
        }
        let baseAnalysis = try analysis(base), newAnalysis = try analysis(new)
        // Both sides name their sites with the same kind of frames.
        let baseMode = try stackOptions.mode(for: baseAnalysis.header, capture: base)
        let newMode = try stackOptions.mode(for: newAnalysis.header, capture: new)
        var mode = newMode
        if baseMode != newMode {
            printError("heapscope: note: only \(baseMode == .python ? new : base) has native stacks: comparing Python stacks")
            mode = .python
        }
        let report = DiffReport(base: try stackOptions.context(capture: base, options: options, analysis: baseAnalysis, mode: mode),
                                new: try stackOptions.context(capture: new, options: options, analysis: newAnalysis, mode: mode))
        let diff = report.diff
        if json {
            print(report.json().serialized(indent: 2))
        } else if summary {
            print(report.summaryText(limit: n))
        } else if let path {
            try writeOutput(report.html(), to: path)
            if path != "-" {
                printError("Wrote \(path): \(view.name) diff, \(Formatting.signedBytes(diff.deltaBytes)) in total, "
                    + "\(Formatting.count(diff.sites.count)) site\(diff.sites.count == 1 ? "" : "s") changed")
            }
        }
        for context in [report.base, report.new] {
            if context.analysis.isTruncated {
                printWarning("\(context.capturePath) was cut short\(cutShortBecause(context.analysis.stopCause)) (no END record): its figures cover it up to its last complete record")
            }
            printReportWarnings(context)
        }
        if let failOver, let limit = Formatting.parseSize(failOver) { try check(diff, limit: limit, text: failOver) }
    }

    /// `--fail-over`: one line per thing that grew too much, then status 3.
    private func check(_ diff: CaptureDiff, limit: UInt64, text: String) throws {
        let growth = diff.growth(over: limit)
        guard growth.total || !growth.sites.isEmpty else { return }
        if growth.total {
            printError("heapscope: diff: the total grew by \(Formatting.signedBytes(diff.deltaBytes)) "
                + "(\(Formatting.bytes(diff.baseTotal.bytes)) -> \(Formatting.bytes(diff.newTotal.bytes))), more than \(text)")
        }
        for site in growth.sites {
            let location = site.location
            printError("heapscope: diff: \(location.function) at \(location.file):\(location.line) grew by "
                + "\(Formatting.signedBytes(site.deltaBytes)) (\(Formatting.bytes(site.base.bytes)) -> \(Formatting.bytes(site.new.bytes))), more than \(text)")
        }
        throw ExitCode(3)
    }

    /// `heapscope-diff-<base name>-<new name>.html` in NEW's directory.
    private func defaultPagePath() -> String {
        var baseName = String(base.split(separator: "/").last ?? "")
        if baseName.hasSuffix(".hsc") { baseName.removeLast(4) }
        return defaultOutputPath(capture: new, report: "diff-\(baseName)", ext: "html")
    }
}
