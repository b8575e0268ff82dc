import CZstd
import Glibc
import HeapscopeFormat
import HeapscopeHooks

/// What a session was started with: needed again at stop (compression) and in
/// a forked child (its own capture, named after its pid).
private struct SessionConfig {
    var path: String
    var metadata: [UInt8]
    var flags: CaptureFlags
    var followFork: Bool
    var compress: Bool
    var intervalMS: UInt32
}

/// Touched only from start, stop and the fork handler, never from a hook.
nonisolated(unsafe) private var config: SessionConfig?

@inline(__always)
private func recorder(_ state: UnsafeMutablePointer<hs_state>) -> UnsafeMutablePointer<Recorder>? {
    state.pointee.recorder?.assumingMemoryBound(to: Recorder.self)
}

// MARK: Hot path (called by the C hooks with HS_IN_RECORD set)

@_cdecl("hs_record_alloc")
func hs_record_alloc(_ t: UnsafeMutablePointer<hs_thread>, _ kind: UInt8, _ address: UInt, _ size: Int) {
    let state = hs_state_ptr()!
    hs_lock(state)
    // Checked again under the lock: stop may have finished the capture since the hook looked.
    if state.pointee.tracking != 0, let r = recorder(state) {
        r.pointee.recordAlloc(t, session: state.pointee.session, kind: kind, address: address, size: size)
    }
    hs_unlock(state)
}

@_cdecl("hs_record_free")
func hs_record_free(_ t: UnsafeMutablePointer<hs_thread>, _ kind: UInt8, _ address: UInt) {
    let state = hs_state_ptr()!
    hs_lock(state)
    if state.pointee.tracking != 0, let r = recorder(state) {
        r.pointee.recordFree(t, session: state.pointee.session, kind: kind, address: address)
    }
    hs_unlock(state)
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
    let state = hs_state_ptr()!
    hs_lock(state)
    if state.pointee.tracking != 0, let r = recorder(state) {
        r.pointee.recordMunmap(t, session: state.pointee.session, address: address, length: length)
    }
    hs_unlock(state)
}

/// Every memory_interval_ms, on heapscope's background thread: a memory
/// snapshot, and the buffer goes to the file, so a killed process loses at
/// most one interval of records.
@_cdecl("hs_snapshot_tick")
func hs_snapshot_tick() {
    let state = hs_state_ptr()!
    hs_lock(state)
    guard state.pointee.tracking != 0, let r = recorder(state) else {
        hs_unlock(state)
        return
    }
    if r.pointee.writeError != 0 { state.pointee.tracking = 0 }
    r.pointee.recordSnapshot()
    let (bytes, count) = r.pointee.detachBuffer()
    hs_unlock(state)
    // Stop joins this thread before it frees the recorder, so `r` stays valid.
    Recorder.writeDetached(r, bytes, count)
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
                                compress: o.compress != 0, intervalMS: o.memory_interval_ms)
    // Never replace a file unless asked: O_EXCL makes "exists" an error atomically.
    let mode = O_WRONLY | O_CREAT | O_CLOEXEC | (o.overwrite != 0 ? O_TRUNC : O_EXCL)
    let fd = open(path, mode, 0o644)
    guard fd >= 0 else { return errno }
    if let rc = openRecorder(fd: fd, session: session, parentPID: 0, state: state) { return rc }
    config = session
    hs_register_atfork()
    state.pointee.native = o.native
    if o.native != 0 { hs_record_mappings() }
    state.pointee.tracking = 1
    hs_install_python_hooks(o.trace_python_allocators)
    hs_patch_got(1)
    hs_snapshot_thread_start(session.intervalMS)
    return 0
}

@_cdecl("hs_session_stop")
func hs_session_stop(_ error: UnsafeMutablePointer<CChar>, _ errorCap: Int) -> Int32 {
    let state = hs_state_ptr()!
    guard state.pointee.recorder != nil, let session = config else {
        return fail("no heapscope tracker is active", error, errorCap)
    }
    hs_remove_python_hooks()
    hs_patch_got(0)
    hs_snapshot_thread_stop()
    hs_lock(state)
    state.pointee.tracking = 0
    let r = recorder(state)!
    r.pointee.recordSnapshot()
    r.pointee.recordEnd()
    r.pointee.flush()
    let writeError = r.pointee.writeError
    let fd = r.pointee.fd
    r.pointee.release()
    r.deinitialize(count: 1)
    r.deallocate()
    state.pointee.recorder = nil
    hs_unlock(state)
    config = nil
    let closed = close(fd)
    if writeError != 0 { return writeError }
    if closed != 0 { return errno }
    if session.compress, let message = compressInPlace(session.path) {
        return fail(message, error, errorCap)
    }
    return 0
}

@_cdecl("hs_session_name_thread")
func hs_session_name_thread(_ name: UnsafePointer<CChar>, _ length: Int, _ osTid: UInt32) {
    let state = hs_state_ptr()!
    let guardFlags = hs_guard_ptr()!
    let saved = guardFlags.pointee
    guardFlags.pointee = saved | UInt32(HS_IN_RECORD)
    hs_lock(state)
    if state.pointee.tracking != 0, let r = recorder(state) {
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
    close(r.pointee.fd)
    r.pointee.release()
    r.deinitialize(count: 1)
    r.deallocate()
    state.pointee.recorder = nil
    state.pointee.tracking = 0
    guard session.followFork else {
        config = nil
        return
    }
    var child = session
    child.path = "\(session.path).\(getpid())"
    let fd = open(child.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0, openRecorder(fd: fd, session: child, parentPID: UInt32(getppid()), state: state) == nil else {
        if fd >= 0 { close(fd) }
        config = nil
        return
    }
    config = child
    if child.flags.contains(.native) {
        withLoadedObjects { recorder(state)!.pointee.recordMappings($0) }   // the lock is already held
    }
    state.pointee.tracking = 1
    hs_snapshot_thread_start(child.intervalMS)
}

// MARK: Helpers

/// Writes the header and installs a fresh recorder for a new session; nil on success.
private func openRecorder(fd: Int32, session: SessionConfig, parentPID: UInt32, state: UnsafeMutablePointer<hs_state>) -> Int32? {
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
    let r = UnsafeMutablePointer<Recorder>.allocate(capacity: 1)
    r.initialize(to: Recorder(fd: fd, native: session.flags.contains(.native)))
    header.withUnsafeBytes { r.pointee.writeHeader($0) }
    if r.pointee.writeError != 0 {
        let rc = r.pointee.writeError
        r.pointee.release()
        r.deinitialize(count: 1)
        r.deallocate()
        close(fd)
        return rc
    }
    state.pointee.session &+= 1
    state.pointee.recorder = UnsafeMutableRawPointer(r)
    return nil
}

private func fail(_ message: String, _ error: UnsafeMutablePointer<CChar>, _ cap: Int) -> Int32 {
    let bytes = Array(message.utf8.prefix(cap - 1))
    for (i, b) in bytes.enumerated() { error[i] = CChar(bitPattern: b) }
    error[bytes.count] = 0
    return -1
}

/// Replaces the raw capture with one zstd frame of the same bytes. The raw file
/// stays in place until the compressed one is complete, so a failure here
/// loses nothing; the message says what went wrong.
private func compressInPlace(_ path: String) -> String? {
    let temporary = "\(path).zst-\(getpid())"
    guard let input = fopen(path, "rb") else { return "cannot reopen \(path) to compress it" }
    defer { fclose(input) }
    guard let output = fopen(temporary, "wb") else { return "cannot write \(temporary)" }
    let stream = ZSTD_createCStream()!
    defer { ZSTD_freeCStream(stream) }
    ZSTD_initCStream(stream, 3)
    let chunk = Int(ZSTD_CStreamInSize())
    let outChunk = Int(ZSTD_CStreamOutSize())
    var inBytes = [UInt8](repeating: 0, count: chunk)
    var outBytes = [UInt8](repeating: 0, count: outChunk)
    var ok = true
    func drain(_ mode: ZSTD_EndDirective, _ input: inout ZSTD_inBuffer) -> Bool {
        while true {
            let (rc, produced): (Int, Int) = outBytes.withUnsafeMutableBytes { out in
                var o = ZSTD_outBuffer(dst: out.baseAddress, size: outChunk, pos: 0)
                let rc = ZSTD_compressStream2(stream, &o, &input, mode)
                return (rc, o.pos)
            }
            if ZSTD_isError(rc) != 0 { return false }
            if produced > 0 && fwrite(outBytes, 1, produced, output) != produced { return false }
            let finished = mode == ZSTD_e_end ? rc == 0 : input.pos == input.size
            if finished { return true }
        }
    }
    while ok {
        let n = fread(&inBytes, 1, chunk, input)
        if n == 0 { break }
        ok = inBytes.withUnsafeBytes { buf in
            var i = ZSTD_inBuffer(src: buf.baseAddress, size: n, pos: 0)
            return drain(ZSTD_e_continue, &i)
        }
    }
    if ok {
        var empty = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        ok = drain(ZSTD_e_end, &empty) && ferror(input) == 0
    }
    ok = fclose(output) == 0 && ok
    guard ok, rename(temporary, path) == 0 else {
        unlink(temporary)
        return "could not compress \(path); it was kept uncompressed"
    }
    return nil
}

/// From the `_exit` hook: the process ends without running atexit, so the
/// capture gets its END record now and stays uncompressed.
@_cdecl("hs_finish_before_exit")
func hs_finish_before_exit() {
    let state = hs_state_ptr()!
    hs_lock(state)
    if state.pointee.tracking != 0, let r = recorder(state) {
        state.pointee.tracking = 0
        r.pointee.recordSnapshot()
        r.pointee.recordEnd()
        r.pointee.flush()
    }
    hs_unlock(state)
}
