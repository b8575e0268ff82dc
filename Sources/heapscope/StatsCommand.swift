import ArgumentParser

// Placeholder until the real command lands.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats")
}
