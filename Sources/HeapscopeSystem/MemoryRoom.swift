// What the system says of a process's memory: the room it has left (the
// lower of MemAvailable and what its memory cgroups, v1 or v2, each level up
// to the root of the hierarchy, leave below their limits) and the floor
// under which heapscope stops it (`--memory-limit`, docs/CLI.md). Read by
// the CLI (`run` and `attach` watch a program: FloorWatch) and by the tracker
// (a `heapscope.Tracker` with a memory limit watches its own process), so
// both stop at the same floor. Plain file reads: no other module of heapscope.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The default floor: 100 MiB, or 2% of all the memory the program may use
/// (MemTotal, or its smallest cgroup limit), whichever is more.
public let memoryFloorMinimum: UInt64 = 100 << 20
public let memoryFloorPercent: UInt64 = 2

public struct MemoryRoom: Sendable {
    /// Bytes the program can still get.
    public var available: UInt64
    /// Bytes it may use in all.
    public var total: UInt64
    /// Which bound `available` is: "MemAvailable" or the cgroup's directory.
    public var boundBy: String

    public var floor: UInt64 { max(memoryFloorMinimum, total / 100 * memoryFloorPercent) }
    public var isBelowFloor: Bool { available < floor }
}

/// The memory cgroup directories of a process, innermost first (v2's
/// unified hierarchy, else v1's memory controller), and which version.
public struct MemoryCgroups: Sendable {
    public var directories: [String]
    public var v2: Bool

    /// `pid`'s (nil: this process's, which `run`'s program starts in). Another
    /// process's mounts are read through its root: it may be in a container.
    public init(of pid: pid_t? = nil) {
        directories = []
        v2 = false
        let proc = pid.map { "/proc/\($0)" } ?? "/proc/self"
        let rootPrefix = pid.map { "/proc/\($0)/root" } ?? ""
        guard let table = readText(proc + "/cgroup"), let mounts = readText(proc + "/mountinfo") else { return }
        // "0::/path" (v2) or "N:memory,...:/path" (v1).
        var v1Path: String?, v2Path: String?
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[0] == "0" && fields[1].isEmpty { v2Path = String(fields[2]) }
            if fields[1].split(separator: ",").contains("memory") { v1Path = String(fields[2]) }
        }
        // mountinfo: id parent dev ROOT MOUNTPOINT options... - FSTYPE source superoptions
        for line in mounts.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let left = halves[0].split(separator: " "), right = halves[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3 else { continue }
            let root = String(left[3]), mountPoint = rootPrefix + String(left[4])
            if right[0] == "cgroup", let path = v1Path, right[2].split(separator: ",").contains("memory") {
                directories = Self.levels(path: path, root: root, mountPoint: mountPoint, file: "memory.limit_in_bytes")
                v2 = false
            } else if right[0] == "cgroup2", let path = v2Path, directories.isEmpty {
                let found = Self.levels(path: path, root: root, mountPoint: mountPoint, file: "memory.max")
                if !found.isEmpty { directories = found; v2 = true }
            }
        }
    }

    /// The directories from the process's cgroup up to the mount's root that
    /// have the controller's files.
    private static func levels(path: String, root: String, mountPoint: String, file: String) -> [String] {
        guard path.hasPrefix(root) else { return [] }
        var relative = String(path.dropFirst(root == "/" ? 0 : root.count))
        var found: [String] = []
        while true {
            let directory = mountPoint + (relative == "/" ? "" : relative)
            if access(directory + "/" + file, R_OK) == 0 { found.append(directory) }
            guard let slash = relative.lastIndex(of: "/"), relative != "/" else { break }
            relative = slash == relative.startIndex ? "/" : String(relative[..<slash])
        }
        return found
    }

    /// Now: the room left, by MemAvailable and by every limited cgroup level.
    /// A cgroup's usage counts the page cache; its inactive file pages are
    /// reclaimed before anything is killed, so they count as room.
    public func room() -> MemoryRoom? {
        guard let meminfo = readText("/proc/meminfo"),
              let memAvailable = field(meminfo, "MemAvailable:").map({ $0 * 1024 }),
              let memTotal = field(meminfo, "MemTotal:").map({ $0 * 1024 }) else { return nil }
        var room = MemoryRoom(available: memAvailable, total: memTotal, boundBy: "MemAvailable")
        for directory in directories {
            let limitFile = v2 ? "memory.max" : "memory.limit_in_bytes"
            let usageFile = v2 ? "memory.current" : "memory.usage_in_bytes"
            guard let limit = readNumber(directory + "/" + limitFile), limit < memTotal,
                  let usage = readNumber(directory + "/" + usageFile) else { continue }
            let inactive = readText(directory + "/memory.stat").flatMap { field($0, v2 ? "inactive_file" : "total_inactive_file") } ?? 0
            let used = usage > inactive ? usage - inactive : 0
            let left = limit > used ? limit - used : 0
            room.total = min(room.total, limit)
            if left < room.available { room = MemoryRoom(available: left, total: room.total, boundBy: directory) }
        }
        return room
    }

    /// OOM kills so far: the kernel's count (/proc/vmstat, since Linux 4.13)
    /// plus the innermost cgroup's (v2: memory.events; v1: memory.oom_control),
    /// which a container's /proc may be all that shows. Compared before and after.
    public func oomKills() -> UInt64 {
        var count = readText("/proc/vmstat").flatMap { field($0, "oom_kill") } ?? 0
        for directory in directories {
            if let text = readText(directory + (v2 ? "/memory.events" : "/memory.oom_control")),
               let kills = field(text, "oom_kill") {
                count += kills
                break
            }
        }
        return count
    }
}

/// The whole file, or nil (errno set).
public func readWholeFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { return out }
        out += buffer[0..<n]
    }
}

private func readText(_ path: String) -> String? {
    readWholeFile(path).map { String(decoding: $0, as: UTF8.self) }
}

/// The number of a file holding one ("max", v2's no limit, is none).
private func readNumber(_ path: String) -> UInt64? {
    readText(path).flatMap { $0.split(whereSeparator: { $0 == "\n" || $0 == " " }).first.flatMap { UInt64($0) } }
}

/// The number after `key` on the line that starts with it ("MemAvailable:   123 kB").
private func field(_ text: String, _ key: String) -> UInt64? {
    for line in text.split(separator: "\n") where line.hasPrefix(key) {
        let rest = line.dropFirst(key.count)
        guard rest.first == " " || rest.first == "\t" || key.hasSuffix(":") else { continue }
        return rest.split(separator: " ").first.flatMap { UInt64($0) }
    }
    return nil
}
