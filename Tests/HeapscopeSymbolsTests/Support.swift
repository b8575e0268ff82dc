import Foundation
import HeapscopeTestSupport

/// `name` from PATH, else the first of `places` that exists.
private func tool(_ name: String, orAnyOf places: [String]) -> String? {
    if (try? run("sh", ["-c", "command -v \(name)"])) != nil { return name }
    return places.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// clang emits no .debug_aranges; the Swift toolchain ships one.
let clang = tool("clang", orAnyOf: ["/opt/swift/usr/bin/clang"])
let rustc = tool("rustc", orAnyOf: [NSHomeDirectory() + "/.cargo/bin/rustc"])
