import HeapscopeFormat

/// Builds a capture in memory, record by record, as the tracker would write it.
/// Meant for tests and tools that need exact, synthetic captures.
///
///     var writer = CaptureWriter()
///     let frame = writer.stack([("main", "app.py", 3), ("load", "app.py", 12)])
///     writer.thread(1)
///     writer.alloc(.pymemObj, address: 0x1000, size: 64, frame: frame)
///     writer.end(timeMicros: 1_000)
///     let bytes = writer.bytes
public struct CaptureWriter: Sendable {
    public private(set) var bytes: [UInt8]
    private var previousAddress: UInt64 = 0
    private var previousFrame: FrameID = 0
    private var previousNativeFrame: NativeFrameID = 0
    private var stringIDs: [String: StringID] = [:]
    private var codes: [FunctionKey: (id: CodeID, firstLine: Int)] = [:]
    private var frameIDs: [FrameKey: FrameID] = [:]
    private var codeCount: CodeID = 0
    private var frameCount: FrameID = 0
    private var nativeFrameCount: NativeFrameID = 0
    /// ALLOC records carry a native frame id (flag bit 0).
    private let hasNativeStacks: Bool

    private struct FunctionKey: Hashable { var function: String, file: String }
    private struct FrameKey: Hashable { var parent: FrameID, code: CodeID, position: Int }   // position: as FRAME stores it

    /// Lines a code object made by `stack` can hold, from its first line on.
    public static let linesPerFunction = 256

    public static let defaultMetadata: JSONValue = .object([
        ("command_line", .array([.string("app.py")])),
        ("python_version", .string("3.11.7")),
        ("python_executable", .string("/usr/bin/python3")),
        ("python_allocator", .string("pymalloc")),
        ("native", .bool(false)),
        ("trace_python_allocators", .bool(true)),
        ("follow_fork", .bool(false)),
        ("memory_interval_ms", .int(10)),
        ("platform", .string("linux-x86_64")),
        ("source", .string("run")),
    ])

    public init(flags: CaptureFlags = .pythonAllocators, version: UInt16 = CaptureFile.version,
                pid: UInt32 = 4242, parentPid: UInt32 = 0, startTimeMicros: UInt64 = 1_700_000_000_000_000,
                metadata: JSONValue = CaptureWriter.defaultMetadata) {
        let header = CaptureHeader(version: version, flags: flags, pid: pid, parentPid: parentPid,
                                   startTimeMicros: startTimeMicros, metadata: CaptureMetadata(json: metadata))
        bytes = header.encoded()
        hasNativeStacks = flags.contains(.native)
    }

    // MARK: Definitions

    /// Writes a STRING the first time `text` is seen; returns its id.
    @discardableResult
    public mutating func string(_ text: String) -> StringID {
        if let id = stringIDs[text] { return id }
        let utf8 = Array(text.utf8)
        bytes.append(RecordTag.string)
        varint(UInt64(utf8.count))
        bytes += utf8
        let id = StringID(stringIDs.count + 1)
        stringIDs[text] = id
        return id
    }

    /// Writes a CODE record (always a new id).
    @discardableResult
    public mutating func code(name: StringID, qualifiedName: StringID, fileName: StringID,
                              firstLine: Int, lineTable: [UInt8]) -> CodeID {
        bytes.append(RecordTag.code)
        for value in [UInt64(name), UInt64(qualifiedName), UInt64(fileName), UInt64(firstLine), UInt64(lineTable.count)] {
            varint(value)
        }
        bytes += lineTable
        codeCount += 1
        return codeCount
    }

    /// Writes a FRAME the first time (parent, code, offset) is seen; returns its id.
    @discardableResult
    public mutating func frame(parent: FrameID, code: CodeID, offset: Int, isEntry: Bool = false) -> FrameID {
        let key = FrameKey(parent: parent, code: code, position: offset << 1 | (isEntry ? 1 : 0))
        if let id = frameIDs[key] { return id }
        bytes.append(RecordTag.frame)
        varint(UInt64(parent))
        varint(UInt64(code))
        varint(UInt64(key.position))
        frameCount += 1
        frameIDs[key] = frameCount
        return frameCount
    }

    /// Defines (once) the strings, code objects and frames of a Python stack given
    /// outermost frame first, and returns the innermost frame's id. A function's
    /// code object starts at the first line it is given with, or at `definedAt`.
    public mutating func stack(_ frames: [(function: String, file: String, line: Int)], definedAt: [String: Int] = [:]) -> FrameID {
        var parent: FrameID = 0
        for entry in frames {
            let code = functionCode(entry.function, file: entry.file, firstLine: definedAt[entry.function] ?? entry.line)
            precondition((0..<Self.linesPerFunction).contains(entry.line - code.firstLine),
                         "line \(entry.line) of \(entry.function) is outside its code object (from line \(code.firstLine))")
            parent = frame(parent: parent, code: code.id, offset: entry.line - code.firstLine)
        }
        return parent
    }

    private mutating func functionCode(_ function: String, file: String, firstLine: Int) -> (id: CodeID, firstLine: Int) {
        let key = FunctionKey(function: function, file: file)
        if let known = codes[key] { return known }
        let name = string(String(function.split(separator: ".").last ?? Substring(function)))
        let qualifiedName = string(function)
        let fileName = string(file)
        let lines: [Int?] = (firstLine..<(firstLine + Self.linesPerFunction)).map { $0 }
        let id = code(name: name, qualifiedName: qualifiedName, fileName: fileName, firstLine: firstLine,
                      lineTable: Self.lineTable(firstLine: firstLine, lines: lines))
        codes[key] = (id, firstLine)
        return (id, firstLine)
    }

    /// A PEP 657 location table giving code unit `i` the line `lines[i]` (nil: no location).
    public static func lineTable(firstLine: Int, lines: [Int?]) -> [UInt8] {
        var table: [UInt8] = []
        var current = firstLine
        for line in lines {
            guard let line else {
                table.append(0x80 | 15 << 3)  // no location, one code unit
                continue
            }
            table.append(0x80 | 13 << 3)  // no columns, one code unit, then the line delta
            let delta = line - current
            var value = UInt64(delta < 0 ? (-delta << 1) | 1 : delta << 1)
            repeat {
                var chunk = UInt8(value & 0x3F)
                value >>= 6
                if value != 0 { chunk |= 0x40 }
                table.append(chunk)
            } while value != 0
            current = line
        }
        return table
    }

    /// Writes a NATIVE_FRAME (always a new id).
    @discardableResult
    public mutating func nativeFrame(parent: NativeFrameID, returnAddress: UInt64) -> NativeFrameID {
        bytes.append(RecordTag.nativeFrame)
        varint(UInt64(parent))
        varint(returnAddress)
        nativeFrameCount += 1
        return nativeFrameCount
    }

    /// Writes a MAPPINGS record (defining the path strings first).
    public mutating func mappings(_ objects: [LoadedObject]) {
        let paths = objects.map { string($0.path) }
        bytes.append(RecordTag.mappings)
        varint(UInt64(objects.count))
        for (object, path) in zip(objects, paths) {
            varint(UInt64(path))
            varint(object.loadBias)
            varint(UInt64(object.buildID.count))
            bytes += object.buildID
            varint(UInt64(object.segments.count))
            for segment in object.segments {
                varint(segment.start)
                varint(segment.size)
            }
        }
    }

    // MARK: Events

    public mutating func thread(_ number: ThreadNumber) {
        bytes.append(RecordTag.thread)
        varint(UInt64(number))
    }

    public mutating func threadInfo(_ number: ThreadNumber, osThreadID: UInt64, name: String?) {
        let nameID = name.map { string($0) } ?? 0
        bytes.append(RecordTag.threadInfo)
        varint(UInt64(number))
        varint(osThreadID)
        varint(UInt64(nameID))
    }

    public mutating func snapshot(timeMicros: UInt64, rssBytes: UInt64) {
        bytes.append(RecordTag.snapshot)
        varint(timeMicros)
        varint(rssBytes)
    }

    public mutating func end(timeMicros: UInt64) {
        bytes += endRecord(timeMicros: timeMicros)
    }

    public mutating func stopped(_ cause: StopCause, timeMicros: UInt64) {
        bytes += cause.record(timeMicros: timeMicros)
    }

    /// `nativeFrame` is written only when the capture has native stacks (flag bit 0).
    /// Written as ALLOC_SAME_STACK when the stacks equal the previous ALLOC's, as the tracker does.
    public mutating func alloc(_ kind: AllocatorKind, address: UInt64, size: UInt64, frame: FrameID,
                               nativeFrame: NativeFrameID = 0) {
        let sameStack = frame == previousFrame && nativeFrame == previousNativeFrame
        bytes.append((sameStack ? RecordTag.allocSameStackBase : RecordTag.allocBase) + kind.rawValue)
        addressDelta(address)
        varint(size)
        if !sameStack {
            varint(UInt64(frame))
            if hasNativeStacks { varint(UInt64(nativeFrame)) }
            previousFrame = frame
            previousNativeFrame = nativeFrame
        }
    }

    public mutating func free(_ kind: AllocatorKind, address: UInt64) {
        bytes.append(RecordTag.freeBase + kind.rawValue)
        addressDelta(address)
    }

    public mutating func munmap(address: UInt64, length: UInt64) {
        bytes.append(RecordTag.munmap)
        addressDelta(address)
        varint(length)
    }

    // Aggregated captures (flags `.aggregated`, version 2): the one encoder's records.

    public mutating func site(_ site: AggregatedSite) { bytes += site.encoded }

    public mutating func aggregateTotals(_ totals: AggregateTotals) { bytes += totals.encoded }

    public mutating func heapSample(timeMicros: UInt64, rssBytes: UInt64, heapBytes: UInt64) {
        bytes += heapSampleRecord(timeMicros: timeMicros, rssBytes: rssBytes, heapBytes: heapBytes)
    }

    /// The bytes written so far, which the writer then forgets (it keeps its
    /// state): a long capture is written out piece by piece in flat memory.
    public mutating func takeBytes() -> [UInt8] {
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes
    }

    /// Appends bytes as they are, e.g. to damage a capture on purpose.
    public mutating func raw(_ data: [UInt8]) {
        bytes += data
    }

    // MARK: Encoding

    private mutating func addressDelta(_ address: UInt64) {
        varint(VarInt.zigzag(Int64(bitPattern: address &- previousAddress)))
        previousAddress = address
    }

    private mutating func varint(_ value: UInt64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: VarInt.maxBytes) { scratch in
            let count = VarInt.write(value, to: scratch.baseAddress!)
            bytes.append(contentsOf: scratch[0..<count])
        }
    }
}
