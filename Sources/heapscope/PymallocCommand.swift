import ArgumentParser
import Glibc
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports
import HeapscopeSystem

/// `heapscope pymalloc CAPTURE [--html] [--json]`: the pymalloc arena model
/// (docs/PYMALLOC.md).
struct PymallocCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pymalloc",
        abstract: "Show pymalloc's arenas: how many were held over time, how full, and what pins them.",
        discussion: """
            Models CPython's small-object allocator from a capture: arenas and pools as \
            CPython lays them out, every traced block placed in its pool and arena. Shows \
            arenas held and their occupancy over time; at the peak and at the end the \
            arenas held, an occupancy histogram and the bytes pymalloc holds but does not \
            use; and the arenas kept alive by a few live blocks, with the stacks that \
            allocated those blocks and (from <capture>.refs, written by `heapscope run`) \
            the objects holding them. See docs/PYMALLOC.md.
            """
    )

    @Argument(help: "The capture file (.hsc), compressed or not.")
    var capture: String

    @Flag(help: "Write a self-contained HTML page instead of text.")
    var html = false

    @Flag(help: "Write the figures as one JSON object.")
    var json = false

    @Option(name: .shortAndLong, help: "Output file for --html (default: heapscope-pymalloc-<capture name>.html next to the capture; - for standard output).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace the output file if it exists.")
    var force = false

    @Option(help: ArgumentHelp("An arena held at the end is pinned when its live blocks fill at most this share of it.", valueName: "percent"))
    var pinnedBelow = 10

    @Option(name: [.short, .customLong("num-largest")], help: "How many pinning sites and holders to list.")
    var n = 5

    @Option(help: ArgumentHelp("Referrers file (default: <capture>.refs if it exists).", valueName: "file"))
    var referrers: String?

    func validate() throws {
        if html && json { throw ValidationError("--html and --json: choose one") }
        guard (0...100).contains(pinnedBelow) else { throw ValidationError("--pinned-below must be 0 to 100") }
        guard n >= 0 else { throw ValidationError("-n must be 0 or more") }
        if output != nil && !html { throw ValidationError("-o works with --html") }
    }

    func run() throws {
        var table: ReferrerTable?
        let refsPath = referrers ?? capture + ".refs"
        if let bytes = readWholeFile(refsPath) {
            table = ReferrerTable(bytes: bytes)
            if table == nil { printError("heapscope: warning: \(refsPath) is not a heapscope referrers file; ignored") }
        } else if referrers != nil {
            printError("heapscope: error: cannot read \(refsPath): \(String(cString: strerror(errno)))")
            throw ExitCode.failure
        }
        let analysis: PymallocAnalysis
        do {
            analysis = try PymallocAnalysis.analyze(path: capture, referrers: table, pinnedPercent: pinnedBelow)
        } catch {
            throw captureFailure(capture, error)
        }
        let report = PymallocReport(analysis: analysis, capturePath: capture, topCount: n)
        if json {
            print(report.json().serialized(indent: 2))
        } else if html {
            let path = output ?? defaultOutputPath(capture: capture, report: "pymalloc", ext: "html")
            try checkOutput(path, force: force)
            try writeOutput(report.html(), to: path)
            if path != "-" {
                printError("Wrote \(path): pymalloc report, \(analysis.end.arenasHeld) arenas held at the end, "
                           + "\(analysis.pinnedArenas.count) pinned")
                for note in report.notes { printError("Note: \(note)") }
            }
        } else {
            print(report.text(), terminator: "")
        }
    }
}
