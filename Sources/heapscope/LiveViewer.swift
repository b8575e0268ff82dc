// The live view's loop, the same for `run --live` and `heapscope live`: what
// the store gained is replayed (`LiveFeed`, a megabyte at a time between
// looks at the keys) and, about ten times a second, drawn; keys change the
// state. A viewer behind the stream shows older figures until it catches up:
// the store keeps every event.

import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What q does in a view that can end the recording (q asks first).
struct LiveStop {
    /// The question q asks.
    var prompt: String
    /// The note shown once the user said yes.
    var note: String
    /// What the help line says q does.
    var quit = "quit"
    /// SIGTERM, SIGHUP and SIGQUIT close the view and end the recording
    /// (attach: the process must not stay tracked), rather than kill heapscope (run).
    var onSignals = false
    /// Ends the recording: `run` stops the program, `attach` detaches.
    var action: () -> Void
}

struct LiveViewer {
    let store: LiveStore
    /// `run --live` and `attach --live`; nil for a remote viewer, whose q only closes the view.
    var stop: LiveStop?
    /// What the view says about the program's output.
    var note: String
    /// Said when the stream ends without saying how the program ended.
    var lostText: String

    private static let refreshSeconds = 0.1
    /// Stream bytes replayed between looks at the keyboard, when behind.
    private static let bytesPerStep = 1 << 20

    /// Runs until the user quits (or, after q stopped it, until the stream ended).
    func run() {
        let terminal = LiveTerminal(signalsClose: stop?.onSignals ?? false)
        defer { terminal.restore() }
        var state = LiveScreenState()
        state.note = note
        if let stop { state.help = LiveScreen.helpLine(quit: stop.quit) }
        var feed = LiveFeed()
        var fed = 0
        var failure: String?
        var view: LiveView?
        var lastDraw = 0.0
        var previous: (bytes: UInt64, micros: UInt64)?
        var stopping = false
        var lastSize = (width: 0, height: 0)
        var dirty = true
        while !terminal.closed {
            let stored = store.snapshot()
            if stored.length > fed && failure == nil {
                let count = min(stored.length - fed, Self.bytesPerStep)
                do throws(CaptureError) {
                    try feed.append(store.read(at: fed, count: count))
                } catch {
                    failure = "the stream cannot be read: \(error)"
                }
                fed += count
            }
            let behind = stored.length > fed && failure == nil
            let now = monotonicSeconds()
            let status = failure ?? (stored.ended && !behind ? (stored.exit?.description ?? stored.reason ?? lostText)
                                                            : (view == nil ? "starting" : "running"))
            if status != state.status {
                state.status = status
                dirty = true
            }
            if stopping && stored.ended { return }
            let size = terminal.size
            if terminal.closed { break }
            if dirty || size != lastSize || now - lastDraw >= Self.refreshSeconds {
                if let fresh = feed.view {
                    if let previous, fresh.timeMicros > previous.micros {
                        state.allocationRate = Double(fresh.allocated.bytes &- previous.bytes) * 1e6 / Double(fresh.timeMicros - previous.micros)
                    }
                    if previous == nil || fresh.timeMicros > previous!.micros { previous = (fresh.allocated.bytes, fresh.timeMicros) }
                    view = fresh
                }
                let visible = LiveScreen.tableHeight(height: size.height)
                let rowCount = view.map { LiveScreen.sites($0, thread: state.thread, hideInternal: state.hideInternal, sort: state.sort).count } ?? 0
                state.scroll = min(state.scroll, max(0, rowCount - visible))
                terminal.draw(LiveScreen.render(view, state, width: size.width, height: size.height))
                lastSize = size
                lastDraw = now
                dirty = false
            }
            for key in terminal.keys(waiting: behind ? 0 : 100) {
                dirty = true
                if state.prompt != nil {
                    state.prompt = nil
                    if let stop, key == .character("y") || key == .character("Y") {
                        stopping = true
                        state.note = stop.note
                        stop.action()
                    }
                    continue
                }
                let page = max(1, LiveScreen.tableHeight(height: size.height) - 1)
                switch key {
                case .character("q"), .character("Q"), .interrupt:
                    guard let stop, !stored.ended else { return }
                    if !stopping { state.prompt = stop.prompt }
                case .character("o"): state.sort = .own
                case .character("t"): state.sort = .total
                case .character("n"): state.sort = .count
                case .character("i"): state.hideInternal.toggle()
                case .down, .character("j"): state.scroll += 1
                case .up, .character("k"): state.scroll = max(0, state.scroll - 1)
                case .pageDown, .character(" "): state.scroll += page
                case .pageUp: state.scroll = max(0, state.scroll - page)
                case .home: state.scroll = 0
                case .end: state.scroll = Int.max / 2
                case .left, .right:
                    let choices = LiveScreen.threadChoices(view)
                    let index = choices.firstIndex(of: state.thread) ?? 0
                    let step = key == .right ? 1 : choices.count - 1
                    state.thread = choices[(index + step) % choices.count]
                    state.scroll = 0
                default: dirty = false
                }
            }
        }
    }
}
