// Shared by the flame graph, table and diff pages (loaded first): the page data D,
// window.heapscope (HS), number formatting, the header and metadata, the memory
// chart and the per-site memory chart. Data: README.md.
'use strict';
var HS = window.heapscope = window.heapscope || {};
HS.errors = [];
window.addEventListener('error', function (e) { HS.errors.push(String(e.message)); });
var D = JSON.parse(document.getElementById('heapscope-data').textContent);
HS.data = D;

function fmtBytes(v) {
  var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  if (v < 1024) return Math.round(v) + ' B';
  var i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(2) + ' ' + units[i];
}
function fmtCount(v) { return Math.round(v).toLocaleString('en-US'); }
function fmtPct(part, whole) { return whole > 0 ? (100 * part / whole).toFixed(2) + '%' : '-'; }
function fmtDelta(v) { return (v > 0 ? '+' : v < 0 ? '-' : '') + fmtBytes(Math.abs(v)); }
function fmtSeconds(us) { return (us / 1e6).toFixed(3) + ' s'; }
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderHeader() {
  document.getElementById('title').textContent = D.title;
  document.getElementById('subtitle').textContent = D.viewText + ' \u2014 units: ' + D.units;
  var w = document.getElementById('warnings');
  D.warnings.forEach(function (text) { w.appendChild(el('div', 'warning', text)); });
  var meta = document.getElementById('meta');
  // With D.metaColumns (the diff page): one column per capture, side by side.
  if (D.metaColumns) {
    meta.classList.add('columns');
    meta.appendChild(el('dt'));
    D.metaColumns.forEach(function (name) { meta.appendChild(el('dd', 'column', name)); });
  }
  D.meta.forEach(function (row) { meta.appendChild(el('dt', null, row[0])); row.slice(1).forEach(function (v) { meta.appendChild(el('dd', null, v)); }); });
}

// The memory-over-time chart. onSelect(t0, t1) is called after a drag when given.
function MemoryChart(canvas, info, samples, options) {
  this.canvas = canvas; this.info = info; this.s = samples; this.o = options || {};
  this.sel = null; this.drag = null;
  var self = this;
  var n = samples.t.length;
  this.tmax = Math.max(D.duration || 0, n ? samples.t[n - 1] : 0, 1);
  var ymax = 1;
  for (var i = 0; i < n; i++) { ymax = Math.max(ymax, samples.rss[i], samples.heap[i]); }
  this.ymax = ymax * 1.05;
  if (this.o.onSelect) {
    canvas.addEventListener('mousedown', function (e) { self.drag = { x0: self.xOf(e), x1: self.xOf(e) }; e.preventDefault(); });
    window.addEventListener('mousemove', function (e) { if (self.drag) { self.drag.x1 = self.xOf(e); self.draw(); } });
    window.addEventListener('mouseup', function (e) {
      if (!self.drag) return;
      var a = Math.min(self.drag.x0, self.drag.x1), b = Math.max(self.drag.x0, self.drag.x1);
      self.drag = null;
      if (b - a < 3) { self.draw(); return; }
      self.select(self.tOf(a), self.tOf(b));
    });
    canvas.addEventListener('dblclick', function () { self.select(null, null); });
  }
  canvas.addEventListener('mousemove', function (e) { if (!self.drag) self.hover(self.xOf(e)); });
  canvas.addEventListener('mouseleave', function () { self.hoverText = null; self.showInfo(); });
  this.draw();
  this.showInfo();
}
MemoryChart.prototype.pad = { l: 80, r: 24, t: 8, b: 20 };
MemoryChart.prototype.xOf = function (e) { var r = this.canvas.getBoundingClientRect(); return e.clientX - r.left; };
MemoryChart.prototype.width = function () { return this.canvas.clientWidth; };
MemoryChart.prototype.tOf = function (x) {
  var p = this.pad, w = this.width() - p.l - p.r;
  return Math.max(0, Math.min(this.tmax, (x - p.l) / w * this.tmax));
};
MemoryChart.prototype.xAt = function (t) { var p = this.pad; return p.l + t / this.tmax * (this.width() - p.l - p.r); };
MemoryChart.prototype.select = function (t0, t1) {
  this.sel = t0 === null ? null : [t0, t1];
  this.draw();
  if (this.o.onSelect) this.o.onSelect(t0, t1);
  this.showInfo();
};
MemoryChart.prototype.hover = function (x) {
  var t = this.tOf(x), s = this.s, n = s.t.length;
  if (!n) return;
  var lo = 0, hi = n - 1;
  while (lo < hi) { var m = (lo + hi) >> 1; if (s.t[m] < t) lo = m + 1; else hi = m; }
  this.hoverText = 'at ' + fmtSeconds(s.t[lo]) + ': RSS ' + fmtBytes(s.rss[lo]) + ', heap ' + fmtBytes(s.heap[lo]);
  this.showInfo();
};
MemoryChart.prototype.showInfo = function () {
  var text = this.hoverText || '';
  if (!text) {
    text = this.s.t.length ? 'Memory over time: RSS (blue) and tracked heap (orange)' : 'No memory snapshots were recorded.';
    if (this.o.onSelect) text += this.sel ? '' : ' \u2014 drag across the chart to select a time range';
  }
  var range = this.o.rangeText ? this.o.rangeText() : '';
  if (range) text = range + (text ? ' \u2014 ' + text : '');
  this.info.textContent = text;
};
// Memory over time per site, from the temporal data (pages made with
// --temporal): the live bytes of the `top` sites stacked, the rest as
// "other", and the selected site's own curve on top. groupOf(entry) gives an
// entry's site (-1: none); names[site] its label; top: the sites to stack.
function SiteChart(canvas, info, groupOf, names, top) {
  var TT = D.temporal, nb = TT.ends.length, self = this;
  this.canvas = canvas; this.info = info; this.names = names; this.top = top; this.groupOf = groupOf;
  this.selected = null; this.selectedName = '';
  var slot = new Map();
  top.forEach(function (g, k) { slot.set(g, k); });
  this.series = this.curves(function (i) { var g = groupOf(i); return g < 0 ? -1 : slot.has(g) ? slot.get(g) : top.length; }, top.length + 1);
  this.ymax = 1;
  for (var b = 0; b < nb; b++) {
    var sum = 0;
    for (var k = 0; k < this.series.length; k++) sum += this.series[k][b];
    this.ymax = Math.max(this.ymax, sum);
  }
  this.ymax *= 1.05;
  canvas.addEventListener('mousemove', function (e) { self.hover(e); });
  canvas.addEventListener('mouseleave', function () { self.showInfo(''); });
  this.draw();
  this.showInfo('');
}
SiteChart.prototype.colours = ['#3478dc', '#e67e22', '#27ae60', '#8e44ad', '#c0392b', '#16a085', '#d35400', '#2c3e50'];
// Live bytes at each bucket end per series: an entry is live from the end of
// its allocation bucket until its free bucket (never freed: to the end).
SiteChart.prototype.curves = function (seriesOf, n) {
  var TT = D.temporal, nb = TT.ends.length, out = [];
  for (var s = 0; s < n; s++) out.push(new Float64Array(nb + 1));
  for (var i = 0; i < TT.a.length; i++) {
    var k = seriesOf(i);
    if (k < 0) continue;
    var end = TT.f[i] === TT.never ? nb : Math.min(TT.f[i], nb);
    out[k][TT.a[i]] += TT.bytes[i]; out[k][end] -= TT.bytes[i];
  }
  return out.map(function (d) { var r = new Float64Array(nb), v = 0; for (var b = 0; b < nb; b++) { v += d[b]; r[b] = v; } return r; });
};
// Shows one site's own curve: inSite(entry) says which entries are its own.
SiteChart.prototype.select = function (name, inSite) {
  this.selected = name === null ? null : this.curves(function (i) { return inSite(i) ? 0 : -1; }, 1)[0];
  this.selectedName = name || '';
  this.draw();
  this.showInfo('');
};
SiteChart.prototype.state = function () {
  var max = function (a) { var m = 0; for (var i = 0; i < a.length; i++) m = Math.max(m, a[i]); return m; };
  return { series: this.series.length, top: this.top.map(function (g) { return this.names[g]; }, this),
           peaks: this.series.map(max), selected: this.selectedName || null,
           selectedPeak: this.selected ? max(this.selected) : null,
           selectedLast: this.selected ? this.selected[this.selected.length - 1] : null };
};
SiteChart.prototype.pad = MemoryChart.prototype.pad;
SiteChart.prototype.showInfo = function (text) {
  this.info.textContent = text || ('Memory over time of the top ' + this.top.length + ' sites (stacked; grey: all others)' +
    (this.selected ? ' \u2014 black: ' + this.selectedName : ' \u2014 click a site to see its own curve'));
};
SiteChart.prototype.hover = function (e) {
  var p = this.pad, W = this.canvas.clientWidth, x = e.clientX - this.canvas.getBoundingClientRect().left;
  var TT = D.temporal, nb = TT.ends.length, t = (x - p.l) / (W - p.l - p.r) * TT.ends[nb - 1], b = 0;
  while (b < nb - 1 && TT.ends[b] < t) b++;
  var parts = [];
  for (var k = 0; k < this.top.length; k++) if (this.series[k][b] > 0) parts.push(this.names[this.top[k]] + ' ' + fmtBytes(this.series[k][b]));
  if (this.series[this.top.length][b] > 0) parts.push('other ' + fmtBytes(this.series[this.top.length][b]));
  if (this.selected) parts.unshift(this.selectedName + ' ' + fmtBytes(this.selected[b]));
  this.showInfo('at ' + fmtSeconds(TT.ends[b]) + ': ' + (parts.join(', ') || 'nothing live'));
};
SiteChart.prototype.draw = function () {
  var c = this.canvas, dpr = window.devicePixelRatio || 1, W = c.clientWidth, H = c.clientHeight;
  c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
  var g = c.getContext('2d'), p = this.pad, w = W - p.l - p.r, h = H - p.t - p.b, self = this;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  var TT = D.temporal, nb = TT.ends.length, tmax = Math.max(TT.ends[nb - 1] || 0, 1);
  function x(b) { return p.l + TT.ends[b] / tmax * w; }
  function y(v) { return p.t + h - v / self.ymax * h; }
  g.strokeStyle = '#ccc'; g.strokeRect(p.l + 0.5, p.t + 0.5, w, h);
  g.fillStyle = '#666'; g.font = '11px system-ui, sans-serif'; g.textAlign = 'right'; g.textBaseline = 'middle';
  for (var k = 0; k <= 4; k++) g.fillText(fmtBytes(this.ymax * k / 4), p.l - 4, p.t + h - h * k / 4);
  g.textAlign = 'center'; g.textBaseline = 'top';
  for (k = 0; k <= 5; k++) g.fillText(fmtSeconds(tmax * k / 5).replace('.000', ''), p.l + w * k / 5, p.t + h + 4);
  var below = new Float64Array(nb), order = this.series.length - 1;
  for (k = 0; k <= order; k++) {
    var s = this.series[k], top = new Float64Array(nb);
    for (var b = 0; b < nb; b++) top[b] = below[b] + s[b];
    g.beginPath(); g.moveTo(x(0), y(below[0]));
    for (b = 0; b < nb; b++) g.lineTo(x(b), y(top[b]));
    for (b = nb - 1; b >= 0; b--) g.lineTo(x(b), y(below[b]));
    g.closePath();
    g.fillStyle = k === order ? '#cfcfcf' : this.colours[k % this.colours.length];
    g.globalAlpha = this.selected ? 0.35 : 0.8; g.fill(); g.globalAlpha = 1;
    below = top;
  }
  if (this.selected) {
    g.strokeStyle = '#111'; g.lineWidth = 2; g.beginPath();
    for (b = 0; b < nb; b++) { if (b === 0) g.moveTo(x(b), y(this.selected[b])); else g.lineTo(x(b), y(this.selected[b])); }
    g.stroke();
  }
};

MemoryChart.prototype.draw = function () {
  var c = this.canvas, dpr = window.devicePixelRatio || 1;
  var W = c.clientWidth, H = c.clientHeight;
  c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
  var g = c.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  var p = this.pad, w = W - p.l - p.r, h = H - p.t - p.b, self = this;
  g.strokeStyle = '#ccc'; g.lineWidth = 1;
  g.strokeRect(p.l + 0.5, p.t + 0.5, w, h);
  g.fillStyle = '#666'; g.font = '11px system-ui, sans-serif'; g.textAlign = 'right'; g.textBaseline = 'middle';
  for (var k = 0; k <= 4; k++) {
    var yv = this.ymax * k / 4, y = p.t + h - h * k / 4;
    g.fillText(fmtBytes(yv), p.l - 4, y);
    if (k > 0) { g.strokeStyle = '#eee'; g.beginPath(); g.moveTo(p.l, y); g.lineTo(p.l + w, y); g.stroke(); }
  }
  g.textAlign = 'center'; g.textBaseline = 'top';
  for (k = 0; k <= 5; k++) { g.fillText(fmtSeconds(this.tmax * k / 5).replace('.000', ''), p.l + w * k / 5, p.t + h + 4); }
  var sel = this.drag ? [this.tOf(Math.min(this.drag.x0, this.drag.x1)), this.tOf(Math.max(this.drag.x0, this.drag.x1))] : this.sel;
  if (sel) {
    g.fillStyle = 'rgba(52, 120, 220, 0.18)';
    g.fillRect(this.xAt(sel[0]), p.t, Math.max(1, this.xAt(sel[1]) - this.xAt(sel[0])), h);
  }
  function line(values, color) {
    var s = self.s, n = s.t.length;
    if (!n) return;
    g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
    for (var i = 0; i < n; i++) {
      var x = self.xAt(s.t[i]), y = p.t + h - values[i] / self.ymax * h;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    }
    g.stroke();
  }
  line(this.s.rss, '#3478dc');
  line(this.s.heap, '#e67e22');
  if (D.peakTime !== null && D.peakTime !== undefined) {
    var px = this.xAt(D.peakTime);
    g.strokeStyle = '#c0392b'; g.setLineDash([4, 3]); g.beginPath(); g.moveTo(px, p.t); g.lineTo(px, p.t + h); g.stroke(); g.setLineDash([]);
    g.fillStyle = '#c0392b'; g.textAlign = 'left'; g.fillText('peak ' + fmtBytes(D.peakBytes), Math.min(px + 3, p.l + w - 90), p.t + 2);
  }
};
