import HeapscopeFormat

/// Totals per stack. A frame id names a whole Python stack (the frames form a
/// trie), so totals per frame id are totals per stack; index 0 holds the
/// allocations made with no Python frame. Flame graphs, tables and diffs build
/// on this.
public struct StackTotals: Equatable, Sendable {
    public internal(set) var byFrame: [Totals]

    public init(frameCount: Int) {
        byFrame = [Totals](repeating: .zero, count: frameCount + 1)
    }

    init(byFrame: [Totals]) { self.byFrame = byFrame }

    public subscript(frame: FrameID) -> Totals { byFrame[Int(frame)] }

    public var total: Totals { byFrame.reduce(.zero, +) }

    /// Frame ids with something in them.
    public var frames: [FrameID] { byFrame.indices.filter { byFrame[$0].count > 0 || byFrame[$0].bytes > 0 }.map { FrameID($0) } }

    mutating func add(frame: FrameID, bytes: UInt64, count: Int = 1) {
        byFrame[Int(frame)].add(bytes, count: count)
    }

    /// Totals merged by innermost location (function, file, line); unsorted.
    public func byLocation(_ tables: CaptureTables) -> [LocationTotals] {
        var indexOf: [Location: Int] = [:]
        var result: [LocationTotals] = []
        for frame in frames {
            let location = tables.location(ofFrame: frame)
            if let index = indexOf[location] {
                result[index].totals = result[index].totals + self[frame]
            } else {
                indexOf[location] = result.count
                result.append(LocationTotals(location: location, totals: self[frame]))
            }
        }
        return result
    }

    /// Totals per function (named by its definition): `own` is what the function
    /// allocated itself, `total` adds its callees. A recursive function counts
    /// each allocation once. Unsorted.
    public func byFunction(_ tables: CaptureTables) -> [FunctionTotals] {
        var result: [FunctionTotals] = []
        var indexOfFunction: [Location: Int] = [:]
        // Code ids map to function rows once: several code objects may share a definition.
        var rowOfCode = [Int?](repeating: nil, count: tables.codes.count)
        func row(ofFrame frame: FrameID) -> Int {
            let code = Int(tables.frame(frame).code)
            if frame != 0, let row = rowOfCode[code] { return row }
            let function = tables.function(ofFrame: frame)
            let row = indexOfFunction[function] ?? {
                result.append(FunctionTotals(function: function, own: .zero, total: .zero))
                indexOfFunction[function] = result.count - 1
                return result.count - 1
            }()
            if frame != 0 { rowOfCode[code] = row }
            return row
        }

        // Functions already credited for the current stack: lastStack[row] == stack number.
        var lastStack: [Int] = []
        for (stackNumber, frame) in frames.enumerated() {
            let totals = self[frame]
            let innermost = row(ofFrame: frame)
            result[innermost].own = result[innermost].own + totals
            var current = frame
            repeat {
                let function = row(ofFrame: current)
                if lastStack.count < result.count { lastStack += [Int](repeating: -1, count: result.count - lastStack.count) }
                if lastStack[function] != stackNumber {
                    lastStack[function] = stackNumber
                    result[function].total = result[function].total + totals
                }
                current = tables.frame(current).parent
            } while current != 0
        }
        return result
    }
}

public struct LocationTotals: Equatable, Sendable {
    public var location: Location
    public var totals: Totals
}

public struct FunctionTotals: Equatable, Sendable {
    /// The function's qualified name, file and first line.
    public var function: Location
    public var own: Totals
    public var total: Totals
}
