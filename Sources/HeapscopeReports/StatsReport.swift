import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope stats`: the figures of one capture, as text or as JSON
/// (docs/STATS_JSON.md documents every JSON key).
public struct StatsReport {
    public var analysis: CaptureAnalysis
    public var capturePath: String
    /// How many locations the top lists show.
    public var topCount: Int

    public init(analysis: CaptureAnalysis, capturePath: String, topCount: Int = 5) {
        self.analysis = analysis
        self.capturePath = capturePath
        self.topCount = topCount
    }

    /// The top lists' view (the analysis's): for the peak view, what allocated the most.
    private var view: ReportView { analysis.view }

    public static func cutShortNote(_ cause: StopCause?) -> String {
        "Note: the capture was cut short\(cutShortBecause(cause)) (no END record); the figures cover it up to its last complete record."
    }

    // MARK: Text

    public func text() -> String {
        let metadata = analysis.header.metadata
        var lines: [String] = []
        lines.append("Capture: \(capturePath)")
        if view != .peak { lines.append("View: \(view.explanation) (top lists)") }
        if analysis.isTruncated { lines.append(Self.cutShortNote(analysis.stopCause)) }
        let commandLine = metadata.commandLine.joined(separator: " ")
        lines.append("Command line: \(commandLine.isEmpty ? "(not recorded)" : commandLine)")
        lines.append("\(Formatting.pythonDescription(metadata)); \(allocatorTracing)")
        lines.append("Process: pid \(analysis.header.pid)"
                     + (analysis.header.parentPid != 0 ? ", forked from pid \(analysis.header.parentPid)" : ""))
        lines.append("Duration: " + (analysis.durationMicros.map { Formatting.seconds(micros: $0) } ?? "unknown"))
        lines.append("Total allocations: \(Formatting.count(analysis.allocated.count))")
        lines.append("Total memory allocated: \(Formatting.bytes(analysis.allocated.bytes))")
        lines.append("Peak memory usage: \(Formatting.bytes(analysis.peak.bytes))" + Formatting.peakScope(processes: analysis.processes.count))
        let leaked = analysis.liveAtEndTotals
        lines.append("Still allocated at the end: \(Formatting.bytes(leaked.bytes)) in \(Formatting.allocations(leaked.count))")

        if !analysis.processes.isEmpty {
            lines.append("")
            lines.append("Processes (each its own capture; peak: its own):")
            var table = TextTable(headers: ["pid", "parent", "allocations", "allocated", "peak", "at the end", "capture"],
                                  alignments: [.right, .right, .right, .right, .right, .right, .left])
            for process in analysis.processes {
                let header = process.capture.header
                table.add([String(header.pid), header.parentPid == 0 ? "-" : String(header.parentPid),
                           Formatting.count(process.allocated.count), Formatting.bytes(process.allocated.bytes),
                           Formatting.bytes(process.peakBytes), Formatting.bytes(process.liveAtEnd?.bytes ?? 0),
                           process.capture.path + (process.isTruncated ? " (cut short)" : "")])
            }
            lines.append(table.render(indent: "  "))
        }

        lines.append("")
        lines.append("Allocations by allocator:")
        var allocators = TextTable(headers: ["allocator", "count", "memory"], alignments: [.left, .right, .right])
        for kind in AllocatorKind.allCases {
            guard let totals = analysis.byAllocator[kind] else { continue }
            let name = kind == .pymallocArena && !analysis.countsArenas ? kind.name + " (*)" : kind.name
            allocators.add([name, Formatting.count(totals.count), Formatting.bytes(totals.bytes)])
        }
        lines.append(allocators.rows.isEmpty ? "  (none)" : allocators.render(indent: "  "))
        if analysis.byAllocator[.pymallocArena] != nil && !analysis.countsArenas {
            lines.append("  (*) arenas hold the pymem blocks above: not counted in the totals and the peak")
        }

        lines.append("")
        lines.append("Allocation sizes:")
        lines.append(contentsOf: histogramLines())

        lines.append("")
        lines.append("Top \(topCount) locations by memory\(view == .peak ? " allocated" : ", \(view.name) view"):")
        lines.append(contentsOf: topLines(analysis.topLocations(by: .bytes, limit: topCount)))
        lines.append("")
        lines.append("Top \(topCount) locations by number of allocations\(view == .peak ? "" : ", \(view.name) view"):")
        lines.append(contentsOf: topLines(analysis.topLocations(by: .count, limit: topCount)))

        lines.append("")
        lines.append("Allocations by thread:")
        var threads = TextTable(headers: ["thread", "tid", "name", "count", "memory"],
                                alignments: [.right, .right, .left, .right, .right])
        for thread in analysis.threads {
            threads.add(["#\(thread.number)", thread.osThreadID == 0 ? "-" : String(thread.osThreadID),
                         thread.name ?? (thread.number == 0 ? "(before any thread record)" : "-"),
                         Formatting.count(thread.allocated.count), Formatting.bytes(thread.allocated.bytes)])
        }
        lines.append(threads.rows.isEmpty ? "  (none)" : threads.render(indent: "  "))
        return lines.joined(separator: "\n") + "\n"
    }

    private var allocatorTracing: String {
        analysis.countsArenas
            ? "Python allocators not traced (pymalloc arenas counted)"
            : "Python allocators traced"
    }

    private func histogramLines() -> [String] {
        let buckets = analysis.histogram.populatedBuckets
        guard let largest = buckets.map(\.count).max(), largest > 0 else { return ["  (no allocations)"] }
        let barWidth = 40
        var table = TextTable(headers: ["size", "count", ""], alignments: [.left, .right, .left])
        for bucket in buckets {
            let range = bucket.range.lowerBound == bucket.range.upperBound
                ? Formatting.bytes(bucket.range.lowerBound)
                : "\(Formatting.bytes(bucket.range.lowerBound)) - \(Formatting.bytes(bucket.range.upperBound))"
            let bar = String(repeating: "#", count: (bucket.count * barWidth + largest - 1) / largest)
            table.add([range, Formatting.count(bucket.count), bar])
        }
        return [table.render(indent: "  ")]
    }

    private func topLines(_ entries: [LocationTotals]) -> [String] {
        guard !entries.isEmpty else { return ["  (no allocations)"] }
        return entries.enumerated().map { index, entry in
            "  \(index + 1). \(Self.describe(entry.location)): \(Formatting.bytes(entry.totals.bytes)) in \(Formatting.allocations(entry.totals.count))"
        }
    }

    /// "load_rows at app.py:12".
    public static func describe(_ location: Location) -> String {
        if location == .unknown { return "<unknown> (no Python frame)" }
        // A process's own frame (`--children`): its allocations with no Python frame.
        return location.file.isEmpty ? "\(location.function) (no Python frame)" : "\(location.function) at \(location.file):\(location.line)"
    }

    // MARK: JSON

    public func json() -> JSONValue {
        let header = analysis.header
        func totals(_ t: Totals) -> [(key: String, value: JSONValue)] {
            [("count", .int(Int64(t.count))), ("bytes", int(t.bytes))]
        }
        func locations(_ entries: [LocationTotals]) -> JSONValue {
            .array(entries.map { entry in
                let location: [(key: String, value: JSONValue)] = [
                    ("function", .string(entry.location.function)),
                    ("file", .string(entry.location.file)),
                    ("line", .int(Int64(entry.location.line))),
                ]
                return .object(location + totals(entry.totals))
            })
        }
        let leaked = analysis.liveAtEndTotals
        let flags: JSONValue = .object([
            ("native", .bool(header.flags.contains(.native))),
            ("python_allocators", .bool(header.flags.contains(.pythonAllocators))),
            ("follow_fork", .bool(header.flags.contains(.followFork))),
            ("aggregated", .bool(header.flags.contains(.aggregated))),
        ])
        let byAllocator: [(key: String, value: JSONValue)] = AllocatorKind.allCases.compactMap { kind in
            analysis.byAllocator[kind].map { (kind.name, .object(totals($0))) }
        }
        let histogram: [JSONValue] = analysis.histogram.populatedBuckets.map { bucket in
            .object([("min_bytes", int(bucket.range.lowerBound)), ("max_bytes", int(bucket.range.upperBound)),
                     ("count", .int(Int64(bucket.count)))])
        }
        let threads: [JSONValue] = analysis.threads.map { thread in
            let identity: [(key: String, value: JSONValue)] = [
                ("thread", .int(Int64(thread.number))),
                ("tid", thread.osThreadID == 0 ? .null : int(thread.osThreadID)),
                ("name", thread.name.map(JSONValue.string) ?? .null),
            ]
            return .object(identity + totals(thread.allocated))
        }
        let duration: JSONValue = analysis.durationMicros.map { .double(Double($0) / 1_000_000) } ?? .null
        let peakRSS: JSONValue = analysis.memoryOverTime.map(\.rssBytes).max().map(int) ?? .null

        var members: [(key: String, value: JSONValue)] = []
        members.append(("capture", .string(capturePath)))
        members.append(("format_version", .int(Int64(header.version))))
        members.append(("truncated", .bool(analysis.isTruncated)))
        members.append(("stop_cause", analysis.stopCause.map { .string($0.description) } ?? .null))
        members.append(("compressed", .bool(analysis.isCompressed)))
        members.append(("pid", .int(Int64(header.pid))))
        members.append(("parent_pid", .int(Int64(header.parentPid))))
        members.append(("start_time_us", int(header.startTimeMicros)))
        members.append(("duration_seconds", duration))
        members.append(("flags", flags))
        members.append(("arenas_counted", .bool(analysis.countsArenas)))
        members.append(("total_allocations", .int(Int64(analysis.allocated.count))))
        members.append(("total_bytes", int(analysis.allocated.bytes)))
        members.append(("peak_bytes", int(analysis.peak.bytes)))
        members.append(("peak_allocations", .int(Int64(analysis.peak.live.total.count))))
        members.append(("leaked_allocations", .int(Int64(leaked.count))))
        members.append(("leaked_bytes", int(leaked.bytes)))
        members.append(("peak_rss_bytes", peakRSS))
        members.append(("by_allocator", .object(byAllocator)))
        members.append(("histogram", .array(histogram)))
        members.append(("top_by_bytes", locations(analysis.topLocations(by: .bytes, limit: topCount))))
        members.append(("top_by_count", locations(analysis.topLocations(by: .count, limit: topCount))))
        members.append(("threads", .array(threads)))
        members.append(("snapshots", .int(Int64(analysis.memoryOverTime.count))))
        members.append(("records", .int(Int64(analysis.recordCount))))
        members.append(("metadata", header.metadata.json))
        if !analysis.processes.isEmpty { members.append(("processes", .array(analysis.processes.map(processJSON)))) }
        return .object(members)
    }

    /// One process of a process tree (`--children`): its own figures, as its capture's stats gives them.
    private func processJSON(_ process: ProcessFigures) -> JSONValue {
        let header = process.capture.header
        let leaked = process.liveAtEnd ?? .zero
        return .object([
            ("capture", .string(process.capture.path)),
            ("pid", .int(Int64(header.pid))),
            ("parent_pid", .int(Int64(header.parentPid))),
            ("command_line", .array(header.metadata.commandLine.map(JSONValue.string))),
            ("truncated", .bool(process.isTruncated)),
            ("duration_seconds", process.durationMicros.map { .double(Double($0) / 1_000_000) } ?? .null),
            ("total_allocations", .int(Int64(process.allocated.count))),
            ("total_bytes", int(process.allocated.bytes)),
            ("peak_bytes", int(process.peakBytes)),
            ("leaked_allocations", .int(Int64(leaked.count))),
            ("leaked_bytes", int(leaked.bytes)),
        ])
    }

    private func int(_ value: UInt64) -> JSONValue { .int(Int64(clamping: value)) }
}
