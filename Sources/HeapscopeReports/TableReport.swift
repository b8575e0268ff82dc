import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope table`: one self-contained HTML page with a sortable, filterable
/// table of allocation sites (function, file:line, thread, allocator, bytes,
/// count) for the view.
public struct TableReport {
    public struct Row: Equatable, Sendable {
        public var location: Location
        public var thread: ThreadNumber
        public var kind: AllocatorKind
        public var totals: Totals
        public var sizes: SparseSizeHistogram
    }

    public var context: ReportContext
    /// Biggest first.
    public private(set) var rows: [Row]

    public init(context: ReportContext) {
        self.context = context
        rows = Self.rows(context)
    }

    /// Sites merged by (innermost location, thread, allocator), biggest first.
    /// With temporal data, sites that only appear there get rows too (with
    /// nothing in the whole-run view).
    public static func rows(_ context: ReportContext) -> [Row] {
        let analysis = context.analysis
        var rows: [Row] = []
        var index: [RowKey: Int] = [:]
        var cache: [StackKey: Location] = [:]
        func add(frame: FrameID, nativeFrame: NativeFrameID, thread: ThreadNumber, kind: AllocatorKind, totals: Totals,
                 sizes: SparseSizeHistogram = SparseSizeHistogram()) {
            let stack = StackKey(frame: frame, nativeFrame: nativeFrame)
            let location = cache[stack] ?? context.innermost(frame: frame, nativeFrame: nativeFrame)
            cache[stack] = location
            let key = RowKey(location: location, thread: thread, kind: kind)
            if let existing = index[key] {
                rows[existing].totals = rows[existing].totals + totals
                rows[existing].sizes = rows[existing].sizes + sizes
            } else {
                index[key] = rows.count
                rows.append(Row(location: key.location, thread: thread, kind: kind, totals: totals, sizes: sizes))
            }
        }
        for site in analysis.sites where site.totals.bytes > 0 || site.totals.count > 0 {
            add(frame: site.frame, nativeFrame: site.nativeFrame, thread: site.thread, kind: site.kind, totals: site.totals,
                sizes: site.sizes)
        }
        for entry in analysis.temporal?.entries ?? [] {
            add(frame: entry.frame, nativeFrame: entry.nativeFrame, thread: entry.thread, kind: entry.kind, totals: .zero)
        }
        return rows.sorted { a, b in
            if a.totals.bytes != b.totals.bytes { return a.totals.bytes > b.totals.bytes }
            if a.totals.count != b.totals.count { return a.totals.count > b.totals.count }
            return (a.location, a.thread, a.kind.rawValue) < (b.location, b.thread, b.kind.rawValue)
        }
    }

    struct RowKey: Hashable { var location: Location; var thread: ThreadNumber; var kind: AllocatorKind }


    public func dataJSON() -> [UInt8] {
        let analysis = context.analysis
        var json = ReportJSONWriter(capacity: rows.count * 64 + 4096)
        json.raw("{")
        json.key("title"); json.string(context.title); json.comma()
        json.key("capture"); json.string(context.capturePath); json.comma()
        json.pageFields(context)
        json.key("total"); json.unsigned(analysis.total.bytes); json.comma()
        let samples = FlameGraphReport.downsample(analysis.memoryOverTime, to: 2000)
        json.key("samples"); json.raw("{")
        json.key("t"); json.unsignedArray(samples.map(\.timeMicros)); json.comma()
        json.key("rss"); json.unsignedArray(samples.map(\.rssBytes)); json.comma()
        json.key("heap"); json.unsignedArray(samples.map(\.heapBytes))
        json.raw("}"); json.comma()
        var threadNames: [ThreadNumber: String] = [:]
        json.key("rows"); json.raw("{")
        json.key("fn"); json.stringArray(rows.map(\.location.function)); json.comma()
        json.key("file"); json.stringArray(rows.map(\.location.file)); json.comma()
        json.key("line"); json.unsignedArray(rows.map(\.location.line)); json.comma()
        json.key("thread"); json.stringArray(rows.map { row in
            if let name = threadNames[row.thread] { return name }
            let name = context.threadName(row.thread)
            threadNames[row.thread] = name
            return name
        }); json.comma()
        json.key("allocator"); json.stringArray(rows.map(\.kind.name)); json.comma()
        json.key("bytes"); json.unsignedArray(rows.map(\.totals.bytes)); json.comma()
        json.key("count"); json.unsignedArray(rows.map(\.totals.count)); json.comma()
        // Per row its non-empty size buckets (SizeHistogram's), flat: bucket, count, bucket, count...
        json.key("sizes"); json.raw("[")
        for (position, row) in rows.enumerated() {
            if position > 0 { json.comma() }
            json.unsignedArray(row.sizes.buckets.flatMap { [$0.bucket, $0.count] })
        }
        json.raw("]")
        json.raw("}"); json.comma()
        json.key("temporal")
        if let temporal = analysis.temporal {
            var index: [RowKey: Int] = [:]
            for (position, row) in rows.enumerated() {
                index[RowKey(location: row.location, thread: row.thread, kind: row.kind)] = position
            }
            let rowOfEntry = temporal.entries.map { entry in
                let location = context.innermost(frame: entry.frame, nativeFrame: entry.nativeFrame)
                return index[RowKey(location: location, thread: entry.thread, kind: entry.kind)] ?? 0
            }
            json.temporal(temporal, entryTarget: "row", targets: rowOfEntry)
        } else {
            json.null()
        }
        json.raw("}")
        return json.bytes
    }

    public func html() -> [UInt8] {
        ReportHTML.page(title: context.title, body: TableHTML.body, style: ReportHTML.commonStyle + TableHTML.style,
                        script: ReportHTML.commonScript + TableHTML.script, data: dataJSON())
    }
}

enum TableHTML {
    static let body = #"""
\#(ReportHTML.pageHeader)
<div id="toolbar">
<input id="filter" type="search" placeholder="Filter: function, file, thread, allocator" autocomplete="off">
<span id="count-info" class="muted"></span>
</div>
<table id="sites">
<thead><tr>
<th data-key="fn">Function</th><th data-key="loc">Location</th><th data-key="thread">Thread</th>
<th data-key="allocator">Allocator</th><th data-key="bytes" class="num">Bytes</th><th data-key="share" class="num">Share</th>
<th data-key="count" class="num">Allocations</th>
<th data-key="sizes" title="Allocation sizes in power-of-two buckets, smallest to largest; hover a cell for the counts">Sizes</th>
</tr></thead>
<tbody id="rows"></tbody>
</table>
<footer>heapscope table. Click a column heading to sort (again to reverse); the filter matches any column.</footer>
"""#

    static let style = ReportHTML.resource(PackageResources.table_css)

    static let script = ReportHTML.resource(PackageResources.table_js)
}
