import ArgumentParser
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

struct TableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Write a sortable, filterable HTML table of allocation sites.",
        discussion: """
            One row per allocation site (function, file:line, thread, allocator) with
            its bytes and allocation count in the view: the peak (default), --leaks or
            --temporary-allocations. The page is self-contained and works offline.
            """
    )

    @Argument(help: "The capture file (.hsc), compressed or not.")
    var capture: String

    @Option(name: .shortAndLong, help: "Output file (default: heapscope-table-<capture name>.html next to the capture).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace the output file if it exists.")
    var force = false

    @OptionGroup var viewOptions: ViewOptions
    @OptionGroup var processTree: ProcessTreeOptions
    @OptionGroup var stackOptions: StackOptions

    @Flag(help: "Add a time-range selection on the memory chart: the table then shows what was allocated in the range and still live at its end (with --leaks: never freed); and a chart of memory over time of the top sites (click a row for its own curve).")
    var temporal = false

    func validate() throws {
        if temporal, case .temporary = viewOptions.view {
            throw ValidationError("--temporal works with the peak and --leaks views, not with temporary allocations")
        }
        if temporal && processTree.children {
            throw ValidationError("--temporal follows one capture's timeline: not with --children")
        }
    }

    func run() throws {
        let path = output ?? defaultOutputPath(capture: capture, report: "table", ext: "html")
        try checkOutput(path, force: force)
        let options = ReportOptions(view: viewOptions.view, temporal: temporal)
        let analysis = try viewOptions.analyze(capture, temporal: temporal, sizes: true, children: processTree.children)
        let context = try stackOptions.context(capture: capture, options: options, analysis: analysis)
        let report = TableReport(context: context)
        try writeOutput(report.html(), to: path)
        if path != "-" {
            var note = "Wrote \(path): \(options.description) table, \(Formatting.count(report.rows.count)) sites"
            if analysis.isTruncated { note += " (the capture was cut short\(cutShortBecause(analysis.stopCause)))" }
            printError(note)
        }
        printReportWarnings(context)
    }
}
