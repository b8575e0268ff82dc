import ArgumentParser

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
}
