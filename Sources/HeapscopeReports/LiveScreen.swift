import HeapscopeAnalysis
import HeapscopeFormat

/// The table's sort column in the live view.
public enum LiveSort: Sendable, CaseIterable {
    case own, total, count
}

/// One allocation site of the current heap: live bytes allocated there (own),
/// live bytes of every stack it is on (total, once per stack), live blocks it
/// allocated.
public struct LiveSiteRow: Equatable, Sendable {
    public var location: Location
    public var ownBytes: UInt64
    public var totalBytes: UInt64
    public var count: Int
}

/// What the keys changed, and what the view says around the figures.
public struct LiveScreenState: Sendable {
    public var sort: LiveSort = .own
    /// First table row shown.
    public var scroll = 0
    /// nil: all threads.
    public var thread: ThreadNumber?
    public var hideInternal = false
    /// "running", "exited with status 0", ...
    public var status = "waiting for the program"
    /// Where the program's output goes, e.g. "program output: run.out".
    public var note = ""
    /// A question the view asks (q: stop the program?); replaces the note.
    public var prompt: String?
    /// Bytes allocated per second since the previous refresh.
    public var allocationRate: Double?
    /// The last line: the keys (`attach --live` says q detaches).
    public var help = LiveScreen.helpLine(quit: "quit")

    public init() {}
}

/// The live view as lines of text for a terminal of a given size: pure, so it
/// is the same on every terminal and testable without one.
public enum LiveScreen {
    /// The keys, with what q does.
    public static func helpLine(quit: String) -> String {
        "o/t/n sort  \u{2191}\u{2193} PgUp/PgDn scroll  \u{2190}\u{2192} thread  i hide import/interpreter  q \(quit)"
    }
    /// The allocation whose every frame is hidden by `i`.
    static let hiddenSite = Location(function: "<import system and interpreter>", file: "", line: 0)
    /// Width of one history column of the chart.
    static let chartColumnMicros: UInt64 = 100_000

    /// The threads the selector cycles through: nil (all), then each thread seen.
    public static func threadChoices(_ view: LiveView?) -> [ThreadNumber?] {
        guard let view else { return [nil] }
        return [nil] + view.tables.threads.map(\.number).filter { $0 != 0 }.map { Optional($0) }
    }

    public static func threadName(_ number: ThreadNumber, _ tables: CaptureTables) -> String {
        let info = Int(number) < tables.threads.count ? tables.thread(number) : ThreadInfo(number: number, osThreadID: 0)
        return "\(number) \(info.name ?? (number == 1 ? "main" : "thread"))"
    }

    /// The sites of what is live now on `thread` (nil: all), sorted.
    public static func sites(_ view: LiveView, thread: ThreadNumber?, hideInternal: Bool, sort: LiveSort) -> [LiveSiteRow] {
        var rows: [Location: LiveSiteRow] = [:]
        var stacks: [FrameID: [Location]] = [:]
        for (key, totals) in view.live where thread == nil || key.thread == thread {
            let stack = stacks[key.frame] ?? {
                var locations = key.frame == 0 ? [Location.unknown] : view.tables.stack(ofFrame: key.frame)
                if hideInternal {
                    locations.removeAll(where: isInterpreterInternal)
                    if locations.isEmpty { locations = [hiddenSite] }
                }
                stacks[key.frame] = locations
                return locations
            }()
            var seen = Set<Location>()
            for (depth, location) in stack.enumerated() where seen.insert(location).inserted {
                var row = rows[location] ?? LiveSiteRow(location: location, ownBytes: 0, totalBytes: 0, count: 0)
                row.totalBytes &+= totals.bytes
                if depth == 0 {
                    row.ownBytes &+= totals.bytes
                    row.count += totals.count
                }
                rows[location] = row
            }
        }
        return rows.values.sorted { a, b in
            let keyA: (UInt64, UInt64), keyB: (UInt64, UInt64)
            switch sort {
            case .own: (keyA, keyB) = ((a.ownBytes, a.totalBytes), (b.ownBytes, b.totalBytes))
            case .total: (keyA, keyB) = ((a.totalBytes, a.ownBytes), (b.totalBytes, b.ownBytes))
            case .count: (keyA, keyB) = ((UInt64(a.count), a.ownBytes), (UInt64(b.count), b.ownBytes))
            }
            return keyA != keyB ? keyA > keyB : a.location < b.location
        }
    }

    /// Rows of the table that fit on a screen of `height` lines.
    public static func tableHeight(height: Int) -> Int { max(1, height - fixedLines(height: height)) }

    /// The screen: `height` lines, none wider than `width`.
    public static func render(_ view: LiveView?, _ state: LiveScreenState, width: Int, height: Int) -> [String] {
        let width = max(width, 40)
        var lines: [String] = []
        let command = view?.header.metadata.commandLine.joined(separator: " ") ?? ""
        let pid = view.map { "pid \($0.header.pid)" } ?? ""
        // The status first: a long command line is what gets cut.
        lines.append(fit("heapscope live  \(state.status)  \(pid)  \(command)", width))
        if let view {
            let rate = state.allocationRate.map { Formatting.bytes(UInt64(max(0, $0))) + "/s" } ?? "-"
            lines.append(fit("heap \(Formatting.bytes(view.heapBytes))  peak \(Formatting.bytes(view.peakBytes))  "
                             + "RSS \(Formatting.bytes(view.rssBytes))  rate \(rate)  time \(Formatting.fixed(Double(view.timeMicros) / 1e6, decimals: 1)) s",
                             width))
        } else {
            lines.append("")
        }
        lines += chart(view?.samples ?? [], width: width, height: chartHeight(height: height))
        let choices = threadChoices(view)
        let threads = choices.map { choice -> String in
            let name = choice.map { threadName($0, view!.tables) } ?? "all"
            return choice == state.thread ? "[\(name)]" : name
        }
        lines.append(fit("threads: " + threads.joined(separator: "  ") + (state.hideInternal ? "   (import system and interpreter hidden)" : ""), width))

        let functionWidth = (width - 34) / 2
        func mark(_ title: String, _ column: LiveSort) -> String { state.sort == column ? title + "*" : title }
        lines.append(fit(pad(mark("own", .own), 10) + " " + pad(mark("total", .total), 10) + " " + pad(mark("count", .count), 9)
                         + "  " + padRight("function", functionWidth) + "  file:line", width))
        let rows = view.map { sites($0, thread: state.thread, hideInternal: state.hideInternal, sort: state.sort) } ?? []
        let visible = tableHeight(height: height)
        let first = min(max(0, state.scroll), max(0, rows.count - visible))
        for row in rows.dropFirst(first).prefix(visible) {
            let place = row.location.file.isEmpty ? "" : "\(shortFile(row.location.file)):\(row.location.line)"
            lines.append(fit(pad(Formatting.bytes(row.ownBytes), 10) + " " + pad(Formatting.bytes(row.totalBytes), 10) + " "
                             + pad(Formatting.count(row.count), 9) + "  "
                             + padRight(Formatting.truncated(row.location.function, to: functionWidth), functionWidth) + "  "
                             + Formatting.truncated(place, to: max(8, width - 36 - functionWidth)), width))
        }
        while lines.count < height - 2 { lines.append("") }
        let more = rows.count > visible ? "  rows \(first + 1)-\(min(rows.count, first + visible)) of \(rows.count)" : ""
        lines.append(fit(state.prompt ?? (state.note + more), width))
        lines.append(fit(state.help, width))
        return Array(lines.prefix(height))
    }

    /// Title, figures, chart, threads, table header, note and help.
    static func fixedLines(height: Int) -> Int { 6 + chartHeight(height: height) }

    /// 5 lines on a 24-line terminal, up to 12 on a tall one.
    static func chartHeight(height: Int) -> Int { min(12, max(2, 5 + (height - 24) / 3)) }

    /// The heap over time, one column per 100 ms of stream time (the newest
    /// on the right), its scale on the left.
    static func chart(_ samples: [MemorySample], width: Int, height: Int) -> [String] {
        let labelWidth = 11
        let columns = width - labelWidth
        var values = [UInt64](repeating: 0, count: columns)
        if let last = samples.last {
            let lastColumn = last.timeMicros / chartColumnMicros
            let firstColumn = lastColumn >= UInt64(columns - 1) ? lastColumn - UInt64(columns - 1) : 0
            var filled = [Bool](repeating: false, count: columns)
            for sample in samples.reversed() {
                let column = sample.timeMicros / chartColumnMicros
                if column < firstColumn { break }
                let index = Int(column - firstColumn)
                values[index] = max(values[index], sample.heapBytes)
                filled[index] = true
            }
            // A column without a snapshot keeps the heap of the one before it.
            for index in 1..<columns where !filled[index] && UInt64(index) <= lastColumn - firstColumn {
                values[index] = values[index - 1]
            }
        }
        let top = max(values.max() ?? 0, 1)
        let blocks: [Character] = [" ", "\u{2581}", "\u{2582}", "\u{2583}", "\u{2584}", "\u{2585}", "\u{2586}", "\u{2587}", "\u{2588}"]
        return (0..<height).map { row in
            let label = row == 0 ? Formatting.bytes(top) : row == height - 1 ? "0" : ""
            let floor = UInt64(height - 1 - row) * 8
            let cells = values.map { value -> Character in
                let eighths = value * UInt64(height) * 8 / top
                return blocks[Int(min(8, eighths > floor ? eighths - floor : 0))]
            }
            return pad(label, labelWidth - 1) + "|" + String(cells)
        }
    }

    /// A path's last two components: `pkg/module.py`.
    static func shortFile(_ file: String) -> String {
        let parts = file.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count <= 2 ? file : parts.suffix(2).joined(separator: "/")
    }

    static func fit(_ text: String, _ width: Int) -> String { text.count > width ? String(text.prefix(width)) : text }
    static func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
    static func padRight(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
}
