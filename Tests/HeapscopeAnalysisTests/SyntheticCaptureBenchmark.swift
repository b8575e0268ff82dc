import Testing
import Glibc
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeTestSupport

/// Writes a large synthetic capture for measuring `heapscope stats` (not a timed
/// test: it only runs when HEAPSCOPE_BENCH_CAPTURE names the file to write, and
/// HEAPSCOPE_BENCH_EVENTS optionally sets the event count, 20 million by default).
///
///     HEAPSCOPE_BENCH_CAPTURE=/tmp/big.hsc swift test -c release --filter writeSyntheticCapture
///     time .build/release/heapscope stats /tmp/big.hsc
@Suite struct SyntheticCaptureBenchmark {
    @Test(.enabled(if: getenv("HEAPSCOPE_BENCH_CAPTURE") != nil))
    func writeSyntheticCapture() throws {
        let path = String(cString: getenv("HEAPSCOPE_BENCH_CAPTURE"))
        let events = getenv("HEAPSCOPE_BENCH_EVENTS").flatMap { Int(String(cString: $0)) } ?? 20_000_000
        let randomFrees = getenv("HEAPSCOPE_BENCH_RANDOM_FREES") != nil
        var writer = CaptureWriter()
        var random = SplitMix(seed: 2024)
        writer.threadInfo(1, osThreadID: 1000, name: "MainThread")
        writer.threadInfo(2, osThreadID: 1001, name: "worker")
        writer.thread(1)

        // 2000 stacks, 4 to 12 frames deep, over 300 functions in 30 files.
        var stacks: [FrameID] = []
        for _ in 0..<2000 {
            let depth = 4 + Int(random.next() % 9)
            let frames = (0..<depth).map { _ -> (function: String, file: String, line: Int) in
                let function = Int(random.next() % 300)
                return ("module\(function % 30).function\(function)", "pkg/module\(function % 30).py",
                        10 * function + 1 + Int(random.next() % 10))
            }
            // Function k is defined at line 10k + 1.
            let definitions = Dictionary(frames.map { ($0.function, ($0.line - 1) / 10 * 10 + 1) }, uniquingKeysWith: min)
            stacks.append(writer.stack(frames, definedAt: definitions))
        }

        // Blocks live in slots that are reused LIFO, like a real allocator's free
        // lists; the live set wanders between ~50k and ~250k blocks.
        var live: [(address: UInt64, kind: AllocatorKind)] = []
        var freeSlots: [UInt64] = []
        var nextSlot: UInt64 = 0
        var thread: ThreadNumber = 1
        for event in 0..<events {
            if event % 100_000 == 0 {
                writer.snapshot(timeMicros: UInt64(event / 10), rssBytes: UInt64(100 << 20) + UInt64(live.count) * 200)
            }
            if event % 50_000 == 0 {
                thread = thread == 1 ? 2 : 1
                writer.thread(thread)
            }
            let target = 150_000 + Int(100_000 * sin(Double(event) / 2_000_000))
            let allocate = live.isEmpty || random.next() % UInt64(live.count + target) < UInt64(target)
            if allocate {
                let slot: UInt64
                if let reused = freeSlots.popLast() { slot = reused } else { slot = nextSlot; nextSlot += 1 }
                let roll = random.next() % 100
                let kind: AllocatorKind = roll < 70 ? .pymemObj : roll < 85 ? .pymemMem : roll < 97 ? .malloc : .pymemRaw
                let size = kind == .malloc ? 16 + random.next() % 65_536 : 16 + random.next() % 496
                let address = 0x7F00_0000_0000 + slot * 64
                writer.alloc(kind, address: address, size: size, frame: stacks[Int(random.next() % UInt64(stacks.count))])
                live.append((address, kind))
            } else {
                // Most blocks die young (the newest few hundred); some old ones
                // go at random, unless HEAPSCOPE_BENCH_RANDOM_FREES asks for all.
                let young = !randomFrees && random.next() % 100 < 80
                let index = young ? live.count - 1 - Int(random.next() % UInt64(min(live.count, 256)))
                                  : Int(random.next() % UInt64(live.count))
                let block = live[index]
                live[index] = live[live.count - 1]
                live.removeLast()
                writer.free(block.kind, address: block.address)
                freeSlots.append((block.address - 0x7F00_0000_0000) / 64)
            }
        }
        writer.end(timeMicros: UInt64(events / 10))
        guard let file = fopen(path, "wb") else { throw CaptureError.unreadable(reason: "cannot create \(path)") }
        defer { fclose(file) }
        #expect(fwrite(writer.bytes, 1, writer.bytes.count, file) == writer.bytes.count)
        print("wrote \(events) events, \(writer.bytes.count) bytes to \(path)")
    }
}
