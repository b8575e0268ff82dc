import ArgumentParser

// Placeholder until the real command lands.
struct ParseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "parse")
}
