import ArgumentParser
import HeapscopeReports

extension SummaryReport.Column: ExpressibleByArgument {}

struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Show the functions holding the most memory at the peak.",
        discussion: """
            For each function: memory live at the peak in the function and its
            callees (total), in the function itself (own), their share of the peak,
            and the number of allocations live at the peak.
            """
    )

    @Argument(help: "The capture file (.hsc), compressed or not.")
    var capture: String

    @Option(name: [.short, .customLong("sort")], help: "Column to sort by: total, own or count.")
    var sortColumn: SummaryReport.Column = .total

    @Option(name: [.short, .customLong("rows")], help: "How many functions to show.")
    var rows = 10

    @OptionGroup var viewOptions: ViewOptions
    @OptionGroup var processTree: ProcessTreeOptions

    func validate() throws {
        guard rows >= 1 else { throw ValidationError("-r must be 1 or more") }
    }

    func run() throws {
        let analysis = try viewOptions.captureAnalysis(capture, children: processTree.children)
        let report = SummaryReport(analysis: analysis, capturePath: capture, sortedBy: sortColumn, limit: rows)
        print(report.text(), terminator: "")
    }
}
