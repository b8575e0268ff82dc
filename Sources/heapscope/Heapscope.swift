import ArgumentParser

@main
struct Heapscope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heapscope",
        abstract: "A memory profiler for Python programs and their native extensions.",
        discussion: """
            Record a capture with `heapscope run` (or `heapscope attach` to a running
            process; `run --live` or `live` to watch it), then turn it into reports with `stats`, `summary`, `flamegraph`,
            `table`, `tree`, `transform` or `pymalloc`; compare two with `diff`.
            """,
        version: heapscopeVersion(),
        subcommands: [RunCommand.self, AttachCommand.self, DetachCommand.self, StatsCommand.self, SummaryCommand.self, ParseCommand.self,
                      FlamegraphCommand.self, TableCommand.self, TreeCommand.self, TransformCommand.self,
                      PymallocCommand.self, DiffCommand.self, LiveCommand.self, AggregateCommand.self]
    )
}
