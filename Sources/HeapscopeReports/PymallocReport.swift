import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope pymalloc`: the pymalloc arena model of a capture as text, JSON
/// or one self-contained HTML page (docs/PYMALLOC.md).
public struct PymallocReport {
    public var analysis: PymallocAnalysis
    public var capturePath: String
    /// How many pinning sites and holders the report lists.
    public var topCount: Int

    public init(analysis: PymallocAnalysis, capturePath: String, topCount: Int = 5) {
        self.analysis = analysis
        self.capturePath = capturePath
        self.topCount = topCount
    }

    /// Notes on what the capture can and cannot say (allocator, tracing, cut short).
    public var notes: [String] {
        var notes: [String] = []
        let metadata = analysis.header.metadata
        if analysis.isTruncated { notes.append(StatsReport.cutShortNote(analysis.stopCause)) }
        if !analysis.pymallocActive {
            notes.append("pymalloc was not active in this run (allocator \(metadata.pythonAllocator ?? "unknown")): "
                         + "every object was a system allocation, so there are no arenas to model. "
                         + "Record without PYTHONMALLOC (and without --leaks) to see pymalloc's arenas.")
        } else if !analysis.blocksTraced {
            notes.append("Python allocators were not traced: only arenas (their number over time) are known, not the "
                         + "blocks inside them. Rerun with --trace-python-allocators (the default) for occupancy, "
                         + "fragmentation and the blocks that pin arenas.")
        }
        if analysis.blocksOutsideTrackedArenas.count > 0 {
            notes.append("\(Formatting.count(analysis.blocksOutsideTrackedArenas.count)) blocks "
                         + "(\(Formatting.bytes(analysis.blocksOutsideTrackedArenas.bytes))) still live at the end sit in "
                         + "arenas pymalloc obtained before tracking began; those arenas are not counted.")
        }
        if analysis.anomalies > 0 {
            notes.append("\(Formatting.count(analysis.anomalies)) events could not be placed in the model "
                         + "(a block in a pool of another size class, or an arena returned with live blocks).")
        }
        return notes
    }

    /// Where the geometry came from, in one line.
    public var geometryLine: String {
        let g = analysis.geometry
        var text = "arena \(Formatting.bytes(g.arenaSize)), pool \(Formatting.bytes(g.poolSize)), "
            + "alignment \(g.alignment) B, small requests up to \(g.smallRequestThreshold) B "
            + "(\(g.sizeClassCount) size classes), pool header \(g.poolHeaderSize) B"
        if g.debugOffset > 0 { text += ", debug hooks +\(g.debugExtra) B per block" }
        switch g.source {
        case "metadata":
            text += g.crossChecked.isEmpty ? " (recorded at tracking start)"
                : " (recorded at tracking start; checked against sys._debugmallocstats: \(g.crossChecked.joined(separator: ", ")))"
        default:
            text += " (not recorded: CPython 3.10+ 64-bit defaults)"
        }
        return text
    }

    public func holderDescription(_ holder: HolderGroup.Holder) -> String {
        switch holder {
        case .allocatedAt(let frame, let kind):
            let stack = analysis.tables.stack(ofFrame: frame)
            guard let first = stack.first else { return "an object allocated with no Python frame (\(kind.name))" }
            var text = "an object allocated at \(StatsReport.describe(first))"
            let callers = stack.dropFirst().prefix(3).map(\.function)
            if !callers.isEmpty { text += " <- " + callers.joined(separator: " <- ") }
            return text
        case .beforeTracking:
            return "an object allocated before tracking began (e.g. a module's globals)"
        case .notFound:
            return "no container found (held from a frame, a C extension, or the walk's budget ran out)"
        }
    }

    // MARK: Text

    public func text() -> String {
        var out: [String] = []
        let metadata = analysis.header.metadata
        out.append("Capture: \(capturePath)")
        out.append("pymalloc arena model. Allocator: \(AllocatorNotes.describe(metadata))")
        out.append("Geometry: \(geometryLine)")
        for note in notes { out.append("Note: \(note)") }
        out.append("")
        out.append("Arenas: \(Formatting.count(analysis.arenasAllocated)) obtained and \(Formatting.count(analysis.arenasReleased)) returned while tracking")
        if let peak = analysis.peak {
            out.append("")
            out.append("At the peak (most arenas held\(peak.timeMicros.map { ", at " + Formatting.seconds(micros: $0) } ?? "")):")
            out += stateLines(peak)
        }
        out.append("")
        out.append("At the end:")
        out += stateLines(analysis.end)
        if analysis.blocksTraced && analysis.pymallocActive {
            out.append("")
            out += pinnedLines()
            out.append("")
            out.append("Pools in use per size class at the end (block size: pools):")
            var row: [String] = []
            for (sizeClass, pools) in analysis.end.poolsInUseByClass.enumerated() where pools > 0 {
                row.append("\(analysis.geometry.blockSize(ofClass: sizeClass)) B: \(pools)")
            }
            out.append("  " + (row.isEmpty ? "none" : row.joined(separator: ", ")))
        }
        if !analysis.samples.isEmpty {
            out.append("")
            out.append("Over time (arenas held and their occupancy):")
            out += timelineLines(rows: 10)
        }
        return out.joined(separator: "\n") + "\n"
    }

    func stateLines(_ state: PymallocState) -> [String] {
        var lines = ["  arenas held:        \(Formatting.count(state.arenasHeld)) (\(Formatting.bytes(state.arenaBytes)))"]
        guard analysis.blocksTraced && analysis.pymallocActive else { return lines }
        lines.append("  pools in use:       \(Formatting.count(state.poolsInUse))")
        lines.append("  live blocks:        \(Formatting.count(state.liveBlocks)): \(Formatting.bytes(state.requestedBytes)) requested, \(Formatting.bytes(state.blockBytes)) in blocks")
        lines.append("  free inside pymalloc: \(Formatting.bytes(state.freeInsideBytes)) held but not in use "
                     + "(fragmentation \(Formatting.fixed(state.fragmentation * 100, decimals: 1))%)")
        lines.append("    empty pools \(Formatting.bytes(state.emptyPoolBytes)), free blocks in used pools \(Formatting.bytes(state.freeBlockBytes)), "
                     + "pool headers \(Formatting.bytes(state.poolHeaderBytes)), arena alignment \(Formatting.bytes(state.alignmentBytes)), "
                     + "rounding to block size \(Formatting.bytes(state.roundingBytes))")
        let labels = (0..<10).map { "\($0 * 10)-\($0 * 10 + 10)%" }
        let histogram = zip(labels, state.occupancyHistogram).filter { $0.1 > 0 }.map { "\($0.0): \($0.1)" }
        lines.append("  arenas by occupancy: " + (histogram.isEmpty ? "none" : histogram.joined(separator: ", ")))
        return lines
    }

    func pinnedLines() -> [String] {
        var lines: [String] = []
        let pinned = analysis.pinnedArenas
        let held = analysis.end.arenasHeld
        lines.append("Arenas kept alive by a few live blocks (at most \(analysis.pinnedPercent)% occupied): "
                     + "\(Formatting.count(pinned.count)) of \(Formatting.count(held)) held at the end")
        guard !pinned.isEmpty else { return lines }
        let heldBytes = UInt64(pinned.count) * analysis.geometry.arenaSize
        lines.append("  they hold \(Formatting.bytes(heldBytes)) for \(Formatting.count(analysis.pinningBlocks.count)) live blocks "
                     + "(\(Formatting.bytes(analysis.pinningBlocks.bytes))); freeing those blocks would let pymalloc return them")
        lines.append("  the pinning blocks were allocated at:")
        for site in analysis.pinningSites.prefix(topCount) {
            let stack = analysis.tables.stack(ofFrame: site.frame)
            let head = stack.first.map(StatsReport.describe) ?? "<no Python frame>"
            lines.append("    \(Formatting.bytes(site.totals.bytes)) in \(Formatting.count(site.totals.count)) blocks: \(head)")
            for caller in stack.dropFirst().prefix(4) { lines.append("        called from \(StatsReport.describe(caller))") }
        }
        if analysis.referrersAvailable {
            lines.append("  and are kept alive by (referrers when tracking stopped\(analysis.referrersComplete ? "" : ", walk incomplete")):")
            for group in analysis.holders.prefix(topCount) {
                lines.append("    \(Formatting.bytes(group.totals.bytes)) in \(Formatting.count(group.totals.count)) blocks: \(holderDescription(group.holder))")
            }
        } else {
            lines.append("  (what holds them is not known: no <capture>.refs referrers file next to the capture; "
                         + "`heapscope run --referrers` writes it when tracking stops)")
        }
        return lines
    }

    func timelineLines(rows: Int) -> [String] {
        let samples = analysis.samples
        var picked: [PymallocSample] = []
        if samples.count <= rows {
            picked = samples
        } else {
            for index in 0..<rows { picked.append(samples[index * (samples.count - 1) / (rows - 1)]) }
        }
        var table = TextTable(headers: ["time", "arenas", "held", "in blocks", "occupancy"],
                              alignments: [.right, .right, .right, .right, .right])
        for sample in picked {
            let held = UInt64(sample.arenasHeld) * analysis.geometry.arenaSize
            table.add([Formatting.seconds(micros: sample.timeMicros), Formatting.count(sample.arenasHeld), Formatting.bytes(held),
                       analysis.blocksTraced ? Formatting.bytes(sample.blockBytes) : "-",
                       analysis.blocksTraced ? Formatting.percent(sample.blockBytes, of: held) : "-"])
        }
        return table.render(indent: "  ").split(separator: "\n").map(String.init)
    }

    // MARK: JSON

    public func json() -> JSONValue {
        func state(_ s: PymallocState) -> JSONValue {
            .object([
                ("time_us", s.timeMicros.map { .int(Int64($0)) } ?? .null),
                ("arenas_held", .int(Int64(s.arenasHeld))),
                ("arena_bytes", .int(Int64(s.arenaBytes))),
                ("pools_in_use", .int(Int64(s.poolsInUse))),
                ("pools_in_use_by_class", .array(s.poolsInUseByClass.map { .int(Int64($0)) })),
                ("live_blocks", .int(Int64(s.liveBlocks))),
                ("requested_bytes", .int(Int64(s.requestedBytes))),
                ("block_bytes", .int(Int64(s.blockBytes))),
                ("free_inside_bytes", .int(Int64(s.freeInsideBytes))),
                ("fragmentation", .double(s.fragmentation)),
                ("empty_pool_bytes", .int(Int64(s.emptyPoolBytes))),
                ("free_block_bytes", .int(Int64(s.freeBlockBytes))),
                ("pool_header_bytes", .int(Int64(s.poolHeaderBytes))),
                ("alignment_bytes", .int(Int64(s.alignmentBytes))),
                ("rounding_bytes", .int(Int64(s.roundingBytes))),
                ("occupancy_histogram", .array(s.occupancyHistogram.map { .int(Int64($0)) })),
            ])
        }
        func location(_ frame: FrameID) -> JSONValue {
            .array(analysis.tables.stack(ofFrame: frame).map { l in
                .object([("function", .string(l.function)), ("file", .string(l.file)), ("line", .int(Int64(l.line)))])
            })
        }
        let g = analysis.geometry
        let holders: [JSONValue] = analysis.holders.map { group in
            var fields: [(key: String, value: JSONValue)] = [("count", .int(Int64(group.totals.count))), ("bytes", .int(Int64(group.totals.bytes)))]
            switch group.holder {
            case .allocatedAt(let frame, let kind):
                fields.insert(contentsOf: [("holder", .string("allocated")), ("allocator", .string(kind.name)), ("stack", location(frame))], at: 0)
            case .beforeTracking:
                fields.insert(("holder", .string("before_tracking")), at: 0)
            case .notFound:
                fields.insert(("holder", .string("not_found")), at: 0)
            }
            return .object(fields)
        }
        return .object([
            ("capture", .string(capturePath)),
            ("truncated", .bool(analysis.isTruncated)),
            ("python_allocator", .string(analysis.header.metadata.pythonAllocator ?? "unknown")),
            ("pymalloc_active", .bool(analysis.pymallocActive)),
            ("blocks_traced", .bool(analysis.blocksTraced)),
            ("geometry", .object([
                ("arena_size", .int(Int64(g.arenaSize))), ("pool_size", .int(Int64(g.poolSize))),
                ("alignment", .int(Int64(g.alignment))), ("small_request_threshold", .int(Int64(g.smallRequestThreshold))),
                ("pool_header_size", .int(Int64(g.poolHeaderSize))), ("source", .string(g.source)),
                ("cross_checked", .array(g.crossChecked.map { .string($0) })),
            ])),
            ("arenas_allocated", .int(Int64(analysis.arenasAllocated))),
            ("arenas_released", .int(Int64(analysis.arenasReleased))),
            ("blocks_allocated", .int(Int64(analysis.blocksAllocated.count))),
            ("peak", analysis.peak.map(state) ?? .null),
            ("end", state(analysis.end)),
            ("pinned_percent", .int(Int64(analysis.pinnedPercent))),
            ("pinned_arenas", .int(Int64(analysis.pinnedArenas.count))),
            ("pinning_blocks", .object([("count", .int(Int64(analysis.pinningBlocks.count))), ("bytes", .int(Int64(analysis.pinningBlocks.bytes)))])),
            ("pinning_sites", .array(analysis.pinningSites.prefix(topCount).map { site in
                .object([("count", .int(Int64(site.totals.count))), ("bytes", .int(Int64(site.totals.bytes))), ("stack", location(site.frame))])
            })),
            ("referrers_available", .bool(analysis.referrersAvailable)),
            ("referrers_complete", .bool(analysis.referrersComplete)),
            ("holders", .array(Array(holders.prefix(topCount)))),
            ("blocks_outside_tracked_arenas", .object([
                ("count", .int(Int64(analysis.blocksOutsideTrackedArenas.count))),
                ("bytes", .int(Int64(analysis.blocksOutsideTrackedArenas.bytes))),
            ])),
            ("anomalies", .int(Int64(analysis.anomalies))),
            ("samples", .array(analysis.samples.map { s in
                .array([.int(Int64(s.timeMicros)), .int(Int64(s.arenasHeld)), .int(Int64(s.poolsInUse)),
                        .int(Int64(s.requestedBytes)), .int(Int64(s.blockBytes))])
            })),
            ("notes", .array(notes.map { .string($0) })),
        ])
    }
}
