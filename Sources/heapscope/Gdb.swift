// gdb, which attach and detach drive in batch mode to call the entry points
// of Sources/HeapscopeHooks/attach.c in the target.

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct Gdb {
    var path: String

    /// HEAPSCOPE_GDB, else gdb on PATH.
    static func locate() throws -> Gdb {
        if let configured = getenvString("HEAPSCOPE_GDB"), !configured.isEmpty {
            if access(configured, X_OK) == 0 { return Gdb(path: configured) }
            throw commandFail("HEAPSCOPE_GDB is not an executable: \(configured)")
        }
        if let found = searchPath("gdb") { return Gdb(path: found) }
        throw commandFail("gdb is not installed: heapscope attach and detach need it (Debian package gdb: apt-get install gdb)")
    }

    /// Attaches to `target` in batch mode, runs `commands` and detaches (the
    /// target then runs on). Each command prints `<marker> <value>` lines;
    /// returns the values by marker.
    func run(_ target: AttachTarget, _ commands: [String]) throws -> [String: String] {
        var argv = [path, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set auto-load off",
                    "-p", String(target.pid)]
        for command in commands { argv += ["-ex", command] }
        let (status, output) = try runCapturingOutput(argv)
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("hs-") {
            let marker = line.prefix(while: { $0 != " " })
            values[String(marker)] = String(line.dropFirst(marker.count + 1))
        }
        if values.isEmpty {
            if output.contains("ptrace: Operation not permitted") {
                var detail = ""
                if let scope = ptraceScope() { detail = " (kernel.yama.ptrace_scope is \(scope))" }
                throw commandFail(
                    "ptrace is not permitted on process \(target.pid)\(detail): run heapscope as the process's user "
                        + "with kernel.yama.ptrace_scope 0, or as root / with CAP_SYS_PTRACE "
                        + "(in a container: the SYS_PTRACE capability)")
            }
            if output.contains("No such process") || !target.isRunning {
                throw commandFail("no such process: \(target.pid) (it exited)")
            }
            let last = output.split(separator: "\n").last(where: { !$0.hasPrefix("warning") }) ?? "exit status \(status)"
            throw commandFail("gdb could not attach to process \(target.pid): \(last)")
        }
        return values
    }
}

/// A C string literal as gdb's expression parser reads it.
func gdbString(_ text: String) -> String {
    var out = "\""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            out += "\\" + String(UnicodeScalar(byte))
        case 0x20..<0x7f:
            out.append(Character(UnicodeScalar(byte)))
        default:
            let octal = String(byte, radix: 8)
            out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
        }
    }
    return out + "\""
}

/// Runs a program with stdin from /dev/null and stdout and stderr into one
/// pipe; returns its exit status and output.
private func runCapturingOutput(_ argv: [String]) throws -> (Int32, String) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw commandFail("cannot create a pipe: \(String(cString: strerror(errno)))") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    posix_spawn_file_actions_addclose(&actions, fds[1])
    // A group of its own: Ctrl-C on the terminal must not interrupt gdb in
    // the middle of a call it is making in the target (attach handles Ctrl-C).
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    posix_spawnattr_setpgroup(&attr, 0)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
    var pid: pid_t = 0
    let rc = withCStrings(argv) { cArgv in posix_spawn(&pid, cArgv[0]!, &actions, &attr, cArgv, environ) }
    close(fds[1])
    if rc != 0 {
        close(fds[0])
        throw commandFail("cannot run \(argv[0]): \(String(cString: strerror(rc)))")
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        output += buffer[0..<n]
    }
    close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return ((status >> 8) & 0xff, String(decoding: output, as: UTF8.self))
}
