import ArgumentParser

// Placeholder until the real command lands.
struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "summary")
}
