// The pymalloc page (`heapscope pymalloc --html`): SVG charts of the embedded
// JSON report (docs/PYMALLOC.md), after common.js (D, HS, fmtBytes).
var NS = 'http://www.w3.org/2000/svg';
function svgEl(name, attrs, parent) {
  var e = document.createElementNS(NS, name);
  for (var k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function text(svg, x, y, s, anchor) { var t = svgEl('text', {x: x, y: y, 'text-anchor': anchor || 'start'}, svg); t.textContent = s; return t; }
function timeline() {
  var svg = document.getElementById('chart');
  if (!svg || !D.samples.length) return;
  var W = 900, H = 220, L = 50, R = 40, T = 10, B = 24;
  var arena = D.geometry.arena_size, s = D.samples;
  var tMax = Math.max(1, s[s.length - 1][0]);
  var aMax = Math.max(1, Math.max.apply(null, s.map(function (p) { return p[1]; })));
  function x(t) { return L + (W - L - R) * t / tMax; }
  function ya(a) { return H - B - (H - B - T) * a / aMax; }
  function yo(o) { return H - B - (H - B - T) * o; }
  svgEl('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999'}, svg);
  svgEl('line', {x1: L, y1: T, x2: L, y2: H - B, stroke: '#999'}, svg);
  text(svg, L - 4, T + 8, String(aMax), 'end'); text(svg, L - 4, H - B, '0', 'end');
  text(svg, W - R + 4, T + 8, '100%'); text(svg, W - R + 4, H - B, '0%');
  text(svg, L, H - 6, '0 s'); text(svg, W - R, H - 6, (tMax / 1e6).toFixed(2) + ' s', 'end');
  if (D.blocks_traced) {
    var area = 'M' + x(s[0][0]) + ',' + yo(0);
    s.forEach(function (p) { var held = p[1] * arena; area += ' L' + x(p[0]) + ',' + yo(held ? p[4] / held : 0); });
    area += ' L' + x(s[s.length - 1][0]) + ',' + yo(0) + ' Z';
    svgEl('path', {d: area, fill: '#8ecae6', opacity: 0.5, id: 'occupancy-area'}, svg);
  }
  var line = s.map(function (p, i) { return (i ? 'L' : 'M') + x(p[0]) + ',' + ya(p[1]); }).join(' ');
  svgEl('path', {d: line, fill: 'none', stroke: '#c0392b', 'stroke-width': 2, id: 'arenas-line'}, svg);
  var cursor = svgEl('line', {x1: 0, y1: T, x2: 0, y2: H - B, stroke: '#333', 'stroke-dasharray': '3,3', visibility: 'hidden'}, svg);
  var info = document.getElementById('chart-info');
  svg.addEventListener('mousemove', function (ev) {
    var r = svg.getBoundingClientRect();
    var t = ((ev.clientX - r.left) * W / r.width - L) / (W - L - R) * tMax;
    var best = s[0];
    s.forEach(function (p) { if (Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p; });
    cursor.setAttribute('x1', x(best[0])); cursor.setAttribute('x2', x(best[0])); cursor.setAttribute('visibility', 'visible');
    var held = best[1] * arena;
    info.textContent = (best[0] / 1e6).toFixed(3) + ' s: ' + best[1] + ' arenas (' + fmtBytes(held) + ')' +
      (D.blocks_traced ? ', ' + best[2] + ' pools in use, ' + fmtBytes(best[4]) + ' in live blocks (' +
       (held ? (100 * best[4] / held).toFixed(1) : '0') + '% occupied)' : '');
  });
}
function bars(id, values, labels, color) {
  var svg = document.getElementById(id);
  if (!svg || !values) return;
  var vb = svg.viewBox.baseVal, W = vb.width, H = vb.height, B = 28, T = 12;
  var max = Math.max(1, Math.max.apply(null, values));
  var w = W / values.length;
  values.forEach(function (v, i) {
    var h = (H - B - T) * v / max;
    var r = svgEl('rect', {x: i * w + 2, y: H - B - h, width: w - 4, height: h, fill: color}, svg);
    svgEl('title', {}, r).textContent = labels[i] + ': ' + v;
    if (v) text(svg, i * w + w / 2, H - B - h - 2, String(v), 'middle');
    text(svg, i * w + w / 2, H - B + 12, labels[i], 'middle');
  });
}
var deciles = []; for (var i = 0; i < 10; i++) deciles.push(i * 10 + '%');
timeline();
if (D.peak) bars('hist-peak', D.peak.occupancy_histogram, deciles, '#219ebc');
bars('hist-end', D.end.occupancy_histogram, deciles, '#219ebc');
var classLabels = D.end.pools_in_use_by_class.map(function (_, i) { return String((i + 1) * D.geometry.alignment); });
bars('classes', D.end.pools_in_use_by_class, classLabels, '#fb8500');
HS.ready = true;
