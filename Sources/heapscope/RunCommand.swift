import ArgumentParser

// Placeholder until the real command lands.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run")
}
