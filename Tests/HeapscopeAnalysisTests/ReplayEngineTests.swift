import Testing
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeTestSupport

/// The replay engine's consumers against plain arithmetic: a capture written
/// with CaptureWriter from a seeded sequence of events, and a model of it kept
/// here with dictionaries (address -> block), independent of the engine.
@Suite struct ReplayEngineTests {
    struct Site: Hashable {
        var frame: FrameID
        var thread: ThreadNumber
        var kind: AllocatorKind
    }

    struct Block {
        var size: UInt64
        var site: Site
        /// Allocations made on its thread up to and including this one.
        var threadSerial: Int
    }

    /// What the capture holds, replayed by hand.
    struct Model {
        var live: [UInt64: Block] = [:]
        var liveBytes: UInt64 = 0
        var peakBytes: UInt64 = 0
        var atPeak: [Site: Totals] = [:]
        var allocated = Totals()
        var freed = Totals()
        var threadAllocations: [ThreadNumber: Int] = [:]
        var temporary: [Site: Totals] = [:]
        let threshold: Int

        var liveBySite: [Site: Totals] {
            var result: [Site: Totals] = [:]
            for block in live.values { result[block.site, default: .zero] = result[block.site, default: .zero] + Totals(count: 1, bytes: block.size) }
            return result
        }

        mutating func alloc(address: UInt64, size: UInt64, site: Site) {
            if let replaced = live.removeValue(forKey: address) { release(replaced, freeingThread: nil) }
            threadAllocations[site.thread, default: 0] += 1
            live[address] = Block(size: size, site: site, threadSerial: threadAllocations[site.thread]!)
            allocated = allocated + Totals(count: 1, bytes: size)
            liveBytes += size
            if liveBytes > peakBytes {
                peakBytes = liveBytes
                atPeak = liveBySite
            }
        }

        mutating func free(address: UInt64, thread: ThreadNumber) {
            if let block = live.removeValue(forKey: address) { release(block, freeingThread: thread) }
        }

        private mutating func release(_ block: Block, freeingThread: ThreadNumber?) {
            liveBytes -= block.size
            freed = freed + Totals(count: 1, bytes: block.size)
            if let freeingThread, freeingThread == block.site.thread,
               threadAllocations[freeingThread, default: 0] - block.threadSerial <= threshold {
                temporary[block.site, default: .zero] = temporary[block.site, default: .zero] + Totals(count: 1, bytes: block.size)
            }
        }
    }

    /// xorshift64*: the same sequence on every run.
    struct Random {
        var state: UInt64
        mutating func next(_ bound: UInt64) -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return (state &* 0x2545_F491_4F6C_DD1D) % bound
        }
    }

    /// 3000 events over 3 threads, 6 stacks, 2 allocators and 150 addresses (so
    /// some allocations replace a block whose FREE is missing, and some frees
    /// name nothing live), with one block of over 4 GiB, some of 16 MiB (a
    /// byte under to a byte over), at addresses 0 and above 2^48 too (blocks
    /// the live table's slots cannot hold, replacing and replaced by blocks
    /// they can). The model is fed as
    /// the capture is written; `checkpoint` gets the model after each record.
    static func capture(threshold: Int, checkpoint: ((Model) -> Void)? = nil) -> (bytes: [UInt8], model: Model, records: Int) {
        var writer = CaptureWriter()
        var model = Model(threshold: threshold)
        var random = Random(state: 0x9E37_79B9_7F4A_7C15)
        var frames: [FrameID] = []
        for index in 0..<6 {
            frames.append(writer.stack([("main", "app.py", 1), ("work\(index % 3)", "work.py", 10 + index),
                                        ("make\(index)", "make.py", 100 + index)]))
        }
        var records = 0
        // Thread numbers first appear in order.
        for number: ThreadNumber in [1, 2, 3, 1] {
            writer.thread(number)
            checkpoint?(model)
        }
        var thread: ThreadNumber = 1
        for step in 0..<3000 {
            if step != 1500 && random.next(50) == 0 {
                thread = ThreadNumber(1 + random.next(3))
                writer.thread(thread)
            } else {
                let slot = random.next(150)
                let address = slot == 0 ? 0 : slot < 4 ? 1 << 48 | slot * 64 : 0x10_0000 + slot * 64
                if step == 1500 || random.next(100) < 55 {
                    let kind: AllocatorKind = random.next(2) == 0 ? .pymemObj : .malloc
                    let size = step == 1500 ? (UInt64(5) << 30) : random.next(20) == 0 ? (16 << 20) - 1 + random.next(3) : 1 + random.next(5000)
                    let frame = frames[Int(random.next(6))]
                    writer.alloc(kind, address: address, size: size, frame: frame)
                    model.alloc(address: address, size: size, site: Site(frame: frame, thread: thread, kind: kind))
                } else {
                    writer.free(.pymemObj, address: address)
                    model.free(address: address, thread: thread)
                }
            }
            records += 1
            checkpoint?(model)
        }
        writer.end(timeMicros: 1_000)
        return (writer.bytes, model, records)
    }

    static func bySite(_ sites: [SiteTotals]) -> [Site: Totals] {
        var result: [Site: Totals] = [:]
        for site in sites {
            #expect(site.nativeFrame == 0)
            let key = Site(frame: site.frame, thread: site.thread, kind: site.kind)
            #expect(result[key] == nil, "one row per site")
            result[key] = site.totals
        }
        return result
    }

    /// LiveSites fed record by record agrees with the model after every
    /// record: live by site, live totals, the peak so far, allocated and freed.
    @Test func liveSitesAgreeWithArithmeticAtEveryRecord() throws {
        var models: [Model] = []
        let (bytes, _, _) = Self.capture(threshold: 0) { models.append($0) }
        var reader = try CaptureReader(bytes: bytes)
        var live = LiveSites(header: reader.header)
        var index = 0
        var checked = 0
        // Skip the definitions the writer put before the first THREAD.
        while let record = try reader.next() {
            live.feed(record)
            switch record {
            case .thread, .alloc, .free: break
            default: continue
            }
            let model = models[index]
            index += 1
            let snapshot = live.snapshot()
            #expect(Self.bySite(snapshot.live) == model.liveBySite)
            #expect(snapshot.liveTotals == Totals(count: model.live.count, bytes: model.liveBytes))
            #expect(snapshot.peakBytes == model.peakBytes && live.peakBytes == model.peakBytes)
            #expect(live.liveBytes == model.liveBytes)
            #expect(snapshot.allocated == model.allocated && snapshot.freed == model.freed)
            checked += 1
        }
        #expect(checked == models.count && checked == 3004)
        #expect(models.last!.peakBytes > 5 << 30, "the large block reached the peak")
        #expect(Self.bySite(live.peakSites()) == models.last!.atPeak)
    }

    /// Fed in batches by the engine (`Replay.run`), LiveSites ends where the
    /// views of the same capture end: its live sites are the leaks view, its
    /// peak sites the peak view, and both match the model.
    @Test func engineViewsAgreeWithArithmetic() throws {
        let (bytes, model, _) = Self.capture(threshold: 2)
        var reader = try CaptureReader(bytes: bytes)
        var live = LiveSites(header: reader.header)
        try Replay.run(&reader, into: &live)

        let peak = try ViewAnalysis(reader: CaptureReader(bytes: bytes), view: .peak)
        let leaks = try ViewAnalysis(reader: CaptureReader(bytes: bytes), view: .leaks)
        let temporary = try ViewAnalysis(reader: CaptureReader(bytes: bytes), view: .temporary(threshold: 2))
        #expect(Self.bySite(peak.sites) == model.atPeak)
        #expect(peak.peakBytes == model.peakBytes)
        #expect(Self.bySite(leaks.sites) == model.liveBySite)
        #expect(Self.bySite(temporary.sites) == model.temporary)
        #expect(!model.temporary.isEmpty)
        #expect(Self.bySite(live.snapshot().live) == model.liveBySite)
        #expect(Self.bySite(live.peakSites()) == model.atPeak)

        let analysis = try CaptureAnalysis(reader: CaptureReader(bytes: bytes), view: .temporary(threshold: 2))
        #expect(analysis.peak.bytes == model.peakBytes)
        #expect(analysis.allocated == model.allocated)
        #expect(analysis.liveAtEndTotals == Totals(count: model.live.count, bytes: model.liveBytes))
        #expect(analysis.liveAtEnd.map(\.address) == model.live.keys.sorted())
        #expect(analysis.liveAtEnd.map(\.size) == model.live.keys.sorted().map { model.live[$0]!.size })
        #expect(analysis.viewByStack.total == model.temporary.values.reduce(.zero, +))
    }

    /// One pass feeds two consumers alike.
    @Test func consumerPairFeedsBoth() throws {
        let (bytes, model, _) = Self.capture(threshold: 0)
        var reader = try CaptureReader(bytes: bytes)
        var pair = ConsumerPair(LiveSites(header: reader.header), LiveSites(header: reader.header))
        try Replay.run(&reader, into: &pair)
        #expect(pair.first.snapshot() == pair.second.snapshot())
        #expect(pair.first.snapshot().liveTotals == Totals(count: model.live.count, bytes: model.liveBytes))
    }
}
