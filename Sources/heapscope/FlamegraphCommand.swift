import ArgumentParser
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

struct FlamegraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flamegraph",
        abstract: "Write a flame graph of a capture as one self-contained HTML page.",
        discussion: """
            The page works offline (no external scripts): click a frame to zoom, search
            to highlight functions and see their share, hover for figures and source.
            Views: the peak (default), --leaks, --temporary-allocations; --temporal adds
            a time-range selection on the memory chart.
            """
    )

    @Argument(help: "The capture file (.hsc), compressed or not.")
    var capture: String

    @Option(name: .shortAndLong, help: "Output file (default: heapscope-flamegraph-<capture name>.html next to the capture).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace the output file if it exists.")
    var force = false

    @OptionGroup var viewOptions: ViewOptions
    @OptionGroup var processTree: ProcessTreeOptions
    @OptionGroup var stackOptions: StackOptions
    @OptionGroup var shape: ShapeOptions

    @Flag(help: "Add a time-range selection: the graph then shows what was allocated in the range and still live at its end (with --leaks: never freed); and a chart of memory over time of the top sites (zoom into a frame for its own curve).")
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
        let path = output ?? defaultOutputPath(capture: capture, report: "flamegraph", ext: "html")
        try checkOutput(path, force: force)
        let options = ReportOptions(view: viewOptions.view, temporal: temporal,
                                    splitThreads: shape.splitThreads, inverted: shape.inverted)
        let analysis = try viewOptions.analyze(capture, temporal: temporal, children: processTree.children)
        let context = try stackOptions.context(capture: capture, options: options, analysis: analysis)
        let report = FlameGraphReport(context: context)
        try writeOutput(report.html(), to: path)
        if path != "-" {
            var note = "Wrote \(path): \(options.description) flame graph, \(Formatting.bytes(analysis.total.bytes)) in \(Formatting.allocations(analysis.total.count))"
            if analysis.isTruncated { note += " (the capture was cut short\(cutShortBecause(analysis.stopCause)))" }
            printError(note)
        }
        printReportWarnings(context)
    }
}
