internal import Glibc

extension SummaryTrailer {
    /// The summary trailer the file at `path` ends with, or nil (none, or
    /// not a regular file that can be read).
    public static func read(path: String) -> SummaryTrailer? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        let length = min(Int(info.st_size) - CaptureFile.fixedHeaderSize, size)
        guard length > 0 else { return nil }
        var tail = [UInt8](repeating: 0, count: length)
        let got = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, info.st_size - off_t(length)) }
        return got == length ? SummaryTrailer(trailing: tail) : nil
    }
}
