"""The CPython version seam: what is refused, and how clearly.

Every supported version runs the whole suite (make test); these tests check
the refusals: a build for an unsupported interpreter, and a tracker loaded
into another minor version than it was built for.
"""
import os
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
