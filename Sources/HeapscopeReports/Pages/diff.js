// The diff page's table of the sites that changed (after flamegraph.js). Data: README.md.
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
