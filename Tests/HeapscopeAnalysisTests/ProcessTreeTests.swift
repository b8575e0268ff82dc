import Testing
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeTestSupport

/// A process that allocates `sizes` at one stack and frees nothing but the first.
private func process(pid: UInt32, parent: UInt32, function: String, sizes: [UInt64]) throws -> CaptureAnalysis {
    var writer = CaptureWriter(pid: pid, parentPid: parent)
    writer.thread(1)
    let frame = writer.stack([("main", "\(function).py", 1), (function, "\(function).py", 5)])
    for (index, size) in sizes.enumerated() {
        writer.alloc(.pymemObj, address: 0x1000 * UInt64(index + 1), size: size, frame: frame)
    }
    writer.free(.pymemObj, address: 0x1000)
    writer.end(timeMicros: 1000)
    return try analyze(writer)
}

@Suite struct ProcessTreeTests {
    @Test func mergedCapturesKeepEachProcessUnderItsOwnFrame() throws {
        let parent = try process(pid: 10, parent: 0, function: "root", sizes: [100, 200])
        let first = try process(pid: 11, parent: 10, function: "worker", sizes: [1000, 2000, 3000])
        let second = try process(pid: 12, parent: 11, function: "worker", sizes: [50])
        let captures = [
            ProcessCapture(path: "p.hsc", header: parent.header, parent: nil),
            ProcessCapture(path: "p.hsc.11", header: first.header, parent: 0),
            ProcessCapture(path: "p.hsc.11.12", header: second.header, parent: 1),
        ]
        let merged = CaptureAnalysis.merging(zip(captures, [parent, first, second]).map { ($0, $1) })

        #expect(merged.allocated == Totals(count: 6, bytes: 6350))
        // Each process's own peak, summed: 300 + 6000 + 50.
        #expect(merged.peak.bytes == 6350)
        #expect(merged.liveAtEndTotals == Totals(count: 3, bytes: 5200))
        #expect(merged.processes.map(\.peakBytes) == [300, 6000, 50])
        // The stacks: root process > its frames; the child under the root's
        // process frame, the grandchild under the child's.
        let stacks = merged.allocatedByStack.frames.map { frame in
            merged.tables.stack(ofFrame: frame).reversed().map(\.function)
        }
        #expect(stacks.sorted { $0.count < $1.count } == [
            ["process 10: app.py", "main", "root"],
            ["process 10: app.py", "process 11: app.py", "main", "worker"],
            ["process 10: app.py", "process 11: app.py", "process 12: app.py", "main", "worker"],
        ])
        let byLocation = Dictionary(uniqueKeysWithValues: merged.allocatedByStack.byLocation(merged.tables).map {
            ($0.location.file, $0.totals)
        })
        #expect(byLocation == ["root.py": Totals(count: 2, bytes: 300), "worker.py": Totals(count: 4, bytes: 6050)])
    }
}
