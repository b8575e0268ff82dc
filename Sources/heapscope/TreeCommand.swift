import ArgumentParser
import Glibc
import HeapscopeAnalysis
import HeapscopeReports

struct TreeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree",
        abstract: "Show the biggest allocation sites with their call paths, as a tree.",
        discussion: """
            The N biggest allocation sites (stacks) in the view, at the peak by
            default, merged into one call tree: each line gives the bytes, share of the
            view and allocation count under a frame.
            """
    )

    @Argument(help: "The capture file (.hsc), compressed or not.")
    var capture: String

    @Option(name: [.short, .customLong("biggest-allocs")], help: "How many allocation sites to show.")
    var biggest = 10

    @OptionGroup var viewOptions: ViewOptions
    @OptionGroup var processTree: ProcessTreeOptions
    @OptionGroup var stackOptions: StackOptions

    func validate() throws {
        guard biggest >= 1 else { throw ValidationError("-b must be 1 or more") }
    }

    func run() throws {
        let options = ReportOptions(view: viewOptions.view)
        let analysis = try viewOptions.analyze(capture, children: processTree.children)
        let context = try stackOptions.context(capture: capture, options: options, analysis: analysis)
        let report = TreeReport(context: context, biggest: biggest)
        var width = 160
        if isatty(STDOUT_FILENO) == 1 {
            var size = winsize()
            if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 20 { width = Int(size.ws_col) }
        } else {
            width = 10_000
        }
        writeAll(Array(report.text(width: width).utf8), to: STDOUT_FILENO)
        printReportWarnings(context)
    }
}
