"""`python -m heapscope`.

Hands over to the Swift binary bundled in the package (heapscope/bin/heapscope),
with the same arguments, as the `heapscope` console script (scripts/heapscope,
a shell script) does, so they are one program. The binary learns which Python
to profile with (HEAPSCOPE_PYTHON, this interpreter unless already set) and where
the package lives (HEAPSCOPE_PACKAGE_DIR: the bootstrap for `heapscope run`).
"""
from __future__ import annotations   # annotations unevaluated: no `typing` import at start

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def binary_path() -> str:
    """Path of the bundled Swift CLI."""
    return os.path.join(_PACKAGE_DIR, "bin", "heapscope")


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    binary = binary_path()
    if not os.path.isfile(binary):
        sys.stderr.write(
            "heapscope: error: the heapscope binary is missing (%s); "
            "build it with `make build` or reinstall with `pip install ./PythonHarness`\n" % binary
        )
        return 2
    if not os.access(binary, os.X_OK):
        try:
            os.chmod(binary, os.stat(binary).st_mode | 0o111)
        except OSError:
            pass
    env = dict(os.environ)
    added = []
    # Respect a value the user set (e.g. to profile with another interpreter).
    for key, value in (("HEAPSCOPE_PYTHON", sys.executable), ("HEAPSCOPE_PACKAGE_DIR", _PACKAGE_DIR)):
        if not env.get(key) and value:
            env[key] = value
            added.append(key)
    # The binary removes the variables this entry added from the profiled
    # program's environment, so the program sees the environment the user had.
    if added:
        env["HEAPSCOPE_ENTRY_SET"] = ",".join(added)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(binary, ["heapscope"] + list(argv), env)
    except OSError as exc:
        sys.stderr.write("heapscope: error: cannot run %s: %s\n" % (binary, exc.strerror or exc))
        return 2
    return 2  # not reached


if __name__ == "__main__":
    sys.exit(main())
