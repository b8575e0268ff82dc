// The table page: sortable, filterable sites, the temporal range, the per-site
// memory chart and size histograms. Data: README.md.
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
