/// Why a capture could not be read. Each description is one line, meant to follow
/// the capture's path ("run.hsc: not a heapscope capture").
///
/// A capture that was cut short is not an error: the reader stops at its last
/// complete record and reports `isTruncated`.
public enum CaptureError: Error, Equatable, Sendable, CustomStringConvertible {
    case fileNotFound
    case unreadable(reason: String)
    case emptyFile
    case notACapture
    /// The stream ends before the header and its metadata are complete: there is
    /// nothing to read.
    case headerCutShort
    case newerVersion(UInt16)
    case corrupt(offset: Int, reason: String)
    case damagedCompression(String)
    /// An aggregated capture given to a report that needs its events in order
    /// (`what`: e.g. "--temporal").
    case needsEvents(String)

    public var description: String {
        switch self {
        case .fileNotFound:
            return "no such file"
        case .unreadable(let reason):
            return "cannot read the capture: \(reason)"
        case .emptyFile:
            return "empty file: no capture was written to it"
        case .notACapture:
            return "not a heapscope capture"
        case .headerCutShort:
            return "capture was cut short inside its header: it holds no records"
        case .newerVersion(let version):
            return "written by a newer heapscope (format \(version)); this one reads up to \(CaptureFile.newestVersion)"
        case .corrupt(let offset, let reason):
            return "corrupt at byte offset \(offset): \(reason)"
        case .damagedCompression(let reason):
            return "compressed capture is damaged: \(reason)"
        case .needsEvents(let what):
            return "an aggregated capture (--aggregate) keeps no events: \(what) needs them in order (record without --aggregate)"
        }
    }
}
