import HeapscopeFormat

/// The heap as the capture tells it, replayed: every live block with its site,
/// the live bytes, the peak, and per site what is live now and what was live at
/// the peak (docs/FORMAT.md, "What the figures mean"). The consumer behind
/// every report of the heap: the peak and leaks views, the live view
/// (`LiveSites`), and, when asked for, the stats counters, the temporary and
/// allocated views, size histograms per site and the temporal aggregate.
///
/// Memory is bounded by what is live (a 12-byte slot per block, 20 with tags)
/// and by the number of sites, never by the number of events.
///
/// What was live at the peak, per site, without a log of the blocks freed
/// after it: `atPeak` holds the per-site figures at the last peak and
/// `sincePeak` the change since; when a new peak is reached, the sites changed
/// since the last one (`dirty`) are folded in. Each event dirties at most one
/// site and each dirty site is folded once, so this costs O(1) per event.
struct HeapModel: ReplayConsumer {
    struct Features {
        /// Totals by allocator, by Python stack, by thread, and the size histogram (`stats`).
        var counters = false
        /// Gather the temporary (freed on the allocating thread with at most
        /// `threshold` allocations there in between) or allocated view.
        var gather: Gather = .none
        /// Keep blocks apart by size bucket (the `SiteTotals.sizes` histograms).
        var sizes = false
        var temporal = false
    }

    enum Gather: Equatable {
        case none
        case temporary(threshold: Int)
        case allocated
    }

    let features: Features
    let countsArenas: Bool
    let heap: LiveHeap
    var mapped = MappedRanges()
    var stacks: StackKeyTable
    var sites = SiteTable()
    /// The figures per site id.
    private let figures = SiteFigures()

    var liveBytes: UInt64 = 0
    /// ALLOC records so far, arenas not counted included.
    var serial: UInt64 = 0
    var peakBytes: UInt64 = 0
    /// Serial of the allocation that reached the peak (0: the heap never grew).
    var peakSerial: UInt64 = 0
    var peakTime: UInt64?
    var lastSnapshotTime: UInt64?
    var samples: [MemorySample] = []
    var endTime: UInt64?
    /// Every counted allocation.
    var allocated = Totals()
    /// Counted allocations freed (or replaced, or unmapped whole).
    var freed = Totals()
    /// Blocks live at the end of an aggregated capture (its TOTALS): it has no heap to count.
    private var aggregatedLiveCount = 0

    // Counters (features.counters).
    /// Every allocation by kind, arenas included even when not counted.
    var byAllocator = [Totals](repeating: .zero, count: AllocatorKind.allCases.count)
    /// Index = Python frame id.
    var allocatedByFrame: [Totals]
    var histogram = SizeHistogram()
    /// Index = thread number.
    var threadTotals: [Totals]

    /// Per thread: counted allocations made there (temporary view).
    private var threadAllocations: [UInt32] = []
    private let threshold: UInt32
    private var temporal: TemporalBuilder?
    /// Keeps the prefetching loads of `LiveHeap.warm` alive.
    private var warmed: UInt64 = 0

    /// `expectedBlocks`: the most blocks live at once, if the capture says
    /// (`CaptureReader.summaryTrailer`); it sizes the table of live blocks.
    init(header: CaptureHeader, tables: CaptureTables, features: Features = Features(), expectedBlocks: Int = 0) {
        self.features = features
        countsArenas = !header.flags.contains(.pythonAllocators)
        stacks = StackKeyTable(header: header)
        if case .temporary(let threshold) = features.gather {
            self.threshold = UInt32(clamping: max(0, threshold))
        } else {
            threshold = 0
        }
        var temporary = false
        if case .temporary = features.gather { temporary = true }
        heap = LiveHeap(tagged: features.temporal || temporary, expectedBlocks: expectedBlocks)
        temporal = features.temporal ? TemporalBuilder() : nil
        allocatedByFrame = [Totals](repeating: .zero, count: features.counters ? tables.frameCount + 1 : 0)
        threadTotals = [Totals](repeating: .zero, count: tables.threadCount + 1)
    }

    // MARK: Feeding

    @inline(__always)
    mutating func events(_ batch: UnsafeMutableBufferPointer<Event>, thread: ThreadNumber) {
        warmed |= heap.warm(batch)
        for event in batch {
            if event.isFree {
                free(event.kind, address: event.address, thread: thread)
            } else {
                alloc(event.kind, address: event.address, size: event.size, frame: event.frame,
                      nativeFrame: event.nativeFrame, thread: thread)
            }
        }
    }

    mutating func record(_ record: Record, tables: CaptureTables) {
        switch record {
        case .alloc(let a):
            alloc(a.kind, address: a.address, size: a.size, frame: a.frame, nativeFrame: a.nativeFrame, thread: a.thread)
        case .free(let kind, let address, let thread): free(kind, address: address, thread: thread)
        case .munmap(let address, let length):
            for part in mapped.unmap(address, length: length) { release(part) }
        case .frame:
            if features.counters { allocatedByFrame.append(.zero) }
        case .thread(let number), .threadInfo(let number):
            while Int(number) >= threadTotals.count { threadTotals.append(.zero) }
        case .snapshot(let time, let rss):
            lastSnapshotTime = time
            samples.append(MemorySample(timeMicros: time, rssBytes: rss, heapBytes: liveBytes))
            temporal?.snapshot()
        case .end(let time): endTime = time
        case .site(let site): load(site)
        case .aggregateTotals(let totals): load(totals)
        case .heapSample(let time, let rss, let heap):
            lastSnapshotTime = time
            samples.append(MemorySample(timeMicros: time, rssBytes: rss, heapBytes: heap))
        case .string, .code, .nativeFrame, .mappings, .stopped: break
        }
    }

    // MARK: Aggregated captures

    /// A SITE record: its figures become the site's, as if its events had been
    /// replayed (the views, the counters, the sizes when kept apart).
    private mutating func load(_ site: AggregatedSite) {
        let allocatedTotals = Totals(site.allocated)
        if features.counters {
            allocatedByFrame[Int(site.frame)] = allocatedByFrame[Int(site.frame)] + allocatedTotals
            histogram.add(bucket: Int(site.sizeBucket), count: allocatedTotals.count)
            while Int(site.thread) >= threadTotals.count { threadTotals.append(.zero) }
            threadTotals[Int(site.thread)] = threadTotals[Int(site.thread)] + allocatedTotals
        }
        let stack = stacks.id(frame: site.frame, nativeFrame: site.nativeFrame)
        let id = siteID(SiteTable.key(stack: stack, thread: site.thread, kind: site.kind,
                                      bucket: features.sizes ? Int(site.sizeBucket) : 0))
        figures.load(id, atPeak: Totals(site.atPeak), live: Totals(site.live),
                     gathered: features.gather == .allocated ? allocatedTotals : .zero)
    }

    /// The TOTALS record: the figures the aggregating replay had.
    private mutating func load(_ totals: AggregateTotals) {
        peakBytes = totals.peakBytes
        peakSerial = totals.peakSerial
        peakTime = totals.peakTimeMicros
        allocated = Totals(totals.allocated)
        freed = Totals(totals.freed)
        liveBytes = totals.live.bytes
        aggregatedLiveCount = Int(clamping: totals.live.count)
        for (kind, figures) in totals.byAllocator.enumerated() where kind < byAllocator.count {
            byAllocator[kind] = Totals(figures)
        }
    }

    /// Every site's figures, for an aggregated capture. Needs `gather == .allocated`
    /// (the allocated figures) and `sizes` (the bucket in each site).
    func aggregatedSites() -> [AggregatedSite] {
        (0..<sites.count).map { site in
            let id = UInt32(site)
            let cell = figures.cells[site]
            let stack = stacks.key(sites.stack(id))
            return AggregatedSite(thread: sites.thread(id), kind: sites.kind(id), frame: stack.frame,
                                  nativeFrame: stack.nativeFrame, sizeBucket: UInt8(sites.bucket(id)),
                                  atPeak: BlockFigures(cell.atPeak), live: BlockFigures(cell.atPeak + cell.sincePeak),
                                  allocated: BlockFigures(cell.gathered))
        }
    }

    /// The capture's totals, for an aggregated capture (needs `counters` for the allocator split).
    func aggregateTotals(state: AggregateTotals.State) -> AggregateTotals {
        AggregateTotals(state: state, peakBytes: peakBytes, peakSerial: peakSerial, peakTimeMicros: peakTime,
                        allocated: BlockFigures(allocated), freed: BlockFigures(freed), live: BlockFigures(liveTotals),
                        byAllocator: byAllocator.map(BlockFigures.init))
    }

    @inline(__always)
    mutating func alloc(_ kind: AllocatorKind, address: UInt64, size: UInt64, frame: FrameID,
                        nativeFrame: NativeFrameID, thread: ThreadNumber) {
        serial &+= 1
        if features.counters { byAllocator[Int(kind.rawValue)].add(size) }
        if kind == .pymallocArena && !countsArenas { return }
        allocated.add(size)
        if features.counters {
            allocatedByFrame[Int(frame)].add(size)
            histogram.add(size: size)
            while Int(thread) >= threadTotals.count { threadTotals.append(.zero) }
            threadTotals[Int(thread)].add(size)
        }
        let stack = stacks.id(frame: frame, nativeFrame: nativeFrame)
        let site = siteID(SiteTable.key(stack: stack, thread: thread, kind: kind,
                                        bucket: features.sizes ? SizeHistogram.bucket(ofSize: size) : 0))
        var tag: UInt64 = 0
        if let temporal { tag = UInt64(temporal.epoch) }
        if case .temporary = features.gather {
            while Int(thread) >= threadAllocations.count { threadAllocations.append(0) }
            threadAllocations[Int(thread)] &+= 1
            tag |= UInt64(threadAllocations[Int(thread)]) << 32
        } else if features.gather == .allocated {
            figures.gather(site, bytes: size)
        }

        if kind == .mmap {
            let mapping = MappedRanges.Mapping(address: address, serial: serial, site: site, tag: tag, liveBytes: 0)
            for part in mapped.map(mapping, length: size) { release(part) }
        } else if let replaced = heap.insert(address: address, size: size, site: site, tag: tag) {
            release(replaced, freeingThread: nil)  // its FREE was not in the capture
        }
        figures.change(site, bytes: size, count: 1)
        liveBytes &+= size
        if liveBytes > peakBytes {
            peakBytes = liveBytes
            peakSerial = serial
            peakTime = lastSnapshotTime
            figures.foldIntoPeak()
        }
    }

    @inline(__always)
    mutating func free(_ kind: AllocatorKind, address: UInt64, thread: ThreadNumber) {
        if kind == .pymallocArena && !countsArenas { return }
        if let block = heap.remove(address) { release(block, freeingThread: thread) }
    }

    @inline(__always)
    private mutating func siteID(_ key: UInt64) -> UInt32 {
        let id = sites.id(key)
        if Int(id) == figures.count { figures.append() }
        return id
    }

    @inline(__always)
    private mutating func release(_ block: LiveHeap.Block, freeingThread: ThreadNumber?) {
        liveBytes &-= block.size
        freed.add(block.size)
        figures.change(block.site, bytes: 0 &- block.size, count: -1)
        if case .temporary = features.gather, let freeingThread, freeingThread == sites.thread(block.site),
           Int(freeingThread) < threadAllocations.count,
           threadAllocations[Int(freeingThread)] &- UInt32(truncatingIfNeeded: block.tag >> 32) <= threshold {
            figures.gather(block.site, bytes: block.size)
        }
        temporal?.release(epoch: UInt32(truncatingIfNeeded: block.tag), site: block.site, bytes: block.size, count: 1)
    }

    private mutating func release(_ part: MappedRanges.Released) {
        liveBytes &-= part.bytes
        let count = part.isWhole ? 1 : 0
        freed.add(part.bytes, count: count)
        figures.change(part.mapping.site, bytes: 0 &- part.bytes, count: -count)
        temporal?.release(epoch: UInt32(truncatingIfNeeded: part.mapping.tag), site: part.mapping.site,
                          bytes: part.bytes, count: count)
    }

    // MARK: Results


    var liveTotals: Totals {
        Totals(count: heap.count + mapped.mappings.count + aggregatedLiveCount, bytes: liveBytes)
    }

    enum Figures {
        case peak, live, gathered
    }

    /// Per-site figures of a view, merged over size buckets (with their
    /// histogram when sizes were kept apart); sites with nothing are left out.
    func siteTotals(_ figures: Figures) -> [SiteTotals] {
        var result: [SiteTotals] = []
        // Sites that differ only by size bucket merge into one row.
        var rowOfSite: [UInt64: Int] = [:]
        for site in 0..<sites.count {
            let cell = self.figures.cells[site]
            let totals: Totals
            switch figures {
            case .peak: totals = cell.atPeak
            case .live: totals = cell.atPeak + cell.sincePeak
            case .gathered: totals = cell.gathered
            }
            guard totals.count != 0 || totals.bytes != 0 else { continue }
            let id = UInt32(site)
            var sizes = SparseSizeHistogram()
            if features.sizes && totals.count > 0 { sizes.add(bucket: UInt64(sites.bucket(id)), count: UInt64(totals.count)) }
            let merged = sites.keys[site] & ~0x7F
            if features.sizes, let row = rowOfSite[merged] {
                result[row].totals = result[row].totals + totals
                result[row].sizes = result[row].sizes + sizes
                continue
            }
            rowOfSite[merged] = result.count
            let stack = stacks.key(sites.stack(id))
            result.append(SiteTotals(frame: stack.frame, nativeFrame: stack.nativeFrame, thread: sites.thread(id),
                                     kind: sites.kind(id), totals: totals, sizes: sizes))
        }
        return result
    }

    /// The figures of `siteTotals` per Python stack (index = frame id).
    func byFrame(_ figures: Figures, frameCount: Int) -> StackTotals {
        var totals = StackTotals(frameCount: frameCount)
        for site in siteTotals(figures) { totals.add(frame: site.frame, bytes: site.totals.bytes, count: site.totals.count) }
        return totals
    }

    /// Every block live now, with its address, sorted by address.
    func liveAllocations() -> [LiveAllocation] {
        var result: [LiveAllocation] = []
        result.reserveCapacity(heap.count + mapped.mappings.count)
        func add(address: UInt64, size: UInt64, site: UInt32) {
            result.append(LiveAllocation(kind: sites.kind(site), address: address, size: size,
                                         frame: stacks.key(sites.stack(site)).frame, thread: sites.thread(site)))
        }
        heap.forEach { add(address: $0.address, size: $0.size, site: $0.site) }
        if aggregatedLiveCount > 0 {
            // An aggregated capture keeps no blocks: one entry per site, with its count.
            for site in siteTotals(.live) {
                result.append(LiveAllocation(kind: site.kind, address: 0, size: site.totals.bytes, frame: site.frame,
                                             thread: site.thread, count: site.totals.count))
            }
        }
        for mapping in mapped.mappings.values { add(address: mapping.address, size: mapping.liveBytes, site: mapping.site) }
        return result.sorted { ($0.address, $0.size) < ($1.address, $1.size) }
    }

    /// The temporal aggregate (features.temporal): what is still live was never freed.
    func temporalAggregate() -> TemporalAggregate? {
        guard var builder = temporal else { return nil }
        heap.forEach { block in
            builder.leak(epoch: UInt32(truncatingIfNeeded: block.tag), site: block.site, bytes: block.size, count: 1)
        }
        for mapping in mapped.mappings.values {
            builder.leak(epoch: UInt32(truncatingIfNeeded: mapping.tag), site: mapping.site, bytes: mapping.liveBytes, count: 1)
        }
        return builder.finish(snapshotTimes: samples.map(\.timeMicros), endTime: endTime ?? samples.last?.timeMicros ?? 0) { site in
            let stack = stacks.key(sites.stack(site))
            return (stack, sites.thread(site), sites.kind(site))
        }
    }
}

/// The per-site figures of `HeapModel`, in memory of its own: touched on every
/// event, so no copy-on-write checks. Grows with the sites, never with events.
final class SiteFigures {
    struct Cell {
        /// At the last peak.
        var atPeak = Totals()
        /// The change since; live now = atPeak + sincePeak.
        var sincePeak = Totals()
        /// The temporary or allocated view.
        var gathered = Totals()
        var isDirty = false
    }

    private(set) var cells: UnsafeMutablePointer<Cell>
    /// Sites changed since the last peak: each at most once, so as many as the sites.
    private var dirty: UnsafeMutablePointer<UInt32>
    private var dirtyCount = 0
    private(set) var count = 0
    private var capacity = 256

    init() {
        cells = .allocate(capacity: capacity)
        dirty = .allocate(capacity: capacity)
    }

    deinit {
        cells.deinitialize(count: count)
        cells.deallocate()
        dirty.deallocate()
    }

    func append() {
        if count == capacity {
            capacity *= 2
            let grown = UnsafeMutablePointer<Cell>.allocate(capacity: capacity)
            grown.moveInitialize(from: cells, count: count)
            cells.deallocate()
            cells = grown
            let grownDirty = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
            grownDirty.moveInitialize(from: dirty, count: dirtyCount)
            dirty.deallocate()
            dirty = grownDirty
        }
        (cells + count).initialize(to: Cell())
        count += 1
    }

    @inline(__always)
    func change(_ site: UInt32, bytes: UInt64, count: Int) {
        let cell = cells + Int(site)
        cell.pointee.sincePeak.add(bytes, count: count)
        if !cell.pointee.isDirty {
            cell.pointee.isDirty = true
            dirty[dirtyCount] = site
            dirtyCount += 1
        }
    }

    @inline(__always)
    func gather(_ site: UInt32, bytes: UInt64) { cells[Int(site)].gathered.add(bytes) }

    /// An aggregated capture's site: no event follows, so nothing is dirty.
    func load(_ site: UInt32, atPeak: Totals, live: Totals, gathered: Totals) {
        let cell = cells + Int(site)
        cell.pointee.atPeak = cell.pointee.atPeak + atPeak
        cell.pointee.sincePeak = cell.pointee.sincePeak + Totals(count: live.count &- atPeak.count, bytes: live.bytes &- atPeak.bytes)
        cell.pointee.gathered = cell.pointee.gathered + gathered
    }

    /// A new peak: live now is what was live at the peak.
    @inline(__always)
    func foldIntoPeak() {
        for index in 0..<dirtyCount {
            let cell = cells + Int(dirty[index])
            cell.pointee.atPeak = cell.pointee.atPeak + cell.pointee.sincePeak
            cell.pointee.sincePeak = .zero
            cell.pointee.isDirty = false
        }
        dirtyCount = 0
    }
}
