import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope tree`: the N biggest allocation sites of the view (by stack) with
/// their call paths, as a tree in the terminal.
public struct TreeReport {
    public var context: ReportContext
    public var biggest: Int

    public init(context: ReportContext, biggest: Int = 10) {
        self.context = context
        self.biggest = biggest
    }

    public func text(width: Int = 100) -> String {
        let analysis = context.analysis
        var lines: [String] = []
        lines.append("heapscope tree: \(context.capturePath)")
        lines.append("View: \(context.options.description): \(context.options.view.explanation)")
        lines.append("Units: \(ReportContext.units)")
        for warning in context.warnings { lines.append(warning) }
        let command = analysis.header.metadata.commandLine.joined(separator: " ")
        lines.append("Command: \(command.isEmpty ? "(not recorded)" : command); \(Formatting.pythonDescription(analysis.header.metadata))")
        lines.append("Peak memory: \(Formatting.bytes(analysis.peakBytes))\(Formatting.peakScope(processes: analysis.processes.count)); shown: \(Formatting.bytes(analysis.total.bytes)) in \(Formatting.allocations(analysis.total.count))")
        lines.append("")

        var tree = StackTree(tables: analysis.tables, splitThreads: false, inverted: context.options.inverted,
                             rootName: "all", threadName: { "thread \($0)" })
        // The biggest sites by stack (threads merged; native stacks kept apart).
        let top = analysis.byStackKey.byKey.filter { $0.value.bytes > 0 || $0.value.count > 0 }
            .sorted { a, b in a.value.bytes != b.value.bytes ? a.value.bytes > b.value.bytes : a.key < b.key }
            .prefix(biggest)
        for (key, totals) in top {
            tree.add(frame: key.frame, nativeFrame: key.nativeFrame, thread: 0, totals: totals, resolver: context.resolver)
        }
        let shownCount = top.count
        guard shownCount > 0 else {
            lines.append("Nothing to show in this view.")
            return lines.joined(separator: "\n") + "\n"
        }
        let totals = tree.totals()
        let children = tree.children(totals: totals)
        let whole = analysis.total.bytes
        lines.append("The \(shownCount) biggest allocation site\(shownCount == 1 ? "" : "s") (\(Formatting.bytes(totals[0].bytes)), "
                     + "\(Formatting.percent(totals[0].bytes, of: whole)) of the view), with their call paths:")
        lines.append("")

        func describe(_ node: Int) -> String {
            let figures = "\(Formatting.bytes(totals[node].bytes)) (\(Formatting.percent(totals[node].bytes, of: whole))), "
                + "\(Formatting.allocations(totals[node].count))"
            if node == 0 { return "all sites shown: " + figures }
            let location = tree.location(ofNode: node)
            let place = location.file.isEmpty ? "" : "  \(location.file):\(location.line)"
            let own = tree.selfTotals[node].bytes > 0 && !children[node].isEmpty
                ? " [here: \(Formatting.bytes(tree.selfTotals[node].bytes))]" : ""
            return "\(figures)  \(location.function)\(place)\(own)"
        }

        lines.append(describe(0))
        // Depth-first, biggest child first; a single-child chain stays a straight line.
        var stack: [(node: Int, prefix: String, last: Bool)] = children[0].reversed().enumerated().map {
            (Int($0.element), "", $0.offset == 0)
        }
        while let (node, prefix, last) = stack.popLast() {
            let line = prefix + (last ? "└── " : "├── ") + describe(node)
            lines.append(line.count > width && width > 20 ? String(line.prefix(width - 1)) + "…" : line)
            let childPrefix = prefix + (last ? "    " : "│   ")
            let kids = children[node]
            for (offset, kid) in kids.reversed().enumerated() {
                stack.append((Int(kid), childPrefix, offset == 0))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
