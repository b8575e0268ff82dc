import Glibc
import Testing
import HeapscopeFormat
import HeapscopeTestSupport

/// Inputs the fuzzer (fuzz/README.md) or a review found that crashed, hung or
/// made the reader allocate what a capture claims; each stays a test.
@Suite struct FuzzRegressionTests {
    /// A zstd frame whose header claims 1 GiB of content and holds a small
    /// capture in one raw block, not the last: the frame is cut short. The
    /// reader used to reserve the claimed size and keep it while it lived.
    @Test func claimedFrameSizeIsNotReserved() throws {
        let (capture, _) = sampleCapture()
        var frame = CaptureFile.zstdMagic
        frame.append(0xC0)   // frame header: 8-byte content size, not single-segment, no checksum
        frame.append(0x58)   // window: 2 MiB
        frame += (0..<8).map { UInt8(truncatingIfNeeded: UInt64(1 << 30) >> (8 * $0)) }
        let blockHeader = UInt32(capture.count) << 3   // raw block, not the last
        frame += (0..<3).map { UInt8(truncatingIfNeeded: blockHeader >> (8 * $0)) }
        frame += capture

        let mappedBefore = virtualMemoryBytes()
        let (records, reader) = try readAll(frame)
        let mappedDuring = virtualMemoryBytes()
        #expect(reader.isCompressed && reader.isTruncated)
        #expect(records == (try readAll(capture)).records)
        // Other tests run alongside: allow them 256 MiB, far below the claim.
        #expect(mappedDuring < mappedBefore + (256 << 20), "the reader maps \(mappedDuring - mappedBefore) bytes")
        withExtendedLifetime(reader) {}
    }
}

/// The process's virtual size (/proc/self/statm): a reserved block counts even
/// before it is touched.
private func virtualMemoryBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var pages = 0
    _ = withUnsafeMutablePointer(to: &pages) { withVaList([$0]) { vfscanf(file, "%ld", $0) } }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

@Suite struct StoppedRecordTests {
    /// A capture the tracker stopped writing: read to the STOPPED record, cut
    /// short, with its cause; nothing after it is read.
    @Test(arguments: [StopCause.diskFull, .fileDeleted, .writeFailed(errno: 5)])
    func stoppedCaptureSaysWhy(cause: StopCause) throws {
        var (bytes, _) = sampleCapture(end: false)
        var writer = CaptureWriter()
        writer.stopped(cause, timeMicros: 12_345)
        let stopped = Array(writer.bytes.dropFirst(CaptureWriter().bytes.count))
        bytes += stopped + [0xFF, 0xFF]   // never read
        let (records, reader) = try readAll(bytes)
        #expect(records.last == .stopped(cause: cause, timeMicros: 12_345))
        #expect(reader.isTruncated && reader.isFinished && reader.stopCause == cause)
        #expect(records.dropLast() == (try readAll(sampleCapture(end: false).bytes)).records[...])
        #expect("cut short\(cutShortBecause(cause))".hasSuffix(cause.description))
    }

    @Test func causesAreNamed() {
        #expect(StopCause.diskFull.description == "the disk was full")
        #expect(cutShortBecause(nil) == "")
        #expect(cutShortBecause(.diskFull) == " because the disk was full")
    }
}
