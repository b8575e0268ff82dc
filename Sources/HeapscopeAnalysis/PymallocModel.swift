import HeapscopeFormat

// The pymalloc arena model (docs/PYMALLOC.md): arenas and pools as CPython lays
// them out, each traced small block placed in its pool and arena, followed over
// time. It answers "why did memory not go back to the system after `del`?":
// arenas held, how full they are, what pymalloc holds that the program does not
// use, and the arenas kept alive by a few live blocks, with the stacks that
// allocated those blocks and (from the `<capture>.refs` sidecar) the objects
// that hold them.

/// pymalloc's state at one moment.
public struct PymallocState: Equatable, Sendable {
    /// Time of the last memory snapshot before it, if any.
    public var timeMicros: UInt64?
    public var arenasHeld: Int = 0
    /// Bytes of the arenas held (arenas × arena size).
    public var arenaBytes: UInt64 = 0
    public var poolsInUse: Int = 0
    /// Index = size class.
    public var poolsInUseByClass: [Int] = []
    /// Live blocks placed in tracked arenas, and the bytes the program asked for.
    public var liveBlocks: Int = 0
    public var requestedBytes: UInt64 = 0
    /// The blocks holding them (rounded up to their size class).
    public var blockBytes: UInt64 = 0
    /// Arenas by occupancy (live block bytes / arena size): ten buckets of 10%,
    /// the last one holding 90% to 100%.
    public var occupancyHistogram: [Int] = Array(repeating: 0, count: 10)
    /// What the arenas hold besides the program's bytes (they sum, with
    /// `requestedBytes`, to `arenaBytes`).
    public var emptyPoolBytes: UInt64 = 0
    public var freeBlockBytes: UInt64 = 0
    public var poolHeaderBytes: UInt64 = 0
    public var alignmentBytes: UInt64 = 0
    public var roundingBytes: UInt64 = 0

    public init() {}

    /// Bytes held by pymalloc but free inside it: everything in the arenas that
    /// is not a byte the program asked for.
    public var freeInsideBytes: UInt64 { arenaBytes > requestedBytes ? arenaBytes - requestedBytes : 0 }

    /// 1 - requested / held; 0 with no arenas.
    public var fragmentation: Double {
        arenaBytes == 0 ? 0 : Double(freeInsideBytes) / Double(arenaBytes)
    }
}

/// One point of the timeline, at a memory snapshot.
public struct PymallocSample: Equatable, Sendable {
    public var timeMicros: UInt64
    public var arenasHeld: Int
    public var poolsInUse: Int
    public var requestedBytes: UInt64
    public var blockBytes: UInt64
    /// Arenas by occupancy decile (as `PymallocState.occupancyHistogram`).
    public var occupancy: [Int]
}

/// An arena held at the end with few live blocks.
public struct PinnedArena: Equatable, Sendable {
    public var address: UInt64
    public var liveBlocks: Int
    public var blockBytes: UInt64
    public var requestedBytes: UInt64
    public var poolsInUse: Int
}

/// Live blocks of pinned arenas grouped by the stack that allocated them.
public struct PinningSite: Equatable, Sendable {
    public var frame: FrameID
    public var totals: Totals
}

/// Live blocks of pinned arenas grouped by what holds them.
public struct HolderGroup: Equatable, Sendable {
    public enum Holder: Hashable, Sendable {
        /// An object allocated while tracking, at this stack (`kind` is its allocator).
        case allocatedAt(FrameID, AllocatorKind)
        /// The holder is an object allocated before tracking began (a module's
        /// globals, an interpreter cache...).
        case beforeTracking
        /// No container refers to the blocks: they are held from a frame, a C
        /// extension, or the walk ran out of its budget.
        case notFound
    }
    public var holder: Holder
    public var totals: Totals
}

/// The referrers sidecar (`<capture>.refs`, written by `heapscope run` after
/// tracking stopped): for small objects alive then, the block address of the
/// container holding them. Format in docs/PYMALLOC.md.
public struct ReferrerTable: Sendable {
    public static let magic: [UInt8] = Array("HSREFS1\n".utf8)
    /// Referent block address -> holder block address (the first seen).
    public var holders: [UInt64: UInt64]
    /// False when the walk stopped at its budget: some holders are missing.
    public var isComplete: Bool

    public init(holders: [UInt64: UInt64], isComplete: Bool = true) {
        self.holders = holders
        self.isComplete = isComplete
    }

    /// Parses a sidecar; nil if it is not one.
    public init?(bytes: [UInt8]) {
        guard bytes.count >= 16, Array(bytes[0..<8]) == Self.magic else { return nil }
        func u64(_ at: Int) -> UInt64 {
            var value: UInt64 = 0
            for index in 0..<8 { value |= UInt64(bytes[at + index]) << (8 * index) }
            return value
        }
        let flags = UInt32(truncatingIfNeeded: u64(8))
        isComplete = flags & 1 == 0
        var holders: [UInt64: UInt64] = [:]
        let pairs = (bytes.count - 16) / 16
        holders.reserveCapacity(pairs)
        for index in 0..<pairs {
            let at = 16 + index * 16
            let referent = u64(at)
            if holders[referent] == nil { holders[referent] = u64(at + 8) }
        }
        self.holders = holders
    }
}

/// The model's result for one capture.
public struct PymallocAnalysis: Sendable {
    public var header: CaptureHeader
    public var tables: CaptureTables
    public var geometry: PymallocGeometry
    public var isTruncated: Bool
    /// Why the tracker stopped writing early, when the capture says (disk full, file deleted).
    public var stopCause: StopCause?
    /// Python allocators were traced: blocks are known, not only arenas.
    public var blocksTraced: Bool
    /// The allocator was pymalloc (or pymalloc_debug) when tracking began.
    public var pymallocActive: Bool
    /// Arena occupancy (percent) at or below which an arena held at the end is pinned.
    public var pinnedPercent: Int

    public var samples: [PymallocSample]
    /// At the moment the most arenas were held (the first time); nil if no arena was seen.
    public var peak: PymallocState?
    public var end: PymallocState
    public var arenasAllocated: Int
    public var arenasReleased: Int
    /// Every pymalloc block allocated while tracking.
    public var blocksAllocated: Totals
    /// Live at the end in pools of arenas obtained before tracking began (not modelled).
    public var blocksOutsideTrackedArenas: Totals
    /// Events the model could not place (a block in a pool of another size class,
    /// an arena returned with live blocks): non-zero only for damaged or partial captures.
    public var anomalies: Int

    public var pinnedArenas: [PinnedArena]
    /// Live blocks of pinned arenas.
    public var pinningBlocks: Totals
    /// By allocating stack, most bytes first.
    public var pinningSites: [PinningSite]
    /// By holder, most bytes first; empty without a referrers sidecar.
    public var holders: [HolderGroup]
    /// A referrers sidecar was given, and whether its walk was complete.
    public var referrersAvailable: Bool
    public var referrersComplete: Bool

    public var durationMicros: UInt64?

    /// Reads and models the capture at `path`.
    public static func analyze(path: String, referrers: ReferrerTable? = nil,
                               pinnedPercent: Int = 10) throws(CaptureError) -> PymallocAnalysis {
        try PymallocAnalysis(reader: CaptureReader(path: path), referrers: referrers, pinnedPercent: pinnedPercent)
    }

    public init(reader: CaptureReader, referrers: ReferrerTable? = nil, pinnedPercent: Int = 10) throws(CaptureError) {
        var reader = reader
        try AggregatedCaptures.refuse(reader.header, "the pymalloc model (it places each block by its address)")
        let metadata = reader.header.metadata
        let geometry = PymallocGeometry(metadata: metadata)
        var model = PymallocReplay(geometry: geometry,
                                   blocksTraced: reader.header.flags.contains(.pythonAllocators),
                                   pymallocActive: metadata.pymallocActive,
                                   keepOtherBlocks: referrers != nil)
        try Replay.run(&reader, into: &model)
        let endTime = model.endTime

        header = reader.header
        tables = reader.tables
        self.geometry = geometry
        isTruncated = reader.isTruncated
        stopCause = reader.stopCause
        blocksTraced = model.blocksTraced
        pymallocActive = model.pymallocActive
        self.pinnedPercent = pinnedPercent
        samples = model.samples
        peak = model.peakState
        end = model.state(time: model.lastSnapshotTime)
        arenasAllocated = model.arenasAllocated
        arenasReleased = model.arenasReleased
        blocksAllocated = model.blocksAllocated
        anomalies = model.anomalies
        durationMicros = endTime ?? model.samples.last?.timeMicros

        var outside = Totals()
        model.blocks.forEach { block in
            if model.arenaIndex(ofBlock: block.address) == nil { outside.add(block.size) }
        }
        blocksOutsideTrackedArenas = outside

        let pinned = model.pinnedArenas(percent: pinnedPercent)
        pinnedArenas = pinned.map { model.arenas[$0] }.map {
            PinnedArena(address: $0.address, liveBlocks: $0.liveBlocks, blockBytes: $0.blockBytes,
                        requestedBytes: $0.requestedBytes, poolsInUse: $0.poolsInUse)
        }
        let pinnedSet = Set(pinned)
        var byFrame: [FrameID: Totals] = [:]
        var pinning = Totals()
        var pinningAddresses: [(address: UInt64, size: UInt64)] = []
        model.blocks.forEach { block in
            guard let arena = model.arenaIndex(ofBlock: block.address), pinnedSet.contains(arena) else { return }
            byFrame[block.site, default: Totals()].add(block.size)
            pinning.add(block.size)
            if referrers != nil { pinningAddresses.append((block.address, block.size)) }
        }
        pinningBlocks = pinning
        // Stacks that differ only in the instruction (same lines) are one site.
        var byStack: [[Location]: (frame: FrameID, totals: Totals)] = [:]
        for (frame, totals) in byFrame {
            let key = reader.tables.stack(ofFrame: frame)
            if let known = byStack[key] {
                byStack[key] = (min(known.frame, frame), known.totals + totals)
            } else {
                byStack[key] = (frame, totals)
            }
        }
        pinningSites = byStack.values.map { PinningSite(frame: $0.frame, totals: $0.totals) }
            .sorted { ($0.totals.bytes, $0.totals.count, $1.frame) > ($1.totals.bytes, $1.totals.count, $0.frame) }

        referrersAvailable = referrers != nil
        referrersComplete = referrers?.isComplete ?? false
        holders = []
        if let referrers {
            // Resolve each holder address to the live block at it (any allocator).
            var wanted: [UInt64: (frame: FrameID, kind: AllocatorKind)?] = [:]
            for block in pinningAddresses {
                if let holder = referrers.holders[block.address] { wanted[holder] = .some(nil) }
            }
            let resolve: (LiveHeap.Block) -> Void = { block in
                if wanted[block.address] != nil { wanted[block.address] = (block.site, PymallocReplay.kind(ofTag: block.tag)) }
            }
            model.blocks.forEach(resolve)
            model.others.forEach(resolve)
            var groups: [HolderGroup.Holder: Totals] = [:]
            for block in pinningAddresses {
                let holder: HolderGroup.Holder
                if let address = referrers.holders[block.address] {
                    if let found = wanted[address] ?? nil {
                        holder = .allocatedAt(found.frame, found.kind)
                    } else {
                        holder = .beforeTracking
                    }
                } else {
                    holder = .notFound
                }
                groups[holder, default: Totals()].add(block.size)
            }
            // Holders allocated at the same lines are one holder.
            var merged: [HolderGroup.Holder: Totals] = [:]
            var canonical: [[Location]: FrameID] = [:]
            for (holder, totals) in groups {
                var key = holder
                if case .allocatedAt(let frame, let kind) = holder {
                    let stack = reader.tables.stack(ofFrame: frame)
                    let first = min(canonical[stack] ?? frame, frame)
                    if let previous = canonical[stack], previous != first {
                        merged[.allocatedAt(first, kind)] = (merged[.allocatedAt(first, kind)] ?? Totals())
                            + (merged.removeValue(forKey: .allocatedAt(previous, kind)) ?? Totals())
                    }
                    canonical[stack] = first
                    key = .allocatedAt(first, kind)
                }
                merged[key, default: Totals()] = merged[key, default: Totals()] + totals
            }
            groups = merged
            holders = groups.map { HolderGroup(holder: $0.key, totals: $0.value) }
                .sorted { $0.totals.bytes != $1.totals.bytes ? $0.totals.bytes > $1.totals.bytes : $0.totals.count > $1.totals.count }
        }
    }
}


/// One arena of the model.
struct ModelArena {
    var address: UInt64
    var isLive = true
    var poolCount: Int
    var poolsInUse = 0
    var liveBlocks = 0
    var requestedBytes: UInt64 = 0
    var blockBytes: UInt64 = 0
    var decile = 0
}

struct ModelPool {
    var sizeClass: Int
    var liveBlocks: Int
    /// Index in `arenas`; -1 for a pool of an arena obtained before tracking.
    var arena: Int
}

/// The replay engine's consumer behind `PymallocAnalysis`.
struct PymallocReplay: ReplayConsumer {
    let geometry: PymallocGeometry
    let blocksTraced: Bool
    let pymallocActive: Bool
    /// Also keep the other live heap blocks (to resolve referrers).
    let keepOtherBlocks: Bool

    /// Live pymalloc blocks by the address the program got; `size` is the
    /// request as pymalloc saw it (with the debug hooks' extra bytes).
    /// `site` holds the allocating frame id; the tag the allocator kind (high
    /// half) and the size class the block really has, plus one (low half).
    let blocks = LiveHeap(tagged: true)
    let others = LiveHeap(tagged: true)
    var pools: [UInt64: ModelPool] = [:]
    var arenas: [ModelArena] = []
    /// Live arenas by `address / arenaSize` (at most one starts in each such chunk).
    var arenaByChunk: [UInt64: Int] = [:]

    var arenasHeld = 0
    var poolsInUse = 0
    var poolsByClass: [Int]
    var requestedBytes: UInt64 = 0
    var blockBytes: UInt64 = 0
    var deciles = [Int](repeating: 0, count: 10)

    var arenasAllocated = 0
    var arenasReleased = 0
    var blocksAllocated = Totals()
    var anomalies = 0
    var samples: [PymallocSample] = []
    var lastSnapshotTime: UInt64?
    var peakArenas = 0
    var peakState: PymallocState?
    var endTime: UInt64?

    init(geometry: PymallocGeometry, blocksTraced: Bool, pymallocActive: Bool, keepOtherBlocks: Bool) {
        self.geometry = geometry
        self.blocksTraced = blocksTraced
        self.pymallocActive = pymallocActive
        self.keepOtherBlocks = keepOtherBlocks
        poolsByClass = [Int](repeating: 0, count: geometry.sizeClassCount)
    }

    @inline(__always)
    private func isPymallocBlock(_ kind: AllocatorKind, size: UInt64) -> Bool {
        guard blocksTraced && pymallocActive && (kind == .pymemObj || kind == .pymemMem) && size > 0 else { return false }
        return size + geometry.debugExtra <= geometry.smallRequestThreshold
    }

    mutating func alloc(_ kind: AllocatorKind, address: UInt64, size: UInt64, frame: FrameID) {
        if kind == .pymallocArena {
            arenaAlloc(address)
            return
        }
        if isPymallocBlock(kind, size: size) {
            let request = size + geometry.debugExtra
            if let replaced = others.remove(address) { _ = replaced }
            if let replaced = blocks.remove(address) { release(replaced) }
            let sizeClass = place(address: address, request: request)
            // `thread` holds the size class the block really has, plus one.
            _ = blocks.insert(address: address, size: request, site: frame,
                              tag: UInt64(kind.rawValue) << 32 | UInt64(sizeClass + 1))
            blocksAllocated.add(request)
        } else if keepOtherBlocks && kind != .mmap {
            if let replaced = blocks.remove(address) { release(replaced) }
            _ = others.insert(address: address, size: size, site: frame, tag: UInt64(kind.rawValue) << 32)
        }
    }

    mutating func free(_ kind: AllocatorKind, address: UInt64) {
        if kind == .pymallocArena {
            arenaFree(address)
            return
        }
        if let block = blocks.remove(address) {
            release(block)
        } else if keepOtherBlocks {
            _ = others.remove(address)
        }
    }

    mutating func events(_ batch: UnsafeMutableBufferPointer<Event>, thread: ThreadNumber) {
        for event in batch {
            if event.isFree {
                free(event.kind, address: event.address)
            } else {
                alloc(event.kind, address: event.address, size: event.size, frame: event.frame)
            }
        }
    }

    mutating func record(_ record: Record, tables: CaptureTables) {
        switch record {
        case .alloc(let a): alloc(a.kind, address: a.address, size: a.size, frame: a.frame)
        case .free(let kind, let address, _): free(kind, address: address)
        case .snapshot(let time, _): snapshot(time: time)
        case .end(let time): endTime = time
        default: break
        }
    }

    static func kind(ofTag tag: UInt64) -> AllocatorKind { AllocatorKind(rawValue: UInt8(truncatingIfNeeded: tag >> 32)) ?? .malloc }

    mutating func snapshot(time: UInt64) {
        lastSnapshotTime = time
        samples.append(PymallocSample(timeMicros: time, arenasHeld: arenasHeld, poolsInUse: poolsInUse,
                                      requestedBytes: requestedBytes, blockBytes: blockBytes, occupancy: deciles))
    }

    // MARK: Arenas

    func arenaIndex(ofPool pool: UInt64) -> Int? {
        let chunk = pool / geometry.arenaSize
        if let index = arenaByChunk[chunk], arenas[index].address <= pool { return index }
        if chunk > 0, let index = arenaByChunk[chunk - 1], pool < arenas[index].address &+ geometry.arenaSize { return index }
        return nil
    }

    func arenaIndex(ofBlock address: UInt64) -> Int? {
        let pool = geometry.pool(ofBlock: address &- geometry.debugOffset)
        guard let known = pools[pool] else { return arenaIndex(ofPool: pool) }
        return known.arena >= 0 ? known.arena : nil
    }

    private mutating func arenaAlloc(_ address: UInt64) {
        if arenaIndex(ofPool: address) != nil || arenaIndex(ofPool: address &+ geometry.arenaSize &- 1) != nil {
            anomalies += 1  // overlaps a live arena: its FREE was missed
            if let old = arenaIndex(ofPool: address) { arenaFree(arenas[old].address) }
            if let old = arenaIndex(ofPool: address &+ geometry.arenaSize &- 1) { arenaFree(arenas[old].address) }
        }
        let index = arenas.count
        arenas.append(ModelArena(address: address, poolCount: geometry.poolCount(ofArena: address)))
        arenaByChunk[address / geometry.arenaSize] = index
        arenasHeld += 1
        arenasAllocated += 1
        deciles[0] += 1
        // Pools seen before their arena (not expected) now belong to it.
        var pool = geometry.firstPool(ofArena: address)
        for _ in 0..<arenas[index].poolCount {
            if var known = pools[pool], known.arena < 0 {
                known.arena = index
                pools[pool] = known
                if known.liveBlocks > 0 { arenas[index].poolsInUse += 1 }
            }
            pool &+= geometry.poolSize
        }
        if arenasHeld > peakArenas {
            peakArenas = arenasHeld
            peakState = state(time: lastSnapshotTime)
        }
    }

    private mutating func arenaFree(_ address: UInt64) {
        let chunk = address / geometry.arenaSize
        guard let index = arenaByChunk[chunk], arenas[index].address == address else {
            // An arena obtained before tracking: forget the pools seen in it.
            var pool = geometry.firstPool(ofArena: address)
            for _ in 0..<geometry.poolCount(ofArena: address) {
                if let known = pools[pool], known.arena < 0 {
                    pools[pool] = nil
                    if known.liveBlocks > 0 { poolsByClass[known.sizeClass] -= 1 }
                }
                pool &+= geometry.poolSize
            }
            return
        }
        arenaByChunk[chunk] = nil
        var arena = arenas[index]
        arena.isLive = false
        if arena.liveBlocks > 0 { anomalies += 1 }
        requestedBytes &-= arena.requestedBytes
        blockBytes &-= arena.blockBytes
        poolsInUse -= arena.poolsInUse
        deciles[arena.decile] -= 1
        var pool = geometry.firstPool(ofArena: address)
        for _ in 0..<arena.poolCount {
            if let known = pools.removeValue(forKey: pool), known.liveBlocks > 0 {
                poolsByClass[known.sizeClass] -= 1
            }
            pool &+= geometry.poolSize
        }
        arenas[index] = arena
        arenasHeld -= 1
        arenasReleased += 1
    }

    // MARK: Blocks

    /// Places a new block; returns its size class.
    private mutating func place(address: UInt64, request: UInt64) -> Int {
        var sizeClass = geometry.sizeClass(ofRequest: request)
        let poolAddress = geometry.pool(ofBlock: address &- geometry.debugOffset)
        var pool = pools[poolAddress] ?? ModelPool(sizeClass: sizeClass, liveBlocks: 0, arena: arenaIndex(ofPool: poolAddress) ?? -1)
        if pool.liveBlocks == 0 {
            pool.sizeClass = sizeClass
            poolsByClass[sizeClass] += 1
            if pool.arena >= 0 {
                poolsInUse += 1
                arenas[pool.arena].poolsInUse += 1
            }
        } else if pool.sizeClass != sizeClass {
            // A realloc that shrank a block in place (pymalloc keeps the block
            // when the new size is over 3/4 of it) keeps the pool's class.
            if sizeClass > pool.sizeClass { anomalies += 1 }
            sizeClass = pool.sizeClass
        }
        pool.liveBlocks += 1
        pools[poolAddress] = pool
        if pool.arena >= 0 {
            let bytes = geometry.blockSize(ofClass: sizeClass)
            arenas[pool.arena].liveBlocks += 1
            arenas[pool.arena].requestedBytes &+= request
            arenas[pool.arena].blockBytes &+= bytes
            requestedBytes &+= request
            blockBytes &+= bytes
            updateDecile(pool.arena)
        }
        return sizeClass
    }

    private mutating func release(_ block: LiveHeap.Block) {
        let classTag = Int(truncatingIfNeeded: block.tag & 0xFFFF_FFFF)
        let sizeClass = classTag > 0 ? classTag - 1 : geometry.sizeClass(ofRequest: block.size)
        let poolAddress = geometry.pool(ofBlock: block.address &- geometry.debugOffset)
        // No pool: its arena (obtained before tracking) was returned.
        guard var pool = pools[poolAddress], pool.liveBlocks > 0 else { return }
        pool.liveBlocks -= 1
        if pool.liveBlocks == 0 {
            poolsByClass[pool.sizeClass] -= 1
            if pool.arena >= 0 {
                poolsInUse -= 1
                arenas[pool.arena].poolsInUse -= 1
            }
        }
        if pool.arena >= 0 {
            let bytes = geometry.blockSize(ofClass: sizeClass)
            arenas[pool.arena].liveBlocks -= 1
            arenas[pool.arena].requestedBytes &-= block.size
            arenas[pool.arena].blockBytes &-= bytes
            requestedBytes &-= block.size
            blockBytes &-= bytes
            updateDecile(pool.arena)
        }
        if pool.liveBlocks == 0 && pool.arena < 0 {
            pools[poolAddress] = nil
        } else {
            pools[poolAddress] = pool
        }
    }

    @inline(__always)
    private mutating func updateDecile(_ index: Int) {
        let decile = min(9, Int(arenas[index].blockBytes * 10 / geometry.arenaSize))
        if decile != arenas[index].decile {
            deciles[arenas[index].decile] -= 1
            deciles[decile] += 1
            arenas[index].decile = decile
        }
    }

    // MARK: Results

    func state(time: UInt64?) -> PymallocState {
        var state = PymallocState()
        state.timeMicros = time
        state.arenasHeld = arenasHeld
        state.arenaBytes = UInt64(arenasHeld) * geometry.arenaSize
        state.poolsInUse = poolsInUse
        state.poolsInUseByClass = poolsByClass
        state.requestedBytes = requestedBytes
        state.blockBytes = blockBytes
        state.occupancyHistogram = deciles
        var liveBlocks = 0
        var emptyPools = 0
        var alignment: UInt64 = 0
        for arena in arenas where arena.isLive {
            liveBlocks += arena.liveBlocks
            emptyPools += arena.poolCount - arena.poolsInUse
            alignment &+= geometry.arenaSize - UInt64(arena.poolCount) * geometry.poolSize
        }
        state.liveBlocks = liveBlocks
        state.emptyPoolBytes = UInt64(emptyPools) * geometry.poolSize
        state.alignmentBytes = alignment
        state.poolHeaderBytes = UInt64(poolsInUse) * geometry.poolHeaderSize
        let usable = UInt64(poolsInUse) * (geometry.poolSize - geometry.poolHeaderSize)
        state.freeBlockBytes = usable > blockBytes ? usable - blockBytes : 0
        state.roundingBytes = blockBytes > requestedBytes ? blockBytes - requestedBytes : 0
        return state
    }

    /// Indices of the arenas held now whose live blocks fill at most `percent` of them.
    func pinnedArenas(percent: Int) -> [Int] {
        arenas.indices.filter { index in
            let arena = arenas[index]
            return arena.isLive && arena.liveBlocks > 0 && arena.blockBytes * 100 <= UInt64(percent) * geometry.arenaSize
        }
    }
}
