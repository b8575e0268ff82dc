import HeapscopeAnalysis
import HeapscopeFormat

// `heapscope pymalloc --html`: one self-contained page (no external scripts or
// styles). The figures are the text report's; the data for the charts is the
// JSON report, embedded, drawn by our own small SVG code.

extension PymallocReport {
    public func html() -> [UInt8] {
        let data = json().serialized().replacingAll("</", with: "<\\/")
        var body: [String] = []
        let metadata = analysis.header.metadata
        body.append("<h1>heapscope pymalloc: \(ReportHTML.escape(capturePath))</h1>")
        body.append("<div id=\"subtitle\">Allocator: \(ReportHTML.escape(AllocatorNotes.describe(metadata)))</div>")
        for note in notes { body.append("<div class=\"warning\">\(ReportHTML.escape(note))</div>") }
        body.append("<p class=\"muted\">Geometry: \(ReportHTML.escape(geometryLine))</p>")

        body.append("<h2>Arenas over time</h2>")
        if analysis.samples.isEmpty {
            body.append("<p class=\"muted\">No memory snapshots in this capture.</p>")
        } else {
            body.append("<div id=\"chart-box\"><svg id=\"chart\" viewBox=\"0 0 900 220\" preserveAspectRatio=\"none\"></svg>"
                        + "<div id=\"chart-info\" class=\"muted\">Arenas held (line, left axis) and occupancy: bytes in live blocks / bytes of the arenas (shaded, right axis). Hover for values.</div></div>")
        }

        body.append("<h2>At the peak and at the end</h2>")
        body.append("<table class=\"grid\"><thead><tr><th></th><th>at the peak (most arenas)</th><th>at the end</th></tr></thead><tbody>")
        let peak = analysis.peak
        let end = analysis.end
        func row(_ label: String, _ value: (PymallocState) -> String) {
            body.append("<tr><th>\(ReportHTML.escape(label))</th><td>\(peak.map { ReportHTML.escape(value($0)) } ?? "-")</td><td>\(ReportHTML.escape(value(end)))</td></tr>")
        }
        row("time") { $0.timeMicros.map { Formatting.seconds(micros: $0) } ?? "-" }
        row("arenas held") { "\(Formatting.count($0.arenasHeld)) (\(Formatting.bytes($0.arenaBytes)))" }
        if analysis.blocksTraced && analysis.pymallocActive {
            row("pools in use") { Formatting.count($0.poolsInUse) }
            row("live blocks") { "\(Formatting.count($0.liveBlocks)): \(Formatting.bytes($0.requestedBytes)) requested" }
            row("free inside pymalloc") { "\(Formatting.bytes($0.freeInsideBytes)) (fragmentation \(Formatting.fixed($0.fragmentation * 100, decimals: 1))%)" }
            row("  empty pools") { Formatting.bytes($0.emptyPoolBytes) }
            row("  free blocks in used pools") { Formatting.bytes($0.freeBlockBytes) }
            row("  pool headers") { Formatting.bytes($0.poolHeaderBytes) }
            row("  arena alignment") { Formatting.bytes($0.alignmentBytes) }
            row("  rounding to block size") { Formatting.bytes($0.roundingBytes) }
        }
        body.append("</tbody></table>")
        if analysis.blocksTraced && analysis.pymallocActive {
            body.append("<h2>Arenas by occupancy</h2><div class=\"hists\"><div><div class=\"muted\">at the peak</div><svg id=\"hist-peak\" viewBox=\"0 0 420 160\"></svg></div>"
                        + "<div><div class=\"muted\">at the end</div><svg id=\"hist-end\" viewBox=\"0 0 420 160\"></svg></div></div>")

            body.append("<h2>Arenas kept alive by a few live blocks</h2>")
            body.append("<p>\(Formatting.count(analysis.pinnedArenas.count)) of \(Formatting.count(end.arenasHeld)) arenas held at the end are at most "
                        + "\(analysis.pinnedPercent)% occupied: they hold \(ReportHTML.escape(Formatting.bytes(UInt64(analysis.pinnedArenas.count) * analysis.geometry.arenaSize))) "
                        + "for \(Formatting.count(analysis.pinningBlocks.count)) live blocks (\(ReportHTML.escape(Formatting.bytes(analysis.pinningBlocks.bytes)))). "
                        + "pymalloc returns an arena to the system only when every block in it is free.</p>")
            if !analysis.pinningSites.isEmpty {
                body.append("<h3>Allocated at</h3><table class=\"grid\" id=\"pinning-sites\"><thead><tr><th>bytes</th><th>blocks</th><th>stack (innermost first)</th></tr></thead><tbody>")
                for site in analysis.pinningSites.prefix(topCount) {
                    let stack = analysis.tables.stack(ofFrame: site.frame).prefix(6).map { ReportHTML.escape(StatsReport.describe($0)) }
                    body.append("<tr><td>\(ReportHTML.escape(Formatting.bytes(site.totals.bytes)))</td><td>\(Formatting.count(site.totals.count))</td><td>"
                                + (stack.isEmpty ? "&lt;no Python frame&gt;" : stack.joined(separator: "<br>")) + "</td></tr>")
                }
                body.append("</tbody></table>")
            }
            if analysis.referrersAvailable {
                body.append("<h3>Kept alive by</h3><p class=\"muted\">The objects referring to the pinning blocks when tracking stopped"
                            + (analysis.referrersComplete ? "" : " (the walk stopped at its budget: some are missing)") + ".</p>")
                body.append("<table class=\"grid\" id=\"holders\"><thead><tr><th>bytes</th><th>blocks</th><th>holder</th></tr></thead><tbody>")
                for group in analysis.holders.prefix(topCount) {
                    body.append("<tr><td>\(ReportHTML.escape(Formatting.bytes(group.totals.bytes)))</td><td>\(Formatting.count(group.totals.count))</td><td>\(ReportHTML.escape(holderDescription(group.holder)))</td></tr>")
                }
                body.append("</tbody></table>")
            } else if !analysis.pinnedArenas.isEmpty {
                body.append("<p class=\"muted\">What holds them is not known: no referrers file (&lt;capture&gt;.refs) next to the capture.</p>")
            }
            body.append("<h2>Pools in use per size class at the end</h2><svg id=\"classes\" viewBox=\"0 0 900 160\"></svg>")
        }
        body.append("<footer>heapscope pymalloc report. Sizes in binary units (1 KiB = 1024 B).</footer>")

        let page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>heapscope pymalloc: \(ReportHTML.escape(capturePath))</title>
            <style>\(Self.style)</style></head>
            <body>
            \(body.joined(separator: "\n"))
            <script type="application/json" id="heapscope-data">\(data)</script>
            <script>\(Self.script)</script>
            </body></html>

            """
        return Array(page.utf8)
    }

    static let style = """
        body { margin: 0; padding: 12px 16px 32px; font: 13px/1.4 system-ui, sans-serif; color: #1d1d1f; }
        h1 { font-size: 18px; margin: 0 0 2px; } h2 { font-size: 15px; margin: 18px 0 6px; } h3 { font-size: 13px; margin: 10px 0 4px; }
        .muted, #subtitle { color: #666; }
        .warning { background: #fff3cd; border: 1px solid #e0b84c; color: #5c4500; padding: 6px 10px; margin: 6px 0; border-radius: 4px; }
        table.grid { border-collapse: collapse; } table.grid th, table.grid td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
        table.grid td:first-child { white-space: nowrap; }
        #chart-box { border: 1px solid #ddd; border-radius: 4px; max-width: 920px; }
        #chart { display: block; width: 100%; height: 220px; }
        .hists { display: flex; gap: 24px; flex-wrap: wrap; } .hists svg { width: 420px; height: 160px; }
        #classes { width: 100%; max-width: 900px; height: 160px; }
        svg text { font: 10px system-ui, sans-serif; fill: #444; }
        footer { margin-top: 16px; color: #666; font-size: 11px; }
        """

    static let script = #"""
        'use strict';
        var HS = window.heapscope = window.heapscope || {};
        HS.errors = [];
        window.addEventListener('error', function (e) { HS.errors.push(String(e.message)); });
        var D = JSON.parse(document.getElementById('heapscope-data').textContent);
        HS.data = D;
        var NS = 'http://www.w3.org/2000/svg';
        function el(name, attrs, parent) {
          var e = document.createElementNS(NS, name);
          for (var k in attrs) e.setAttribute(k, attrs[k]);
          if (parent) parent.appendChild(e);
          return e;
        }
        function fmtBytes(v) {
          var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; var i = 0;
          while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
          return (i ? v.toFixed(2) : String(v)) + ' ' + u[i];
        }
        function text(svg, x, y, s, anchor) { var t = el('text', {x: x, y: y, 'text-anchor': anchor || 'start'}, svg); t.textContent = s; return t; }
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
          el('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999'}, svg);
          el('line', {x1: L, y1: T, x2: L, y2: H - B, stroke: '#999'}, svg);
          text(svg, L - 4, T + 8, String(aMax), 'end'); text(svg, L - 4, H - B, '0', 'end');
          text(svg, W - R + 4, T + 8, '100%'); text(svg, W - R + 4, H - B, '0%');
          text(svg, L, H - 6, '0 s'); text(svg, W - R, H - 6, (tMax / 1e6).toFixed(2) + ' s', 'end');
          if (D.blocks_traced) {
            var area = 'M' + x(s[0][0]) + ',' + yo(0);
            s.forEach(function (p) { var held = p[1] * arena; area += ' L' + x(p[0]) + ',' + yo(held ? p[4] / held : 0); });
            area += ' L' + x(s[s.length - 1][0]) + ',' + yo(0) + ' Z';
            el('path', {d: area, fill: '#8ecae6', opacity: 0.5, id: 'occupancy-area'}, svg);
          }
          var line = s.map(function (p, i) { return (i ? 'L' : 'M') + x(p[0]) + ',' + ya(p[1]); }).join(' ');
          el('path', {d: line, fill: 'none', stroke: '#c0392b', 'stroke-width': 2, id: 'arenas-line'}, svg);
          var cursor = el('line', {x1: 0, y1: T, x2: 0, y2: H - B, stroke: '#333', 'stroke-dasharray': '3,3', visibility: 'hidden'}, svg);
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
            var r = el('rect', {x: i * w + 2, y: H - B - h, width: w - 4, height: h, fill: color}, svg);
            el('title', {}, r).textContent = labels[i] + ': ' + v;
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
        """#
}


extension String {
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        var out = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        out += rest
        return out
    }
}
