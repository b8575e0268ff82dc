// The pages' CSS and JS live in Pages/ (our own code, no third-party
// libraries: the pages must work offline), embedded in the binary at build
// time (SwiftPM `.embedInCode`); Pages/README.md says what data each page reads.

extension ReportHTML {
    /// The top of every page: title, warnings, the capture's metadata and the
    /// memory-over-time chart (filled by `commonScript` from the page data).
    static let pageHeader = """
        <header>
        <h1 id="title"></h1>
        <div id="subtitle"></div>
        <div id="warnings"></div>
        </header>
        <details class="metabox" open><summary>Capture</summary><dl id="meta"></dl></details>
        <div id="chart-box"><canvas id="chart"></canvas><div id="chart-info"></div></div>
        <div id="site-chart-box" hidden><canvas id="site-chart"></canvas><div id="site-chart-info"></div></div>
        """

    /// Pages/common.css: what every page of the page builder shares.
    public static let commonStyle = ReportHTML.resource(PackageResources.common_css)

    /// Pages/common.js: number formatting, the header and metadata, the memory
    /// chart, the per-site memory chart.
    public static let commonScript = ReportHTML.resource(PackageResources.common_js)

    /// An embedded page file as text.
    static func resource(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
