// The terminal under the live view: raw mode, the alternate screen, keys,
// and putting everything back however heapscope ends (a signal included).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum LiveKey: Equatable {
    case character(Character)
    case up, down, left, right, pageUp, pageDown, home, end
    case interrupt   // ^C: raw mode delivers it as a key
}

/// The settings to restore, for the signal handler too.
nonisolated(unsafe) private var savedTerminal = termios()
nonisolated(unsafe) private var terminalIsRaw = false
/// `attach --live`: SIGTERM, SIGHUP and SIGQUIT close the view (attach then
/// detaches) instead of killing heapscope, which would leave the process tracked.
nonisolated(unsafe) private var signalsCloseView = false
nonisolated(unsafe) private var closedBySignal = false
private let leaveScreen = Array("\u{1B}[?25h\u{1B}[?1049l".utf8)

struct LiveTerminal {
    /// The standard input and output must both be a terminal.
    static var isAvailable: Bool { isatty(0) == 1 && isatty(1) == 1 }

    /// `signalsClose`: SIGTERM, SIGHUP and SIGQUIT restore the terminal and
    /// close the view (`closed`); otherwise they restore it and kill heapscope.
    init(signalsClose: Bool = false) {
        signalsCloseView = signalsClose
        holdStderr(true)
        tcgetattr(0, &savedTerminal)
        var raw = savedTerminal
        cfmakeraw(&raw)
        raw.c_oflag |= tcflag_t(OPOST)   // "\n" still ends lines in anything printed by mistake
        tcsetattr(0, TCSAFLUSH, &raw)
        terminalIsRaw = true
        for sig in [SIGTERM, SIGHUP, SIGQUIT] {
            signal(sig) { sig in
                restoreTerminal()
                if signalsCloseView {
                    closedBySignal = true
                    return
                }
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
        write("\u{1B}[?1049h\u{1B}[?25l\u{1B}[2J")
    }

    /// Puts the terminal back and writes the messages held meanwhile.
    func restore() {
        restoreTerminal()
        holdStderr(false)
    }

    /// A signal closed the view (`signalsClose`); the terminal is restored.
    var closed: Bool { closedBySignal }

    /// Columns and lines.
    var size: (width: Int, height: Int) {
        var ws = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0 else { return (80, 24) }
        return (Int(ws.ws_col), Int(ws.ws_row))
    }

    /// Draws `lines` over the whole screen.
    func draw(_ lines: [String]) {
        write("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
    }

    /// The keys typed within `milliseconds` (none when nothing was typed).
    func keys(waiting milliseconds: Int32) -> [LiveKey] {
        var poller = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, milliseconds) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        guard n > 0 else { return [] }
        return Self.parse(Array(buffer.prefix(n)))
    }

    static func parse(_ bytes: [UInt8]) -> [LiveKey] {
        var keys: [LiveKey] = []
        var i = 0
        let sequences: [([UInt8], LiveKey)] = [
            (Array("\u{1B}[A".utf8), .up), (Array("\u{1B}[B".utf8), .down), (Array("\u{1B}[C".utf8), .right),
            (Array("\u{1B}[D".utf8), .left), (Array("\u{1B}[5~".utf8), .pageUp), (Array("\u{1B}[6~".utf8), .pageDown),
            (Array("\u{1B}[H".utf8), .home), (Array("\u{1B}[F".utf8), .end), (Array("\u{1B}OA".utf8), .up),
            (Array("\u{1B}OB".utf8), .down), (Array("\u{1B}OC".utf8), .right), (Array("\u{1B}OD".utf8), .left),
        ]
        outer: while i < bytes.count {
            for (sequence, key) in sequences where bytes[i...].starts(with: sequence) {
                keys.append(key)
                i += sequence.count
                continue outer
            }
            let byte = bytes[i]
            i += 1
            if byte == 3 { keys.append(.interrupt) } else if byte >= 0x20 && byte < 0x7F { keys.append(.character(Character(UnicodeScalar(byte)))) }
        }
        return keys
    }
}

private func write(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(1, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}

/// Async-signal-safe: write and tcsetattr only.
private func restoreTerminal() {
    guard terminalIsRaw else { return }
    terminalIsRaw = false
    leaveScreen.withUnsafeBytes { _ = Glibc.write(1, $0.baseAddress, $0.count) }
    tcsetattr(0, TCSAFLUSH, &savedTerminal)
}
