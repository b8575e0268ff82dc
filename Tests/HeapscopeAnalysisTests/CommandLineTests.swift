import Foundation
import HeapscopeFormat
import Testing
import HeapscopeTestSupport

/// Runs the `heapscope` binary built next to the test bundle (skipped when
/// `swift test` did not build it).
@Suite struct CommandLineTests {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("heapscope").path

    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
                      error: String(decoding: errorData, as: UTF8.self))
    }

    static func writeCapture(_ name: String, end: Bool = true) throws -> String {
        var writer = CaptureWriter()
        writer.threadInfo(1, osThreadID: 777, name: "MainThread")
        writer.thread(1)
        let load = writer.stack([("main", "app.py", 3), ("load", "app.py", 10)])
        let parse = writer.stack([("main", "app.py", 4), ("parse", "app.py", 20)])
        writer.alloc(.pymemObj, address: 0x1000, size: 3 * 1024 * 1024, frame: load)
        writer.alloc(.malloc, address: 0x9000, size: 1024 * 1024, frame: parse)
        writer.alloc(.pymemObj, address: 0x2000, size: 64, frame: parse)
        writer.free(.pymemObj, address: 0x1000)
        if end { writer.end(timeMicros: 2_500_000) }
        let path = NSTemporaryDirectory() + "heapscope-cli-\(getpid())-\(name).hsc"
        try Data(writer.bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary)))
    func statsTextAndJSON() throws {
        let path = try Self.writeCapture("stats")
        defer { unlink(path) }
        let text = try Self.run(["stats", path])
        #expect(text.status == 0)
        #expect(text.output.contains("Total allocations: 3"))
        #expect(text.output.contains("Peak memory usage: 4.00 MiB"))
        #expect(text.output.contains("1. load at app.py:10: 3.00 MiB in 1 allocation"))
        #expect(text.output.contains("Duration: 2.500 s"))

        let json = try Self.run(["stats", "--json", "-n", "1", path])
        #expect(json.status == 0)
        let value = try JSONValue.parse(json.output)
        #expect(value["total_allocations"] == .int(3))
        #expect(value["total_bytes"] == .int(4 * 1024 * 1024 + 64))
        #expect(value["peak_bytes"] == .int(4 * 1024 * 1024 + 64))
        #expect(value["truncated"] == .bool(false))
        #expect(value["top_by_bytes"] == .array([.object([("function", .string("load")), ("file", .string("app.py")),
                                                          ("line", .int(10)), ("count", .int(1)), ("bytes", .int(3 << 20))])]))
        #expect(value["by_allocator"]?["malloc"] == .object([("count", .int(1)), ("bytes", .int(1 << 20))]))
        #expect(value["threads"]?.arrayValue?.first?["name"] == .string("MainThread"))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary)))
    func summaryTable() throws {
        let path = try Self.writeCapture("summary")
        defer { unlink(path) }
        let result = try Self.run(["summary", path, "-s", "own", "-r", "2"])
        #expect(result.status == 0)
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].contains("memory live at the peak (4.00 MiB)"))
        let rows = lines.drop { !$0.hasPrefix("---") }.dropFirst().prefix { !$0.isEmpty }
        #expect(rows.count == 2)
        #expect(rows.first?.hasPrefix("load ") == true)
        #expect(rows.first?.contains("75.00%") == true)
        #expect(rows.last?.hasPrefix("parse ") == true)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary)))
    func parseAndErrors() throws {
        let path = try Self.writeCapture("parse", end: false)
        defer { unlink(path) }
        let parsed = try Self.run(["parse", path])
        #expect(parsed.status == 0)
        #expect(parsed.output.contains("ALLOC pymem_obj 0x1000 3145728 frame=2 thread=1"))
        #expect(parsed.output.contains("STRING 2 \"main\""))
        #expect(parsed.output.contains("FREE pymem_obj 0x1000 thread=1"))
        #expect(parsed.error.contains("cut short"))

        let cut = try Self.run(["stats", path])
        #expect(cut.status == 0 && cut.output.contains("cut short"))

        let missing = try Self.run(["stats", "/nonexistent.hsc"])
        #expect(missing.status != 0)
        #expect(missing.error == "heapscope: error: /nonexistent.hsc: no such file\n")

        let garbage = NSTemporaryDirectory() + "heapscope-cli-\(getpid())-garbage.hsc"
        try Data("not a capture".utf8).write(to: URL(fileURLWithPath: garbage))
        defer { unlink(garbage) }
        for command in ["stats", "summary", "parse"] {
            let result = try Self.run([command, garbage])
            #expect(result.status != 0)
            #expect(result.error == "heapscope: error: \(garbage): not a heapscope capture\n")
        }
    }
}
