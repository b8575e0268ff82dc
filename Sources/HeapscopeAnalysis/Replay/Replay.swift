import HeapscopeFormat

/// Something the replay engine feeds: ALLOC and FREE records in batches (the
/// thread they happened on is the reader's current thread), every other record
/// one by one, after the reader has added its definitions to `tables`.
///
/// Consumers are generic parameters of `Replay.run`, never existentials, so
/// the calls per event are specialised and inlined.
public protocol ReplayConsumer {
    mutating func events(_ batch: UnsafeMutableBufferPointer<Event>, thread: ThreadNumber)
    mutating func record(_ record: Record, tables: CaptureTables)
    /// The consumer also wants each record other than ALLOC and FREE as the
    /// stream holds it (`recordBytes`): the aggregator copies the definitions.
    static var wantsRecordBytes: Bool { get }
    mutating func recordBytes(_ bytes: [UInt8], of record: Record)
}

extension ReplayConsumer {
    public static var wantsRecordBytes: Bool { false }
    public mutating func recordBytes(_ bytes: [UInt8], of record: Record) {}
}

/// Two consumers fed by one pass.
public struct ConsumerPair<First: ReplayConsumer, Second: ReplayConsumer>: ReplayConsumer {
    public var first: First
    public var second: Second

    public init(_ first: First, _ second: Second) {
        self.first = first
        self.second = second
    }

    @inline(__always)
    public mutating func events(_ batch: UnsafeMutableBufferPointer<Event>, thread: ThreadNumber) {
        first.events(batch, thread: thread)
        second.events(batch, thread: thread)
    }

    @inline(__always)
    public mutating func record(_ record: Record, tables: CaptureTables) {
        first.record(record, tables: tables)
        second.record(record, tables: tables)
    }
}

/// The one replay of a capture: reads it once, start to end, and feeds every
/// record to a consumer (docs/ARCHITECTURE.md, "Analysis"). Every report, the
/// leak summary and the pymalloc model are consumers of this loop.
public enum Replay {
    /// ALLOC/FREE records decoded per batch: enough for the heap table's
    /// prefetch to overlap cache misses, small enough to stay in L1.
    static let batchSize = 256

    /// Feeds `consumer` from where `reader` stands to the end of the stream.
    /// `progress` is called now and then with (bytes read, stream length).
    public static func run<Consumer: ReplayConsumer>(_ reader: inout CaptureReader, into consumer: inout Consumer,
                                                     progress: ((Int, Int) -> Void)? = nil) throws(CaptureError) {
        var report = ProgressReport(progress, reader: reader)
        let events = UnsafeMutableBufferPointer<Event>.allocate(capacity: batchSize)
        defer { events.deallocate() }
        while true {
            let count = reader.nextEvents(into: events)
            if count > 0 {
                consumer.events(UnsafeMutableBufferPointer(rebasing: events[0..<count]), thread: reader.currentThread)
            } else {
                guard let record = try reader.next() else { break }
                if Consumer.wantsRecordBytes { consumer.recordBytes(reader.lastRecordBytes, of: record) }
                consumer.record(record, tables: reader.tables)
            }
            report.note(reader)
        }
        report.finish()
    }
}

/// Calls a progress callback every 256 Ki records, not on every one, with
/// the reader's `progress`.
struct ProgressReport {
    private let callback: ((Int, Int) -> Void)?
    private var nextReport = 0
    private var total: Int

    init(_ callback: ((Int, Int) -> Void)?, reader: CaptureReader) {
        self.callback = callback
        total = reader.progress.total
        callback?(0, total)
    }

    @inline(__always)
    mutating func note(_ reader: CaptureReader) {
        guard let callback, reader.recordCount >= nextReport else { return }
        nextReport = reader.recordCount + 1 << 18
        callback(reader.progress.done, total)
    }

    func finish() { callback?(total, total) }
}
