import ArgumentParser
import Glibc
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show the overall figures of a capture.",
        discussion: """
            Totals, peak memory, allocations by allocator, a size histogram, the
            locations that allocated the most and per-thread totals. --json writes
            the same figures as one JSON object (see docs/STATS_JSON.md).
            """
    )

    @Argument(help: "The capture file (.hsc), compressed or not.")
    var capture: String

    @Flag(help: "Write the figures as JSON.")
    var json = false

    @Option(name: [.short, .customLong("num-largest")], help: "How many locations the top lists show.")
    var n = 5

    @OptionGroup var viewOptions: ViewOptions
    @OptionGroup var processTree: ProcessTreeOptions

    func validate() throws {
        guard n >= 0 else { throw ValidationError("-n must be 0 or more") }
    }

    func run() throws {
        let analysis = try viewOptions.captureAnalysis(capture, children: processTree.children)
        let report = StatsReport(analysis: analysis, capturePath: capture, topCount: n)
        if json {
            print(report.json().serialized(indent: 2))
        } else {
            print(report.text(), terminator: "")
        }
    }
}

// Shared by the commands that read a capture.

/// Replays the capture once for `view`, with a progress bar on a terminal,
/// turning a read failure into the one-line CLI error.
func analyzeCapture(at path: String, view: ReportView = .peak) throws -> CaptureAnalysis {
    let bar = ProgressBar(label: "Reading \(path)")
    defer { bar.finish() }
    do {
        return try CaptureAnalysis.analyze(path: path, view: view, keepsLiveAllocations: false) { done, total in
            bar.update(done: done, total: total)
        }
    } catch {
        bar.finish()
        throw captureFailure(path, error)
    }
}

/// Prints `heapscope: error: <path>: <message>` and returns the exit code to throw.
func captureFailure(_ path: String, _ error: CaptureError) -> ExitCode {
    printError("heapscope: error: \(path): \(error)")
    return .failure
}

func printError(_ line: String) {
    writeAll(Array((line + "\n").utf8), to: STDERR_FILENO)
}

/// Writes all of `bytes` to a file descriptor (no FILE*: Swift 6 forbids the C globals).
func writeAll(_ bytes: [UInt8], to descriptor: Int32) {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}
