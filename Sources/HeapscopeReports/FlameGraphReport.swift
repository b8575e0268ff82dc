import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope flamegraph`: one self-contained HTML page (data, CSS and JS inline)
/// with a canvas flame graph, the memory-over-time chart and the capture's
/// metadata. docs/REPORTS.md describes the page.
public struct FlameGraphReport {
    public var context: ReportContext
    public private(set) var tree: StackTree
    /// Temporal entries, mapped onto tree nodes.
    private var temporalNodes: [Int32] = []

    public init(context: ReportContext) {
        self.context = context
        let analysis = context.analysis
        let threadName = { [context] (number: ThreadNumber) in context.threadName(number) }
        tree = StackTree(tables: analysis.tables, splitThreads: context.options.splitThreads,
                         inverted: context.options.inverted, rootName: "all", threadName: threadName)
        // Biggest sites first: node numbering then follows size, which keeps the
        // page's tables in a helpful order.
        let sites = analysis.sites.sorted { $0.totals.bytes > $1.totals.bytes }
        for site in sites {
            tree.add(frame: site.frame, nativeFrame: site.nativeFrame, thread: site.thread, totals: site.totals,
                     resolver: context.resolver)
        }
        if let temporal = analysis.temporal {
            temporalNodes = temporal.entries.map {
                tree.leaf(frame: $0.frame, nativeFrame: $0.nativeFrame, thread: $0.thread, resolver: context.resolver)
            }
        }
    }

    /// The data object the page's script reads.
    public func dataJSON() -> [UInt8] {
        let analysis = context.analysis
        var json = ReportJSONWriter(capacity: tree.count * 24 + 4096)
        json.raw("{")
        json.key("title"); json.string(context.title); json.comma()
        json.key("capture"); json.string(context.capturePath); json.comma()
        json.pageFields(context)
        json.key("inverted"); json.bool(context.options.inverted); json.comma()
        json.key("splitThreads"); json.bool(context.options.splitThreads); json.comma()

        json.graph(labels: tree.labels, parent: tree.parent, label: tree.label,
                   bytes: tree.selfTotals.map(\.bytes), count: tree.selfTotals.map(\.count))

        let samples = Self.downsample(analysis.memoryOverTime, to: 2000)
        json.key("samples"); json.raw("{")
        json.key("t"); json.unsignedArray(samples.map(\.timeMicros)); json.comma()
        json.key("rss"); json.unsignedArray(samples.map(\.rssBytes)); json.comma()
        json.key("heap"); json.unsignedArray(samples.map(\.heapBytes))
        json.raw("}"); json.comma()

        json.key("temporal")
        json.temporal(analysis.temporal, entryTarget: "node", targets: temporalNodes)
        json.raw("}")
        return json.bytes
    }

    /// At most `limit` samples: each kept sample is the one with the highest heap
    /// in its stretch (so the peak survives), with the stretch's highest RSS.
    static func downsample(_ samples: [MemorySample], to limit: Int) -> [MemorySample] {
        guard samples.count > limit, limit > 0 else { return samples }
        var result: [MemorySample] = []
        result.reserveCapacity(limit)
        let stride = (samples.count + limit - 1) / limit
        var index = 0
        while index < samples.count {
            let chunk = samples[index..<min(samples.count, index + stride)]
            var best = chunk.max { $0.heapBytes < $1.heapBytes }!
            best.rssBytes = chunk.map(\.rssBytes).max()!
            best.timeMicros = chunk.last!.timeMicros
            result.append(best)
            index += stride
        }
        return result
    }

    public func html() -> [UInt8] {
        ReportHTML.page(title: context.title, body: FlameGraphHTML.body, style: ReportHTML.commonStyle + FlameGraphHTML.style,
                        script: ReportHTML.commonScript + FlameGraphHTML.script, data: dataJSON())
    }
}

/// Assembles a self-contained page.
public enum ReportHTML {
    public static func page(title: String, body: String, style: String, script: String, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + script.utf8.count + style.utf8.count + body.utf8.count + 1024)
        out += Array("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n".utf8)
        out += Array("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n".utf8)
        out += Array("<title>\(escape(title))</title>\n<style>\n\(style)\n</style>\n</head>\n<body>\n".utf8)
        out += Array(body.utf8)
        out += Array("\n<script type=\"application/json\" id=\"heapscope-data\">".utf8)
        out += data
        out += Array("</script>\n<script>\n".utf8)
        out += Array(script.utf8)
        out += Array("\n</script>\n</body>\n</html>\n".utf8)
        return out
    }

    public static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }
}

extension ReportJSONWriter {
    /// The flame graph page's `labels`, `sources` (source lines where the file
    /// is readable here) and `nodes` (parent, label, self bytes and count per
    /// node; a node's parent comes before it), each followed by a comma.
    mutating func graph(labels: [StackTree.Label], parent: [Int32], label: [Int32], bytes: [UInt64], count: [Int]) {
        // Labels, with source lines where the file is readable here.
        var sources = SourceCache()
        var sourceLabel: [Int] = [], sourceStart: [Int] = [], sourceText: [String] = []
        key("labels"); raw("{")
        key("fn"); stringArray(labels.map(\.location.function)); comma()
        key("file"); stringArray(labels.map(\.location.file)); comma()
        key("line"); unsignedArray(labels.map(\.location.line)); comma()
        key("kind"); unsignedArray(labels.map(\.kind.rawValue)); comma()
        key("internal"); unsignedArray(labels.map { $0.kind == .frame && isInterpreterInternal($0.location) ? 1 : 0 })
        raw("}"); comma()
        for (index, label) in labels.enumerated() where label.kind == .frame && sourceLabel.count < 20_000 {
            if let lines = sources.lines(file: label.location.file, around: label.location.line) {
                sourceLabel.append(index)
                sourceStart.append(lines.start)
                sourceText.append(lines.lines.joined(separator: "\n"))
            }
        }
        key("sources"); raw("{")
        key("label"); unsignedArray(sourceLabel); comma()
        key("start"); unsignedArray(sourceStart); comma()
        key("text"); stringArray(sourceText)
        raw("}"); comma()

        key("nodes"); raw("{")
        key("parent"); unsignedArray(parent); comma()
        key("label"); unsignedArray(label); comma()
        key("bytes"); unsignedArray(bytes); comma()
        key("count"); unsignedArray(count)
        raw("}"); comma()
    }
}
