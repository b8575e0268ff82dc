import HeapscopeFormat

/// Leak suppressions (`--suppressions FILE`, docs/CLI.md): known leaks to hide
/// from leak reports. One pattern a line:
///
///     # comments and blank lines are ignored
///     function:fetch_profile        a function, by qualified or plain name
///     function:Cache.*              glob: * any characters, ? one character
///     file:*/site-packages/attr/*   the file of a frame, glob on its path
///     module:json                   a module and its submodules (json, json.decoder, ...)
///
/// An allocation is suppressed when any frame of its Python stack matches any
/// pattern. Reports say how much they hid.
public struct Suppressions: Sendable, Equatable {
    public enum Pattern: Sendable, Equatable, CustomStringConvertible {
        case function(String)
        case file(String)
        case module(String)

        public var description: String {
            switch self {
            case .function(let name): return "function:\(name)"
            case .file(let glob): return "file:\(glob)"
            case .module(let name): return "module:\(name)"
            }
        }
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible, Sendable {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public var patterns: [Pattern]

    public init(patterns: [Pattern]) { self.patterns = patterns }

    /// Parses a suppressions file's text.
    public init(text: String) throws(ParseError) {
        var patterns: [Pattern] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingSpaces()
            if trimmed.isEmpty { continue }
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw ParseError(line: number, reason: "expected function:NAME, file:GLOB or module:NAME, got '\(trimmed)'")
            }
            let kind = trimmed[..<colon].trimmingSpaces()
            let value = trimmed[trimmed.index(after: colon)...].trimmingSpaces()
            guard !value.isEmpty else { throw ParseError(line: number, reason: "'\(kind):' needs a pattern") }
            switch kind {
            case "function": patterns.append(.function(value))
            case "file": patterns.append(.file(value))
            case "module": patterns.append(.module(value))
            default:
                throw ParseError(line: number, reason: "unknown pattern kind '\(kind)' (use function:, file: or module:)")
            }
        }
        self.patterns = patterns
    }

    public var isEmpty: Bool { patterns.isEmpty }

    /// Index of the first pattern matching a frame of `stack`, if any.
    public func match(stack: [Location]) -> Int? {
        for frame in stack {
            for (index, pattern) in patterns.enumerated() where Self.matches(pattern, frame) {
                return index
            }
        }
        return nil
    }

    static func matches(_ pattern: Pattern, _ frame: Location) -> Bool {
        switch pattern {
        case .function(let glob):
            let plain = frame.function.split(separator: ".").last.map(String.init) ?? frame.function
            return globMatch(glob, frame.function) || globMatch(glob, plain)
        case .file(let glob):
            return globMatch(glob, frame.file)
        case .module(let name):
            guard let module = moduleName(ofFile: frame.file) else { return false }
            return module == name || module.hasPrefix(name + ".") || module.hasSuffix("." + name)
                || module.contains("." + name + ".")
        }
    }

    /// A dotted name for a file: its path without extension, `/` as `.`, with
    /// `__init__` dropped ("/usr/lib/python3.11/json/decoder.py" ->
    /// "usr.lib.python3.11.json.decoder"); `<frozen importlib._bootstrap>` ->
    /// "importlib._bootstrap". Modules match on whole dotted components, so
    /// `module:json` matches any path ending in json/... or json.py.
    static func moduleName(ofFile file: String) -> String? {
        if file.hasPrefix("<frozen ") && file.hasSuffix(">") {
            return String(file.dropFirst(8).dropLast())
        }
        guard file.hasSuffix(".py") || file.hasSuffix(".pyc") || file.hasSuffix(".pyx") else { return nil }
        var path = file
        if let dot = path.lastIndex(of: ".") { path = String(path[..<dot]) }
        var parts = path.split(separator: "/").map(String.init)
        if parts.last == "__init__" { parts.removeLast() }
        return parts.isEmpty ? nil : parts.joined(separator: ".")
    }

    /// Splits leaked allocations into those kept and those hidden; `hidden` is
    /// what was hidden, in total and per pattern (index in `patterns`).
    public func filter(_ allocations: [LiveAllocation], tables: CaptureTables)
        -> (kept: [LiveAllocation], hidden: Totals, byPattern: [Int: Totals]) {
        guard !patterns.isEmpty else { return (allocations, Totals(), [:]) }
        var kept: [LiveAllocation] = []
        var hidden = Totals()
        var byPattern: [Int: Totals] = [:]
        var verdict: [FrameID: Int?] = [:]  // stacks repeat: decide each once
        for allocation in allocations {
            let match: Int?
            if let known = verdict[allocation.frame] {
                match = known
            } else {
                match = self.match(stack: tables.stack(ofFrame: allocation.frame))
                verdict[allocation.frame] = .some(match)
            }
            if let match {
                hidden.add(allocation.size, count: allocation.count)
                byPattern[match, default: Totals()].add(allocation.size, count: allocation.count)
            } else {
                kept.append(allocation)
            }
        }
        return (kept, hidden, byPattern)
    }

    /// The same for per-site figures (`ViewAnalysis.sites` of a leaks view).
    public func filter(sites: [SiteTotals], tables: CaptureTables) -> (kept: [SiteTotals], hidden: Totals) {
        guard !patterns.isEmpty else { return (sites, Totals()) }
        var kept: [SiteTotals] = []
        var hidden = Totals()
        for site in sites {
            if match(stack: tables.stack(ofFrame: site.frame)) != nil {
                hidden = hidden + site.totals
            } else {
                kept.append(site)
            }
        }
        return (kept, hidden)
    }

    /// The same for figures per Python stack (`CaptureAnalysis.viewByStack`).
    public func filter(byStack: StackTotals, tables: CaptureTables) -> (kept: StackTotals, hidden: Totals) {
        guard !patterns.isEmpty else { return (byStack, Totals()) }
        var kept = byStack
        var hidden = Totals()
        for frame in byStack.frames where match(stack: tables.stack(ofFrame: frame)) != nil {
            hidden = hidden + byStack[frame]
            kept.byFrame[Int(frame)] = .zero
        }
        return (kept, hidden)
    }
}

/// `*` matches any run of characters (slashes included), `?` one character;
/// everything else matches itself.
func globMatch(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern.unicodeScalars)
    let t = Array(text.unicodeScalars)
    var pi = 0, ti = 0
    var star = -1, mark = 0
    while ti < t.count {
        if pi < p.count && (p[pi] == "?" || (p[pi] != "*" && p[pi] == t[ti])) {
            pi += 1
            ti += 1
        } else if pi < p.count && p[pi] == "*" {
            star = pi
            mark = ti
            pi += 1
        } else if star >= 0 {
            pi = star + 1
            mark += 1
            ti = mark
        } else {
            return false
        }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        var s = self
        while let first = s.first, first == " " || first == "\t" || first == "\r" { s.removeFirst() }
        while let last = s.last, last == " " || last == "\t" || last == "\r" { s.removeLast() }
        return String(s)
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String { self[...].trimmingSpaces() }
}
