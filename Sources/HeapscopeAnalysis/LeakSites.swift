import HeapscopeFormat

/// The leak summary of `heapscope run --leaks` (and of any capture): what was
/// still allocated when tracking stopped, by site, with the floor set apart.
///
/// Even a program that frees everything it allocates ends with some memory
/// still allocated: the interpreter's own caches, strings it interned, code
/// objects and module dicts made by imports, the caches of the standard
/// library. That is the *floor*. It is set apart in three parts:
/// - allocations with no Python frame (the interpreter's own, e.g. at start-up
///   of a thread or at exit);
/// - allocations whose innermost frame is the import system (the code objects
///   and module namespaces of modules imported while tracking);
/// - sites that leaked less than `siteFloor` bytes in all (interned strings,
///   small caches, a function's default arguments...).
/// What remains are the leaks reported, largest first.
public struct LeakSummary: Sendable {
    public struct Site: Sendable, Equatable {
        /// The innermost frame's location (function, file, line).
        public var location: Location
        /// The stack that leaked the most bytes at this location.
        public var frame: FrameID
        public var totals: Totals
    }

    /// Every allocation live at the end (arenas excluded when blocks are traced).
    public var total: Totals
    /// Hidden by suppressions, in total and per pattern.
    public var suppressed: Totals
    public var suppressedByPattern: [(pattern: String, totals: Totals)]
    public var interpreter: Totals
    public var imports: Totals
    /// Sites below `siteFloor`, and how many.
    public var belowFloor: Totals
    public var belowFloorSites: Int
    public var siteFloor: UInt64
    /// Sites at or above the floor, most bytes first.
    public var sites: [Site]

    /// Bytes in the floor (interpreter + imports + small sites).
    public var floor: Totals { interpreter + imports + belowFloor }
    /// Bytes reported as leaks.
    public var leaked: Totals { sites.reduce(Totals()) { $0 + $1.totals } }

    /// Default per-site floor: 64 KiB.
    public static let defaultSiteFloor: UInt64 = 64 << 10

    public init(analysis: CaptureAnalysis, suppressions: Suppressions = Suppressions(patterns: []),
                siteFloor: UInt64 = LeakSummary.defaultSiteFloor) {
        self.init(liveAtEnd: analysis.liveAtEnd.filter { $0.kind != .pymallocArena || analysis.countsArenas },
                  tables: analysis.tables, suppressions: suppressions, siteFloor: siteFloor)
    }

    public init(liveAtEnd: [LiveAllocation], tables: CaptureTables, suppressions: Suppressions = Suppressions(patterns: []),
                siteFloor: UInt64 = LeakSummary.defaultSiteFloor) {
        total = liveAtEnd.reduce(into: Totals()) { $0.add($1.size, count: $1.count) }
        let filtered = suppressions.filter(liveAtEnd, tables: tables)
        suppressed = filtered.hidden
        suppressedByPattern = filtered.byPattern.sorted { $0.key < $1.key }
            .map { (suppressions.patterns[$0.key].description, $0.value) }
        self.siteFloor = siteFloor

        var interpreter = Totals()
        var imports = Totals()
        var byLocation: [Location: (totals: Totals, frames: [FrameID: UInt64])] = [:]
        for allocation in filtered.kept {
            if allocation.frame == 0 {
                interpreter.add(allocation.size, count: allocation.count)
                continue
            }
            let location = tables.location(ofFrame: allocation.frame)
            if Self.isImportMachinery(location.file) {
                imports.add(allocation.size, count: allocation.count)
                continue
            }
            byLocation[location, default: (Totals(), [:])].totals.add(allocation.size, count: allocation.count)
            byLocation[location]!.frames[allocation.frame, default: 0] &+= allocation.size
        }
        self.interpreter = interpreter
        self.imports = imports
        var below = Totals()
        var belowSites = 0
        var sites: [Site] = []
        for (location, entry) in byLocation {
            if entry.totals.bytes < siteFloor {
                below = below + entry.totals
                belowSites += 1
            } else {
                let frame = entry.frames.max { ($0.value, $1.key) < ($1.value, $0.key) }!.key
                sites.append(Site(location: location, frame: frame, totals: entry.totals))
            }
        }
        belowFloor = below
        belowFloorSites = belowSites
        self.sites = sites.sorted {
            $0.totals.bytes != $1.totals.bytes ? $0.totals.bytes > $1.totals.bytes : $0.location < $1.location
        }
    }

    /// The import system's own files (frozen importlib, zipimport).
    static func isImportMachinery(_ file: String) -> Bool {
        file.hasPrefix("<frozen importlib") || file == "<frozen zipimport>" || file.hasSuffix("/importlib/_bootstrap.py")
            || file.hasSuffix("/importlib/_bootstrap_external.py")
    }

    /// One paragraph explaining the floor, for reports.
    public static func floorExplanation(siteFloor: UInt64) -> String {
        "The floor is memory any Python program still holds when tracking stops, leak or not: "
            + "allocations with no Python frame (the interpreter's own), the code objects and module "
            + "namespaces of modules imported while tracking, and sites holding less than "
            + "\(siteFloor / 1024) KiB in all (interned strings, small caches, default arguments). "
            + "heapscope runs a full garbage collection before tracking stops in --leaks mode, which "
            + "frees unreachable cycles and empties the interpreter's free lists (tuples, floats, "
            + "lists, dicts), so they do not count."
    }
}
