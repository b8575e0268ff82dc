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
            <script>\(ReportHTML.commonScript)\(Self.script)</script>
            </body></html>

            """
        return Array(page.utf8)
    }

    static let style = ReportHTML.resource(PackageResources.pymalloc_css)

    static let script = ReportHTML.resource(PackageResources.pymalloc_js)
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
