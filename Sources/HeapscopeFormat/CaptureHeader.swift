/// The fixed header and the metadata at the start of every capture (docs/FORMAT.md, "Header").
public struct CaptureHeader: Sendable {
    public var version: UInt16
    public var flags: CaptureFlags
    public var pid: UInt32
    /// 0, or for a forked child the pid of the process it forked from.
    public var parentPid: UInt32
    public var startTimeMicros: UInt64
    public var metadata: CaptureMetadata
    /// Offset of the first record in the stream.
    public var size: Int

    public init(version: UInt16 = CaptureFile.version, flags: CaptureFlags, pid: UInt32, parentPid: UInt32 = 0,
                startTimeMicros: UInt64, metadata: CaptureMetadata, size: Int = 0) {
        self.version = version
        self.flags = flags
        self.pid = pid
        self.parentPid = parentPid
        self.startTimeMicros = startTimeMicros
        self.metadata = metadata
        self.size = size
    }

    /// Parses the header at the start of `stream`.
    static func parse(_ stream: UnsafeBufferPointer<UInt8>) throws(CaptureError) -> CaptureHeader {
        let magic = CaptureFile.magic
        let magicPrefix = min(stream.count, magic.count)
        guard stream.prefix(magicPrefix).elementsEqual(magic.prefix(magicPrefix)) else { throw .notACapture }
        guard stream.count >= 10 else { throw .headerCutShort }
        let version = readLittleEndian(stream, at: 8, as: UInt16.self)
        if version > CaptureFile.newestVersion { throw .newerVersion(version) }
        if version == 0 { throw .corrupt(offset: 8, reason: "format version 0 does not exist") }
        guard stream.count >= CaptureFile.fixedHeaderSize else { throw .headerCutShort }
        let metadataLength = Int(readLittleEndian(stream, at: 32, as: UInt32.self))
        let size = CaptureFile.fixedHeaderSize + metadataLength
        guard stream.count >= size else { throw .headerCutShort }

        let json: JSONValue
        do {
            json = try JSONValue.parse(stream[CaptureFile.fixedHeaderSize..<size])
        } catch {
            throw .corrupt(offset: CaptureFile.fixedHeaderSize + error.offset, reason: "metadata is not valid JSON (\(error.reason))")
        }
        guard case .object = json else {
            throw .corrupt(offset: CaptureFile.fixedHeaderSize, reason: "metadata is not a JSON object")
        }
        return CaptureHeader(
            version: version,
            flags: CaptureFlags(rawValue: readLittleEndian(stream, at: 10, as: UInt16.self)),
            pid: readLittleEndian(stream, at: 12, as: UInt32.self),
            parentPid: readLittleEndian(stream, at: 16, as: UInt32.self),
            startTimeMicros: readLittleEndian(stream, at: 24, as: UInt64.self),
            metadata: CaptureMetadata(json: json),
            size: size)
    }

    /// The header as bytes, as the tracker writes it.
    public func encoded() -> [UInt8] {
        let metadataBytes = Array(metadata.json.serialized().utf8)
        var out = CaptureFile.magic
        appendLittleEndian(version, to: &out)
        appendLittleEndian(flags.rawValue, to: &out)
        appendLittleEndian(pid, to: &out)
        appendLittleEndian(parentPid, to: &out)
        appendLittleEndian(UInt32(0), to: &out)
        appendLittleEndian(startTimeMicros, to: &out)
        appendLittleEndian(UInt32(metadataBytes.count), to: &out)
        return out + metadataBytes
    }
}

private func readLittleEndian<T: FixedWidthInteger>(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int, as: T.Type) -> T {
    var value: T = 0
    for index in 0..<MemoryLayout<T>.size {
        value |= T(bytes[offset + index]) << (8 * index)
    }
    return value
}

private func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    for index in 0..<MemoryLayout<T>.size {
        out.append(UInt8(truncatingIfNeeded: value >> (8 * index)))
    }
}

/// The metadata object of a capture, with the documented keys typed. Keys this
/// reader does not know stay in `json`.
public struct CaptureMetadata: Sendable {
    public var json: JSONValue

    public init(json: JSONValue) { self.json = json }

    public var commandLine: [String] { json["command_line"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    public var pythonVersion: String? { json["python_version"]?.stringValue }
    public var pythonExecutable: String? { json["python_executable"]?.stringValue }
    public var pythonAllocator: String? { json["python_allocator"]?.stringValue }
    public var native: Bool? { json["native"]?.boolValue }
    public var tracePythonAllocators: Bool? { json["trace_python_allocators"]?.boolValue }
    public var followFork: Bool? { json["follow_fork"]?.boolValue }
    public var memoryIntervalMs: Int64? { json["memory_interval_ms"]?.intValue }
    public var platform: String? { json["platform"]?.stringValue }
    public var source: String? { json["source"]?.stringValue }

    /// Major and minor version of the profiled Python, when recorded.
    public var pythonMajorMinor: (major: Int, minor: Int)? {
        guard let parts = pythonVersion?.split(separator: "."), parts.count >= 2,
              let major = Int(parts[0]), let minor = Int(parts[1]) else { return nil }
        return (major, minor)
    }
}
