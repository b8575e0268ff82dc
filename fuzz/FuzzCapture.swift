// libFuzzer entry point for the capture reader (fuzz/README.md). Compiled into
// the HeapscopeFormat module by fuzz/run.sh, never by the package build: it
// feeds each input through the stream loader (zstd or raw) and reads every
// record, in bulk and one by one, walking each stack it can reach.

internal import CZstd

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCapture(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    // An input that really decompresses to more (zstd's RLE blocks make 128 KiB
    // of 4 bytes) is long to read, not damaged. Claimed sizes are what the
    // allocation limit is for.
    if input.starts(with: CaptureFile.zstdMagic) && decompressesBeyond(input, limit: 32 << 20) { return -1 }
    let bytes = Array(input)
    guard var reader = try? CaptureReader(bytes: bytes) else { return 0 }
    var events = [Event](repeating: Event(address: 0, size: 0, frame: 0, kind: .malloc, isFree: false), count: 64)
    // The first byte picks the mix of bulk and single reads, so both paths meet every state.
    let bulk = size > 0 && data[0] & 1 == 1
    while true {
        if bulk {
            let count = events.withUnsafeMutableBufferPointer { reader.nextEvents(into: $0) }
            for event in events.prefix(count) where !event.isFree {
                _ = reader.tables.stack(ofFrame: event.frame)
                _ = reader.tables.nativeStack(ofFrame: event.nativeFrame)
            }
            if count > 0 { continue }
        }
        guard let record = try? reader.next() else { break }
        switch record {
        case .alloc(let allocation):
            _ = reader.tables.stack(ofFrame: allocation.frame)
            _ = reader.tables.nativeStack(ofFrame: allocation.nativeFrame)
        case .frame(let id):
            _ = reader.tables.function(ofFrame: id)
        case .threadInfo(let number):
            _ = reader.tables.thread(number)
        default:
            break
        }
    }
    precondition(reader.isFinished, "the reader stopped without finishing")
    return 0
}

/// The zstd stream `input` decompresses to more than `limit` bytes (decoded
/// into a scratch buffer, stopping at the limit or the first error).
private func decompressesBeyond(_ input: UnsafeBufferPointer<UInt8>, limit: Int) -> Bool {
    guard let context = ZSTD_createDCtx() else { return true }
    defer { ZSTD_freeDCtx(context) }
    var scratch = [UInt8](repeating: 0, count: 1 << 17)
    var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
    var produced = 0
    while produced <= limit {
        let (written, result) = scratch.withUnsafeMutableBytes { out in
            var target = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            let result = ZSTD_decompressStream(context, &target, &source)
            return (target.pos, result)
        }
        produced += written
        if ZSTD_isError(result) != 0 || (source.pos == source.size && written < scratch.count) { return false }
    }
    return true
}
