// The summary `heapscope run` prints when the program ends: the capture, its
// totals (CaptureSummary.swift) and the captures of the processes it started.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension RunPlan {
    /// Captures of the processes the program started (`--follow-fork`):
    /// `<path>.<pid>`, theirs `<path>.<pid>.<pid>`, and so on down the tree;
    /// `<pid>-N` is a later image of a process that exec'd Python again.
    func childCaptures(of path: String, since: time_t) -> [String] {
        let dir = parentDirectory(of: path)
        let base = path.split(separator: "/").last.map(String.init) ?? path
        guard let handle = opendir(dir) else { return [] }
        defer { closedir(handle) }
        var found: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            guard name.hasPrefix(base + "."), name.count > base.count + 1 else { continue }
            let suffix = name.dropFirst(base.count + 1)
            guard isChildSuffix(suffix) else { continue }
            let full = (path.contains("/") ? dir + "/" : "") + name
            var st = stat()
            if stat(full, &st) == 0, st.st_mtim.tv_sec >= since - 1 { found.append(full) }
        }
        return found.sorted()
    }

    private func isChildSuffix(_ suffix: Substring) -> Bool {
        suffix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            let pieces = part.split(separator: "-", omittingEmptySubsequences: false)
            return pieces.count <= 2 && pieces.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
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
