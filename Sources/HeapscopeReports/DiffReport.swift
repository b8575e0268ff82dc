import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope diff`: two captures compared in one view, as JSON
/// (docs/DIFF_JSON.md), a terminal table, or a page with a flame graph of the
/// difference (docs/REPORTS.md, "Diff page").
public struct DiffReport {
    public var base: ReportContext
    public var new: ReportContext
    public let diff: CaptureDiff

    public init(base: ReportContext, new: ReportContext) {
        self.base = base
        self.new = new
        diff = CaptureDiff(base: base.analysis, baseResolver: base.resolver, new: new.analysis, newResolver: new.resolver)
    }

    public var view: ReportView { new.options.view }

    // MARK: JSON

    public func json() -> JSONValue {
        func capture(_ context: ReportContext, _ totals: Totals) -> JSONValue {
            let analysis = context.analysis
            return .object([
                ("capture", .string(context.capturePath)),
                ("bytes", int(totals.bytes)),
                ("count", .int(Int64(totals.count))),
                ("peak_bytes", int(analysis.peakBytes)),
                ("allocated_bytes", int(analysis.allocated.bytes)),
                ("allocated_count", .int(Int64(analysis.allocated.count))),
                ("truncated", .bool(analysis.isTruncated)),
                ("command_line", .array(analysis.header.metadata.commandLine.map(JSONValue.string))),
            ])
        }
        let sites: [JSONValue] = diff.sites.map { site in
            .object([
                ("function", .string(site.location.function)),
                ("file", .string(site.location.file)),
                ("line", .int(Int64(site.location.line))),
                ("base_bytes", int(site.base.bytes)),
                ("new_bytes", int(site.new.bytes)),
                ("delta_bytes", .int(site.deltaBytes)),
                ("base_count", .int(Int64(site.base.count))),
                ("new_count", .int(Int64(site.new.count))),
                ("delta_count", .int(Int64(site.deltaCount))),
            ])
        }
        return .object([
            ("view", .string(view.name)),
            ("stacks", .string(stackModeName(new))),
            ("base", capture(base, diff.baseTotal)),
            ("new", capture(new, diff.newTotal)),
            ("delta_bytes", .int(diff.deltaBytes)),
            ("delta_count", .int(Int64(diff.deltaCount))),
            ("changed_sites", .int(Int64(diff.sites.count))),
            ("unchanged_sites", .int(Int64(diff.unchangedCount))),
            ("sites", .array(sites)),
        ])
    }

    private func int(_ value: UInt64) -> JSONValue { .int(Int64(clamping: value)) }

    private func stackModeName(_ context: ReportContext) -> String { context.resolver?.mode.rawValue ?? StackMode.python.rawValue }

    // MARK: Terminal

    /// Both totals, then the `limit` sites that changed most.
    public func summaryText(limit: Int) -> String {
        var lines = [
            "Base: \(base.capturePath)",
            "New:  \(new.capturePath)",
            "View: \(view.explanation)",
            "Total: \(Formatting.bytes(diff.baseTotal.bytes)) -> \(Formatting.bytes(diff.newTotal.bytes)) "
                + "(\(Formatting.signedBytes(diff.deltaBytes))), allocations \(Formatting.count(diff.baseTotal.count)) -> "
                + "\(Formatting.count(diff.newTotal.count)) (\(diff.deltaCount > 0 ? "+" : "")\(Formatting.count(diff.deltaCount)))",
            "",
        ]
        guard !diff.sites.isEmpty else {
            lines.append("No site changed (\(Formatting.count(diff.unchangedCount)) sites with the same figures in both).")
            return lines.joined(separator: "\n")
        }
        let shown = diff.sites.prefix(max(limit, 0))
        let changed = diff.sites.count == 1 ? "The 1 site that changed" : shown.count == diff.sites.count
            ? "All \(Formatting.count(diff.sites.count)) sites that changed, biggest change first"
            : "Top \(shown.count) of \(Formatting.count(diff.sites.count)) sites that changed, biggest change first"
        lines.append("\(changed) (\(Formatting.count(diff.unchangedCount)) unchanged):")
        var table = TextTable(headers: ["Function", "Location", "Base", "New", "Change", "Base n", "New n", "Change n"],
                              alignments: [.left, .left, .right, .right, .right, .right, .right, .right])
        for site in shown {
            let place = site.location.file.isEmpty ? "-" : "\(site.location.file):\(site.location.line)"
            table.add([Formatting.truncated(site.location.function, to: 40), Formatting.truncated(place, to: 60),
                       Formatting.bytes(site.base.bytes), Formatting.bytes(site.new.bytes), Formatting.signedBytes(site.deltaBytes),
                       Formatting.count(site.base.count), Formatting.count(site.new.count),
                       (site.deltaCount > 0 ? "+" : "") + Formatting.count(site.deltaCount)])
        }
        lines.append(table.render(indent: "  "))
        return lines.joined(separator: "\n")
    }

    // MARK: Page

    /// Both captures' stack trees merged by frame location: per node, the
    /// self figures of each capture.
    struct MergedTree {
        var labels: [StackTree.Label] = []
        var labelIndex: [StackTree.Label: Int32] = [:]
        var parent: [Int32] = [-1]
        var label: [Int32] = [0]
        var base: [Totals] = [.zero]
        var new: [Totals] = [.zero]
        var child: [UInt64: Int32] = [:]

        mutating func add(_ tree: StackTree, isBase: Bool) {
            var node = [Int32](repeating: 0, count: tree.count)
            for index in 0..<tree.count {
                let treeLabel = tree.labels[Int(tree.label[index])]
                let labelNumber = labelIndex[treeLabel] ?? {
                    labels.append(treeLabel)
                    labelIndex[treeLabel] = Int32(labels.count - 1)
                    return Int32(labels.count - 1)
                }()
                if index == 0 {
                    node[0] = 0
                } else {
                    let key = UInt64(UInt32(node[Int(tree.parent[index])])) << 32 | UInt64(UInt32(labelNumber))
                    node[index] = child[key] ?? {
                        parent.append(node[Int(tree.parent[index])])
                        label.append(labelNumber)
                        base.append(.zero)
                        new.append(.zero)
                        child[key] = Int32(parent.count - 1)
                        return Int32(parent.count - 1)
                    }()
                }
                let target = Int(node[index])
                if isBase { base[target] = base[target] + tree.selfTotals[index] } else { new[target] = new[target] + tree.selfTotals[index] }
            }
        }
    }

    func mergedTree() -> MergedTree {
        var merged = MergedTree()
        merged.add(FlameGraphReport(context: base).tree, isBase: true)
        merged.add(FlameGraphReport(context: new).tree, isBase: false)
        return merged
    }

    /// The data object the page's script reads: the flame graph page's fields,
    /// node widths the size of each node's own change, plus `diff` (each
    /// capture's own figures per node) and `sites`.
    public func dataJSON() -> [UInt8] {
        let tree = mergedTree()
        var json = ReportJSONWriter(capacity: tree.parent.count * 40 + diff.sites.count * 64 + 4096)
        json.raw("{")
        json.key("title"); json.string("heapscope diff, \(view.name): \(base.capturePath) \u{2192} \(new.capturePath)"); json.comma()
        json.key("capture"); json.string(new.capturePath); json.comma()
        json.key("view"); json.string(view.name); json.comma()
        json.key("viewText"); json.string("change in \(view.explanation), \(base.capturePath) (base) to \(new.capturePath) (new)"); json.comma()
        json.key("units"); json.string(ReportContext.units); json.comma()
        json.key("truncated"); json.bool(base.analysis.isTruncated || new.analysis.isTruncated); json.comma()
        json.key("warnings"); json.stringArray(base.warnings.map { "Base: " + $0 } + new.warnings.map { "New: " + $0 }); json.comma()
        json.key("metaColumns"); json.stringArray(["Base", "New"]); json.comma()
        json.key("meta"); json.raw("[")
        let baseLines = base.metadataLines, newLines = new.metadataLines
        for (index, line) in baseLines.enumerated() {
            if index > 0 { json.comma() }
            json.stringArray([line.0, line.1, index < newLines.count ? newLines[index].1 : ""])
        }
        json.raw("]"); json.comma()
        json.key("peakBytes"); json.unsigned(new.analysis.peakBytes); json.comma()
        json.key("peakTime"); json.null(); json.comma()
        json.key("duration"); json.unsigned(0); json.comma()
        json.key("inverted"); json.bool(false); json.comma()
        json.key("splitThreads"); json.bool(false); json.comma()

        let deltaBytes = tree.parent.indices.map { Int64(truncatingIfNeeded: tree.new[$0].bytes) &- Int64(truncatingIfNeeded: tree.base[$0].bytes) }
        let deltaCount = tree.parent.indices.map { tree.new[$0].count &- tree.base[$0].count }
        json.graph(labels: tree.labels, parent: tree.parent, label: tree.label,
                   bytes: deltaBytes.map(\.magnitude), count: deltaCount.map { Int($0.magnitude) })
        json.key("diff"); json.raw("{")
        json.key("baseBytes"); json.unsignedArray(tree.base.map(\.bytes)); json.comma()
        json.key("newBytes"); json.unsignedArray(tree.new.map(\.bytes)); json.comma()
        json.key("baseCount"); json.unsignedArray(tree.base.map(\.count)); json.comma()
        json.key("newCount"); json.unsignedArray(tree.new.map(\.count)); json.comma()
        json.key("baseTotal"); json.unsigned(diff.baseTotal.bytes); json.comma()
        json.key("newTotal"); json.unsigned(diff.newTotal.bytes)
        json.raw("}"); json.comma()

        json.key("sites"); json.raw("{")
        json.key("fn"); json.stringArray(diff.sites.map(\.location.function)); json.comma()
        json.key("file"); json.stringArray(diff.sites.map(\.location.file)); json.comma()
        json.key("line"); json.unsignedArray(diff.sites.map(\.location.line)); json.comma()
        json.key("baseBytes"); json.unsignedArray(diff.sites.map(\.base.bytes)); json.comma()
        json.key("newBytes"); json.unsignedArray(diff.sites.map(\.new.bytes)); json.comma()
        json.key("baseCount"); json.unsignedArray(diff.sites.map(\.base.count)); json.comma()
        json.key("newCount"); json.unsignedArray(diff.sites.map(\.new.count))
        json.raw("}"); json.comma()
        json.key("samples"); json.raw("{\"t\":[],\"rss\":[],\"heap\":[]}"); json.comma()
        json.key("temporal"); json.null()
        json.raw("}")
        return json.bytes
    }

    public func html() -> [UInt8] {
        ReportHTML.page(title: "heapscope diff: \(base.capturePath) \u{2192} \(new.capturePath)", body: DiffHTML.body,
                        style: ReportHTML.commonStyle + FlameGraphHTML.style + DiffHTML.style,
                        script: ReportHTML.commonScript + FlameGraphHTML.script + DiffHTML.script, data: dataJSON())
    }
}
