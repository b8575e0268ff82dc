// What `heapscope attach` is to do, from its command line: the target process,
// the tracker for its CPython, the capture file, and the options the tracker
// reads in the target. Everything is checked before the target is touched.

import ArgumentParser
import HeapscopeFormat

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct AttachPlan {
    var target: AttachTarget
    var tracker: TrackerLibrary
    var output: CaptureOutput
    var options: AttachCommand
    /// --memory-limit, in bytes.
    var memoryLimit: UInt64?

    static func make(_ cmd: AttachCommand) throws -> AttachPlan {
        let memoryLimit = try parseMemoryLimit(cmd.memoryLimit)
        let target = try AttachTarget.inspect(cmd.pid)
        guard let version = target.pythonVersion else {
            throw commandFail("\(target.described) is not a CPython process (its program is \(target.executable))")
        }
        let tracker = try TrackerLibrary.locate(for: target, version: version)
        if let other = target.loadedTrackers.first(where: { $0 != tracker.path }) {
            throw commandFail("\(target.described) already has another heapscope's tracker loaded (\(other))")
        }
        let output = try CaptureOutput.check(
            cmd.output, default: "heapscope-attach-\(target.pid).\(timestamp(compact: true))\(cmd.aggregate ? ".aggregated" : "").hsc",
            force: cmd.force)
        try target.checkPtracePermission()
        return AttachPlan(target: target, tracker: tracker, output: output, options: cmd, memoryLimit: memoryLimit)
    }

    /// The JSON heapscope._attach.start reads in the target: the Tracker's arguments, and
    /// the `attach` object of the capture's metadata (docs/FORMAT.md).
    func trackerOptions(liveSocket: String?) -> String {
        // --aggregate: the tracker streams to this process only, which writes the capture.
        var fields = options.tracking.trackerFields() + [
            ("output", .string(options.aggregate ? "/dev/null" : output.absolute)),
            ("package_dir", .string(tracker.packageDir)),
            ("overwrite", .bool(options.force || options.aggregate)),
            ("aggregate", .bool(options.aggregate)),
            ("attach", .object([
                ("method", .string("ptrace")),
                ("time", .string(timestamp(compact: false))),
                ("heapscope_pid", .int(Int64(getpid()))),
            ])),
        ]
        if let liveSocket { fields.append(("live_socket", .string(liveSocket))) }
        if let memoryLimit { fields.append(("memory_limit", .int(Int64(memoryLimit)))) }
        return JSONValue.object(fields).serialized()
    }
}

/// UTC now: `20261201-201949` for file names, ISO 8601 for the metadata.
private func timestamp(compact: Bool) -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var buf = [CChar](repeating: 0, count: 64)
    strftime(&buf, buf.count, compact ? "%Y%m%d-%H%M%S" : "%Y-%m-%dT%H:%M:%SZ", &parts)
    return cStringBuffer(buf)
}
