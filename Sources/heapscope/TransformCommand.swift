import ArgumentParser
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

extension TransformFormat: ExpressibleByArgument {}

struct TransformCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transform",
        abstract: "Export a capture's view for other tools.",
        discussion: """
            Formats: gprof2dot (JSON for gprof2dot), csv (one row per site), speedscope
            (a file speedscope opens), collapsed (folded stacks for flamegraph.pl,
            frames written as `function (file:line)`), pprof (gzipped profile.proto with
            alloc_objects, alloc_space, inuse_objects and inuse_space; inuse is the
            view). `-o -` writes to standard output.
            """
    )

    @Argument(help: "gprof2dot, csv, speedscope, collapsed or pprof.")
    var format: TransformFormat

    @Argument(help: "The capture file (.hsc), compressed or not.")
    var capture: String

    @Option(name: .shortAndLong, help: "Output file, - for standard output (default: heapscope-<format>-<capture name>.<ext> next to the capture).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace the output file if it exists.")
    var force = false

    @OptionGroup var viewOptions: ViewOptions
    @OptionGroup var stackOptions: StackOptions
    @OptionGroup var shape: ShapeOptions

    func run() throws {
        let path = output ?? defaultOutputPath(capture: capture, report: format.rawValue, ext: format.defaultExtension)
        try checkOutput(path, force: force)
        let options = ReportOptions(view: viewOptions.view, splitThreads: shape.splitThreads, inverted: shape.inverted)
        let analysis = try viewOptions.analyze(capture)
        let context = try stackOptions.context(capture: capture, options: options, analysis: analysis)
        let report = TransformReport(context: context)
        try writeOutput(report.output(format), to: path)
        if path != "-" {
            var note = "Wrote \(path): \(format.rawValue), \(options.description), \(Formatting.bytes(analysis.total.bytes)) in \(Formatting.allocations(analysis.total.count))"
            if analysis.isTruncated { note += " (the capture was cut short\(cutShortBecause(analysis.stopCause)))" }
            printError(note)
        } else if analysis.isTruncated {
            printError("heapscope: note: \(capture) was cut short\(cutShortBecause(analysis.stopCause)); the figures cover it up to its last complete record")
        }
        printReportWarnings(context)
    }
}
