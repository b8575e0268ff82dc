"""The CPython version seam: what is refused, and how clearly.

Every supported version runs the whole suite (make test); these tests check
the refusals: a build for an unsupported interpreter, and a tracker loaded
into another minor version than it was built for.
"""
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import heapscope
from conftest import REPO

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
# A tracker's undefined symbols must exist in the interpreter that loads it
# before its own version check can run: these pairs share them.
PARTNER = {(3, 10): "3.11", (3, 11): "3.10", (3, 12): "3.13", (3, 13): "3.12"}


def pyenv_python(version):
    found = sorted(PYENV_VERSIONS.glob("%s.*/bin/python%s" % (version, version)))
    return found[-1] if found else None


def test_tracker_refuses_another_minor_version(tmp_path):
    here = "%d.%d" % sys.version_info[:2]
    other = pyenv_python(PARTNER[sys.version_info[:2]])
    if other is None:
        pytest.skip("no CPython %s in %s" % (PARTNER[sys.version_info[:2]], PYENV_VERSIONS))
    suffix = subprocess.run([str(other), "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
                            stdout=subprocess.PIPE, check=True, text=True).stdout.strip()
    ours = Path(heapscope.__file__).parent / ("_tracker" + sysconfig.get_config_var("EXT_SUFFIX"))
    # This interpreter's tracker, named as the other interpreter's would be.
    shutil.copy(ours, tmp_path / ("_tracker" + suffix))
    proc = subprocess.run([str(other), "-c", "import sys; sys.path.insert(0, sys.argv[1]); import _tracker", str(tmp_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last == ("ImportError: heapscope's tracker was built for CPython %s but was loaded by %s; "
                    "reinstall heapscope with this interpreter" % (here, PARTNER[sys.version_info[:2]])), proc.stderr


@pytest.fixture
def python39():
    python = pyenv_python("3.9")
    if python is None:
        pytest.skip("no CPython 3.9 in %s" % PYENV_VERSIONS)
    return python


def test_build_refuses_an_unsupported_python_in_one_line(python39):
    proc = subprocess.run(["make", "--no-print-directory", "build", "PYTHON=%s" % python39], cwd=str(REPO),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode != 0
    assert proc.stdout == ""   # nothing was built
    first = proc.stderr.splitlines()[0]
    assert first.startswith("heapscope: error: heapscope supports CPython 3.10, 3.11, 3.12, 3.13; "), proc.stderr
    assert "is 3.9" in first and "older versions lack" in first


def test_the_hook_layer_refuses_unsupported_headers(python39, tmp_path):
    """The C backstop: cpython.h's #error, for a build that skipped the check."""
    include = subprocess.run([str(python39), "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
                             stdout=subprocess.PIPE, check=True, text=True).stdout.strip()
    hooks = REPO / "Sources" / "HeapscopeHooks"
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "no C compiler on PATH"
    proc = subprocess.run([compiler, "-fsyntax-only", "-I" + include, "-I" + str(hooks / "include"), str(hooks / "python.c")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert "heapscope supports CPython 3.10, 3.11, 3.12 and 3.13" in errors[0], proc.stderr


def libpython_object():
    """The file the interpreter's code is in: libpython, or the executable itself."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "/libpython%d.%d" % sys.version_info[:2] in path:
                return path
    return os.path.realpath(sys.executable)


def test_the_walk_reads_the_thread_state_in_one_load_where_it_can(tmp_path):
    """3.12 and 3.13 keep the thread state in a thread-local variable that
    libpython does not export: where its symbol table names it (readelf is
    the independent witness), the tracker reads it with one load instead of
    a call into libpython on every allocation (tstate_312.c)."""
    code = ("import heapscope, heapscope._tracker as t, sys\n"
            "with heapscope.Tracker(sys.argv[1]):\n"
            "    x = [str(i) for i in range(100)]\n"
            "print(t.thread_state_source())\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.hsc")], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    symbols = subprocess.run(["readelf", "-sW", libpython_object()], stdout=subprocess.PIPE, text=True, check=True).stdout
    named = any(line.split()[3:4] == ["TLS"] and line.split()[-1] == "_Py_tss_tstate" for line in symbols.splitlines())
    one_load = sys.version_info >= (3, 12) and platform.machine() == "x86_64" and named
    assert proc.stdout == ("thread-local load\n" if one_load else "call\n")
