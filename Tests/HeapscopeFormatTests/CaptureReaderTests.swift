import Glibc
import Testing
import HeapscopeFormat
import HeapscopeTestSupport

/// Reads every record of `bytes`; returns them and the reader at the end.
func readAll(_ bytes: [UInt8]) throws(CaptureError) -> (records: [Record], reader: CaptureReader) {
    var reader = try CaptureReader(bytes: bytes)
    var records: [Record] = []
    while let record = try reader.next() { records.append(record) }
    return (records, reader)
}

/// A small capture using every record kind.
func sampleCapture(end: Bool = true) -> (bytes: [UInt8], frame: FrameID) {
    var writer = CaptureWriter()
    writer.threadInfo(1, osThreadID: 1234, name: "MainThread")
    writer.thread(1)
    let frame = writer.stack([("main", "app.py", 3), ("Loader.load", "lib/loader.py", 40)], definedAt: ["Loader.load": 38])
    writer.alloc(.pymemObj, address: 0x7F00_0000_1000, size: 64, frame: frame)
    writer.alloc(.malloc, address: 0x5555_0000_0010, size: 1 << 20, frame: 0)
    writer.snapshot(timeMicros: 10_000, rssBytes: 50 << 20)
    writer.thread(2)
    writer.free(.pymemObj, address: 0x7F00_0000_1000)
    writer.alloc(.mmap, address: 0x7F10_0000_0000, size: 1 << 16, frame: frame)
    writer.munmap(address: 0x7F10_0000_0000, length: 4096)
    if end { writer.end(timeMicros: 20_000) }
    return (writer.bytes, frame)
}

@Suite struct CaptureReaderTests {
    @Test func readsWhatTheWriterWrote() throws {
        let (bytes, frame) = sampleCapture()
        let (records, reader) = try readAll(bytes)
        #expect(!reader.isTruncated)
        #expect(reader.header.version == 1)
        #expect(reader.header.flags == .pythonAllocators)
        #expect(reader.header.pid == 4242)
        #expect(reader.header.metadata.pythonVersion == "3.11.7")
        #expect(reader.header.metadata.commandLine == ["app.py"])

        let events = records.filter {
            switch $0 {
            case .string, .code, .frame: return false
            default: return true
            }
        }
        #expect(events == [
            .threadInfo(1),
            .thread(1),
            .alloc(Allocation(kind: .pymemObj, address: 0x7F00_0000_1000, size: 64, frame: frame, thread: 1)),
            .alloc(Allocation(kind: .malloc, address: 0x5555_0000_0010, size: 1 << 20, frame: 0, thread: 1)),
            .snapshot(timeMicros: 10_000, rssBytes: 50 << 20),
            .thread(2),
            .free(kind: .pymemObj, address: 0x7F00_0000_1000, thread: 2),
            .alloc(Allocation(kind: .mmap, address: 0x7F10_0000_0000, size: 1 << 16, frame: frame, thread: 2)),
            .munmap(address: 0x7F10_0000_0000, length: 4096),
            .end(timeMicros: 20_000),
        ])
        #expect(reader.tables.stack(ofFrame: frame) == [
            Location(function: "Loader.load", file: "lib/loader.py", line: 40),
            Location(function: "main", file: "app.py", line: 3),
        ])
        #expect(reader.tables.function(ofFrame: frame) == Location(function: "Loader.load", file: "lib/loader.py", line: 38))
        #expect(reader.tables.thread(1) == ThreadInfo(number: 1, osThreadID: 1234, name: "MainThread"))
        #expect(reader.tables.location(ofFrame: 0) == .unknown)
    }

    @Test func resolvesStacksWhileReading() throws {
        var writer = CaptureWriter()
        let first = writer.stack([("a", "x.py", 1)])
        writer.alloc(.malloc, address: 16, size: 1, frame: first)
        let second = writer.stack([("a", "x.py", 1), ("b", "x.py", 5)])
        writer.alloc(.malloc, address: 32, size: 1, frame: second)
        var reader = try CaptureReader(bytes: writer.bytes)
        var stacks: [[String]] = []
        while let record = try reader.next() {
            if case .alloc(let allocation) = record {
                stacks.append(reader.tables.stack(ofFrame: allocation.frame).map(\.function))
            }
        }
        #expect(stacks == [["a"], ["b", "a"]])
        #expect(reader.isTruncated)  // no END
    }

    @Test func linesFollowTheLineTable() throws {
        var writer = CaptureWriter()
        let name = writer.string("f")
        let file = writer.string("f.py")
        let code = writer.code(name: name, qualifiedName: name, fileName: file, firstLine: 100,
                               lineTable: CaptureWriter.lineTable(firstLine: 100, lines: [100, 101, nil, 250]))
        let frames = (0..<5).map { writer.frame(parent: 0, code: code, offset: $0) }
        let (_, reader) = try readAll(writer.bytes)
        // No location, or past the table: the function's first line.
        #expect(frames.map { reader.tables.frame($0).line } == [100, 101, 100, 250, 100])
    }

    @Test func olderPythonsFallBackToTheFirstLine() throws {
        var metadata = CaptureWriter.defaultMetadata
        if case .object(var members) = metadata {
            members = members.map { $0.key == "python_version" ? ($0.key, .string("3.10.13")) : $0 }
            metadata = .object(members)
        }
        var writer = CaptureWriter(metadata: metadata)
        let frame = writer.stack([("f", "f.py", 7)], definedAt: ["f": 5])
        let (_, reader) = try readAll(writer.bytes)
        #expect(reader.tables.frame(frame).line == 5)
    }

    // MARK: Errors

    @Test func fileErrors() throws {
        #expect(throws: CaptureError.fileNotFound) { try CaptureReader(path: "/nonexistent/capture.hsc") }
        let empty = temporaryPath("empty.hsc")
        defer { unlink(empty) }
        try writeFile(empty, [])
        #expect(throws: CaptureError.emptyFile) { try CaptureReader(path: empty) }
        #expect(throws: CaptureError.unreadable(reason: "it is a directory")) { try CaptureReader(path: "/tmp") }

        let text = temporaryPath("text.hsc")
        defer { unlink(text) }
        try writeFile(text, Array("hello, world\n".utf8))
        #expect(throws: CaptureError.notACapture) { try CaptureReader(path: text) }

        let good = temporaryPath("good.hsc")
        defer { unlink(good) }
        try writeFile(good, sampleCapture().bytes)
        var reader = try CaptureReader(path: good)
        while try reader.next() != nil {}
        #expect(!reader.isTruncated && reader.recordCount > 10)
    }

    @Test func headerErrors() {
        #expect(throws: CaptureError.newerVersion(3)) { try CaptureReader(bytes: CaptureWriter(version: 3).bytes) }
        #expect(throws: CaptureError.notACapture) { try CaptureReader(bytes: [0x89, 0x48, 0x53, 0x00]) }
        var badMetadata = CaptureWriter().bytes
        badMetadata[CaptureFile.fixedHeaderSize] = UInt8(ascii: "[")
        #expect(throws: CaptureError.self) { try CaptureReader(bytes: badMetadata) }
        #expect(CaptureError.newerVersion(3).description
                == "written by a newer heapscope (format 3); this one reads up to 2")
    }

    @Test func corruptRecords() throws {
        let headerSize = CaptureWriter().bytes.count
        func corruption(_ build: (inout CaptureWriter) -> Void) -> CaptureError? {
            var writer = CaptureWriter()
            build(&writer)
            do {
                _ = try readAll(writer.bytes)
                return nil
            } catch {
                return error
            }
        }
        #expect(corruption { $0.raw([0x7E]) } == .corrupt(offset: headerSize, reason: "unknown record tag 0x7e"))
        #expect(corruption { $0.raw([0x2D, 0, 0, 0]) } == .corrupt(offset: headerSize, reason: "unknown record tag 0x2d"))
        #expect(corruption { $0.alloc(.malloc, address: 1, size: 1, frame: 3) }
                == .corrupt(offset: headerSize, reason: "undefined frame 3"))
        #expect(corruption { $0.raw([RecordTag.frame, 0, 1, 0]) }
                == .corrupt(offset: headerSize, reason: "undefined code object 1"))
        #expect(corruption { $0.raw([RecordTag.code, 1, 0, 0, 1, 0]) }
                == .corrupt(offset: headerSize, reason: "undefined string 1"))
        #expect(corruption { $0.thread(2) } == .corrupt(offset: headerSize, reason: "thread number 2 out of sequence"))
        #expect(corruption { $0.raw([RecordTag.end] + [UInt8](repeating: 0xFF, count: 10) + [0]) }
                == .corrupt(offset: headerSize, reason: "varint longer than 10 bytes"))
        // Ten bytes encoding exactly 64 bits are fine.
        #expect(corruption { $0.raw([RecordTag.end] + [UInt8](repeating: 0xFF, count: 9) + [1]) } == nil)
        // Records before the damage were read.
        var writer = CaptureWriter()
        writer.thread(1)
        writer.raw([0x00])
        var reader = try CaptureReader(bytes: writer.bytes)
        #expect(try reader.next() == .thread(1))
        #expect(throws: CaptureError.corrupt(offset: headerSize + 2, reason: "unknown record tag 0x0")) { try reader.next() }
        #expect(try reader.next() == nil)
    }

    // MARK: Truncation and damage

    /// Cut a capture at every byte: each prefix reads as truncated or fails with
    /// a header error, never traps or hangs, and keeps every complete record.
    @Test func cutAtEveryByte() throws {
        let (bytes, _) = sampleCapture()
        let (allRecords, full) = try readAll(bytes)
        #expect(!full.isTruncated)
        for length in 0..<bytes.count {
            let prefix = Array(bytes[0..<length])
            do {
                let (records, reader) = try readAll(prefix)
                #expect(reader.isTruncated, "cut at \(length)")
                #expect(Array(allRecords.prefix(records.count)) == records, "cut at \(length)")
            } catch {
                #expect([.emptyFile, .headerCutShort].contains(error), "cut at \(length): \(error)")
                #expect(length < CaptureFile.fixedHeaderSize + 400)
            }
        }
    }

    @Test func randomBytesNeverTrap() {
        var generator = SplitMix(seed: 42)
        let header = CaptureWriter().bytes
        for round in 0..<3000 {
            let noise = (0..<Int(generator.next() % 200)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            // Half the rounds behind a valid header, so the record decoder sees the noise.
            let bytes = round % 2 == 0 ? header + noise : noise
            if let (_, reader) = try? readAll(bytes) { #expect(reader.isFinished) }
        }
    }

    /// A byte flipped anywhere after the header: the records wholly before it
    /// read unchanged, and the reader either reads on to the end (a changed
    /// value) or stops with `corrupt` at a record at or after the first one the
    /// flip touched (a changed length can misalign what follows); nothing else.
    @Test func flippedBytesGiveCorruptOrChangedRecords() throws {
        let (sample, _) = sampleCapture()
        var original = try CaptureReader(bytes: sample)
        var records: [Record] = []
        var ends: [Int] = []   // where each record ends
        while let record = try original.next() {
            if !records.isEmpty { ends.append(original.recordOffset) }
            records.append(record)
        }
        ends.append(sample.count)
        let headerSize = original.header.size
        var corruptCount = 0
        for index in headerSize..<sample.count {
            var damaged = sample
            damaged[index] ^= 0xA5
            var reader = try CaptureReader(bytes: damaged)
            var read: [Record] = []
            do {
                while let record = try reader.next() { read.append(record) }
                #expect(reader.isFinished, "byte \(index)")
            } catch {
                guard case .corrupt(let offset, let reason) = error else {
                    Issue.record("byte \(index): \(error)")
                    continue
                }
                corruptCount += 1
                let firstTouched = ends.last { $0 <= index } ?? headerSize
                #expect(offset >= firstTouched && offset < damaged.count && !reason.isEmpty, "byte \(index): \(error)")
            }
            let intact = ends.prefix { $0 <= index }.count
            #expect(Array(read.prefix(intact)) == Array(records.prefix(intact)), "byte \(index)")
        }
        // Most flips land on a tag or an id and must be caught.
        #expect(corruptCount > 0)
    }

    @Test func compressedCaptures() throws {
        let (bytes, _) = sampleCapture()
        let compressed = zstdCompress(bytes)
        #expect(compressed.starts(with: CaptureFile.zstdMagic))
        let (records, reader) = try readAll(compressed)
        #expect(reader.isCompressed && !reader.isTruncated)
        #expect(records == (try readAll(bytes)).records)

        let path = temporaryPath("compressed.hsc")
        defer { unlink(path) }
        try writeFile(path, compressed)
        var fromFile = try CaptureReader(path: path)
        while try fromFile.next() != nil {}
        #expect(fromFile.recordCount == records.count && !fromFile.isTruncated)
    }

    @Test func damagedCompressedCaptures() throws {
        let (bytes, _) = sampleCapture()
        let compressed = zstdCompress(bytes)
        // A flipped byte inside the frame: zstd's checksum or decoder catches it.
        var damaged = compressed
        damaged[compressed.count / 2] ^= 0xFF
        #expect {
            _ = try readAll(damaged)
        } throws: { error in
            guard case .damagedCompression(let reason) = error as? CaptureError else { return false }
            return !reason.isEmpty && "\(error)".hasPrefix("compressed capture is damaged: ")
        }
        // A frame cut short: what decompresses is read, marked truncated.
        for length in [4, 10, compressed.count / 2, compressed.count - 1] {
            do {
                let (_, reader) = try readAll(Array(compressed.prefix(length)))
                #expect(reader.isTruncated, "compressed cut at \(length)")
            } catch {
                #expect(error == .headerCutShort, "compressed cut at \(length): \(error)")
            }
        }
    }
}

@Suite struct WireTests {
    /// The reader turns raw kinds into AllocatorKind by bit pattern.
    @Test func allocatorKindsAreTheirRawValues() {
        for kind in AllocatorKind.allCases {
            #expect(unsafeBitCast(kind.rawValue, to: AllocatorKind.self) == kind)
        }
        #expect(AllocatorKind.allCases.map(\.rawValue) == Array(0...12))
    }

    @Test func varintsOfEveryLengthRoundTrip() throws {
        var writer = CaptureWriter()
        let values: [UInt64] = (0..<64).map { UInt64(1) << $0 } + (0..<64).map { (UInt64(1) << $0) - 1 } + [.max]
        for value in values { writer.snapshot(timeMicros: value, rssBytes: value) }
        let (records, _) = try readAll(writer.bytes)
        #expect(records == values.map { .snapshot(timeMicros: $0, rssBytes: $0) })
    }
}

@Suite struct BulkEventTests {
    /// Reads with nextEvents wherever it applies and next() elsewhere.
    func readMixed(_ bytes: [UInt8], batch: Int) throws -> (records: [Record], reader: CaptureReader) {
        var reader = try CaptureReader(bytes: bytes)
        let buffer = UnsafeMutableBufferPointer<Event>.allocate(capacity: batch)
        defer { buffer.deallocate() }
        var records: [Record] = []
        while true {
            let count = reader.nextEvents(into: buffer)
            for event in buffer[0..<count] {
                records.append(event.isFree
                    ? .free(kind: event.kind, address: event.address, thread: reader.currentThread)
                    : .alloc(Allocation(kind: event.kind, address: event.address, size: event.size, frame: event.frame,
                                        thread: reader.currentThread)))
            }
            if count > 0 { continue }
            guard let record = try reader.next() else { break }
            records.append(record)
        }
        return (records, reader)
    }

    @Test func sameRecordsAsNext() throws {
        var writer = CaptureWriter()
        var generator = SplitMix(seed: 3)
        writer.thread(1)
        let frame = writer.stack([("f", "f.py", 1)])
        for index in 0..<500 {
            if index % 97 == 0 { writer.thread(index % 2 == 0 ? 1 : 2) }
            let address = generator.next() >> UInt64(generator.next() % 64)
            if generator.next() % 2 == 0 {
                writer.alloc(AllocatorKind(rawValue: UInt8(generator.next() % 13))!, address: address,
                             size: generator.next() >> UInt64(generator.next() % 64), frame: index % 3 == 0 ? 0 : frame)
            } else {
                writer.free(AllocatorKind(rawValue: UInt8(generator.next() % 13))!, address: address)
            }
        }
        writer.end(timeMicros: 5)
        let expected = try readAll(writer.bytes)
        for batch in [1, 7, 64] {
            let mixed = try readMixed(writer.bytes, batch: batch)
            #expect(mixed.records == expected.records)
            #expect(mixed.reader.recordCount == expected.reader.recordCount)
            #expect(!mixed.reader.isTruncated)
        }
        // Cut anywhere: the same prefix of records, and truncated.
        for length in stride(from: writer.bytes.count - 200, to: writer.bytes.count, by: 1) {
            let prefix = Array(writer.bytes[0..<length])
            let plain = try readAll(prefix)
            let mixed = try readMixed(prefix, batch: 16)
            #expect(mixed.records == plain.records && mixed.reader.isTruncated)
        }
    }

    @Test func damageIsLeftToNext() throws {
        var writer = CaptureWriter()
        writer.alloc(.malloc, address: 0x10, size: 1, frame: 0)
        writer.raw([RecordTag.allocBase, 0] + [UInt8](repeating: 0xFF, count: 12) + [UInt8](repeating: 0, count: 40))
        let headerSize = CaptureWriter().bytes.count
        // The first record is an ALLOC_SAME_STACK (frame 0, as before any ALLOC): 3 bytes.
        #expect(throws: CaptureError.corrupt(offset: headerSize + 3, reason: "varint longer than 10 bytes")) {
            _ = try readMixed(writer.bytes, batch: 8)
        }
        writer = CaptureWriter()
        writer.alloc(.malloc, address: 0x10, size: 1, frame: 9)
        writer.raw([UInt8](repeating: 0, count: 40))
        #expect(throws: CaptureError.corrupt(offset: headerSize, reason: "undefined frame 9")) {
            _ = try readMixed(writer.bytes, batch: 8)
        }
    }
}

@Suite struct NativeCaptureTests {
    static let libc = LoadedObject(path: "/usr/lib/x86_64-linux-gnu/libc.so.6", loadBias: 0x7F00_0000_0000,
                                   buildID: [0xAB, 0xCD, 0x01],
                                   segments: [.init(start: 0x7F00_0002_8000, size: 0x1000), .init(start: 0x7F00_0003_0000, size: 0x200)])
    static let app = LoadedObject(path: "/usr/bin/python3.11", loadBias: 0x5555_0000_0000, buildID: [], segments: [])

    static func capture() -> (bytes: [UInt8], inner: NativeFrameID, frame: FrameID) {
        var writer = CaptureWriter(flags: [.native, .pythonAllocators])
        writer.thread(1)
        let early = writer.nativeFrame(parent: 0, returnAddress: 0x5555_0000_1234)  // before any MAPPINGS
        writer.mappings([app, libc])
        let outer = writer.nativeFrame(parent: early, returnAddress: 0x7F00_0002_8010)
        let inner = writer.nativeFrame(parent: outer, returnAddress: 0x7F00_0002_8020)
        let frame = writer.stack([("main", "app.py", 1)])
        writer.alloc(.malloc, address: 0x1000, size: 10, frame: frame, nativeFrame: inner)
        writer.alloc(.malloc, address: 0x2000, size: 20, frame: 0, nativeFrame: 0)
        writer.free(.malloc, address: 0x1000)
        writer.mappings([app])
        writer.end(timeMicros: 1)
        return (writer.bytes, inner, frame)
    }

    @Test func readsNativeStacksAndMappings() throws {
        let (bytes, inner, frame) = Self.capture()
        let (records, reader) = try readAll(bytes)
        #expect(!reader.isTruncated)
        #expect(records.contains(.alloc(Allocation(kind: .malloc, address: 0x1000, size: 10, frame: frame, thread: 1,
                                                   nativeFrame: inner))))
        #expect(records.contains(.mappings(objectCount: 2)))
        #expect(reader.tables.mappingSets == [[Self.app, Self.libc], [Self.app]])
        #expect(reader.tables.nativeStack(ofFrame: inner).map(\.returnAddress) == [0x7F00_0002_8020, 0x7F00_0002_8010, 0x5555_0000_1234])
        #expect(reader.tables.nativeStack(ofFrame: inner).map(\.mappings) == [0, 0, -1])

        let mixed = try BulkEventTests().readMixed(bytes, batch: 4)
        #expect(mixed.records == records)
    }

    @Test func nativeCapturesCutAtEveryByte() throws {
        let (bytes, _, _) = Self.capture()
        let (allRecords, _) = try readAll(bytes)
        for length in CaptureWriter().bytes.count..<bytes.count {
            let (records, reader) = try readAll(Array(bytes[0..<length]))
            #expect(reader.isTruncated && Array(allRecords.prefix(records.count)) == records, "cut at \(length)")
        }
    }

    @Test func undefinedNativeFrames() {
        var writer = CaptureWriter(flags: .native)
        writer.alloc(.malloc, address: 0x10, size: 1, frame: 0, nativeFrame: 4)
        writer.raw([UInt8](repeating: 0, count: 50))
        let headerSize = CaptureWriter(flags: .native).bytes.count
        #expect(throws: CaptureError.corrupt(offset: headerSize, reason: "undefined native frame 4")) {
            _ = try BulkEventTests().readMixed(writer.bytes, batch: 8)
        }
        writer = CaptureWriter(flags: .native)
        writer.nativeFrame(parent: 2, returnAddress: 1)
        #expect(throws: CaptureError.corrupt(offset: headerSize, reason: "undefined parent native frame 2")) {
            _ = try readAll(writer.bytes)
        }
    }
}

/// A compressed capture is decompressed into a window that moves along the
/// stream: records across the window's edges, and one larger than the window,
/// read as from the raw bytes; cut short, it reads as a prefix.
@Suite struct CaptureWindowTests {
    static func longCapture() -> [UInt8] {
        var writer = CaptureWriter()
        writer.thread(1)
        let frame = writer.stack([("main", "app.py", 1)])
        for index in 0..<400_000 {
            writer.alloc(.pymemObj, address: 0x1000 + UInt64(index % 1000) * 48, size: UInt64(1 + index % 700), frame: frame)
            if index == 200_000 { writer.string(String(repeating: "x", count: 6 << 20)) }  // longer than the window
            writer.free(.pymemObj, address: 0x1000 + UInt64((index + 500) % 1000) * 48)
        }
        writer.end(timeMicros: 1)
        return writer.bytes
    }

    @Test func compressedCaptureLongerThanTheWindow() throws {
        let bytes = Self.longCapture()
        #expect(bytes.count > 2 * (4 << 20))
        let compressed = zstdCompress(bytes)
        let path = temporaryPath("window.hsc")
        defer { unlink(path) }
        try writeFile(path, compressed)

        let expected = try readAll(bytes).records
        var fromFile = try CaptureReader(path: path)
        var records: [Record] = []
        let events = UnsafeMutableBufferPointer<Event>.allocate(capacity: 100)
        defer { events.deallocate() }
        // Bulk and one-by-one reads mixed, as the replay does.
        while true {
            let count = fromFile.nextEvents(into: events)
            if count > 0 {
                for event in events[0..<count] {
                    records.append(event.isFree
                        ? .free(kind: event.kind, address: event.address, thread: fromFile.currentThread)
                        : .alloc(Allocation(kind: event.kind, address: event.address, size: event.size, frame: event.frame,
                                            thread: fromFile.currentThread)))
                }
                continue
            }
            guard let record = try fromFile.next() else { break }
            records.append(record)
        }
        #expect(records == expected)
        #expect(!fromFile.isTruncated && fromFile.isCompressed)
        #expect(fromFile.streamLength == bytes.count)
        #expect(fromFile.progress == (compressed.count, compressed.count))
        #expect(fromFile.tables.string(StringID(fromFile.tables.stringCount)).count == 6 << 20)

        let (cut, reader) = try readAll(Array(compressed[0..<(compressed.count * 2 / 3)]))
        #expect(reader.isTruncated)
        #expect(cut.count > expected.count / 2 && cut.count < expected.count)
        #expect(Array(expected[0..<cut.count]) == cut)
    }

    /// The decompression runs ahead on a thread of its own: a reader given up
    /// halfway stops it and closes the file (a report that fails early, the
    /// live viewer), however far ahead it had got.
    @Test func readerGivenUpHalfwayStopsItsDecompression() throws {
        let path = temporaryPath("given-up.hsc")
        defer { unlink(path) }
        try writeFile(path, zstdCompress(Self.longCapture()))
        // Descriptors of this file: other tests run alongside and open their own.
        func openCopies() -> Int {
            guard let dir = opendir("/proc/self/fd") else { return -1 }
            defer { closedir(dir) }
            var count = 0
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                var target = [CChar](repeating: 0, count: 4096)
                let n = readlink("/proc/self/fd/" + name, &target, target.count - 1)
                if n > 0 && String(cString: target) == path { count += 1 }
            }
            return count
        }
        for round in 0..<20 {
            var reader = try CaptureReader(path: path)
            for _ in 0..<(round * 5_000) { _ = try reader.next() }
            withExtendedLifetime(reader) { #expect(openCopies() == 1) }
        }
        #expect(openCopies() == 0)
    }
}
