// The flame graph page, and the diff page's graph (D.diff set: widths are the
// size of the change, colours its direction). Data: README.md.
(function () {
var L = D.labels, N = D.nodes, nOrig = N.parent.length, nLabels = L.fn.length, DF = D.diff || null;
var ROW = 18, NEVER = D.temporal ? D.temporal.never : 65535;
var graph = document.getElementById('graph'), box = document.getElementById('graph-box');
var tooltip = document.getElementById('tooltip');
var T = null;           // the displayed tree
var focus = 0, history = [];
var rects = null;       // the last layout
var matchLabel = null;  // Uint8Array over labels, or null
var selfBytes = N.bytes, selfCount = N.count;
var rangeText = '';
var sourceOf = new Map();
for (var si = 0; si < D.sources.label.length; si++) sourceOf.set(D.sources.label[si], si);
var lowerFn = null, lowerFile = null;

// ---- the displayed tree: the original nodes with hidden frames spliced out.
function buildTree(hide) {
  var disp = new Int32Array(nOrig), parent = [-1], label = [N.label[0]], keys = new Map();
  for (var i = 1; i < nOrig; i++) {
    var p = disp[N.parent[i]], lab = N.label[i];
    if (hide && L.internal[lab]) { disp[i] = p; continue; }
    var k = p * nLabels + lab, d = keys.get(k);
    if (d === undefined) { d = parent.length; parent.push(p); label.push(lab); keys.set(k, d); }
    disp[i] = d;
  }
  T = { n: parent.length, parent: Int32Array.from(parent), label: Int32Array.from(label), disp: disp };
  computeValues();
}

// Totals per displayed node and sorted children (nothing-nodes left out).
function computeValues() {
  var n = T.n, b = new Float64Array(n), c = new Float64Array(n), i;
  for (i = 0; i < nOrig; i++) { b[T.disp[i]] += selfBytes[i]; c[T.disp[i]] += selfCount[i]; }
  T.own = Float64Array.from(b); T.ownCount = Float64Array.from(c);
  for (i = n - 1; i > 0; i--) { b[T.parent[i]] += b[i]; c[T.parent[i]] += c[i]; }
  T.total = b; T.count = c;
  if (DF) {
    var sums = [DF.baseBytes, DF.newBytes, DF.baseCount, DF.newCount].map(function (self) {
      var v = new Float64Array(n);
      for (var k = 0; k < nOrig; k++) v[T.disp[k]] += self[k];
      for (k = n - 1; k > 0; k--) v[T.parent[k]] += v[k];
      return v;
    });
    T.baseBytes = sums[0]; T.newBytes = sums[1]; T.baseCount = sums[2]; T.newCount = sums[3];
  }
  var nk = new Int32Array(n + 1);
  for (i = 1; i < n; i++) if (b[i] > 0) nk[T.parent[i] + 1]++;
  for (i = 0; i < n; i++) nk[i + 1] += nk[i];
  var fill = nk.slice(0, n), kids = new Int32Array(nk[n]);
  for (i = 1; i < n; i++) if (b[i] > 0) kids[fill[T.parent[i]]++] = i;
  for (i = 0; i < n; i++) {
    var s = nk[i], e = nk[i + 1];
    if (e - s > 1) {
      var part = Array.prototype.slice.call(kids, s, e);
      part.sort(function (x, y) { return b[y] - b[x] || x - y; });
      for (var j = 0; j < part.length; j++) kids[s + j] = part[j];
    }
  }
  T.kidStart = nk; T.kids = kids;
  T.depth = new Int32Array(n);
  for (i = 1; i < n; i++) T.depth[i] = T.depth[T.parent[i]] + 1;
}

// ---- colours
function hash(s) { var h = 0; for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h >>> 0; }
var colourCache = new Map();
function colour(node) {
  var lab = T.label[node];
  if (matchLabel && matchLabel[lab]) return '#b84de0';
  var kind = L.kind[lab];
  if (kind === 0) return '#d8d8d8';
  if (DF && kind !== 1) return diffColour(node);
  if (kind === 1) return '#a9c4e8';
  if (kind === 3) return '#c8c8c8';
  var c = colourCache.get(lab);
  if (c) return c;
  var h = hash(L.fn[lab]);
  if (L.internal[lab]) c = 'hsl(' + (200 + h % 30) + ',25%,' + (72 + (h >> 8) % 10) + '%)';
  else c = 'hsl(' + (h % 45) + ',' + (75 + (h >> 8) % 20) + '%,' + (58 + (h >> 16) % 14) + '%)';
  colourCache.set(lab, c);
  return c;
}
// Growth red, shrinkage blue, the more saturated the more of the node's change is net change.
function delta(node) { return T.newBytes[node] - T.baseBytes[node]; }
function diffColour(node) {
  var d = delta(node), share = T.total[node] > 0 ? Math.abs(d) / T.total[node] : 0;
  if (d === 0) return '#d0d0d0';
  return 'hsl(' + (d > 0 ? 4 : 214) + ',' + Math.round(35 + 50 * share) + '%,' + Math.round(80 - 22 * share) + '%)';
}
function name(node) { var lab = T.label[node]; return L.fn[lab]; }
// "file.py:12" (the file's last path component) for frames
function place(node) {
  var lab = T.label[node];
  if (L.kind[lab] !== 2) return '';
  var f = L.file[lab], slash = f.lastIndexOf('/');
  return (slash >= 0 ? f.slice(slash + 1) : f) + ':' + L.line[lab];
}

// ---- layout: ancestors of the focus at full width, then its subtree.
function layout(W) {
  var rn = [], rx = [], ry = [], rw = [], maxDepth = 0;
  var chain = [];
  for (var a = focus; a !== -1; a = T.parent[a]) chain.push(a);
  chain.reverse();
  for (var i = 0; i < chain.length - 1; i++) { rn.push(chain[i]); rx.push(0); ry.push(i); rw.push(W); }
  var base = chain.length - 1, total = T.total[focus];
  var scale = total > 0 ? W / total : 0;
  var stackN = [focus], stackX = [0], stackD = [base];
  while (stackN.length) {
    var node = stackN.pop(), x = stackX.pop(), d = stackD.pop();
    var w = T.total[node] * scale;
    rn.push(node); rx.push(x); ry.push(d); rw.push(w);
    if (d > maxDepth) maxDepth = d;
    var s = T.kidStart[node], e = T.kidStart[node + 1];
    // push children right to left so the leftmost is drawn first (rows stay sorted by x)
    var xs = [], cx = x;
    for (var k = s; k < e; k++) {
      var cw = T.total[T.kids[k]] * scale;
      if (cw < 0.35) break;
      xs.push(cx); cx += cw;
    }
    for (k = s + xs.length - 1; k >= s; k--) { stackN.push(T.kids[k]); stackX.push(xs[k - s]); stackD.push(d + 1); }
  }
  // index rects by row for hit testing
  var rows = [];
  for (i = 0; i < rn.length; i++) { (rows[ry[i]] = rows[ry[i]] || []).push(i); }
  return { n: rn, x: rx, y: ry, w: rw, rows: rows, depth: Math.max(maxDepth, base) };
}

function draw() {
  var t0 = performance.now();
  var W = box.clientWidth, dpr = window.devicePixelRatio || 1;
  rects = layout(W);
  var H = (rects.depth + 1) * ROW + 2;
  graph.style.height = H + 'px';
  graph.width = Math.round(W * dpr); graph.height = Math.round(H * dpr);
  var g = graph.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  g.font = '12px ui-monospace, SFMono-Regular, Menlo, monospace';
  g.textBaseline = 'middle';
  var labels = [], charW = 7.2;
  for (var i = 0; i < rects.n.length; i++) {
    var node = rects.n[i], x = rects.x[i], y = rects.y[i] * ROW, w = rects.w[i];
    var ancestor = i < rects.y.length && rects.y[i] < T.depth[focus];
    g.fillStyle = colour(node);
    g.globalAlpha = ancestor ? 0.55 : 1;
    g.fillRect(x, y, Math.max(w - 0.5, 0.35), ROW - 1);
    g.globalAlpha = 1;
    if (w > 28) {
      var text = name(node);
      if (node === 0) text = 'all (' + (DF ? fmtDelta(delta(0)) : fmtBytes(T.total[0])) + ')';
      var fit = Math.floor((w - 6) / charW), where = place(node);
      if (where && text.length + where.length + 2 <= fit) text += '  ' + where;
      if (text.length > fit) text = fit > 2 ? text.slice(0, fit - 1) + '\u2026' : '';
      if (text) {
        g.fillStyle = '#111';
        g.fillText(text, x + 3, y + ROW / 2);
        labels.push({ name: name(node), text: text, node: node, x: x, y: y, w: w });
      }
    }
  }
  HS.drawn = labels;
  HS.lastDrawMs = performance.now() - t0;
  if (focus !== curveFocus) showSiteCurve();
  renderCrumbs();
  document.getElementById('empty').hidden = T.total[0] > 0;
}

function renderCrumbs() {
  var parts = [];
  for (var a = focus; a > 0; a = T.parent[a]) parts.push(name(a));
  parts.reverse();
  var c = document.getElementById('crumbs');
  if (DF) {
    c.textContent = (focus === 0 ? 'Whole graph' : 'Zoomed: ' + parts.join(' \u203a ')) + ': ' + fmtBytes(T.baseBytes[focus]) +
      ' \u2192 ' + fmtBytes(T.newBytes[focus]) + ' (' + fmtDelta(delta(focus)) + '); width: growth plus shrinkage, ' + fmtBytes(T.total[focus]);
    return;
  }
  c.textContent = focus === 0 ? 'Whole graph: ' + fmtBytes(T.total[0]) + ' in ' + fmtCount(T.count[0]) + ' allocations'
    : 'Zoomed: ' + parts.join(' \u203a ') + ' \u2014 ' + fmtBytes(T.total[focus]) + ' (' + fmtPct(T.total[focus], T.total[0]) + ' of all)';
}

function hit(e) {
  if (!rects) return -1;
  var r = graph.getBoundingClientRect(), x = e.clientX - r.left, y = e.clientY - r.top;
  var row = rects.rows[Math.floor(y / ROW)];
  if (!row) return -1;
  var lo = 0, hi = row.length - 1, found = -1;
  while (lo <= hi) {
    var m = (lo + hi) >> 1, i = row[m];
    if (rects.x[i] > x) hi = m - 1;
    else if (rects.x[i] + rects.w[i] < x) lo = m + 1;
    else { found = i; break; }
  }
  return found < 0 ? -1 : rects.n[found];
}

function zoomTo(node) {
  if (node === focus || node < 0) return;
  history.push(focus);
  focus = node;
  draw();
}
function back() { if (history.length) { focus = history.pop(); draw(); } else if (focus !== 0) { focus = 0; draw(); } }
function reset() { history = []; focus = 0; draw(); }

// ---- search
function search(term) {
  term = (term || '').trim().toLowerCase();
  var info = document.getElementById('match-info');
  if (!term) { matchLabel = null; info.textContent = ''; HS.match = null; draw(); return; }
  if (!lowerFn) { lowerFn = L.fn.map(function (s) { return s.toLowerCase(); }); lowerFile = L.file.map(function (s) { return s.toLowerCase(); }); }
  matchLabel = new Uint8Array(nLabels);
  for (var i = 0; i < nLabels; i++) {
    if (L.kind[i] === 0) continue;
    if (lowerFn[i].indexOf(term) >= 0 || lowerFile[i].indexOf(term) >= 0) matchLabel[i] = 1;
  }
  // share: matched nodes without a matched ancestor (parents come before children)
  var under = new Uint8Array(T.n), bytes = 0, count = 0, frames = 0;
  for (i = 1; i < T.n; i++) {
    var p = T.parent[i];
    under[i] = under[p] || (p > 0 && matchLabel[T.label[p]]) ? 1 : 0;
    if (matchLabel[T.label[i]] && T.total[i] > 0) {
      frames++;
      if (!under[i]) { bytes += T.total[i]; count += T.count[i]; }
    }
  }
  HS.match = { bytes: bytes, count: count, frames: frames, share: T.total[0] > 0 ? bytes / T.total[0] : 0 };
  info.textContent = frames ? 'Matched ' + fmtBytes(bytes) + ' of ' + fmtBytes(T.total[0]) + ' (' + fmtPct(bytes, T.total[0]) + '), ' +
    fmtCount(count) + ' allocations, in ' + fmtCount(frames) + ' frames' : 'No match';
  draw();
}

// ---- tooltip
function showTooltip(node, e) {
  if (node < 0) { tooltip.hidden = true; return; }
  var lab = T.label[node];
  tooltip.textContent = '';
  tooltip.appendChild(el('div', 'fn', node === 0 ? 'all' : L.fn[lab]));
  if (L.kind[lab] === 2) tooltip.appendChild(el('div', 'muted', L.file[lab] + ':' + L.line[lab]));
  var total = T.total[node];
  if (DF) {
    tooltip.appendChild(el('div', null, 'base ' + fmtBytes(T.baseBytes[node]) + ' \u2192 new ' + fmtBytes(T.newBytes[node]) + ': ' +
      fmtDelta(delta(node)) + ' (' + fmtCount(delta(node)) + ' bytes)'));
    tooltip.appendChild(el('div', null, 'allocations ' + fmtCount(T.baseCount[node]) + ' \u2192 ' + fmtCount(T.newCount[node])));
  }
  tooltip.appendChild(el('div', null, (DF ? 'growth plus shrinkage ' : '') + fmtBytes(total) + ' (' + fmtCount(total) + ' bytes), ' +
    fmtCount(T.count[node]) + ' allocations'));
  tooltip.appendChild(el('div', null, fmtPct(total, T.total[0]) + (DF ? ' of all change' : ' of the total') +
    (focus !== 0 ? ', ' + fmtPct(total, T.total[focus]) + ' of the zoomed frame' : '')));
  if (T.own[node] > 0) tooltip.appendChild(el('div', 'muted', (DF ? 'changed here (growth plus shrinkage): ' : 'allocated here: ') + fmtBytes(T.own[node]) + ' in ' + fmtCount(T.ownCount[node]) + ' allocations'));
  var s = sourceOf.get(lab);
  if (s !== undefined) {
    var pre = el('pre'), start = D.sources.start[s], lines = D.sources.text[s].split('\n');
    for (var i = 0; i < lines.length; i++) {
      var ln = start + i, row = el('span', ln === L.line[lab] ? 'hl' : null, String(ln).padStart(5) + '  ' + lines[i]);
      pre.appendChild(row);
      if (i < lines.length - 1) pre.appendChild(document.createTextNode('\n'));
    }
    tooltip.appendChild(pre);
  }
  tooltip.hidden = false;
  var x = e.clientX + 14, y = e.clientY + 14, tw = tooltip.offsetWidth, th = tooltip.offsetHeight;
  if (x + tw > window.innerWidth - 4) x = Math.max(4, e.clientX - tw - 14);
  if (y + th > window.innerHeight - 4) y = Math.max(4, e.clientY - th - 14);
  tooltip.style.left = x + 'px'; tooltip.style.top = y + 'px';
}

// ---- temporal range
function rangeBuckets(t0, t1) {
  var ends = D.temporal.ends, a = 0, b = ends.length - 1;
  while (a < ends.length - 1 && ends[a] < t0) a++;
  var k = 0;
  while (k < ends.length - 1 && ends[k] < t1) k++;
  b = Math.max(a, k);
  return [a, b];
}
function selectRange(t0, t1) {
  if (!D.temporal) return;
  if (t0 === null) {
    selfBytes = N.bytes; selfCount = N.count; rangeText = '';
    document.getElementById('clear-range').hidden = true;
  } else {
    var r = rangeBuckets(t0, t1), A = r[0], B = r[1], TT = D.temporal, leaks = D.view === 'leaks';
    var sb = new Float64Array(nOrig), sc = new Float64Array(nOrig);
    for (var i = 0; i < TT.node.length; i++) {
      var a = TT.a[i], f = TT.f[i];
      if (a < A || a > B) continue;
      if (leaks ? f !== NEVER : f <= B) continue;
      sb[TT.node[i]] += TT.bytes[i]; sc[TT.node[i]] += TT.count[i];
    }
    selfBytes = sb; selfCount = sc;
    var from = A > 0 ? TT.ends[A - 1] : 0, to = TT.ends[B];
    rangeText = 'Selected ' + fmtSeconds(from) + ' \u2013 ' + fmtSeconds(to) + ': ' +
      (leaks ? 'allocated in the range and never freed' : 'allocated in the range and still live at its end');
    HS.range = { from: from, to: to, a: A, b: B };
    document.getElementById('clear-range').hidden = false;
  }
  computeValues();
  if (T.total[focus] <= 0) { focus = 0; history = []; }
  var term = document.getElementById('search').value;
  if (term) search(term); else draw();
  if (chart) chart.showInfo();
}

// ---- memory over time per site (temporal pages): sites are labels (a
// frame's location); the zoomed frame's own curve is drawn on top.
var siteChart = null, curveFocus = 0;
function showSiteCurve() {
  curveFocus = focus;
  if (!siteChart) return;
  if (focus === 0) { siteChart.select(null); return; }
  var under = new Uint8Array(nOrig);
  for (var i = 1; i < nOrig; i++) under[i] = T.disp[i] === focus || under[N.parent[i]] ? 1 : 0;
  siteChart.select(name(focus) + (place(focus) ? ' (' + place(focus) + ')' : ''),
                   function (e) { return under[D.temporal.node[e]] === 1; });
}
function makeSiteChart() {
  if (!D.temporal || !D.temporal.node.length) return;
  var own = new Float64Array(nLabels), labels = [];
  for (var i = 0; i < nOrig; i++) if (L.kind[N.label[i]] === 2) own[N.label[i]] += N.bytes[i];
  for (i = 0; i < nLabels; i++) if (own[i] > 0) labels.push(i);
  labels.sort(function (a, b) { return own[b] - own[a] || a - b; });
  var names = L.fn.map(function (f, k) {
    var slash = L.file[k].lastIndexOf('/');
    return L.kind[k] === 2 ? f + ' (' + L.file[k].slice(slash + 1) + ':' + L.line[k] + ')' : f;
  });
  document.getElementById('site-chart-box').hidden = false;
  siteChart = new SiteChart(document.getElementById('site-chart'), document.getElementById('site-chart-info'),
    function (e) { return N.label[D.temporal.node[e]]; }, names, labels.slice(0, 6));
  HS.siteChart = siteChart;
}

// ---- wiring
renderHeader();
buildTree(false);
makeSiteChart();
var chart = new MemoryChart(document.getElementById('chart'), document.getElementById('chart-info'), D.samples,
  D.temporal ? { onSelect: selectRange, rangeText: function () { return rangeText; } } : {});
graph.addEventListener('click', function (e) { var node = hit(e); if (node >= 0) zoomTo(node); });
graph.addEventListener('mousemove', function (e) { showTooltip(hit(e), e); });
graph.addEventListener('mouseleave', function () { tooltip.hidden = true; });
document.getElementById('back').addEventListener('click', back);
document.getElementById('reset').addEventListener('click', reset);
document.getElementById('clear-range').addEventListener('click', function () { chart.select(null, null); });
document.getElementById('search').addEventListener('input', function (e) { search(e.target.value); });
document.getElementById('hide-internal').addEventListener('change', function (e) {
  buildTree(e.target.checked); focus = 0; history = [];
  var term = document.getElementById('search').value;
  if (term) search(term); else draw();
});
document.addEventListener('keydown', function (e) { if (e.key === 'Escape' && document.activeElement.id !== 'search') back(); });
var resizeTimer = null;
window.addEventListener('resize', function () {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(function () { draw(); chart.draw(); if (siteChart) siteChart.draw(); }, 100);
});
draw();

// For tests and the curious: the state of the page.
HS.zoomTo = function (fn) {
  for (var i = 1; i < T.n; i++) if (name(i) === fn && T.total[i] > 0) { zoomTo(i); return true; }
  return false;
};
HS.back = back; HS.reset = reset; HS.search = search; HS.selectRange = selectRange;
HS.state = function () {
  return { focus: focus === 0 ? 'all' : name(focus), total: T.total[0], focusTotal: T.total[focus], nodes: T.n,
           drawn: HS.drawn.length, range: HS.range || null, match: HS.match || null,
           delta: DF ? delta(focus) : null };
};
HS.totalOf = function (fn) {
  // bytes under frames named fn, not counting nested ones twice
  var under = new Uint8Array(T.n), bytes = 0;
  for (var i = 1; i < T.n; i++) {
    var hitSelf = name(i) === fn;
    if (hitSelf && !under[T.parent[i]]) bytes += T.total[i];
    under[i] = under[T.parent[i]] || hitSelf ? 1 : 0;
  }
  return bytes;
};
HS.ready = true;
})();
