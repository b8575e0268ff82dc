// `--aggregate` (run, and the Python API's `heapscope aggregate` child): the
// tracker writes no event file, it streams to its live fd only; this process
// stores the stream (LiveStore: the program never waits for the aggregator;
// what has been replayed is given back to the disk), replays it into the one replay engine (`Aggregation`) and rewrites the
// aggregated capture at least every second, atomically, then once more when
// the stream ends: a program killed by SIGKILL loses nothing that reached the
// socket (docs/ARCHITECTURE.md, "Aggregated captures").

import HeapscopeAnalysis
import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum AggregateWriter {
    /// Seconds between two rewrites of the capture while the program runs.
    static let interval = 1.0
    /// Stream bytes replayed between two looks at the clock.
    static let chunk = 1 << 20

    /// Follows `store` until it ends, writing the aggregated capture to `path`;
    /// false if none could be written.
    @discardableResult
    static func follow(_ store: LiveStore, to path: String) -> Bool {
        var feed = StreamFeed<Aggregation> { Aggregation(header: $0) }
        var offset = 0
        var failed = false
        var nextWrite = monotonicSeconds() + interval
        while true {
            let state = store.wait(beyond: offset, milliseconds: 100)
            if state.length > offset && !failed {
                let bytes = store.read(at: offset, count: min(state.length - offset, chunk))
                offset += bytes.count
                store.release(before: offset)
                do {
                    try feed.append(bytes)
                } catch {
                    // What was read before the damage is kept and written.
                    writeStderr("heapscope: error: the program's stream is damaged: \(error); the aggregated capture holds what came before\n")
                    failed = true
                }
            } else if failed {
                offset = state.length
            }
            if monotonicSeconds() >= nextWrite, let aggregation = feed.consumer {
                replace(path, with: aggregation.capture(state: .checkpoint))
                nextWrite = monotonicSeconds() + interval
            }
            if state.ended && offset >= store.snapshot().length { break }
        }
        guard let aggregation = feed.consumer else {
            writeStderr("heapscope: error: the program sent no capture header: no aggregated capture was written\n")
            return false
        }
        return replace(path, with: aggregation.capture(state: aggregation.streamEnded ? .ended : .cutShort))
    }

    /// Replaces `path` with `bytes` atomically: `path.tmp-PID`, fsync, rename.
    /// A reader sees the old capture or the new one, never part of one.
    @discardableResult
    static func replace(_ path: String, with bytes: [UInt8]) -> Bool {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            writeStderr("heapscope: error: cannot write \(temporary): \(String(cString: strerror(errno)))\n")
            return false
        }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        let synced = done == bytes.count && fsync(fd) == 0
        let failure = errno
        close(fd)
        guard synced, rename(temporary, path) == 0 else {
            writeStderr("heapscope: error: cannot write \(path): \(String(cString: strerror(synced ? errno : failure)))\n")
            unlink(temporary)
            return false
        }
        return true
    }
}

extension RunPlan {
    /// `run --aggregate`: one thread stores the feed and then waits for the
    /// program; this one aggregates what is stored until the stream ends.
    func followAggregate(feed: Int32, pid: pid_t, store: LiveStore, path: String) -> ChildStatus {
        let plan = self
        startThread { _ = plan.followFeed(feed, pid: pid, store: store) }
        AggregateWriter.follow(store, to: path)
        return store.snapshot().exit ?? waitForChild(pid).status
    }
}
