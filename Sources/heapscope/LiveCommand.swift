import ArgumentParser

struct LiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Watch the heap of a program under `heapscope run --live-remote` or `heapscope attach --live-remote`.",
        discussion: """
            Connects to 127.0.0.1:PORT and shows the live view (docs/CLI.md, "Live mode") \
            until q. The program is not affected by the viewer: it runs on when the view \
            closes, and another viewer can connect at any time; several can watch at once.
            """
    )

    @Argument(help: ArgumentHelp("The port `heapscope run --live-remote` (or attach) printed (it listens on 127.0.0.1 only).", valueName: "port"))
    var port: Int

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("the port must be between 1 and 65535, not \(port)") }
    }

    func run() throws {
        guard LiveTerminal.isAvailable else {
            throw commandFail("heapscope live needs a terminal: its standard input and output are not one")
        }
        let socket = try connectToLive(port: port)
        let store = try LiveStore()
        startThread {
            let exit = store.receive(from: socket)
            store.end(exit: exit)
        }
        LiveViewer(store: store, stop: nil, note: "watching 127.0.0.1:\(port); the program runs on when this view closes",
                   lostText: "the stream ended without an exit status (attach detached, or heapscope ended)").run()
    }
}
