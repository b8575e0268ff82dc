// heapscope-bench-capture EVENTS OUT.hsc: a synthetic capture of EVENTS
// allocation and free records, written through CaptureWriter (the encoder the
// tests trust) and compressed with zstd as the tracker does, in flat memory.
//
// The program it describes: 64 call sites (stacks three deep), each step
// frees one block of a ring of 65,536 live blocks and allocates another in
// its place (sizes 16 B to 4 KiB), one SNAPSHOT every million events. What is
// live never grows, so a report of it should need the same memory at 1e8 as
// at 1e9 events, and time in proportion to them (bench/RESULTS.md).

import CZstd
import Glibc
import HeapscopeFormat
import HeapscopeTestSupport

let arguments = CommandLine.arguments
func fail(_ message: String, status: Int32) -> Never {
    let line = Array((message + "\n").utf8)
    _ = write(2, line, line.count)
    exit(status)
}

guard arguments.count == 3, let events = Double(arguments[1]).map({ UInt64($0) }), events > 0 else {
    fail("usage: heapscope-bench-capture EVENTS OUT.hsc (EVENTS may be 1e9)", status: 2)
}
guard let out = fopen(arguments[2], "wb") else {
    fail("heapscope-bench-capture: error: cannot write \(arguments[2])", status: 1)
}

let context = ZSTD_createCCtx()!
ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, 1)

/// Compresses `bytes` into the file (`end`: close the frame).
func emit(_ bytes: [UInt8], end: Bool = false, context: OpaquePointer, out: UnsafeMutablePointer<FILE>) {
    var compressed = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
    bytes.withUnsafeBufferPointer { input in
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            let remaining = compressed.withUnsafeMutableBufferPointer { output -> Int in
                var target = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
                let result = ZSTD_compressStream2(context, &target, &source, end ? ZSTD_e_end : ZSTD_e_continue)
                precondition(ZSTD_isError(result) == 0, "zstd: \(String(cString: ZSTD_getErrorName(result)))")
                fwrite(output.baseAddress, 1, target.pos, out)
                return result
            }
            if end ? remaining == 0 : source.pos == source.size { break }
        }
    }
}

var writer = CaptureWriter()
var frames: [FrameID] = []
for site in 0..<64 {
    frames.append(writer.stack([("main", "app.py", 10), ("work_\(site % 8)", "work.py", 20 + site % 8),
                                ("make_\(site)", "make.py", 100 + site)]))
}
writer.thread(1)

let ring = 1 << 16
let base: UInt64 = 0x7F00_0000_0000
let sizes: [UInt64] = [16, 32, 48, 64, 100, 256, 1000, 4096]
var live = [Bool](repeating: false, count: ring)
var written: UInt64 = 0
var step: UInt64 = 0
var nextSnapshot: UInt64 = 1_000_000
while written < events {
    let slot = Int(truncatingIfNeeded: (step &* 40_503) & UInt64(ring - 1))
    let address = base + UInt64(slot) << 13
    if live[slot] {
        writer.free(.pymemObj, address: address)
        written += 1
    }
    if written < events {
        let site = Int(truncatingIfNeeded: (step / 3) % 64)
        writer.alloc(.pymemObj, address: address, size: sizes[Int(truncatingIfNeeded: step % 8)], frame: frames[site])
        live[slot] = true
        written += 1
    } else {
        live[slot] = false
    }
    step += 1
    if written >= nextSnapshot {
        writer.snapshot(timeMicros: written / 100, rssBytes: 100 << 20)
        nextSnapshot += 1_000_000
        emit(writer.takeBytes(), context: context, out: out)
    }
}
writer.end(timeMicros: written / 100 + 1)
emit(writer.takeBytes(), end: true, context: context, out: out)
fclose(out)
print("wrote \(arguments[2]): \(written) events")
