// The flame graph page: its markup here, its CSS and script in Pages/
// flamegraph.css and flamegraph.js (canvas drawing, zoom, search, tooltip, the
// internal-frames toggle, the temporal range selection, the diff mode).

enum FlameGraphHTML {
    static let body = ReportHTML.pageHeader + "\n" + graph + "\n" + #"""
<footer>heapscope flame graph. Width: bytes in the view; click a frame to zoom in, Back or Esc to zoom out; hover for details.</footer>
"""#

    /// The toolbar, the graph and its tooltip (the diff page shows them too).
    static let graph = #"""
<div id="toolbar">
<button id="back" title="Zoom out one step (Esc)">Back</button>
<button id="reset" title="Show the whole graph">Reset zoom</button>
<button id="clear-range" hidden>Whole run</button>
<input id="search" type="search" placeholder="Search functions and files" autocomplete="off">
<label><input type="checkbox" id="hide-internal"> Hide import-system and interpreter frames</label>
<span id="match-info" class="muted"></span>
</div>
<div id="crumbs" class="muted"></div>
<div id="graph-box"><canvas id="graph"></canvas></div>
<div id="empty" class="muted" hidden>Nothing to show in this view.</div>
<div id="tooltip" hidden></div>
"""#

    static let style = ReportHTML.resource(PackageResources.flamegraph_css)

    static let script = ReportHTML.resource(PackageResources.flamegraph_js)
}
