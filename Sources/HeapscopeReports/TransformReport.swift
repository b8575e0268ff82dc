import HeapscopeAnalysis
import HeapscopeFormat

/// `heapscope transform`: the view's figures in other tools' formats.
public enum TransformFormat: String, CaseIterable, Sendable {
    /// gprof2dot's JSON input format.
    case gprof2dot
    /// One row per site: allocator, count, bytes, thread, stack.
    case csv
    /// speedscope's file format (sampled profiles weighted by bytes).
    case speedscope
    /// Folded stacks for flamegraph.pl: `frame;frame;frame bytes`.
    case collapsed
    /// A gzipped pprof profile.proto.
    case pprof

    public var defaultExtension: String {
        switch self {
        case .gprof2dot: return "json"
        case .csv: return "csv"
        case .speedscope: return "speedscope.json"
        case .collapsed: return "folded"
        case .pprof: return "pb.gz"
        }
    }
}

public struct TransformReport {
    public var context: ReportContext

    public init(context: ReportContext) { self.context = context }

    private var analysis: ViewAnalysis { context.analysis }

    public func output(_ format: TransformFormat) -> [UInt8] {
        switch format {
        case .gprof2dot: return gprof2dot()
        case .csv: return csv()
        case .speedscope: return speedscope()
        case .collapsed: return collapsed()
        case .pprof: return pprof()
        }
    }

    // MARK: Stacks

    /// Stacks of the view, merged by stack (and thread when split), biggest first.
    private func stacks() -> [(stack: StackKey, thread: ThreadNumber, totals: Totals)] {
        var index: [StackKey: [ThreadNumber: Int]] = [:]
        var result: [(stack: StackKey, thread: ThreadNumber, totals: Totals)] = []
        for site in analysis.sites where site.totals.bytes > 0 || site.totals.count > 0 {
            let thread = context.options.splitThreads ? site.thread : 0
            let stack = StackKey(frame: site.frame, nativeFrame: site.nativeFrame)
            if let existing = index[stack]?[thread] {
                result[existing].totals = result[existing].totals + site.totals
            } else {
                index[stack, default: [:]][thread] = result.count
                result.append((stack, thread, site.totals))
            }
        }
        return result.sorted { a, b in
            a.totals.bytes != b.totals.bytes ? a.totals.bytes > b.totals.bytes : (a.stack, a.thread) < (b.stack, b.thread)
        }
    }

    /// Outermost first; never empty.
    private func outermostFirst(_ stack: StackKey) -> [Location] {
        let locations = context.locations(frame: stack.frame, nativeFrame: stack.nativeFrame)
        return locations.isEmpty ? [Location(function: "<no Python frame>", file: "", line: 0)] : locations
    }

    /// Outermost first (innermost first when inverted); never empty.
    private func path(_ stack: StackKey) -> [Location] {
        context.options.inverted ? outermostFirst(stack).reversed() : outermostFirst(stack)
    }

    /// `function (file:line)`; allocations with no Python frame: `<no Python frame> (<unknown>:0)`.
    private static func frameText(_ location: Location) -> String {
        "\(location.function) (\(location.file.isEmpty ? "<unknown>" : location.file):\(location.line))"
    }

    // MARK: collapsed

    public func collapsed() -> [UInt8] {
        var out: [UInt8] = []
        for stack in stacks() {
            var frames = path(stack.stack).map { Self.frameText($0).replacingSemicolons() }
            if context.options.splitThreads { frames.insert(context.threadName(stack.thread).replacingSemicolons(), at: 0) }
            out += Array((frames.joined(separator: ";") + " \(stack.totals.bytes)\n").utf8)
        }
        return out
    }

    // MARK: csv

    public func csv() -> [UInt8] {
        var out = Array("allocator,num_allocations,size,thread,tid,thread_name,stack_trace\n".utf8)
        let sites = analysis.sites
            .filter { $0.totals.bytes > 0 || $0.totals.count > 0 }
            .sorted { a, b in
                a.totals.bytes != b.totals.bytes ? a.totals.bytes > b.totals.bytes
                    : (a.frame, a.thread, a.kind.rawValue) < (b.frame, b.thread, b.kind.rawValue)
            }
        for site in sites {
            let info = Int(site.thread) < analysis.tables.threads.count ? analysis.tables.thread(site.thread) : nil
            let stack = outermostFirst(StackKey(frame: site.frame, nativeFrame: site.nativeFrame)).reversed()
                .map { "\($0.function);\($0.file);\($0.line)" }.joined(separator: "|")
            let fields = [site.kind.name, String(site.totals.count), String(site.totals.bytes), String(site.thread),
                          info.map { String($0.osThreadID) } ?? "", info?.name ?? "", stack]
            out += Array((fields.map(Self.csvField).joined(separator: ",") + "\n").utf8)
        }
        return out
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingQuotes() + "\""
    }

    // MARK: gprof2dot

    public func gprof2dot() -> [UInt8] {
        var functionIndex: [Location: Int] = [:]
        var functions: [Location] = []
        var json = ReportJSONWriter()
        json.raw("{\"version\":0,\"costs\":[{\"description\":")
        json.string("\(context.options.description): \(context.options.view.explanation)")
        json.raw(",\"unit\":\"bytes\"}],\"events\":[")
        var first = true
        for stack in stacks() {
            // callchain: callee first; functions named by (name, file)
            var chain: [Int] = []
            for location in outermostFirst(stack.stack).reversed() {
                let key = Location(function: location.function, file: location.file, line: 0)
                let index = functionIndex[key] ?? {
                    functions.append(key)
                    functionIndex[key] = functions.count - 1
                    return functions.count - 1
                }()
                chain.append(index)
            }
            if !first { json.comma() }
            first = false
            json.raw("{\"callchain\":")
            json.unsignedArray(chain)
            json.raw(",\"cost\":[")
            json.unsigned(stack.totals.bytes)
            json.raw("]}")
        }
        json.raw("],\"functions\":[")
        for (index, function) in functions.enumerated() {
            if index > 0 { json.comma() }
            json.raw("{\"name\":")
            json.string(function.function)
            json.raw(",\"module\":")
            json.string(function.file)
            json.raw("}")
        }
        json.raw("]}\n")
        return json.bytes
    }

    // MARK: speedscope

    public func speedscope() -> [UInt8] {
        var frameIndex: [Location: Int] = [:]
        var frames: [Location] = []
        func index(_ location: Location) -> Int {
            if let known = frameIndex[location] { return known }
            frames.append(location)
            frameIndex[location] = frames.count - 1
            return frames.count - 1
        }
        // One profile per thread when split, else one.
        var profiles: [(name: String, samples: [[Int]], weights: [UInt64])] = []
        var profileOfThread: [ThreadNumber: Int] = [:]
        for stack in stacks() {
            let profile: Int
            if let known = profileOfThread[stack.thread] {
                profile = known
            } else {
                let name = context.options.splitThreads
                    ? "\(context.capturePath) \(context.threadName(stack.thread)): \(context.options.view.name)"
                    : "\(context.capturePath): \(context.options.description)"
                profiles.append((name, [], []))
                profile = profiles.count - 1
                profileOfThread[stack.thread] = profile
            }
            profiles[profile].samples.append(path(stack.stack).map(index))
            profiles[profile].weights.append(stack.totals.bytes)
        }
        if profiles.isEmpty { profiles.append(("\(context.capturePath): \(context.options.description)", [], [])) }

        var json = ReportJSONWriter()
        json.raw("{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"name\":")
        json.string(context.title)
        json.raw(",\"exporter\":\"heapscope\",\"activeProfileIndex\":0,\"shared\":{\"frames\":[")
        for (position, frame) in frames.enumerated() {
            if position > 0 { json.comma() }
            json.raw("{\"name\":")
            json.string(frame.function)
            if !frame.file.isEmpty {
                json.raw(",\"file\":")
                json.string(frame.file)
                json.raw(",\"line\":")
                json.unsigned(UInt64(max(0, frame.line)))
            }
            json.raw("}")
        }
        json.raw("]},\"profiles\":[")
        for (position, profile) in profiles.enumerated() {
            if position > 0 { json.comma() }
            json.raw("{\"type\":\"sampled\",\"name\":")
            json.string(profile.name)
            json.raw(",\"unit\":\"bytes\",\"startValue\":0,\"endValue\":")
            json.unsigned(profile.weights.reduce(0, &+))
            json.raw(",\"samples\":[")
            for (sampleIndex, sample) in profile.samples.enumerated() {
                if sampleIndex > 0 { json.comma() }
                json.unsignedArray(sample)
            }
            json.raw("],\"weights\":")
            json.unsignedArray(profile.weights)
            json.raw("}")
        }
        json.raw("]}\n")
        return json.bytes
    }

    // MARK: pprof

    /// profile.proto (github.com/google/pprof/blob/main/proto/profile.proto),
    /// gzipped. Sample types: alloc_objects/count, alloc_space/bytes (every
    /// allocation made at the stack), inuse_objects/count, inuse_space/bytes (the
    /// view: at the peak, leaked, or temporary).
    public func pprof() -> [UInt8] {
        var strings: [String] = [""]
        var stringIndex: [String: Int64] = ["": 0]
        func string(_ text: String) -> Int64 {
            if let known = stringIndex[text] { return known }
            strings.append(text)
            stringIndex[text] = Int64(strings.count - 1)
            return Int64(strings.count - 1)
        }
        struct FunctionKey: Hashable { var name: String; var file: String }
        var functionIDs: [FunctionKey: UInt64] = [:]
        var functions = ProtoWriter()
        var locationIDs: [Location: UInt64] = [:]
        var locations = ProtoWriter()
        let tables = analysis.tables

        func functionID(_ location: Location, firstLine: Int) -> UInt64 {
            let key = FunctionKey(name: location.function, file: location.file)
            if let known = functionIDs[key] { return known }
            let id = UInt64(functionIDs.count + 1)
            functionIDs[key] = id
            var function = ProtoWriter()
            function.uint(1, id)
            function.int(2, string(location.function))
            function.int(3, string(location.function))
            function.int(4, string(location.file))
            function.int(5, Int64(firstLine))
            functions.message(5, function)
            return id
        }
        func locationID(frame: FrameID) -> UInt64 {
            let location = frame == 0 ? Location(function: "<no Python frame>", file: "", line: 0) : tables.location(ofFrame: frame)
            if let known = locationIDs[location] { return known }
            let id = UInt64(locationIDs.count + 1)
            locationIDs[location] = id
            let firstLine = frame == 0 ? 0 : tables.code(tables.frame(frame).code).firstLine
            var line = ProtoWriter()
            line.uint(1, functionID(location, firstLine: firstLine))
            line.int(2, Int64(location.line))
            var message = ProtoWriter()
            message.uint(1, id)
            message.message(4, line)
            locations.message(4, message)
            return id
        }

        var profile = ProtoWriter()
        for (type, unit) in [("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"), ("inuse_space", "bytes")] {
            var valueType = ProtoWriter()
            valueType.int(1, string(type))
            valueType.int(2, string(unit))
            profile.message(1, valueType)
        }
        let inUse = analysis.byStack
        let frameCount = max(inUse.byFrame.count, analysis.allocatedByFrame.count)
        for index in 0..<frameCount {
            let frame = FrameID(index)
            let allocated = index < analysis.allocatedByFrame.count ? analysis.allocatedByFrame[index] : .zero
            let live = index < inUse.byFrame.count ? inUse[frame] : .zero
            guard allocated.count > 0 || live.count > 0 || live.bytes > 0 else { continue }
            var ids: [UInt64] = []
            var current = frame
            if current == 0 { ids.append(locationID(frame: 0)) }
            while current != 0 {
                ids.append(locationID(frame: current))
                current = tables.frame(current).parent
            }
            var sample = ProtoWriter()
            sample.packed(1, ids)
            sample.packed(2, [UInt64(allocated.count), allocated.bytes, UInt64(live.count), live.bytes])
            profile.message(2, sample)
        }
        profile.append(locations)
        profile.append(functions)
        var periodType = ProtoWriter()
        periodType.int(1, string("space"))
        periodType.int(2, string("bytes"))
        profile.message(11, periodType)
        profile.int(12, 1)
        profile.int(9, Int64(clamping: analysis.header.startTimeMicros) &* 1000)
        profile.int(10, Int64(clamping: analysis.durationMicros ?? 0) &* 1000)
        profile.int(13, string("heapscope \(context.options.description) of \(context.capturePath)"))
        profile.int(14, string("inuse_space"))
        // Last: every string is interned by now.
        for text in strings { profile.string(6, text) }
        return Gzip.stored(profile.bytes)
    }
}

/// A minimal protobuf encoder: varints, and length-delimited fields.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    mutating func key(_ field: Int, wireType: Int) { varint(UInt64(field << 3 | wireType)) }

    /// A varint field, left out when 0 (proto3 default).
    mutating func uint(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        key(field, wireType: 0)
        varint(value)
    }

    mutating func int(_ field: Int, _ value: Int64) { uint(field, UInt64(bitPattern: value)) }

    mutating func message(_ field: Int, _ body: ProtoWriter) {
        key(field, wireType: 2)
        varint(UInt64(body.bytes.count))
        bytes += body.bytes
    }

    /// Always written (string_table[0] must be the empty string).
    mutating func string(_ field: Int, _ text: String) {
        let utf8 = Array(text.utf8)
        key(field, wireType: 2)
        varint(UInt64(utf8.count))
        bytes += utf8
    }

    mutating func packed(_ field: Int, _ values: [UInt64]) {
        var body = ProtoWriter()
        for value in values { body.varint(value) }
        message(field, body)
    }

    /// Fields already encoded (concatenation is how repeated fields are written).
    mutating func append(_ other: ProtoWriter) { bytes += other.bytes }
}

/// gzip framing (RFC 1952) around stored deflate blocks (RFC 1951, BTYPE 00): no
/// compression library needed, and every gzip reader accepts it.
enum Gzip {
    static func stored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xFF]
        var offset = 0
        repeat {
            let length = min(65_535, data.count - offset)
            let final: UInt8 = offset + length == data.count ? 1 : 0
            out.append(final)
            out.append(UInt8(length & 0xFF)); out.append(UInt8(length >> 8))
            let complement = ~UInt16(length)
            out.append(UInt8(complement & 0xFF)); out.append(UInt8(complement >> 8))
            out += data[offset..<(offset + length)]
            offset += length
        } while offset < data.count
        let crc = crc32(data)
        let size = UInt32(truncatingIfNeeded: data.count)
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: crc >> UInt32(shift))) }
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: size >> UInt32(shift))) }
        return out
    }

    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return ~crc
    }
}

extension String {
    func replacingSemicolons() -> String { String(map { $0 == ";" ? ":" : $0 }) }
    func replacingQuotes() -> String {
        var out = ""
        for character in self {
            if character == "\"" { out += "\"\"" } else { out.append(character) }
        }
        return out
    }
}
