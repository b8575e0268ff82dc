import HeapscopeFormat

/// The live view of a capture as it is being written (live mode): fed records
/// as they arrive, it can say at any moment what is live by site, the peak so
/// far and the totals. It is the replay engine's heap consumer with nothing
/// else switched on, so its figures are those the reports give for the same
/// records: fed a whole capture, `snapshot().live` is the leaks view and
/// `snapshot().peak` the peak view.
///
///     var reader = try CaptureReader(path: path)
///     var live = LiveSites(header: reader.header)
///     while let record = try reader.next() { live.feed(record) }   // or Replay.run(&reader, into: &live)
///     let now = live.snapshot()
///
/// A snapshot costs O(sites); feeding, O(1) per record.
public struct LiveSites: ReplayConsumer {
    private var model: HeapModel
    /// What `feed` hands the model: it reads no definitions.
    private let noTables = CaptureTables()

    /// `header`: the capture's; `tables`: the reader's tables when feeding
    /// starts after some records were read (defaults to none read).
    public init(header: CaptureHeader, tables: CaptureTables = CaptureTables()) {
        model = HeapModel(header: header, tables: tables)
    }

    /// Feeds one record (any kind; only allocations, frees, unmaps, snapshots and END change the figures).
    public mutating func feed(_ record: Record) {
        model.record(record, tables: noTables)
    }

    /// Feeds ALLOC and FREE records decoded in bulk (`CaptureReader.nextEvents(into:)`), made on `thread`.
    public mutating func feed(_ events: UnsafeMutableBufferPointer<Event>, thread: ThreadNumber) {
        model.events(events, thread: thread)
    }

    public mutating func events(_ batch: UnsafeMutableBufferPointer<Event>, thread: ThreadNumber) {
        model.events(batch, thread: thread)
    }

    public mutating func record(_ record: Record, tables: CaptureTables) {
        model.record(record, tables: tables)
    }

    /// The figures now.
    public func snapshot() -> LiveSnapshot {
        LiveSnapshot(live: model.siteTotals(.live), liveTotals: model.liveTotals, peakBytes: model.peakBytes,
                     peakTimeMicros: model.peakTime, allocated: model.allocated, freed: model.freed,
                     lastSnapshot: model.samples.last)
    }

    /// What was live at the peak so far, by site (O(sites)).
    public func peakSites() -> [SiteTotals] { model.siteTotals(.peak) }

    /// Live bytes now, without building a snapshot.
    public var liveBytes: UInt64 { model.liveBytes }
    /// The peak so far, without building a snapshot.
    public var peakBytes: UInt64 { model.peakBytes }
    /// Every SNAPSHOT so far, with the heap then (the live view's chart).
    public var samples: [MemorySample] { model.samples }
    /// The END record's time, once read.
    public var endTimeMicros: UInt64? { model.endTime }
}

/// What `LiveSites.snapshot()` returns.
public struct LiveSnapshot: Equatable, Sendable {
    /// Live now by site (stack, thread, allocator), sites with nothing live left out, unsorted.
    public var live: [SiteTotals]
    /// Everything live now: blocks (an mmap partly unmapped counts once) and bytes.
    public var liveTotals: Totals
    /// High-water mark of the live heap so far.
    public var peakBytes: UInt64
    /// Time of the last SNAPSHOT record before the peak, if any.
    public var peakTimeMicros: UInt64?
    /// Every counted allocation so far, and those freed (or unmapped whole) so far.
    public var allocated: Totals
    public var freed: Totals
    /// The last SNAPSHOT record's time and RSS, with the heap then.
    public var lastSnapshot: MemorySample?
}
