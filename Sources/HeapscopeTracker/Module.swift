import HeapscopeHooks

/// The entry point CPython calls when `heapscope._tracker` is imported. The
/// module object itself (method table, argument parsing) is built by the C
/// shim, which also refuses an interpreter of another minor version.
@_cdecl("PyInit__tracker")
public func PyInit__tracker() -> UnsafeMutableRawPointer? {
    hs_module_create()
}
