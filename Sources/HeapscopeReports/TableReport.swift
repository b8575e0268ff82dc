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

    static let style = #"""
#sites { border-collapse: collapse; width: 100%; font-size: 12px; }
#sites th { text-align: left; border-bottom: 2px solid var(--line); padding: 4px 6px; cursor: pointer; user-select: none; white-space: nowrap; }
#sites th.sorted::after { content: ' \25BC'; font-size: 9px; }
#sites th.sorted.asc::after { content: ' \25B2'; }
#sites td { border-bottom: 1px solid #eee; padding: 2px 6px; vertical-align: top; }
#sites td.loc { word-break: break-all; color: var(--muted); }
#sites .num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
#sites tbody tr:hover { background: #f6f8ff; }
#sites tbody tr.selected { background: #e3ebff; }
#sites td.sizes { white-space: nowrap; }
#sites td.sizes .spark { font-family: ui-monospace, monospace; color: #3478dc; letter-spacing: -1px; margin-right: 6px; }
#sites td.sizes .muted { font-size: 11px; }
#filter { width: 320px; padding: 3px 6px; font: inherit; }
"""#

    static let script = #"""
(function () {
var R = D.rows, n = R.fn.length, LIMIT = 1000;
var wholeBytes = R.bytes, wholeCount = R.count, wholeTotal = D.total, rangeText = '';
var order = [], sortKey = 'bytes', ascending = false, filter = '';
var lower = null;
function loc(i) { return R.file[i] ? R.file[i] + ':' + R.line[i] : '-'; }
function value(i, key) {
  switch (key) {
    case 'fn': return R.fn[i];
    case 'loc': return loc(i);
    case 'thread': return R.thread[i];
    case 'allocator': return R.allocator[i];
    case 'count': return R.count[i];
    case 'sizes': var s = R.sizes[i]; return s.length ? s[s.length - 2] : -1;  // by the largest size bucket
    default: return R.bytes[i];
  }
}
// A row's size histogram: one bar per power-of-two bucket from its smallest to
// its largest, the counts in the cell's tooltip.
var BARS = '\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588';
function bucketLow(k) { return k === 0 ? 0 : Math.pow(2, k - 1); }
function bucketText(k) { return k === 0 ? '0 B' : fmtBytes(bucketLow(k)) + ' to <' + fmtBytes(Math.pow(2, k)); }
function sizesCell(i) {
  var s = R.sizes[i], td = el('td', 'sizes');
  if (!s.length) return td;
  var count = {}, max = 0, lines = [], bars = '';
  for (var k = 0; k < s.length; k += 2) { count[s[k]] = s[k + 1]; max = Math.max(max, s[k + 1]); lines.push(bucketText(s[k]) + ': ' + fmtCount(s[k + 1])); }
  for (var b = s[0]; b <= s[s.length - 2]; b++) bars += count[b] ? BARS[Math.min(7, Math.floor(count[b] / max * 8))] : '\u00a0';
  td.appendChild(el('span', 'spark', bars));
  td.appendChild(el('span', 'muted', s[s.length - 2] === 0 ? '0 B' : fmtBytes(bucketLow(s[0])) + ' to <' + fmtBytes(Math.pow(2, s[s.length - 2]))));
  td.title = 'Allocation sizes (the whole view):\n' + lines.join('\n');
  return td;
}
function apply() {
  var rows = [];
  if (filter) {
    if (!lower) lower = R.fn.map(function (f, i) { return (f + ' ' + loc(i) + ' ' + R.thread[i] + ' ' + R.allocator[i]).toLowerCase(); });
    for (var i = 0; i < n; i++) if (lower[i].indexOf(filter) >= 0) rows.push(i);
  } else {
    for (i = 0; i < n; i++) rows.push(i);
  }
  rows = rows.filter(function (i) { return R.bytes[i] > 0 || R.count[i] > 0; });
  var key = sortKey === 'share' ? 'bytes' : sortKey, numeric = key === 'bytes' || key === 'count' || key === 'sizes';
  rows.sort(function (a, b) {
    var x = value(a, key), y = value(b, key), c = numeric ? x - y : (x < y ? -1 : x > y ? 1 : 0);
    if (c === 0) c = R.bytes[a] - R.bytes[b] || b - a;
    return ascending ? c : -c;
  });
  order = rows;
  render();
}
function render() {
  var body = document.getElementById('rows');
  body.textContent = '';
  var frag = document.createDocumentFragment(), bytes = 0, count = 0;
  for (var k = 0; k < order.length; k++) { bytes += R.bytes[order[k]]; count += R.count[order[k]]; }
  for (k = 0; k < Math.min(order.length, LIMIT); k++) {
    var i = order[k], tr = document.createElement('tr');
    tr.appendChild(el('td', null, R.fn[i]));
    tr.appendChild(el('td', 'loc', loc(i)));
    tr.appendChild(el('td', null, R.thread[i]));
    tr.appendChild(el('td', null, R.allocator[i]));
    var b = el('td', 'num', fmtBytes(R.bytes[i])); b.title = fmtCount(R.bytes[i]) + ' bytes'; tr.appendChild(b);
    tr.appendChild(el('td', 'num', fmtPct(R.bytes[i], D.total)));
    tr.appendChild(el('td', 'num', fmtCount(R.count[i])));
    tr.appendChild(sizesCell(i));
    if (siteChart) { tr.dataset.row = i; tr.classList.toggle('selected', i === selectedRow); }
    frag.appendChild(tr);
  }
  body.appendChild(frag);
  document.getElementById('count-info').textContent = (order.length > LIMIT ? 'showing the first ' + LIMIT + ' of ' : '') +
    fmtCount(order.length) + ' sites' + (filter ? ' matching' : '') + ': ' + fmtBytes(bytes) + ' (' + fmtPct(bytes, D.total) +
    ') in ' + fmtCount(count) + ' allocations';
  document.querySelectorAll('#sites th').forEach(function (th) {
    th.classList.toggle('sorted', th.dataset.key === sortKey);
    th.classList.toggle('asc', th.dataset.key === sortKey && ascending);
  });
  HS.sortKey = sortKey; HS.ascending = ascending; HS.shown = order.length;
}
// Temporal: a range selected on the chart recomputes every row.
function selectRange(t0, t1) {
  if (!D.temporal) return;
  if (t0 === null) {
    R.bytes = wholeBytes; R.count = wholeCount; D.total = wholeTotal; rangeText = ''; HS.range = null;
  } else {
    var TT = D.temporal, ends = TT.ends, A = 0, B = 0, leaks = D.view === 'leaks';
    while (A < ends.length - 1 && ends[A] < t0) A++;
    while (B < ends.length - 1 && ends[B] < t1) B++;
    B = Math.max(A, B);
    var b = new Float64Array(n), c = new Float64Array(n), total = 0;
    for (var i = 0; i < TT.row.length; i++) {
      var a = TT.a[i], f = TT.f[i];
      if (a < A || a > B) continue;
      if (leaks ? f !== TT.never : f <= B) continue;
      b[TT.row[i]] += TT.bytes[i]; c[TT.row[i]] += TT.count[i]; total += TT.bytes[i];
    }
    R.bytes = b; R.count = c; D.total = total;
    var from = A > 0 ? ends[A - 1] : 0, to = ends[B];
    rangeText = 'Selected ' + fmtSeconds(from) + ' \u2013 ' + fmtSeconds(to) + ': ' +
      (leaks ? 'allocated in the range and never freed' : 'allocated in the range and still live at its end');
    HS.range = { from: from, to: to, a: A, b: B };
  }
  apply();
}
// Temporal: memory over time of the biggest rows; a click on a row draws its own curve.
var siteChart = null, selectedRow = -1;
function selectRow(i) {
  selectedRow = i === selectedRow ? -1 : i;
  siteChart.select(selectedRow < 0 ? null : R.fn[i] + ' (' + loc(i) + ')', function (e) { return D.temporal.row[e] === selectedRow; });
  document.querySelectorAll('#rows tr').forEach(function (tr) { tr.classList.toggle('selected', Number(tr.dataset.row) === selectedRow); });
}
if (D.temporal && D.temporal.row.length) {
  var names = R.fn.map(function (f, i) { return f + ' (' + loc(i).slice(loc(i).lastIndexOf('/') + 1) + ')'; });
  var top = [];
  for (var r = 0; r < n && top.length < 6; r++) if (wholeBytes[r] > 0) top.push(r);  // rows come biggest first
  document.getElementById('site-chart-box').hidden = false;
  siteChart = new SiteChart(document.getElementById('site-chart'), document.getElementById('site-chart-info'),
    function (e) { return D.temporal.row[e]; }, names, top);
  HS.siteChart = siteChart;
  document.getElementById('rows').addEventListener('click', function (e) {
    var tr = e.target.closest('tr');
    if (tr && tr.dataset.row !== undefined) selectRow(Number(tr.dataset.row));
  });
}
renderHeader();
var chart = new MemoryChart(document.getElementById('chart'), document.getElementById('chart-info'), D.samples,
  D.temporal ? { onSelect: selectRange, rangeText: function () { return rangeText; } } : {});
HS.selectRange = selectRange;
document.querySelectorAll('#sites th').forEach(function (th) {
  th.addEventListener('click', function () {
    var key = th.dataset.key;
    if (key === sortKey) ascending = !ascending; else { sortKey = key; ascending = key === 'fn' || key === 'loc' || key === 'thread' || key === 'allocator'; }
    apply();
  });
});
document.getElementById('filter').addEventListener('input', function (e) { filter = e.target.value.trim().toLowerCase(); apply(); });
apply();
HS.ready = true;
})();
"""#
}
