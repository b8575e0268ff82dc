// The diff page: the flame graph page's graph (FlameGraphHTML, in its diff
// mode) with a legend, and a table of the sites that changed (Pages/diff.js).

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

    static let style = ReportHTML.resource(PackageResources.diff_css)

    static let script = ReportHTML.resource(PackageResources.diff_js)
}
