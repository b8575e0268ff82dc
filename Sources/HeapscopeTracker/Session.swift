import Glibc
import HeapscopeHooks
import HeapscopeSystem
import HeapscopeWire

/// What a session was started with: needed again at stop (compression) and in
/// a forked child (its own capture, named after its pid).
private struct SessionConfig {
    var path: String
    var metadata: [UInt8]
    var flags: CaptureFlags
    var followFork: Bool
    var compress: Bool
    var intervalMS: UInt32
    var memoryLimit: UInt64
    /// Live mode's feed socket (FileSink), -1 without; a forked child has none.
    var liveFD: Int32
    /// The writer counts the summary trailer's totals (run's and attach's exit summary).
    var countsTotals: Bool
    /// The writer stops the process under the memory floor (`OwnFloorWatch` below; the CLI has its own `FloorWatch` for a process it watches from outside):
    /// a `heapscope.Tracker` with a memory limit; `run` and `attach` watch it themselves.
    var watchesFloor: Bool
}

/// Touched only from start, stop and the fork handler, never from a hook.
nonisolated(unsafe) private var config: SessionConfig?
/// The writer thread's, while it runs; then stop's (see FileSink).
nonisolated(unsafe) private var sink: FileSink?
/// The recorder's event count when it was closed (a write can fail after that).
nonisolated(unsafe) private var eventsAtClose: UInt64 = 0
/// The totals of what the sink wrote, like the sink the writer thread's, then stop's.
nonisolated(unsafe) private var streamTotals: StreamTotals?
/// The writer thread's, while it runs: the floor of a session that watches it.
nonisolated(unsafe) private var floorWatch: OwnFloorWatch?

@inline(__always)
private func recorder(_ state: UnsafeMutablePointer<hs_state>) -> UnsafeMutablePointer<Recorder>? {
    state.pointee.recorder?.assumingMemoryBound(to: Recorder.self)
}

// MARK: Hot path (called by the C hooks with HS_IN_RECORD set)

/// Runs `body` on the recorder under the lock, if recording. Checked again
/// under the lock: stop may have finished the capture since the hook looked.
@inline(__always)
private func whileRecording(_ body: (UnsafeMutablePointer<Recorder>, UInt64) -> Void) {
    let state = hs_state_ptr()!
    hs_lock(state)
    if state.pointee.tracking != 0, let r = recorder(state) { body(r, state.pointee.session) }
    hs_unlock(state)
}

@_cdecl("hs_record_alloc")
func hs_record_alloc(_ t: UnsafeMutablePointer<hs_thread>, _ kind: UInt8, _ address: UInt, _ size: Int) {
    whileRecording { r, session in
        r.pointee.recordAlloc(t, session: session, kind: kind, address: address, size: size)
        if r.pointee.isOverLimit {
            // The capture ends with this allocation: the writer finishes it and
            // ends the process; the hook waits for that (hs_on_alloc).
            hs_state_ptr()!.pointee.tracking = 0
            hs_writer_request_exit(CaptureFile.memoryLimitExitStatus)
        }
    }
}

@_cdecl("hs_record_free")
func hs_record_free(_ t: UnsafeMutablePointer<hs_thread>, _ kind: UInt8, _ address: UInt) {
    whileRecording { r, session in r.pointee.recordFree(t, session: session, kind: kind, address: address) }
}

@_cdecl("hs_record_mappings")
func hs_record_mappings() {
    let state = hs_state_ptr()!
    withLoadedObjects { objects in
        hs_lock(state)
        if let r = recorder(state) { r.pointee.recordMappings(objects) }
        hs_unlock(state)
    }
}

/// The loaded objects, collected outside the lock (dl_iterate_phdr takes the loader's).
private func withLoadedObjects(_ body: (UnsafeBufferPointer<hs_mapping>) -> Void) {
    var list: UnsafeMutablePointer<hs_mapping>?
    let count = hs_mappings_collect(&list)
    guard let list else { return }
    body(UnsafeBufferPointer(start: list, count: Int(count)))
    hs_mappings_free(list, count)
}

@_cdecl("hs_record_munmap")
func hs_record_munmap(_ t: UnsafeMutablePointer<hs_thread>, _ address: UInt, _ length: Int) {
    whileRecording { r, session in r.pointee.recordMunmap(t, session: session, address: address, length: length) }
}

/// Every memory_interval_ms, on the writer thread: a memory snapshot, and
/// the chunk so far goes to the writer, so a killed process loses at most
/// one interval of records.
@_cdecl("hs_snapshot_tick")
func hs_snapshot_tick() {
    // The recorder outlives the writer thread (stop joins it first): its fd is valid here.
    let rss = recorder(hs_state_ptr()!).map { residentBytes(statm: $0.pointee.statmFD) } ?? 0
    whileRecording { r, _ in
        r.pointee.recordSnapshot(rss: rss)
        r.pointee.submit()
    }
    if floorWatch?.isBelowFloor() == true {
        whileRecording { _, _ in hs_state_ptr()!.pointee.tracking = 0 }
        hs_writer_request_exit(CaptureFile.memoryLimitExitStatus)
    }
}

/// The memory floor of `--memory-limit` (HeapscopeSystem), for a process with
/// no heapscope outside to watch it: looked at every 100 ms by the writer
/// thread, which then ends the capture and the process as the traced-heap
/// limit does (status 120), after one line on stderr saying why.
private struct OwnFloorWatch {
    let cgroups = MemoryCgroups()
    let path: String
    private var nextLook: UInt64 = 0

    init(path: String) { self.path = path }

    mutating func isBelowFloor() -> Bool {
        let now = monotonicMicroseconds()
        guard now >= nextLook else { return false }
        nextLook = now + 100_000
        guard let room = cgroups.room(), room.isBelowFloor else { return false }
        let mib = { (bytes: UInt64) in "\(bytes >> 20) MiB" }
        let message = "heapscope: the process can get only \(mib(room.available)) more memory (\(room.boundBy)), under the floor of \(mib(room.floor)): the capture ends here (\(path)) and the process exits with status \(CaptureFile.memoryLimitExitStatus)\n"
        message.utf8CString.withUnsafeBufferPointer { _ = Glibc.write(2, $0.baseAddress, $0.count - 1) }
        return true
    }
}

@_cdecl("hs_write_chunk")
func hs_write_chunk(_ bytes: UnsafePointer<UInt8>, _ count: Int) {
    let chunk = UnsafeRawBufferPointer(start: bytes, count: count)
    whileWritable { sink in
        streamTotals?.consume(chunk)
        sink.write(chunk)
    }
}

@_cdecl("hs_write_sync_point")
func hs_write_sync_point() {
    whileWritable { $0.syncPoint() }
}

/// Runs `body` on the sink unless writing already failed. On the failure, a
/// capture that cannot be written stops recording (rather than queue chunks in
/// memory without end) and says so once on stderr; the program runs on.
private func whileWritable(_ body: (inout FileSink) -> Void) {
    guard sink != nil, sink!.error == 0 else { return }
    body(&sink!)
    guard let failed = sink, failed.error != 0 else { return }
    let state = hs_state_ptr()!
    state.pointee.tracking = 0
    let events = recorder(state)?.pointee.events ?? eventsAtClose
    let path = config?.path ?? "the capture"
    let seconds = Double(failed.elapsedMicros / 1000) / 1000
    let what: String
    switch failed.stopCause {
    case .diskFull?: what = "the disk is full: the capture \(path) stopped"
    case .fileDeleted?: what = "the capture file \(path) was deleted while recording: recording stopped"
    default:
        let reason = failed.error > 0 ? String(cString: strerror(failed.error)) : "compression failed"
        what = "cannot write the capture \(path) (\(reason)): recording stopped"
    }
    let message = "heapscope: \(what) after \(events) events and \(seconds) s; the program runs on untracked\n"
    message.utf8CString.withUnsafeBufferPointer { _ = Glibc.write(2, $0.baseAddress, $0.count - 1) }
}

// MARK: Lifecycle (called from Python, GIL held)

@_cdecl("hs_session_start")
func hs_session_start(_ options: UnsafePointer<hs_start_options>, _ error: UnsafeMutablePointer<CChar>, _ errorCap: Int) -> Int32 {
    let state = hs_state_ptr()!
    guard state.pointee.recorder == nil else {
        return fail("a heapscope tracker is already active in this process; stop it first", error, errorCap)
    }
    let o = options.pointee
    let path = String(cString: o.path)
    var flags: CaptureFlags = []
    if o.native != 0 { flags.insert(.native) }
    if o.trace_python_allocators != 0 { flags.insert(.pythonAllocators) }
    if o.follow_fork != 0 { flags.insert(.followFork) }
    let metadata = Array(UnsafeRawBufferPointer(start: o.metadata, count: o.metadata_len))
    let session = SessionConfig(path: path, metadata: metadata, flags: flags, followFork: o.follow_fork != 0,
                                compress: o.compress != 0, intervalMS: o.memory_interval_ms,
                                memoryLimit: o.memory_limit, liveFD: o.live_fd, countsTotals: o.count_totals != 0,
                                watchesFloor: o.watch_floor != 0)
    // Never replace a file unless asked: O_EXCL makes "exists" an error atomically.
    let mode = O_WRONLY | O_CREAT | O_CLOEXEC | (o.overwrite != 0 ? O_TRUNC : O_EXCL)
    let fd = open(path, mode, 0o644)
    guard fd >= 0 else { return errno }
    // The program's own children must not hold the live feed open.
    if o.live_fd >= 0 { _ = fcntl(o.live_fd, F_SETFD, FD_CLOEXEC) }
    guard openSession(fd: fd, session: session, parentPID: o.parent_pid, state: state) else {
        return fail("cannot start the writer thread", error, errorCap)
    }
    hs_register_atfork()
    if o.native != 0 { hs_record_mappings() }
    state.pointee.tracking = 1
    hs_install_python_hooks(o.trace_python_allocators)
    hs_patch_got(1)
    hs_signals_install()
    return 0
}

@_cdecl("hs_session_stop")
func hs_session_stop(_ error: UnsafeMutablePointer<CChar>, _ errorCap: Int) -> Int32 {
    let state = hs_state_ptr()!
    guard state.pointee.recorder != nil, config != nil else {
        return fail("no heapscope tracker is active", error, errorCap)
    }
    hs_remove_python_hooks()
    hs_patch_got(0)
    let rc = finishCapture(state)
    hs_signals_remove()
    if rc < 0 { return fail("could not compress the capture", error, errorCap) }
    return rc
}

/// Ends the session: the writer thread writes what is queued and exits, the
/// last records (a SNAPSHOT and END) follow, and the file is closed. Returns
/// the first write error (errno, or -1 from zstd), 0 if none.
private func finishCapture(_ state: UnsafeMutablePointer<hs_state>) -> Int32 {
    hs_signals_finish_begin()
    defer { hs_signals_finish_end() }
    hs_writer_stop()
    writeLastRecords(state, closing: true)
    // A failure already said on stderr (whileWritable) is not an error of stop.
    let reported = (sink?.error ?? 0) != 0
    // Read before finish's exclusive access to `sink` begins: the trailer reads it too.
    let trailer = summaryTrailer()
    let rc = sink?.finish(trailer: trailer) ?? 0
    sink = nil
    streamTotals?.release()
    streamTotals = nil
    config = nil
    return reported ? 0 : rc
}

/// On the writer thread, its loop left for a fatal signal (signals.c) or the
/// memory limit: the last records, then the file is closed. Nothing is freed:
/// the process is about to end, and a thread stopped by a signal may hold
/// malloc's lock.
@_cdecl("hs_finish_from_writer")
func hs_finish_from_writer() {
    writeLastRecords(hs_state_ptr()!, closing: false)
    let trailer = summaryTrailer()   // before finish's exclusive access to `sink`
    _ = sink?.finish(releasing: false, trailer: trailer)
    sink = nil
}

/// The summary trailer of a capture that ends with END (none after a write
/// failure: the file then ends elsewhere).
private func summaryTrailer() -> [UInt8] {
    guard streamTotals?.isValid == true, sink?.error == 0 else { return [] }
    return streamTotals!.summary.bytes
}

@_cdecl("hs_session_name_thread")
func hs_session_name_thread(_ name: UnsafePointer<CChar>, _ length: Int, _ osTid: UInt32) {
    let state = hs_state_ptr()!
    let guardFlags = hs_guard_ptr()!
    let saved = guardFlags.pointee
    guardFlags.pointee = saved | UInt32(HS_IN_RECORD)
    hs_lock(state)
    // While the session is open, paused for stop included.
    if let r = recorder(state) {
        r.pointee.nameThread(osTid: osTid, name: UnsafeRawBufferPointer(start: name, count: length))
    }
    hs_unlock(state)
    guardFlags.pointee = saved
}

/// In a forked child, with the lock held. Following forks, the child records
/// into `<path>.<pid>` from here on, with tables of its own; otherwise it
/// stops recording (the hooks stay, passing every call straight through).
@_cdecl("hs_after_fork_child")
func hs_after_fork_child() {
    let state = hs_state_ptr()!
    guard let r = recorder(state), let session = config else { return }
    r.pointee.discardBuffer()
    closeRecorder(state)
    state.pointee.tracking = 0
    // The parent's file and zstd stream: close our copy of the descriptor;
    // the stream (maybe mid-update when the writer thread vanished) is left.
    if let fd = sink?.fd { close(fd) }
    if session.liveFD >= 0 { close(session.liveFD) }
    sink = nil
    streamTotals = nil   // its tables are left, like the parent's chunks
    guard session.followFork else {
        config = nil
        return
    }
    var child = session
    child.path = "\(session.path).\(getpid())"
    child.liveFD = -1
    let fd = open(child.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0, openSession(fd: fd, session: child, parentPID: UInt32(getppid()), state: state) else {
        if fd >= 0 { close(fd) }
        config = nil
        return
    }
    if child.flags.contains(.native) {
        withLoadedObjects { recorder(state)!.pointee.recordMappings($0) }   // the lock is already held
    }
    state.pointee.tracking = 1
}

/// From the `_exit` hook: the process ends without running atexit, so the
/// capture is finished here, its hooks left in place.
@_cdecl("hs_finish_before_exit")
func hs_finish_before_exit() {
    _ = finishCapture(hs_state_ptr()!)
}

// MARK: Helpers

/// Starts a session on an open file: the sink, the writer thread, and a fresh
/// recorder whose first bytes are the header. False if the thread cannot start.
private func openSession(fd: Int32, session: SessionConfig, parentPID: UInt32, state: UnsafeMutablePointer<hs_state>) -> Bool {
    var header = CaptureFile.magic
    func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { header.append(contentsOf: $0) }
    }
    append(CaptureFile.version)
    append(session.flags.rawValue)
    append(UInt32(getpid()))
    append(parentPID)
    append(UInt32(0))
    append(realtimeMicroseconds())
    append(UInt32(session.metadata.count))
    header.append(contentsOf: session.metadata)
    guard let fresh = Recorder(native: session.flags.contains(.native), memoryLimit: session.memoryLimit,
                               countsArenas: !session.flags.contains(.pythonAllocators)) else { return false }
    sink = FileSink(fd: fd, compress: session.compress, feed: session.liveFD)
    // Only for a summary someone prints: the table of live blocks costs the
    // writer ~25 ns an event and ~20 bytes a live block.
    streamTotals = !session.countsTotals ? nil
        : StreamTotals(native: session.flags.contains(.native),
                       countsArenas: !session.flags.contains(.pythonAllocators), headerBytes: header.count)
    floorWatch = session.watchesFloor ? OwnFloorWatch(path: session.path) : nil
    guard hs_writer_start(session.intervalMS) == 0 else {
        _ = sink?.finish()
        sink = nil
        streamTotals?.release()
        streamTotals = nil
        return false
    }
    let r = UnsafeMutablePointer<Recorder>.allocate(capacity: 1)
    r.initialize(to: fresh)
    header.withUnsafeBytes { r.pointee.writeHeader($0) }
    state.pointee.session &+= 1
    state.pointee.pid = getpid()
    state.pointee.native = session.flags.contains(.native) ? 1 : 0
    state.pointee.recorder = UnsafeMutableRawPointer(r)
    config = session
    return true
}

/// Recording stops; a SNAPSHOT and END follow what is queued into the file
/// (the writer thread has stopped, or is the caller). `closing` frees the recorder.
private func writeLastRecords(_ state: UnsafeMutablePointer<hs_state>, closing: Bool) {
    hs_lock(state)
    state.pointee.tracking = 0
    if let r = recorder(state) {
        r.pointee.recordSnapshot(rss: residentBytes(statm: r.pointee.statmFD))
        r.pointee.recordEnd()
        r.pointee.submit()
        if closing { closeRecorder(state) }
    }
    hs_unlock(state)
    hs_writer_drain()   // chunks other threads queued before tracking stopped, then ours
}

private func closeRecorder(_ state: UnsafeMutablePointer<hs_state>) {
    guard let r = recorder(state) else { return }
    eventsAtClose = r.pointee.events
    r.pointee.release()
    r.deinitialize(count: 1)
    r.deallocate()
    state.pointee.recorder = nil
}

private func fail(_ message: String, _ error: UnsafeMutablePointer<CChar>, _ cap: Int) -> Int32 {
    let bytes = Array(message.utf8.prefix(cap - 1))
    for (i, b) in bytes.enumerated() { error[i] = CChar(bitPattern: b) }
    error[bytes.count] = 0
    return -1
}
