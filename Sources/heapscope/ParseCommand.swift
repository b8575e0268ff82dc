import ArgumentParser
import Glibc
import HeapscopeFormat
import HeapscopeReports

struct ParseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse",
        abstract: "Print every record of a capture, one per line (for debugging).",
        discussion: """
            A capture that was cut short is printed up to its last complete record,
            followed by a note on standard error. A corrupt one is printed up to the
            damage, then the error.
            """
    )

    @Argument(help: "The capture file (.hsc), compressed or not.")
    var capture: String

    func run() throws {
        var reader: CaptureReader
        do {
            reader = try CaptureReader(path: capture)
        } catch {
            throw captureFailure(capture, error)
        }
        var output = BufferedOutput()
        for line in RecordText.header(reader.header, compressed: reader.isCompressed) { output.write(line) }
        do {
            while let record = try reader.next() {
                output.write(RecordText.line(record, tables: reader.tables))
            }
        } catch {
            output.flush()
            throw captureFailure(capture, error)
        }
        output.flush()
        if reader.isTruncated {
            printError("heapscope: note: \(capture) was cut short\(cutShortBecause(reader.stopCause)): \(reader.recordCount) complete records, no END record")
        }
    }
}

/// Standard output in large writes: a capture has millions of records.
private struct BufferedOutput {
    private var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(1 << 16) }

    mutating func write(_ line: String) {
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if buffer.count >= 1 << 16 { flush() }
    }

    mutating func flush() {
        writeAll(buffer, to: STDOUT_FILENO)
        buffer.removeAll(keepingCapacity: true)
    }
}
