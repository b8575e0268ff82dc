// The calls attach and detach make in the target: dlopen of the tracker, then
// the entry points of Sources/HeapscopeHooks/attach.c. Each batch runs with
// the target's main thread stopped and put back (HeapscopeInject).

import HeapscopeInject
import HeapscopeSymbols

struct TrackerCalls {
    var target: AttachTarget

    /// Loads `tracker` and calls hs_attach_start (its answer: attach.c's HS_ATTACH_*).
    func loadAndStart(_ tracker: TrackerLibrary, status: StatusFile, options: String, deadlineNanoseconds: UInt64)
        throws -> Int32
    {
        // Functions are found before the thread is stopped (it stays stopped for the calls
        // only); the tracker's entry once dlopen has mapped it.
        let libc = try functions()
        guard let dlopen = libc.address(of: "dlopen", inObjectsWhere: isCLibrary),
              let dlerror = libc.address(of: "dlerror", inObjectsWhere: isCLibrary)
        else { throw commandFail("\(target.described) has no dlopen in its C library") }
        return try withMainThreadStopped { process in
            let handle = try process.call(dlopen, [.string(tracker.path), .integer(2)])   // RTLD_NOW
            if handle == 0 {
                let message = try process.call(dlerror, [])
                let reason = message == 0 ? "" : ": " + (try process.string(at: message))
                throw commandFail("could not load heapscope's tracker into \(target.described)\(reason)")
            }
            let start = try function("hs_attach_start", in: { $0 == tracker.path })
            let answer = try process.call(start, [
                .string(tracker.packageParent), .string(status.path), .string(options), .integer(deadlineNanoseconds),
            ])
            return Int32(truncatingIfNeeded: answer)
        }
    }

    /// hs_attach_stop's answer (attach.c's HS_DETACH_*).
    func stop() throws -> Int32 {
        let entry = try function("hs_attach_stop", in: isLoadedTracker)
        return try withMainThreadStopped { process in Int32(truncatingIfNeeded: try process.call(entry, [])) }
    }

    /// The status file of the attach recording the target (hs_attach_status).
    func statusPath() throws -> String {
        let entry = try function("hs_attach_status", in: isLoadedTracker)
        return try withMainThreadStopped { process in
            let path = try process.call(entry, [])
            return path == 0 ? "" : try process.string(at: path)
        }
    }

    private func withMainThreadStopped<T>(_ body: (RemoteProcess) throws -> T) throws -> T {
        // Its main thread would have to be resumed for the calls.
        if let state = AttachTarget.state(target.pid), state == "T" || state == "t" {
            throw commandFail(
                "\(target.described) is stopped (SIGSTOP, Ctrl-Z or a debugger): let it run on first (kill -CONT \(target.pid))")
        }
        do {
            return try RemoteProcess.withMainThreadStopped(target.pid, body)
        } catch let error as RemoteCallError {
            switch error.reason {
            case .exited:
                throw commandFail("no such process: \(target.pid) (it exited)")
            case .notPermitted:
                let detail = ptraceScope().map { " (kernel.yama.ptrace_scope is \($0))" } ?? ""
                throw commandFail(
                    "ptrace is not permitted on process \(target.pid)\(detail): run heapscope as the process's user "
                        + "with kernel.yama.ptrace_scope 0, or as root / with CAP_SYS_PTRACE "
                        + "(in a container: the SYS_PTRACE capability)")
            case .failed:
                throw commandFail("cannot call into \(target.described): \(error.message)")
            }
        }
    }

    /// Where `name` is in the target now (the symbol tables of what it has mapped).
    private func function(_ name: String, in objects: (String) -> Bool) throws -> UInt64 {
        guard let address = try functions().address(of: name, inObjectsWhere: objects) else {
            throw commandFail("\(target.described) has no function \(name) in its loaded objects")
        }
        return address
    }

    private func functions() throws -> ProcessFunctions {
        do {
            return try ProcessFunctions(pid: target.pid)
        } catch {
            throw commandFail("cannot read the loaded objects of \(target.described): \(error.message)")
        }
    }
}

/// glibc's libc (dlopen is there since 2.34) or libdl (before), or musl's.
private func isCLibrary(_ path: String) -> Bool {
    let name = path.split(separator: "/").last ?? ""
    return name.hasPrefix("libc.so") || name.hasPrefix("libdl.so") || name.hasPrefix("ld-musl") || name.hasPrefix("libc.musl")
}

private func isLoadedTracker(_ path: String) -> Bool { AttachTarget.isTracker(path) }
