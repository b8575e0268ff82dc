"""Which CPython versions heapscope's tracker can be built for.

Run by `make build` and imported by setup.py before anything is compiled, so
that an unsupported interpreter gets one clear line instead of a compiler
error. The C hook layer (Sources/HeapscopeHooks/cpython.h) refuses the same
versions at compile time.
"""
import sys
import sysconfig

SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))


def problem():
    """Why this interpreter cannot have a tracker, or None."""
    version = "%d.%d" % sys.version_info[:2]
    names = ", ".join("%d.%d" % v for v in SUPPORTED)
    if sys.implementation.name != "cpython":
        return "heapscope supports CPython only; %s is %s" % (sys.executable, sys.implementation.name)
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return ("heapscope does not support free-threaded CPython (%s is built with --disable-gil): "
                "its stack walk and allocator hooks rely on the GIL" % sys.executable)
    if tuple(sys.version_info[:2]) not in SUPPORTED:
        why = ("older versions lack the APIs its tracker uses" if sys.version_info[:2] < SUPPORTED[0]
               else "its tracker reads each version's internal frame layout, and newer versions are not tested yet")
        return "heapscope supports CPython %s; %s is %s (%s)" % (names, sys.executable, version, why)
    return None


if __name__ == "__main__":
    message = problem()
    if message:
        sys.stderr.write("heapscope: error: %s\n" % message)
        sys.exit(1)
