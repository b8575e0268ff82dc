// One thread of another process under ptrace(2): typed Swift over the CPtrace
// shim, errors as RemoteCallError.

import CPtrace

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a call into another process could not be made.
public struct RemoteCallError: Error {
    public enum Reason: Sendable {
        /// ptrace refused (another user's process, Yama's ptrace_scope, a tracer already there).
        case notPermitted
        /// The process ended.
        case exited
        case failed
    }

    public let reason: Reason
    public let message: String

    init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    /// A ptrace request's -errno.
    init(request: String, errno code: Int32) {
        switch code {
        case ESRCH: self.init(.exited, "no such process")
        case EPERM: self.init(.notPermitted, "\(request): \(String(cString: strerror(code)))")
        default: self.init(.failed, "\(request): \(String(cString: strerror(code)))")
        }
    }
}

/// The FPU and vector registers as the kernel hands them out.
enum VectorState {
    case xsave([UInt8])
    case fxsave(user_fpregs_struct)
}

struct TracedThread {
    let tid: pid_t

    /// Takes the thread under ptrace without stopping it.
    static func seize(_ tid: pid_t) throws(RemoteCallError) -> TracedThread {
        try check(hs_ptrace_seize(tid), "PTRACE_SEIZE")
        return TracedThread(tid: tid)
    }

    func interrupt() throws(RemoteCallError) { try check(hs_ptrace_interrupt(tid), "PTRACE_INTERRUPT") }

    /// Resumes the thread from a stop; `signal`: the one it was stopped for, to deliver, or 0.
    func resume(signal: Int32 = 0) throws(RemoteCallError) { try check(hs_ptrace_cont(tid, signal), "PTRACE_CONT") }

    /// Lets the thread go; from a signal stop, with that signal delivered (0: none).
    func detach(signal: Int32 = 0) throws(RemoteCallError) { try check(hs_ptrace_detach(tid, signal), "PTRACE_DETACH") }

    func registers() throws(RemoteCallError) -> user_regs_struct {
        var regs = user_regs_struct()
        try check(hs_ptrace_get_regs(tid, &regs), "PTRACE_GETREGS")
        return regs
    }

    func setRegisters(_ regs: user_regs_struct) throws(RemoteCallError) {
        var regs = regs
        try check(hs_ptrace_set_regs(tid, &regs), "PTRACE_SETREGS")
    }

    func vectorState() throws(RemoteCallError) -> VectorState {
        // Larger than any XSAVE area so far (with AMX's tiles, 11 KiB).
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var size = buffer.count
        let rc = hs_ptrace_get_xstate(tid, &buffer, &size)
        if rc == 0 { return .xsave(Array(buffer[0..<size])) }
        // A kernel or CPU without XSAVE.
        guard rc == -EIO || rc == -EINVAL || rc == -ENODEV else {
            throw RemoteCallError(request: "PTRACE_GETREGSET NT_X86_XSTATE", errno: -rc)
        }
        var fpregs = user_fpregs_struct()
        try check(hs_ptrace_get_fpregs(tid, &fpregs), "PTRACE_GETFPREGS")
        return .fxsave(fpregs)
    }

    func setVectorState(_ state: VectorState) throws(RemoteCallError) {
        switch state {
        case .xsave(var bytes):
            try check(hs_ptrace_set_xstate(tid, &bytes, bytes.count), "PTRACE_SETREGSET NT_X86_XSTATE")
        case .fxsave(var fpregs):
            try check(hs_ptrace_set_fpregs(tid, &fpregs), "PTRACE_SETFPREGS")
        }
    }

    enum Stop: Equatable {
        /// Stopped by PTRACE_INTERRUPT, or in a group stop (SIGSTOP and the like).
        case interrupted
        /// About to receive this signal.
        case signal(Int32)
        case exited
    }

    /// The thread's next stop; nil if it is still running at `deadline` (monotonic seconds).
    func nextStop(until deadline: Double) throws(RemoteCallError) -> Stop? {
        var status: Int32 = 0
        while true {
            // __WALL: the thread is not a child of ours.
            let rc = waitpid(tid, &status, __WALL | WNOHANG)
            if rc < 0 {
                if errno == EINTR { continue }
                if errno == ECHILD { return .exited }
                throw RemoteCallError(.failed, "waitpid: \(String(cString: strerror(errno)))")
            }
            if rc == tid { break }
            if monotonicSeconds() >= deadline { return nil }
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&pause, nil)
        }
        guard status & 0xff == 0x7f else { return .exited }   // not WIFSTOPPED: exited or killed
        let signal = (status >> 8) & 0xff
        let event = status >> 16
        return event == Int32(PTRACE_EVENT_STOP.rawValue) ? .interrupted : .signal(signal)
    }
}

private func check(_ rc: Int32, _ request: String) throws(RemoteCallError) {
    if rc != 0 { throw RemoteCallError(request: request, errno: -rc) }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
