import Glibc

/// A progress bar on standard error while a capture is read:
///
///     Reading run.hsc  [##########----------]  48%  212.4 MB/s  1.2 s left
///
/// Silent when standard error is not a terminal, and for reads that finish
/// within half a second (nothing is drawn before then).
public final class ProgressBar {
    private let label: String
    private let enabled: Bool
    private var start: Double = 0
    private var lastDraw: Double = 0
    private var drawn = false
    /// Seconds before the bar first shows (HEAPSCOPE_PROGRESS_DELAY overrides, for tests).
    private let delay: Double

    public init(label: String, enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.enabled = enabled
        start = Self.now()
        delay = getenv("HEAPSCOPE_PROGRESS_DELAY").flatMap { Double(String(cString: $0)) } ?? 0.5
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Called by the reader with (bytes done, bytes in all).
    public func update(done: Int, total: Int) {
        guard enabled else { return }
        let now = Self.now()
        let elapsed = now - start
        if elapsed < delay || now - lastDraw < 0.1 { return }
        if done >= total && !drawn { return }
        lastDraw = now
        drawn = true
        writeToStderr("\r" + Self.line(label: label, done: done, total: total, elapsed: elapsed, width: terminalWidth()))
    }

    /// Clears the bar, if one was drawn.
    public func finish() {
        guard enabled && drawn else { return }
        writeToStderr("\r" + String(repeating: " ", count: max(10, terminalWidth() - 1)) + "\r")
        drawn = false
    }

    /// One line of the bar, at most `width` columns.
    public static func line(label: String, done: Int, total: Int, elapsed: Double, width: Int) -> String {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let left = rate > 0 ? Double(total - done) / rate : 0
        let tail = "  \(Formatting.fixed(fraction * 100, decimals: 0))%  \(Formatting.fixed(rate / 1e6, decimals: 1)) MB/s  "
            + "\(Formatting.fixed(left, decimals: 1)) s left"
        let name = Formatting.truncated(label, to: 30)
        let barWidth = max(10, min(40, width - name.count - tail.count - 5))
        let filled = Int(fraction * Double(barWidth))
        return "\(name)  [" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "]" + tail
    }

    private func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }

    private func writeToStderr(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if written <= 0 { return }
            offset += written
        }
    }
}
