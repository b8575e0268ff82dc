// `heapscope aggregate` (hidden): the out-of-process half of the Python API's
// `Tracker(path, aggregate=True)`. The Tracker starts it with one end of a
// socket pair; the tracker streams its records down the other (its live fd),
// and this process writes the aggregated capture (AggregateWriter) until the
// stream ends, when the Tracker stops or the program dies.

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct AggregateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregate",
        abstract: "Write the aggregated capture of a tracker's stream (used by heapscope.Tracker(aggregate=True)).",
        shouldDisplay: false)

    @Option(help: ArgumentHelp("The inherited socket the tracker streams to.", valueName: "fd"))
    var fd: Int32

    @Argument(help: ArgumentHelp("The aggregated capture to write.", valueName: "capture"))
    var output: String

    mutating func run() throws {
        guard fcntl(fd, F_GETFD) >= 0 else { throw commandFail("--fd \(fd) is not an open descriptor") }
        // The program may end (or be killed) before its Tracker stops: this
        // process outlives it, and a terminal's ^C is the program's to handle.
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let store = try LiveStore()
        let socket = fd
        startThread {
            _ = store.receive(from: socket)
            close(socket)
            store.end(exit: nil)
        }
        guard AggregateWriter.follow(store, to: output) else { throw ExitCode(1) }
    }
}
