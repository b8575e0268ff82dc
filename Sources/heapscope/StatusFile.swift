// The status file: one line the target rewrites at each step of an attach
// (attach.c, _attach.py), which attach and detach read.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line the target rewrites at each step (attach.c, _attach.py).
enum AttachStatus: Equatable {
    case none
    case starting
    case running(capture: String)
    /// `atExit`: the process's exit stopped it, not a request (detach, --duration).
    case stopped(atExit: Bool, capture: String)
    case failed(String)
    /// The file is gone: the attach that watched it has finished.
    case removed
}

struct StatusFile {
    var path: String

    /// A new empty file the target (maybe another user, when we are root) can
    /// write, next to the capture: a directory the target must see and write
    /// anyway (its /tmp may be private, as with systemd's PrivateTmp).
    static func create(for target: AttachTarget, next output: CaptureOutput) throws -> StatusFile {
        let dir = parentDirectory(of: output.absolute)
        var template = Array("\(dir)/.heapscope-attach-\(target.pid).XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw commandFail("cannot create the status file in \(dir): \(String(cString: strerror(errno)))")
        }
        if geteuid() == 0 && target.uid != 0 { _ = fchown(fd, target.uid, target.gid) }
        close(fd)
        return StatusFile(path: cStringBuffer(template))
    }

    func read() -> AttachStatus {
        guard let bytes = readWholeFile(path) else { return .removed }
        // Only a whole line counts: the target may be writing it.
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return .none }
        let line = String(decoding: bytes[..<newline], as: UTF8.self)
        let word = line.prefix(while: { $0 != " " })
        let rest = String(line.dropFirst(word.count + 1))
        switch word {
        case "starting": return .starting
        case "running": return .running(capture: rest)
        case "stopped":
            let how = rest.prefix(while: { $0 != " " })
            return .stopped(atExit: how == "exit", capture: String(rest.dropFirst(how.count + 1)))
        case "error": return .failed(rest)
        default: return .none
        }
    }

    func remove() { unlink(path) }
}
