import ArgumentParser
import HeapscopeFormat

/// What to record: the options `run` and `attach` share.
struct TrackingOptions: ParsableArguments {
    @Flag(help: "Record native (C, C++, Rust) stacks as well as Python stacks.")
    var native = false

    @Flag(
        inversion: .prefixedNo,
        help: "Trace CPython's own allocators (PyMem/PyObject and pymalloc arenas); on by default.")
    var tracePythonAllocators = true

    @Flag(help: "Record child processes into captures of their own, <capture>.<pid>: forked children, and (run) every Python the program execs.")
    var followFork = false

    /// The tracker's arguments these options set, in the JSON that run's
    /// bootstrap and attach's _attach.py read (`leaks`: run --leaks traces the
    /// Python allocators whatever --no-trace-python-allocators says).
    func trackerFields(leaks: Bool = false) -> [(key: String, value: JSONValue)] {
        [
            ("native", .bool(native)),
            ("trace_python_allocators", .bool(tracePythonAllocators || leaks)),
            ("follow_fork", .bool(followFork)),
        ]
    }
}
