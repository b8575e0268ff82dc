// Calling functions inside another running process, as a debugger does, for
// `heapscope attach`: the process's main thread is stopped wherever it is (in
// a system call, or between two instructions), made to call a function on
// its own stack, and put back exactly as it was: registers, FPU and vector
// state, and the system call it was in, which the kernel then restarts. The
// other threads run on meanwhile. x86-64 Linux.

import CPtrace   // user_regs_struct
import HeapscopeSystem   // processMaps

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum RemoteArgument {
    case integer(UInt64)
    /// Copied onto the thread's stack, NUL-terminated; the function gets its address.
    case string(String)
}

/// A process whose main thread is stopped for calls into it.
public struct RemoteProcess {
    public let pid: Int32
    private let thread: TracedThread
    /// The registers it was stopped with.
    private let saved: user_regs_struct
    /// /proc/<pid>/mem, open for reading and writing.
    private let memory: Int32

    /// Stops the main thread of `pid`, runs `body`, then puts the thread back
    /// as it was and lets it run on, whatever `body` did or threw.
    public static func withMainThreadStopped<T>(_ pid: Int32, _ body: (RemoteProcess) throws -> T) throws -> T {
        // Until the thread is restored, this process must not die of a signal:
        // the kernel would let the thread go with the registers of a call.
        var blocked = sigset_t()
        var previous = sigset_t()
        sigemptyset(&blocked)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }

        let cLibrary = cLibraryCode(pid)
        let thread = try TracedThread.seize(pid)
        // A signal the thread was about to receive when it stopped: it gets it on detach.
        var pendingSignal: Int32 = 0
        var saved: user_regs_struct
        let vectors: VectorState
        do {
            var attempts = 0
            while true {
                try thread.interrupt()
                switch try thread.nextStop(until: monotonicSeconds() + 10) {
                case .interrupted?: break
                case .signal(let signal)?: pendingSignal = signal
                case .exited?: throw RemoteCallError(.exited, "no such process")
                case nil: throw RemoteCallError(.failed, "its main thread did not stop within 10 s")
                }
                saved = try thread.registers()
                // Stopped inside the C library, not in a system call, it may
                // hold a lock of libc's that the calls need as well (malloc's
                // arena, the loader's): it would wait for itself. Let it run a
                // moment and stop it again; after 0.5 s, call all the same.
                let inCLibrary = cLibrary.contains { $0.contains(saved.rip) }
                guard inCLibrary, saved.orig_rax == UInt64.max, pendingSignal == 0, attempts < 250 else { break }
                attempts += 1
                try thread.resume()
                var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
                nanosleep(&pause, nil)
            }
            vectors = try thread.vectorState()
        } catch {
            try? thread.detach()
            throw error
        }
        let memory = open("/proc/\(pid)/mem", O_RDWR | O_CLOEXEC)
        defer { if memory >= 0 { close(memory) } }

        var outcome: Result<T, any Error>
        if memory < 0 {
            outcome = .failure(RemoteCallError(.failed, "cannot open /proc/\(pid)/mem: \(String(cString: strerror(errno)))"))
        } else {
            do {
                outcome = .success(try body(RemoteProcess(pid: pid, thread: thread, saved: saved, memory: memory)))
            } catch {
                outcome = .failure(error)
            }
        }
        do {
            try thread.setRegisters(saved)
            try thread.setVectorState(vectors)
            try thread.detach(signal: pendingSignal)
        } catch {
            if error.reason == .exited { throw error }
            throw RemoteCallError(.failed, "could not restore its main thread after a call (\(error.message)); it may misbehave")
        }
        return try outcome.get()
    }

    /// Calls `function` with up to six integer or string arguments on the
    /// stopped thread; returns what it returned. A call that faults is
    /// abandoned (the thread is restored all the same).
    public func call(_ function: UInt64, _ arguments: [RemoteArgument], timeout: Double = 30) throws(RemoteCallError) -> UInt64 {
        precondition(arguments.count <= 6, "more than six arguments go on the stack")
        // Below the 128-byte red zone of the code the thread was stopped in.
        var top = (saved.rsp &- 512) & ~15
        var values: [UInt64] = []
        for argument in arguments {
            switch argument {
            case .integer(let value):
                values.append(value)
            case .string(let text):
                let bytes = Array(text.utf8) + [0]
                top = (top &- UInt64(bytes.count)) & ~15
                try write(bytes, at: top)
                values.append(top)
            }
        }
        // The return address is 0: returning faults there, which is how the
        // end of the call is seen. At entry rsp + 8 is 16-byte aligned (the ABI).
        let stack = top &- 8
        try write(withUnsafeBytes(of: UInt64(0)) { Array($0) }, at: stack)
        var regs = saved
        regs.rip = function
        regs.rsp = stack
        regs.rax = 0   // no vector registers for a variadic callee
        // Not in a system call: the kernel must not restart the one the thread was in at this pc.
        regs.orig_rax = UInt64.max
        values += Array(repeating: 0, count: 6 - values.count)
        (regs.rdi, regs.rsi, regs.rdx, regs.rcx, regs.r8, regs.r9) = (values[0], values[1], values[2], values[3], values[4], values[5])
        try thread.setRegisters(regs)
        try thread.resume()

        let deadline = monotonicSeconds() + timeout
        while true {
            guard let stop = try thread.nextStop(until: deadline) else {
                try thread.interrupt()
                _ = try thread.nextStop(until: monotonicSeconds() + 10)
                throw RemoteCallError(.failed, "a call did not return within \(Int(timeout)) s and was abandoned")
            }
            switch stop {
            case .signal(SIGSEGV):
                let now = try thread.registers()
                if now.rip == 0 && now.rsp == stack + 8 { return now.rax }
                throw RemoteCallError(.failed, "a call faulted (SIGSEGV at pc 0x\(String(now.rip, radix: 16))) and was abandoned")
            case .signal(let signal) where [SIGBUS, SIGILL, SIGFPE].contains(signal):
                throw RemoteCallError(.failed, "a call faulted (signal \(signal)) and was abandoned")
            case .signal(let signal):
                // Its handler runs on top of the call, as it would have on the code the call interrupted.
                try thread.resume(signal: signal)
            case .interrupted:
                // A group stop (SIGSTOP) waits until the thread is let go.
                try thread.resume()
            case .exited:
                throw RemoteCallError(.exited, "no such process")
            }
        }
    }

    /// The NUL-terminated string at `address` (at most `limit` bytes).
    public func string(at address: UInt64, limit: Int = 4096) throws(RemoteCallError) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        while bytes.count < limit {
            let n = pread(memory, &chunk, chunk.count, off_t(Int64(bitPattern: address + UInt64(bytes.count))))
            if n <= 0 {
                if bytes.isEmpty { throw RemoteCallError(.failed, "cannot read its memory at 0x\(String(address, radix: 16))") }
                break
            }
            if let end = chunk[0..<n].firstIndex(of: 0) {
                bytes += chunk[0..<end]
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func write(_ bytes: [UInt8], at address: UInt64) throws(RemoteCallError) {
        let n = pwrite(memory, bytes, bytes.count, off_t(Int64(bitPattern: address)))
        if n != bytes.count {
            throw RemoteCallError(.failed, "cannot write to its stack at 0x\(String(address, radix: 16))")
        }
    }
}

/// The executable mappings of the C library and the dynamic loader in process `pid`.
private func cLibraryCode(_ pid: Int32) -> [Range<UInt64>] {
    let names = ["libc.so", "libc-", "ld-linux", "ld-musl", "libpthread", "libdl"]
    return processMaps(String(pid)).filter { region in
        region.isExecutable && names.contains(where: { region.fileName.hasPrefix($0) })
    }.map(\.range)
}
