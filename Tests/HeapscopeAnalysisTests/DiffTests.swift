import Testing
import HeapscopeAnalysis
import HeapscopeFormat
@testable import HeapscopeReports
import HeapscopeTestSupport

private func replay(_ writer: CaptureWriter, _ view: ReportView) throws -> ViewAnalysis {
    try ViewAnalysis(reader: CaptureReader(bytes: writer.bytes), view: view)
}

private func site(_ diff: CaptureDiff, _ function: String) -> SiteDiff? {
    diff.sites.first { $0.location.function == function }
}

@Suite struct DiffTests {
    /// The base run: `load` keeps 3 blocks of 1000 bytes, `parse` one of 500,
    /// `tmp` makes and frees 64 bytes.
    func baseRun(before end: (inout CaptureWriter) -> Void = { _ in }) -> CaptureWriter {
        var writer = CaptureWriter()
        writer.thread(1)
        let load = writer.stack([("main", "app.py", 1), ("load", "app.py", 10)])
        let parse = writer.stack([("main", "app.py", 2), ("parse", "app.py", 20)])
        let tmp = writer.stack([("main", "app.py", 3), ("tmp", "app.py", 30)])
        writer.alloc(.malloc, address: 0xA000, size: 64, frame: tmp)
        writer.free(.malloc, address: 0xA000)
        for index in 0..<3 { writer.alloc(.malloc, address: 0x1000 + UInt64(index) * 0x1000, size: 1000, frame: load) }
        writer.alloc(.malloc, address: 0x9000, size: 500, frame: parse)
        end(&writer)
        writer.end(timeMicros: 1000)
        return writer
    }

    /// The new run, recorded in another order (so other frame ids) at other
    /// addresses: `load` keeps 5 blocks, `parse` is gone, `fresh` keeps 200
    /// bytes on another thread, `tmp` frees twice as much.
    func newRun() -> CaptureWriter {
        var writer = CaptureWriter()
        writer.thread(1)
        let tmp = writer.stack([("main", "app.py", 3), ("tmp", "app.py", 30)], definedAt: ["main": 1])
        let fresh = writer.stack([("main", "app.py", 4), ("fresh", "new.py", 7)])
        let load = writer.stack([("main", "app.py", 1), ("load", "app.py", 10)])
        writer.alloc(.malloc, address: 0x7_0000, size: 128, frame: tmp)
        writer.free(.malloc, address: 0x7_0000)
        for index in 0..<5 { writer.alloc(.pymemObj, address: 0x5_0000 + UInt64(index) * 0x1000, size: 1000, frame: load) }
        writer.thread(2)
        writer.alloc(.malloc, address: 0x8_0000, size: 200, frame: fresh)
        writer.end(timeMicros: 2000)
        return writer
    }

    @Test func sitesMatchByLocationNotByIdOrAddress() throws {
        let diff = CaptureDiff(base: try replay(baseRun(), .peak), new: try replay(newRun(), .peak))
        #expect(diff.baseTotal == Totals(count: 4, bytes: 3500))
        #expect(diff.newTotal == Totals(count: 6, bytes: 5200))
        #expect(diff.deltaBytes == 1700 && diff.deltaCount == 2)
        let load = try #require(site(diff, "load"))
        #expect(load.location == Location(function: "load", file: "app.py", line: 10))
        #expect(load.base == Totals(count: 3, bytes: 3000) && load.new == Totals(count: 5, bytes: 5000))
        #expect(load.deltaBytes == 2000 && load.deltaCount == 2)
        let parse = try #require(site(diff, "parse"))
        #expect(parse.deltaBytes == -500 && parse.deltaCount == -1 && parse.new == .zero)
        let fresh = try #require(site(diff, "fresh"))
        #expect(fresh.base == .zero && fresh.deltaBytes == 200 && fresh.location.file == "new.py")
        // Biggest change first, either way; tmp is not live at either peak.
        #expect(diff.sites.map(\.location.function) == ["load", "parse", "fresh"])
        #expect(diff.unchangedCount == 0)
    }

    @Test func aCaptureAgainstItselfHasNoChange() throws {
        let analysis = try replay(baseRun(), .peak)
        let diff = CaptureDiff(base: analysis, new: analysis)
        #expect(diff.sites.isEmpty)
        #expect(diff.unchangedCount == 2)
        #expect(diff.deltaBytes == 0 && diff.deltaCount == 0)
        let growth = diff.growth(over: 0)
        #expect(!growth.total && growth.sites.isEmpty)
    }

    @Test func allocatedViewCountsWhatWasFreed() throws {
        let base = try replay(baseRun(), .allocated)
        #expect(base.total == Totals(count: 5, bytes: 3564))
        #expect(base.total == base.allocated)
        let diff = CaptureDiff(base: base, new: try replay(newRun(), .allocated))
        let tmp = try #require(site(diff, "tmp"))
        #expect(tmp.base == Totals(count: 1, bytes: 64) && tmp.new == Totals(count: 1, bytes: 128))
        #expect(tmp.deltaBytes == 64 && tmp.deltaCount == 0)
    }

    @Test func leaksView() throws {
        let grown = baseRun { writer in
            let leak = writer.stack([("main", "app.py", 5), ("leak", "app.py", 50)])
            writer.alloc(.malloc, address: 0xF000, size: 4096, frame: leak)
        }
        let diff = CaptureDiff(base: try replay(baseRun(), .leaks), new: try replay(grown, .leaks))
        #expect(diff.sites.count == 1)
        #expect(diff.sites.first?.location.function == "leak" && diff.sites.first?.deltaBytes == 4096)
        #expect(diff.unchangedCount == 2)
    }

    @Test func growthOverALimit() throws {
        let diff = CaptureDiff(base: try replay(baseRun(), .peak), new: try replay(newRun(), .peak))
        // total +1700, load +2000, fresh +200, parse -500
        var growth = diff.growth(over: 1999)
        #expect(!growth.total && growth.sites.map(\.location.function) == ["load"])
        growth = diff.growth(over: 2000)
        #expect(!growth.total && growth.sites.isEmpty)
        growth = diff.growth(over: 199)
        #expect(growth.total && growth.sites.map(\.location.function) == ["load", "fresh"])
        // The other way round nothing grew but parse.
        let reverse = CaptureDiff(base: try replay(newRun(), .peak), new: try replay(baseRun(), .peak))
        growth = reverse.growth(over: 0)
        #expect(!growth.total && growth.sites.map(\.location.function) == ["parse"])
    }

    @Test func sizesParseAsThePytestPluginDoes() {
        #expect(Formatting.parseSize("4096") == 4096)
        #expect(Formatting.parseSize("50 MB") == 50_000_000)
        #expect(Formatting.parseSize("1.5GiB") == 1_610_612_736)
        #expect(Formatting.parseSize(" 512 b ") == 512)
        #expect(Formatting.parseSize("100kib") == 102_400)
        #expect(Formatting.parseSize(".5 KB") == 500)
        #expect(Formatting.parseSize("1 MBs") == nil)
        #expect(Formatting.parseSize("-1 MB") == nil)
        #expect(Formatting.parseSize("MB") == nil)
        #expect(Formatting.parseSize("1.2.3 MB") == nil)
        #expect(Formatting.parseSize("") == nil)
        #expect(Formatting.signedBytes(-2048) == "-2.00 KiB" && Formatting.signedBytes(5) == "+5 B" && Formatting.signedBytes(0) == "0 B")
    }

    @Test func reportJSONAndMergedTree() throws {
        let options = ReportOptions(view: .peak)
        let base = ReportContext(capturePath: "base.hsc", options: options, analysis: try replay(baseRun(), .peak))
        let new = ReportContext(capturePath: "new.hsc", options: options, analysis: try replay(newRun(), .peak))
        let report = DiffReport(base: base, new: new)
        let json = report.json()
        #expect(json["delta_bytes"]?.intValue == 1700)
        #expect(json["base"]?["bytes"]?.intValue == 3500 && json["new"]?["count"]?.intValue == 6)
        guard case .array(let sites)? = json["sites"] else { Issue.record("no sites"); return }
        #expect(sites.count == 3)
        let keys = sites.first.flatMap { value -> [String]? in
            if case .object(let members) = value { return members.map(\.key) } else { return nil }
        }
        #expect(keys == ["function", "file", "line", "base_bytes", "new_bytes", "delta_bytes", "base_count", "new_count", "delta_count"])
        #expect(sites[1]["delta_bytes"]?.intValue == -500 && sites[1]["line"]?.intValue == 20)

        // One node per distinct path of locations: main:1 > load is in both
        // captures, main:2 > parse in the base only, main:4 > fresh in the new
        // one (tmp has nothing live at either peak).
        let tree = report.mergedTree()
        let names = tree.label.map { tree.labels[Int($0)].location.function }
        #expect(names.count == 7)
        #expect(tree.label.filter { tree.labels[Int($0)].location == Location(function: "main", file: "app.py", line: 1) }.count == 1)
        let load = try #require(names.firstIndex(of: "load"))
        #expect(tree.base[load].bytes == 3000 && tree.new[load].bytes == 5000)
        let fresh = try #require(names.firstIndex(of: "fresh"))
        #expect(tree.base[fresh] == .zero && tree.new[fresh].bytes == 200)
        let page = String(decoding: report.html(), as: UTF8.self)
        #expect(page.contains("\"diff\":{\"baseBytes\":") && page.contains("id=\"site-rows\""))
    }
}
