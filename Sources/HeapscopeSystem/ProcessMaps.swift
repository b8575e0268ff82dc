// A process's memory mappings as /proc/<pid>/maps lists them: read by attach
// (which files the target has mapped, and where its C library's code lies).

/// One line of /proc/<pid>/maps: "start-end perms offset dev inode [path]".
public struct MappedRegion: Equatable, Sendable {
    public var range: Range<UInt64>
    /// "r-xp" and the like.
    public var permissions: String
    /// The file mapped, "[stack]" and the like, or "" for anonymous memory.
    public var path: String

    public var isExecutable: Bool { permissions.dropFirst(2).first == "x" }
    /// The file name without its folder.
    public var fileName: Substring { path.split(separator: "/").last ?? "" }

    /// One line of the file, or nil for a line it cannot make sense of.
    public init?(line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 5 else { return nil }
        let bounds = fields[0].split(separator: "-")
        guard bounds.count == 2, let start = UInt64(bounds[0], radix: 16), let end = UInt64(bounds[1], radix: 16),
              start < end
        else { return nil }
        range = start..<end
        permissions = String(fields[1])
        // The path may hold spaces: it is the rest of the line after the inode.
        path = fields.count == 6 ? String(fields[5].drop(while: { $0 == " " })) : ""
    }
}

/// The mappings of process `pid` (its own: "self"), or [] when they cannot be read.
public func processMaps(_ pid: String) -> [MappedRegion] {
    guard let bytes = readWholeFile("/proc/\(pid)/maps") else { return [] }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { MappedRegion(line: $0) }
}
