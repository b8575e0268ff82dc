import HeapscopeFormat

/// One line per record for `heapscope parse`, e.g.
/// `ALLOC pymem_obj 0x7f3a2c001000 64 frame=12 thread=1`.
public enum RecordText {
    public static func header(_ header: CaptureHeader, compressed: Bool) -> [String] {
        var flags: [String] = []
        if header.flags.contains(.native) { flags.append("native") }
        if header.flags.contains(.pythonAllocators) { flags.append("python_allocators") }
        if header.flags.contains(.followFork) { flags.append("follow_fork") }
        if header.flags.contains(.aggregated) { flags.append("aggregated") }
        return [
            "HEADER version=\(header.version) flags=\(flags.isEmpty ? "none" : flags.joined(separator: ","))"
                + " pid=\(header.pid) parent_pid=\(header.parentPid) start_time_us=\(header.startTimeMicros)"
                + " compressed=\(compressed)",
            "METADATA \(header.metadata.json.serialized())",
        ]
    }

    public static func line(_ record: Record, tables: CaptureTables) -> String {
        switch record {
        case .string(let id):
            return "STRING \(id) \(JSONValue.string(tables.string(id)).serialized())"
        case .code(let id):
            let code = tables.code(id)
            return "CODE \(id) name=\(code.name) qualname=\(code.qualifiedName) file=\(code.fileName) "
                + "first_line=\(code.firstLine) (\(tables.string(code.qualifiedName)) in \(tables.string(code.fileName)))"
        case .frame(let id):
            let frame = tables.frame(id)
            return "FRAME \(id) parent=\(frame.parent) code=\(frame.code) offset=\(frame.offset) line=\(frame.line)"
                + (frame.isEntry ? " entry" : "")
        case .thread(let number):
            return "THREAD \(number)"
        case .threadInfo(let number):
            let info = tables.thread(number)
            let name = info.name.map { JSONValue.string($0).serialized() } ?? "-"
            return "THREAD_INFO \(number) tid=\(info.osThreadID) name=\(name)"
        case .snapshot(let time, let rss):
            return "SNAPSHOT time_us=\(time) rss=\(rss)"
        case .end(let time):
            return "END time_us=\(time)"
        case .stopped(let cause, let time):
            return "STOPPED time_us=\(time) cause=\(JSONValue.string(cause.description).serialized())"
        case .munmap(let address, let length):
            return "MUNMAP \(hex(address)) \(length)"
        case .nativeFrame(let id):
            let frame = tables.nativeFrame(id)
            return "NATIVE_FRAME \(id) parent=\(frame.parent) address=\(hex(frame.returnAddress))"
        case .mappings:
            let objects = tables.mappingSets.last ?? []
            return (["MAPPINGS \(objects.count) objects"] + objects.map { object in
                let buildID = object.buildID.map { String($0 >> 4, radix: 16) + String($0 & 0xF, radix: 16) }.joined()
                let segments = object.segments.map { "\(hex($0.start))+\($0.size)" }.joined(separator: ",")
                return "  OBJECT \(JSONValue.string(object.path).serialized()) bias=\(hex(object.loadBias))"
                    + " build_id=\(buildID.isEmpty ? "-" : buildID) segments=\(segments)"
            }).joined(separator: "\n")
        case .alloc(let allocation):
            let native = allocation.nativeFrame == 0 ? "" : " native=\(allocation.nativeFrame)"
            return "ALLOC \(allocation.kind.name) \(hex(allocation.address)) \(allocation.size) frame=\(allocation.frame)"
                + "\(native) thread=\(allocation.thread)"
        case .free(let kind, let address, let thread):
            return "FREE \(kind.name) \(hex(address)) thread=\(thread)"
        case .site(let site):
            let native = site.nativeFrame == 0 ? "" : " native=\(site.nativeFrame)"
            return "SITE \(site.kind.name) frame=\(site.frame)\(native) thread=\(site.thread) size_bucket=\(site.sizeBucket)"
                + " peak=\(site.atPeak.count)/\(site.atPeak.bytes) live=\(site.live.count)/\(site.live.bytes)"
                + " allocated=\(site.allocated.count)/\(site.allocated.bytes)"
        case .aggregateTotals(let totals):
            return "TOTALS state=\(totals.state) peak=\(totals.peakBytes) peak_serial=\(totals.peakSerial)"
                + " peak_time_us=\(totals.peakTimeMicros.map(String.init) ?? "-")"
                + " allocated=\(totals.allocated.count)/\(totals.allocated.bytes) freed=\(totals.freed.count)/\(totals.freed.bytes)"
                + " live=\(totals.live.count)/\(totals.live.bytes)"
        case .heapSample(let time, let rss, let heap):
            return "HEAP_SAMPLE time_us=\(time) rss=\(rss) heap=\(heap)"
        }
    }

    private static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
}
