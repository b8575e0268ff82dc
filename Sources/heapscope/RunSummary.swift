// The summary `heapscope run` prints when the program ends: the capture, its
// totals (CaptureSummary.swift) and the captures of the processes it started.

import HeapscopeAnalysis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension RunPlan {
    /// Captures of the processes the program started (`--follow-fork`): those
    /// `heapscope stats --children` reads with it (ProcessTree.find).
    /// The program has ended, but processes it started may still be finishing
    /// their captures (a pool's workers, SIGTERMed as the pool closes, or a
    /// forkserver's): heapscope waits for them, up to `timeout` seconds, so
    /// that every capture it names is complete when it exits.
    func childCaptures(of path: String, timeout: Double = 5) -> [String] {
        let deadline = monotonicSeconds() + timeout
        while true {
            let children = ((try? ProcessTree.find(root: path))?.captures ?? []).dropFirst()
            let running = children.contains { kill(pid_t($0.header.pid), 0) == 0 }
            if !running || monotonicSeconds() > deadline { return children.map(\.path) }
            usleep(10_000)
        }
    }

    func reportCapture(path: String, absolutePath: String, elapsed: Double, status: ChildStatus, totals: CaptureTotals?, atLimit: Bool,
                       limitLines: [String], children: [String]) {
        var facts = [summaryLine("command line", shellQuoted(commandLine)), summaryLine("duration", formatSeconds(elapsed))]
        switch status {
        case .exited where atLimit:
            break   // said below, with what held the memory
        case .exited(let code) where code != 0:
            facts.append(summaryLine("exit status", "\(code)"))
        case .signaled(let sig):
            // Whether the capture is complete is the totals' note, from the capture itself.
            facts.append(summaryLine("killed by signal", "\(sig) (\(String(cString: strsignal(sig))))"))
        default:
            break
        }
        var lines = limitLines
        if !children.isEmpty {
            lines.append(summaryLine("child processes", "\(children.count) captures: \(children.joined(separator: ", "))"))
        }
        if options.leaks {
            // LEAKS SUMMARY (run --leaks): LeaksSummary.swift.
            lines += leaksSummaryLines(capture: absolutePath, suppressionsFile: options.suppressions,
                                       userPythonMalloc: userPythonMalloc)
        }
        writeCaptureSummary(capture: path, facts: facts, totals: totals, more: lines)
    }
}
