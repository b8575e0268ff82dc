// The process attach and detach act on, as /proc shows it: its command line,
// owner, CPython version, the trackers mapped in, and whether ptrace is permitted.

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HeapscopeSystem

struct AttachTarget {
    var pid: Int32
    var commandLine: [String]
    var uid: UInt32
    var gid: UInt32
    /// Every file mapped into the process.
    var mappedFiles: Set<String>
    /// The process tracing it (a debugger), if any.
    var tracerPid: Int32?

    /// Reads /proc/<pid>: refuses a missing or finished process.
    static func inspect(_ argument: String) throws -> AttachTarget {
        guard let pid = Int32(argument), pid > 0 else {
            throw commandFail("not a process id: \(argument)")
        }
        guard isRunning(pid) else { throw commandFail("no such process: \(pid)") }
        let raw = readWholeFile("/proc/\(pid)/cmdline") ?? []
        let commandLine = raw.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
            String(decoding: $0, as: UTF8.self)
        }
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        var tracer: Int32?
        for line in textLines("/proc/\(pid)/status") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            // "Uid:	real	effective	saved	fs": the effective one decides ptrace.
            if fields.count > 2, fields[0] == "Uid:" { uid = UInt32(fields[2]) ?? 0 }
            if fields.count > 2, fields[0] == "Gid:" { gid = UInt32(fields[2]) ?? 0 }
            if fields.count > 1, fields[0] == "TracerPid:", let pid = Int32(fields[1]), pid != 0 { tracer = pid }
        }
        let mapped = Set(processMaps(String(pid)).map(\.path).filter { $0.hasPrefix("/") })
        return AttachTarget(pid: pid, commandLine: commandLine, uid: uid, gid: gid, mappedFiles: mapped, tracerPid: tracer)
    }

    /// Alive and not a zombie (a finished child its parent has not waited for yet).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let state = state(pid) else { return false }
        return state != "Z" && state != "X"
    }

    /// The state letter of /proc/<pid>/stat: R, S, D, T (stopped), t (traced), Z...
    static func state(_ pid: Int32) -> Character? {
        guard let stat = readWholeFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")),
              close + 2 < stat.count
        else { return nil }
        return Character(UnicodeScalar(stat[close + 2]))
    }

    var isRunning: Bool { AttachTarget.isRunning(pid) }

    var executable: String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/\(pid)/exe", &buf, 4096)
        return n > 0 ? cStringBuffer(buf) : (commandLine.first ?? "?")
    }

    /// "3.11" from libpython3.11.so mapped in, or from an executable named python3.11
    /// (a CPython linked statically); nil if it is not CPython.
    var pythonVersion: String? {
        func version(after prefix: String, in name: Substring) -> String? {
            guard name.hasPrefix(prefix) else { return nil }
            let rest = name.dropFirst(prefix.count)
            let major = rest.prefix(while: { $0.isNumber })
            let afterMajor = rest.dropFirst(major.count)
            guard !major.isEmpty, afterMajor.first == "." else { return nil }
            let minor = afterMajor.dropFirst().prefix(while: { $0.isNumber })
            return minor.isEmpty ? nil : "\(major).\(minor)"
        }
        for file in mappedFiles {
            let base = file.split(separator: "/").last ?? ""
            if let v = version(after: "libpython", in: base) { return v }
        }
        let base = executable.split(separator: "/").last ?? ""
        return version(after: "python", in: base)
    }

    /// The description the messages use: `process 123 (python3 app.py)`.
    var described: String {
        let command = commandLine.isEmpty ? executable : shellQuoted(commandLine)
        return "process \(pid) (\(command.count > 60 ? String(command.prefix(57)) + "..." : command))"
    }

    /// A heapscope tracker mapped in, from any installation.
    var loadedTrackers: [String] { mappedFiles.filter(AttachTarget.isTracker).sorted() }

    static func isTracker(_ path: String) -> Bool {
        path.contains("/heapscope/_tracker.cpython-") && path.hasSuffix(".so")
    }

    /// Refuses what ptrace would fail at, saying which setting stands in the way.
    func checkPtracePermission() throws {
        if let tracerPid {
            throw commandFail(
                "process \(pid) is being traced by process \(tracerPid) (a debugger?); a process has one tracer at a time")
        }
        let canTraceAny = geteuid() == 0 && hasCapSysPtrace()
        if canTraceAny { return }
        let advice = "run heapscope as root or with CAP_SYS_PTRACE (in a container: the SYS_PTRACE capability)"
        if uid != geteuid() {
            throw commandFail(
                "ptrace is not permitted: process \(pid) belongs to user \(uid), heapscope runs as user "
                    + "\(geteuid()) without CAP_SYS_PTRACE; \(advice), or as that user")
        }
        switch ptraceScope() {
        case 1?:
            throw commandFail(
                "ptrace is not permitted: kernel.yama.ptrace_scope is 1 (only a process's own ancestors may trace it); "
                    + "\(advice), or set it to 0: sysctl kernel.yama.ptrace_scope=0")
        case 2?:
            throw commandFail("ptrace is not permitted: kernel.yama.ptrace_scope is 2 (admin only); \(advice)")
        case 3?:
            throw commandFail("ptrace is not permitted: kernel.yama.ptrace_scope is 3 (no process may be traced until reboot)")
        default:
            return
        }
    }
}

/// kernel.yama.ptrace_scope, when the Yama module is there.
func ptraceScope() -> Int? {
    textLines("/proc/sys/kernel/yama/ptrace_scope").first.flatMap { Int($0) }
}

private func hasCapSysPtrace() -> Bool {
    for line in textLines("/proc/self/status") where line.hasPrefix("CapEff:") {
        let hex = line.dropFirst("CapEff:".count).trimmingCharacters(in: " \t")
        guard let caps = UInt64(hex, radix: 16) else { return false }
        return caps & (1 << 19) != 0   // CAP_SYS_PTRACE
    }
    return false
}

private func textLines(_ path: String) -> [Substring] {
    guard let bytes = readWholeFile(path) else { return [] }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n")
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}
