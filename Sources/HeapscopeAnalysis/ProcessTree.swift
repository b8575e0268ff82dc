import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The captures of one `--follow-fork` run: the program's, then every child's,
/// `<capture>.<pid>`, theirs `<capture>.<pid>.<pid>` and so on down the tree
/// (`<pid>-N`: a later image of a process that exec'd Python again).
public struct ProcessCapture: Sendable {
    public var path: String
    public var header: CaptureHeader
    /// Index in the list of the capture of the process this one was started from (nil: the root).
    public var parent: Int?

    public init(path: String, header: CaptureHeader, parent: Int?) {
        self.path = path
        self.header = header
        self.parent = parent
    }

    /// "process 1234: worker.py 3", the outermost frame of this process's stacks
    /// ("process 1234 (image 2): ..." for `<pid>-2`).
    public var label: String {
        let command = header.metadata.commandLine.joined(separator: " ")
        let shown = command.isEmpty ? "(command line not recorded)" : command.count > 70 ? String(command.prefix(67)) + "..." : command
        let last = path.split(separator: ".").last ?? ""
        let image = parent != nil ? last.split(separator: "-").dropFirst().first : nil
        return "process \(header.pid)" + (image.map { " (image \($0))" } ?? "") + ": " + shown
    }
}

public enum ProcessTree {
    /// The capture at `root` and those of the processes it started, parents
    /// before children. A file named like a child capture belongs to this run
    /// only if its header says so: its pid is the one in its name and its
    /// parent pid is its parent capture's pid (or that pid itself, for a
    /// process that exec'd Python again), and it started after its parent.
    /// So it works long after the run, and an older run's children at the same
    /// names are left out. `notes`: what was left out, and why.
    public static func find(root: String) throws(CaptureError) -> (captures: [ProcessCapture], notes: [String]) {
        let rootHeader = try CaptureReader(path: root).header
        var captures = [ProcessCapture(path: root, header: rootHeader, parent: nil)]
        var notes: [String] = []
        var index: [String: Int] = [root: 0]
        // Sorted, a parent's name comes before its children's (it is their prefix).
        for path in childPaths(of: root) {
            let parentPath = String(path[..<path.lastIndex(of: ".")!])
            guard let parent = index[parentPath] else {
                notes.append("\(path): left out: its parent's capture \(parentPath) is missing")
                continue
            }
            let header: CaptureHeader
            do { header = try CaptureReader(path: path).header } catch {
                notes.append("\(path): left out: \(error)")
                continue
            }
            let parentHeader = captures[parent].header
            let name = path[path.index(after: path.lastIndex(of: ".")!)...]
            let pid = UInt32(name.prefix(while: { $0 != "-" }))
            guard header.pid == pid,
                  header.parentPid == parentHeader.pid || header.pid == parentHeader.pid,
                  header.startTimeMicros >= parentHeader.startTimeMicros
            else {
                notes.append("\(path): left out: not a child of process \(parentHeader.pid) of this run "
                             + "(its header: pid \(header.pid), parent pid \(header.parentPid))")
                continue
            }
            index[path] = captures.count
            captures.append(ProcessCapture(path: path, header: header, parent: parent))
        }
        return (captures, notes)
    }

    /// Files next to `path` named `<its name>.<pid>[-N]...`, sorted.
    private static func childPaths(of path: String) -> [String] {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard let handle = opendir(dir.isEmpty ? "/" : dir) else { return [] }
        defer { closedir(handle) }
        var found: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            guard name.hasPrefix(base + "."), isChildSuffix(name.dropFirst(base.count + 1)) else { continue }
            found.append(slash == nil ? name : dir + "/" + name)
        }
        return found.sorted()
    }

    private static func isChildSuffix(_ suffix: Substring) -> Bool {
        !suffix.isEmpty && suffix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            let pieces = part.split(separator: "-", omittingEmptySubsequences: false)
            return pieces.count <= 2 && pieces.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
        }
    }
}

/// One process's own figures in a report over a process tree.
public struct ProcessFigures: Sendable {
    public var capture: ProcessCapture
    public var isTruncated: Bool
    public var allocated: Totals
    /// This process's own peak (the processes' peaks need not be simultaneous).
    public var peakBytes: UInt64
    /// Live at its end (leaks); nil in a view's analysis, which does not keep it.
    public var liveAtEnd: Totals?
    public var durationMicros: UInt64?
}

/// The tables of a process tree, and each capture's shift into them.
private struct MergedTables {
    var tables = CaptureTables()
    var shifts: [CaptureTables.Shift] = []

    init(_ parts: [(capture: ProcessCapture, tables: CaptureTables)]) {
        for part in parts {
            let parentFrame = part.capture.parent.map { shifts[$0].processFrame } ?? 0
            shifts.append(tables.append(part.tables, processLabel: part.capture.label, pid: part.capture.header.pid, under: parentFrame))
        }
    }

    func remap(_ totals: StackTotals, _ shift: CaptureTables.Shift, into merged: inout StackTotals) {
        for frame in totals.frames {
            let value = totals[frame]
            merged.add(frame: shift.frame(frame), bytes: value.bytes, count: value.count)
        }
    }
}

/// The end of the last process to end, from the root's start.
private func spanMicros(_ parts: [(capture: ProcessCapture, duration: UInt64?)]) -> UInt64? {
    guard let start = parts.first?.capture.header.startTimeMicros else { return nil }
    return parts.compactMap { part in
        part.duration.map { part.capture.header.startTimeMicros &- start &+ $0 }
    }.max()
}

extension CaptureAnalysis {
    /// The analyses of a process tree's captures (each its own replay, in
    /// `ProcessTree.find`'s order) as one: stacks under a frame per process;
    /// totals and leaks summed; `peak` is the SUM of each process's own peak,
    /// not a peak of the tree at one moment (the captures do not say which
    /// moments coincide). The memory timeline is left empty for the same reason.
    public static func merging(_ parts: [(capture: ProcessCapture, analysis: CaptureAnalysis)]) -> CaptureAnalysis {
        let merged = MergedTables(parts.map { ($0.capture, $0.analysis.tables) })
        var result = parts[0].analysis
        let frameCount = merged.tables.frameCount
        var allocatedByStack = StackTotals(frameCount: frameCount)
        var peakLive = StackTotals(frameCount: frameCount)
        var liveAtEndByStack = StackTotals(frameCount: frameCount)
        var viewByStack = StackTotals(frameCount: frameCount)
        result.tables = merged.tables
        result.allocated = .zero
        result.byAllocator = [:]
        result.histogram = SizeHistogram()
        result.threads = []
        result.liveAtEnd = []
        result.liveAtEndTotals = .zero
        result.recordCount = 0
        result.memoryOverTime = []
        result.isTruncated = false
        result.processes = []
        var peakBytes: UInt64 = 0
        for (index, part) in parts.enumerated() {
            let analysis = part.analysis
            let shift = merged.shifts[index]
            merged.remap(analysis.allocatedByStack, shift, into: &allocatedByStack)
            merged.remap(analysis.peak.live, shift, into: &peakLive)
            merged.remap(analysis.liveAtEndByStack, shift, into: &liveAtEndByStack)
            merged.remap(analysis.viewByStack, shift, into: &viewByStack)
            result.allocated = result.allocated + analysis.allocated
            for (kind, totals) in analysis.byAllocator { result.byAllocator[kind, default: .zero] = result.byAllocator[kind, default: .zero] + totals }
            result.histogram.add(analysis.histogram)
            result.threads += analysis.threads.map { thread in
                var thread = thread
                thread.number = shift.thread(thread.number)
                thread.name = merged.tables.thread(thread.number).name
                return thread
            }
            result.liveAtEnd += analysis.liveAtEnd.map { live in
                var live = live
                live.frame = shift.frame(live.frame)
                live.thread = shift.thread(live.thread)
                return live
            }
            result.liveAtEndTotals = result.liveAtEndTotals + analysis.liveAtEndTotals
            result.recordCount += analysis.recordCount
            result.isTruncated = result.isTruncated || analysis.isTruncated
            result.stopCause = result.stopCause ?? analysis.stopCause
            peakBytes &+= analysis.peak.bytes
            result.processes.append(ProcessFigures(
                capture: part.capture, isTruncated: analysis.isTruncated, allocated: analysis.allocated,
                peakBytes: analysis.peak.bytes, liveAtEnd: analysis.liveAtEndTotals, durationMicros: analysis.durationMicros))
        }
        result.allocatedByStack = allocatedByStack
        result.peak = Peak(bytes: peakBytes, allocationSerial: 0, timeMicros: nil, live: peakLive)
        result.liveAtEndByStack = liveAtEndByStack
        result.viewByStack = viewByStack
        result.endTimeMicros = spanMicros(parts.map { ($0.capture, $0.analysis.durationMicros) })
        return result
    }
}

extension ViewAnalysis {
    /// The same for the flame graph, table and tree: sites under a frame per
    /// process, `peakBytes` the sum of each process's own peak.
    public static func merging(_ parts: [(capture: ProcessCapture, analysis: ViewAnalysis)]) -> ViewAnalysis {
        let merged = MergedTables(parts.map { ($0.capture, $0.analysis.tables) })
        var result = parts[0].analysis
        result.tables = merged.tables
        result.sites = []
        result.allocated = .zero
        result.allocatedByFrame = [Totals](repeating: .zero, count: merged.tables.frames.count)
        result.peakBytes = 0
        result.peakTimeMicros = nil
        result.memoryOverTime = []
        result.recordCount = 0
        result.isTruncated = false
        result.temporal = nil
        result.processes = []
        for (index, part) in parts.enumerated() {
            let analysis = part.analysis
            let shift = merged.shifts[index]
            result.sites += analysis.sites.map { site in
                var site = site
                site.frame = shift.frame(site.frame)
                site.nativeFrame = shift.nativeFrame(site.nativeFrame)
                site.thread = shift.thread(site.thread)
                return site
            }
            for (frame, totals) in analysis.allocatedByFrame.enumerated() {
                let target = Int(shift.frame(FrameID(frame)))
                result.allocatedByFrame[target] = result.allocatedByFrame[target] + totals
            }
            result.allocated = result.allocated + analysis.allocated
            result.peakBytes &+= analysis.peakBytes
            result.recordCount += analysis.recordCount
            result.isTruncated = result.isTruncated || analysis.isTruncated
            result.stopCause = result.stopCause ?? analysis.stopCause
            result.processes.append(ProcessFigures(
                capture: part.capture, isTruncated: analysis.isTruncated, allocated: analysis.allocated,
                peakBytes: analysis.peakBytes, liveAtEnd: nil, durationMicros: analysis.durationMicros))
        }
        result.total = result.sites.reduce(.zero) { $0 + $1.totals }
        result.endTimeMicros = spanMicros(parts.map { ($0.capture, $0.analysis.durationMicros) })
        return result
    }
}
