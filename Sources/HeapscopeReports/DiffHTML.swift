// The diff page: the flame graph page's graph (FlameGraphHTML, in its diff
// mode) with a legend, and a table of the sites that changed.

enum DiffHTML {
    static let body = ReportHTML.pageHeader + "\n" + #"""
<div id="legend"><span class="swatch grow"></span> grew <span class="swatch shrink"></span> shrank
<span class="swatch same"></span> growth and shrinkage cancel out
<span class="muted">&mdash; width: how much changed (growth plus shrinkage) under the frame</span></div>
"""# + FlameGraphHTML.graph + "\n" + #"""
<h2>Sites that changed</h2>
<div id="site-info" class="muted"></div>
<table id="sites">
<thead><tr><th>Function</th><th>Location</th><th class="num">Base</th><th class="num">New</th><th class="num">Change</th>
<th class="num">Base allocations</th><th class="num">New allocations</th><th class="num">Change</th></tr></thead>
<tbody id="site-rows"></tbody>
</table>
<footer>heapscope diff. Sites are matched by function, file and line; the search box filters the table too.</footer>
"""#

    static let style = #"""
#chart-box { display: none; }
h2 { font-size: 15px; margin: 16px 0 4px; }
#legend { font-size: 12px; margin: 6px 0; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -2px; margin-left: 8px; }
.swatch.grow { background: hsl(4, 85%, 58%); }
.swatch.shrink { background: hsl(214, 85%, 58%); }
.swatch.same { background: #d0d0d0; }
#sites { border-collapse: collapse; width: 100%; font-size: 12px; }
#sites th { text-align: left; border-bottom: 2px solid var(--line); padding: 4px 6px; white-space: nowrap; }
#sites td { border-bottom: 1px solid #eee; padding: 2px 6px; vertical-align: top; }
#sites td.loc { word-break: break-all; color: var(--muted); }
#sites .num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
#sites td.grow { color: #b03020; }
#sites td.shrink { color: #2060b0; }
"""#

    static let script = #"""
(function () {
var S = D.sites, n = S.fn.length, LIMIT = 1000, lower = null;
function loc(i) { return S.file[i] ? S.file[i] + ':' + S.line[i] : '-'; }
function renderSites(term) {
  term = (term || '').trim().toLowerCase();
  if (term && !lower) lower = S.fn.map(function (f, i) { return (f + ' ' + loc(i)).toLowerCase(); });
  var body = document.getElementById('site-rows'), frag = document.createDocumentFragment(), shown = [];
  for (var i = 0; i < n; i++) if (!term || lower[i].indexOf(term) >= 0) shown.push(i);
  body.textContent = '';
  shown.slice(0, LIMIT).forEach(function (i) {
    var tr = document.createElement('tr'), d = S.newBytes[i] - S.baseBytes[i], dc = S.newCount[i] - S.baseCount[i];
    tr.appendChild(el('td', null, S.fn[i]));
    tr.appendChild(el('td', 'loc', loc(i)));
    tr.appendChild(el('td', 'num', fmtBytes(S.baseBytes[i])));
    tr.appendChild(el('td', 'num', fmtBytes(S.newBytes[i])));
    var c = el('td', 'num ' + (d > 0 ? 'grow' : d < 0 ? 'shrink' : ''), fmtDelta(d)); c.title = fmtCount(d) + ' bytes'; tr.appendChild(c);
    tr.appendChild(el('td', 'num', fmtCount(S.baseCount[i])));
    tr.appendChild(el('td', 'num', fmtCount(S.newCount[i])));
    tr.appendChild(el('td', 'num', (dc > 0 ? '+' : '') + fmtCount(dc)));
    frag.appendChild(tr);
  });
  body.appendChild(frag);
  document.getElementById('site-info').textContent = n === 0 ? 'No site changed.' :
    (shown.length > LIMIT ? 'showing the first ' + LIMIT + ' of ' : '') + fmtCount(shown.length) + ' of ' + fmtCount(n) +
    ' changed sites' + (term ? ' matching' : '') + ', biggest change first';
  HS.siteRows = shown.length;
}
if (n === 0) document.getElementById('empty').textContent = 'Nothing changed between the two captures in this view.';
document.getElementById('search').addEventListener('input', function (e) { renderSites(e.target.value); });
renderSites('');
})();
"""#
}
