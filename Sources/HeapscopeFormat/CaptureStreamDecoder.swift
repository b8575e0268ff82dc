internal import CZstd

/// The bytes of a capture as they arrive, zstd-compressed or raw, turned into
/// the uncompressed stream piece by piece, for `CaptureReader.resume(appending:)`
/// (live mode, docs/FORMAT.md "The live stream"). One zstd context for the
/// whole stream: each byte is decompressed once.
public final class CaptureStreamDecoder {
    private var context: OpaquePointer?
    /// The first bytes, until there are enough to tell zstd's magic.
    private var head: [UInt8] = []
    private var isCompressed: Bool?
    private var output = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())

    public init() {}

    deinit {
        if let context { ZSTD_freeDCtx(context) }
    }

    /// The uncompressed bytes that `input`, following everything given before, completes.
    public func decode(_ input: [UInt8]) throws(CaptureError) -> [UInt8] {
        var input = input
        if isCompressed == nil {
            head += input
            guard head.count >= CaptureFile.zstdMagic.count else { return [] }
            isCompressed = head.starts(with: CaptureFile.zstdMagic)
            input = head
            head = []
            if isCompressed == true {
                guard let created = ZSTD_createDCtx() else { throw .unreadable(reason: "out of memory") }
                context = created
            }
        }
        guard isCompressed == true, let context else { return input }
        var decoded: [UInt8] = []
        var failure: String?
        let capacity = output.count
        input.withUnsafeBytes { raw in
            output.withUnsafeMutableBytes { out in
                var source = ZSTD_inBuffer(src: raw.baseAddress, size: raw.count, pos: 0)
                while true {
                    var target = ZSTD_outBuffer(dst: out.baseAddress, size: capacity, pos: 0)
                    let result = ZSTD_decompressStream(context, &target, &source)
                    if ZSTD_isError(result) != 0 {
                        failure = String(cString: ZSTD_getErrorName(result))
                        return
                    }
                    decoded.append(contentsOf: UnsafeRawBufferPointer(rebasing: out[0..<target.pos]))
                    // Done when all input is in and the decoder had no more to give.
                    if source.pos == source.size && target.pos < capacity { return }
                }
            }
        }
        if let failure { throw .damagedCompression(failure) }
        return decoded
    }
}
