import HeapscopeFormat

// `heapscope diff`: two captures compared site by site. Sites are matched by
// what they name (function, file, line of the innermost frame; native frames
// by symbol and source line), never by address or id, so captures of two runs,
// two builds or two machines compare.

extension ViewAnalysis {
    /// A site's stack as locations, outermost first (empty: no frame at all):
    /// display frames through `resolver` (hybrid or native), else Python frames.
    public func locations(_ key: StackKey, resolver: StackResolver?) -> [Location] {
        guard let resolver else { return tables.stack(ofFrame: key.frame).reversed() }
        return resolver.stackIndices(key).map { resolver.frame($0).location }
    }

    /// Where a site allocated: its innermost frame, as the table report names sites.
    public func innermost(_ key: StackKey, resolver: StackResolver?) -> Location {
        guard let resolver else { return tables.location(ofFrame: key.frame) }
        return resolver.innermost(key)?.location ?? .unknown
    }

    /// The view's figures by innermost location, threads and allocators merged; unsorted.
    public func byLocation(resolver: StackResolver?) -> [LocationTotals] {
        guard resolver != nil else { return byStack.byLocation(tables) }
        var index: [Location: Int] = [:]
        var result: [LocationTotals] = []
        for site in sites {
            let location = innermost(site.stack, resolver: resolver)
            if let known = index[location] {
                result[known].totals = result[known].totals + site.totals
            } else {
                index[location] = result.count
                result.append(LocationTotals(location: location, totals: site.totals))
            }
        }
        return result
    }
}

/// One site in both captures.
public struct SiteDiff: Equatable, Sendable {
    public var location: Location
    public var base: Totals
    public var new: Totals

    public init(location: Location, base: Totals, new: Totals) {
        self.location = location
        self.base = base
        self.new = new
    }

    public var deltaBytes: Int64 { Int64(truncatingIfNeeded: new.bytes) &- Int64(truncatingIfNeeded: base.bytes) }
    public var deltaCount: Int { new.count &- base.count }
    public var changed: Bool { deltaBytes != 0 || deltaCount != 0 }
}

/// The per-site difference of two captures in one view.
public struct CaptureDiff: Equatable, Sendable {
    /// Sites that changed, biggest change in bytes (either way) first.
    public private(set) var sites: [SiteDiff]
    /// Sites present in either capture with the same figures in both.
    public private(set) var unchangedCount: Int
    public var baseTotal: Totals
    public var newTotal: Totals

    /// Matches `base` and `new` (each capture's figures by location) site by site.
    public init(base: [LocationTotals], new: [LocationTotals]) {
        var index: [Location: Int] = [:]
        var all: [SiteDiff] = []
        func add(_ entries: [LocationTotals], to side: WritableKeyPath<SiteDiff, Totals>) {
            for entry in entries {
                let position = index[entry.location] ?? {
                    all.append(SiteDiff(location: entry.location, base: .zero, new: .zero))
                    index[entry.location] = all.count - 1
                    return all.count - 1
                }()
                all[position][keyPath: side] = all[position][keyPath: side] + entry.totals
            }
        }
        add(base, to: \.base)
        add(new, to: \.new)
        baseTotal = base.reduce(.zero) { $0 + $1.totals }
        newTotal = new.reduce(.zero) { $0 + $1.totals }
        sites = all.filter(\.changed).sorted(by: CaptureDiff.biggerChange)
        unchangedCount = all.count - sites.count
    }

    /// Both captures' figures for one view, sites named through each capture's
    /// resolver (nil: Python stacks).
    public init(base: ViewAnalysis, baseResolver: StackResolver? = nil, new: ViewAnalysis, newResolver: StackResolver? = nil) {
        self.init(base: base.byLocation(resolver: baseResolver), new: new.byLocation(resolver: newResolver))
    }

    public var deltaBytes: Int64 { Int64(truncatingIfNeeded: newTotal.bytes) &- Int64(truncatingIfNeeded: baseTotal.bytes) }
    public var deltaCount: Int { newTotal.count &- baseTotal.count }

    /// Bigger |delta bytes| first, then bigger |delta count|, then by location.
    public static func biggerChange(_ a: SiteDiff, _ b: SiteDiff) -> Bool {
        let x = a.deltaBytes.magnitude, y = b.deltaBytes.magnitude
        if x != y { return x > y }
        let cx = a.deltaCount.magnitude, cy = b.deltaCount.magnitude
        if cx != cy { return cx > cy }
        return a.location < b.location
    }

    /// What grew by more than `limit` bytes: the total, and each such site
    /// (biggest growth first). Empty sites and false total: within the limit.
    public func growth(over limit: UInt64) -> (total: Bool, sites: [SiteDiff]) {
        let grown = sites.filter { $0.deltaBytes > 0 && UInt64($0.deltaBytes) > limit }
        return (deltaBytes > 0 && UInt64(deltaBytes) > limit, grown.sorted { $0.deltaBytes > $1.deltaBytes })
    }
}
