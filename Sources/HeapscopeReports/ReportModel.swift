import Glibc
import HeapscopeAnalysis
import HeapscopeFormat

/// How a flame graph, table, tree or export shapes a capture's figures.
public struct ReportOptions: Sendable, Equatable {
    public var view: ReportView
    /// Also aggregate by time so the page can recompute any time range.
    public var temporal: Bool
    /// One root per thread.
    public var splitThreads: Bool
    /// Allocating functions at the root, their callers below.
    public var inverted: Bool

    public init(view: ReportView = .peak, temporal: Bool = false, splitThreads: Bool = false, inverted: Bool = false) {
        self.view = view
        self.temporal = temporal
        self.splitThreads = splitThreads
        self.inverted = inverted
    }

    /// "peak", "leaks, split by thread", "temporal peak, inverted"...
    public var description: String {
        var text = (temporal ? "temporal " : "") + view.name
        if case .temporary(let threshold) = view { text += " (threshold \(threshold))" }
        if splitThreads { text += ", split by thread" }
        if inverted { text += ", inverted" }
        return text
    }
}

/// What every report says about the capture it shows: its name, the view, the
/// units, and warnings (cut short; leaks with pymalloc untraced).
public struct ReportContext {
    public var capturePath: String
    public var options: ReportOptions
    public var analysis: ViewAnalysis
    /// Display stacks (hybrid or native) for native captures; nil: Python
    /// stacks straight from the capture's frames.
    public var resolver: StackResolver?

    public init(capturePath: String, options: ReportOptions, analysis: ViewAnalysis, resolver: StackResolver? = nil) {
        self.capturePath = capturePath
        self.options = options
        self.analysis = analysis
        self.resolver = resolver
    }

    /// A site's stack as locations, outermost first (empty: no frame at all).
    public func locations(frame: FrameID, nativeFrame: NativeFrameID) -> [Location] {
        analysis.locations(StackKey(frame: frame, nativeFrame: nativeFrame), resolver: resolver)
    }

    /// Where a site allocated: its innermost frame.
    public func innermost(frame: FrameID, nativeFrame: NativeFrameID) -> Location {
        analysis.innermost(StackKey(frame: frame, nativeFrame: nativeFrame), resolver: resolver)
    }

    public static let units = "bytes (B, KiB = 1024 B, MiB, GiB) and allocation counts"

    public var title: String { "heapscope \(options.description): \(capturePath)" }

    public var warnings: [String] {
        var result: [String] = []
        if analysis.isTruncated { result.append(StatsReport.cutShortNote(analysis.stopCause)) }
        if options.view == .leaks && analysis.leaksMislead {
            result.append(AllocatorNotes.leaksWarning)
        }
        return result
    }

    /// Key/value lines describing the capture (shown in the HTML pages and the tree).
    public var metadataLines: [(String, String)] {
        let metadata = analysis.header.metadata
        let command = metadata.commandLine.joined(separator: " ")
        var modes: [String] = []
        modes.append(analysis.header.flags.contains(.pythonAllocators) ? "Python allocators traced" : "Python allocators not traced")
        modes.append(analysis.header.flags.contains(.native) ? "native stacks" : "no native stacks")
        if analysis.header.flags.contains(.followFork) { modes.append("follow fork") }
        return [
            ("Capture", capturePath),
            ("View", "\(options.description): \(options.view.explanation)"),
            ("Units", Self.units),
            ("Command", command.isEmpty ? "(not recorded)" : command),
            ("Python", metadata.pythonVersion ?? "(not recorded)"),
            ("Allocator", AllocatorNotes.describe(metadata)),
            ("Modes", modes.joined(separator: ", ")),
            ("Duration", analysis.durationMicros.map { Formatting.seconds(micros: $0) } ?? "unknown"),
            ("Peak memory", Formatting.bytes(analysis.peakBytes) + Formatting.peakScope(processes: analysis.processes.count)),
            ("Total allocated", "\(Formatting.bytes(analysis.allocated.bytes)) in \(Formatting.allocations(analysis.allocated.count))"),
            ("Shown", "\(Formatting.bytes(analysis.total.bytes)) in \(Formatting.allocations(analysis.total.count))"),
            analysis.processes.isEmpty
                ? ("Process", "pid \(analysis.header.pid)" + (analysis.header.parentPid != 0 ? ", forked from \(analysis.header.parentPid)" : ""))
                : ("Processes", analysis.processes.map { "\($0.capture.header.pid)" }.joined(separator: ", ") + " (one root frame each)"),
            ("Complete", analysis.isTruncated ? "no: cut short, figures up to the last complete record" : "yes"),
        ]
    }

    /// The label of a thread root: "thread 2 (worker-1)".
    public func threadName(_ number: ThreadNumber) -> String {
        guard Int(number) < analysis.tables.threads.count else { return "thread \(number)" }
        let info = analysis.tables.thread(number)
        var text = "thread \(number)"
        if let name = info.name { text += " (\(name))" } else if number == 1 { text += " (main)" }
        return text
    }
}

/// Whether a frame belongs to the import system or the interpreter's own
/// start-up machinery (hidden by the page's toggle).
public func isInterpreterInternal(_ location: Location) -> Bool {
    let file = location.file
    if file.hasPrefix("<frozen ") { return true }
    if file.contains("/importlib/") || file.hasSuffix("/runpy.py") || file.hasSuffix("/site.py") { return true }
    // heapscope's own package (bootstrap, thread patching)
    if file.contains("site-packages/heapscope/") || file.contains("PythonHarness/heapscope/") { return true }
    if file.hasSuffix("/threading.py") {
        // CPython 3.10 names methods without their class (it has no co_qualname).
        let function = location.function.hasPrefix("Thread.") ? location.function.dropFirst(7) : Substring(location.function)
        if function == "_bootstrap" || function == "_bootstrap_inner" { return true }
    }
    return false
}

/// A tree of stacks for flame graphs and the terminal tree: node 0 is the root;
/// a node's parent always has a smaller index. Figures sit on the node each site
/// ends at ("self"); a node's total is its self plus its children's totals.
public struct StackTree {
    public enum LabelKind: UInt8, Sendable { case root = 0, thread = 1, frame = 2, noPython = 3 }

    public struct Label: Hashable, Sendable {
        public var location: Location
        public var kind: LabelKind
    }

    public private(set) var labels: [Label] = []
    public private(set) var parent: [Int32] = [-1]
    public private(set) var label: [Int32] = [0]
    public var selfTotals: [Totals] = [.zero]

    public let tables: CaptureTables
    public let splitThreads: Bool
    public let inverted: Bool
    private let threadName: (ThreadNumber) -> String

    private var labelIndex: [Label: Int32] = [:]
    private var labelOfFrame: [Int32]
    private var child: [UInt64: Int32] = [:]
    /// Leaf node per (thread, frame) key.
    private var leafMemo: [UInt64: Int32] = [:]
    private var threadRoot: [ThreadNumber: Int32] = [:]

    public var count: Int { parent.count }

    public init(tables: CaptureTables, splitThreads: Bool, inverted: Bool, rootName: String,
                threadName: @escaping (ThreadNumber) -> String) {
        self.tables = tables
        self.splitThreads = splitThreads
        self.inverted = inverted
        self.threadName = threadName
        labelOfFrame = [Int32](repeating: -1, count: tables.frames.count)
        _ = intern(Label(location: Location(function: rootName, file: "", line: 0), kind: .root))
    }

    private mutating func intern(_ label: Label) -> Int32 {
        if let index = labelIndex[label] { return index }
        let index = Int32(labels.count)
        labels.append(label)
        labelIndex[label] = index
        return index
    }

    private mutating func label(ofFrame frame: FrameID) -> Int32 {
        let known = labelOfFrame[Int(frame)]
        if known >= 0 { return known }
        let value = frame == 0
            ? intern(Label(location: Location(function: "<no Python frame>", file: "", line: 0), kind: .noPython))
            : intern(Label(location: tables.location(ofFrame: frame), kind: .frame))
        labelOfFrame[Int(frame)] = value
        return value
    }

    private mutating func child(of node: Int32, label: Int32) -> Int32 {
        let key = UInt64(UInt32(node)) << 32 | UInt64(UInt32(label))
        if let existing = child[key] { return existing }
        let index = Int32(parent.count)
        parent.append(node)
        self.label.append(label)
        selfTotals.append(.zero)
        child[key] = index
        return index
    }

    private mutating func root(forThread thread: ThreadNumber) -> Int32 {
        guard splitThreads else { return 0 }
        if let node = threadRoot[thread] { return node }
        let name = intern(Label(location: Location(function: threadName(thread), file: "", line: 0), kind: .thread))
        let node = child(of: 0, label: name)
        threadRoot[thread] = node
        return node
    }

    /// The node a stack ends at (creating it and its ancestors).
    public mutating func leaf(frame: FrameID, thread: ThreadNumber) -> Int32 {
        let key = UInt64(splitThreads ? thread : 0) << 32 | UInt64(frame)
        if let node = leafMemo[key] { return node }
        let top = root(forThread: thread)
        var node: Int32
        if frame == 0 {
            node = child(of: top, label: label(ofFrame: 0))
        } else if inverted {
            node = top
            var current = frame
            while current != 0 {
                node = child(of: node, label: label(ofFrame: current))
                current = tables.frame(current).parent
            }
        } else {
            // Walk up to the first known frame, then create downwards.
            var path: [FrameID] = []
            var current = frame
            node = top
            while current != 0 {
                let memoKey = UInt64(splitThreads ? thread : 0) << 32 | UInt64(current)
                if let known = leafMemo[memoKey] { node = known; break }
                path.append(current)
                current = tables.frame(current).parent
            }
            for step in path.reversed() {
                node = child(of: node, label: label(ofFrame: step))
                leafMemo[UInt64(splitThreads ? thread : 0) << 32 | UInt64(step)] = node
            }
        }
        leafMemo[key] = node
        return node
    }

    /// Label per `StackResolver` frame index (-1: not made yet).
    private var displayLabel: [Int32] = []

    /// The node a display stack ends at (outermost first, from `StackResolver.stackIndices`).
    public mutating func leaf(stack: [StackResolver.FrameIndex], resolver: StackResolver, thread: ThreadNumber) -> Int32 {
        var node = root(forThread: thread)
        if stack.isEmpty { node = child(of: node, label: label(ofFrame: 0)) }
        for index in inverted ? Array(stack.reversed()) : stack {
            while displayLabel.count <= Int(index) { displayLabel.append(-1) }
            if displayLabel[Int(index)] < 0 {
                displayLabel[Int(index)] = intern(Label(location: resolver.frame(index).location, kind: .frame))
            }
            node = child(of: node, label: displayLabel[Int(index)])
        }
        return node
    }

    /// The node of a site's stack: display frames when the context has a
    /// resolver, Python frames otherwise.
    public mutating func leaf(frame: FrameID, nativeFrame: NativeFrameID, thread: ThreadNumber, resolver: StackResolver?) -> Int32 {
        guard let resolver else { return leaf(frame: frame, thread: thread) }
        return leaf(stack: resolver.stackIndices(StackKey(frame: frame, nativeFrame: nativeFrame)), resolver: resolver, thread: thread)
    }

    public mutating func add(frame: FrameID, nativeFrame: NativeFrameID = 0, thread: ThreadNumber, totals: Totals,
                             resolver: StackResolver? = nil) {
        let node = leaf(frame: frame, nativeFrame: nativeFrame, thread: thread, resolver: resolver)
        selfTotals[Int(node)] = selfTotals[Int(node)] + totals
    }

    /// Self plus everything below, per node.
    public func totals() -> [Totals] {
        var result = selfTotals
        for node in stride(from: count - 1, to: 0, by: -1) {
            let up = Int(parent[node])
            result[up] = result[up] + result[node]
        }
        return result
    }

    /// Children of every node, biggest total first (nodes with nothing left out).
    public func children(totals: [Totals]) -> [[Int32]] {
        var result = [[Int32]](repeating: [], count: count)
        for node in 1..<max(count, 1) where totals[node].bytes > 0 || totals[node].count > 0 {
            result[Int(parent[node])].append(Int32(node))
        }
        for index in result.indices where result[index].count > 1 {
            result[index].sort { a, b in
                let ta = totals[Int(a)], tb = totals[Int(b)]
                return ta.bytes != tb.bytes ? ta.bytes > tb.bytes : a < b
            }
        }
        return result
    }

    public func location(ofNode node: Int) -> Location { labels[Int(label[node])].location }
    public func labelKind(ofNode node: Int) -> LabelKind { labels[Int(label[node])].kind }
}

// MARK: Files

/// Reads a whole file, or nil (missing, unreadable, a directory, over `limit` bytes).
func readFileBytes(_ path: String, limit: Int = 8 << 20) -> [UInt8]? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var info = stat()
    guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) <= limit else { return nil }
    var result = [UInt8](repeating: 0, count: Int(info.st_size))
    var offset = 0
    while offset < result.count {
        let got = result.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + offset, $0.count - offset) }
        if got < 0 && errno == EINTR { continue }
        if got <= 0 { break }
        offset += got
    }
    return Array(result.prefix(offset))
}

/// Source lines of Python files, read once per file (for tooltips).
struct SourceCache {
    private var files: [String: [String]?] = [:]

    /// Lines `line - before ... line + after` (1-based) with the first line's
    /// number, or nil when the file is not readable here.
    mutating func lines(file: String, around line: Int, before: Int = 2, after: Int = 2) -> (start: Int, lines: [String])? {
        guard line > 0, !file.isEmpty, !file.hasPrefix("<") else { return nil }
        if files[file] == nil {
            if let bytes = readFileBytes(file) {
                let text = String(decoding: bytes, as: UTF8.self)
                files[file] = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.prefix(200)) }
            } else {
                files[file] = .some(nil)
            }
        }
        guard let cached = files[file], let all = cached, line <= all.count else { return nil }
        let start = max(1, line - before)
        let end = min(all.count, line + after)
        return (start, Array(all[(start - 1)..<end]))
    }
}

/// Why an output file could not be written.
public struct ReportWriteError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Writes `bytes` to `path` (replacing it), or to standard output for "-".
public func writeReport(_ bytes: [UInt8], to path: String) throws(ReportWriteError) {
    let descriptor: Int32 = path == "-" ? STDOUT_FILENO : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw ReportWriteError(path: path, reason: String(cString: strerror(errno))) }
    defer { if path != "-" { close(descriptor) } }
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { throw ReportWriteError(path: path, reason: String(cString: strerror(errno))) }
        offset += written
    }
}
