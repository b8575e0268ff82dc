"""The launch path of `heapscope run` does not fail silently (issue 16): an
interpreter that never runs the bootstrap gets a clear error, Tracker.start
leaves the process's stderr alone, and a command line longer than one
environment variable can hold still runs."""
import json
import os
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import clean_env, run, write

BOOTSTRAP_ERROR = ("heapscope: error: the program ran untracked: {python} did not run heapscope's bootstrap "
                   "(an interpreter that ignores PYTHONPATH, e.g. one started with -E, -I or -S, cannot be profiled by heapscope run)")


@pytest.mark.parametrize("flag", ["-E", "-I", "-S"])
@pytest.mark.parametrize("status", [0, 5])
def test_interpreter_that_skips_the_bootstrap(hs, tmp_path, flag, status):
    python = write(tmp_path / "python-with-flag", f'#!/bin/sh\nexec {sys.executable} {flag} "$@"\n')
    python.chmod(0o755)
    script = write(tmp_path / "prog.py", f"import sys\nprint('ran')\nsys.exit({status})\n")
    capture = tmp_path / "x.hsc"
    proc = hs("run", "-o", str(capture), str(script), env=clean_env(HEAPSCOPE_PYTHON=str(python)))
    # The program's own status when it failed; otherwise not the 0 of a success.
    assert proc.returncode == (status or 2)
    assert proc.stdout == b"ran\n"
    assert proc.stderr.decode().splitlines() == [BOOTSTRAP_ERROR.format(python=python)]
    assert not capture.exists()


def test_tracker_start_leaves_stderr_alone(hs, tmp_path):
    """Starting a Tracker must not point fd 2 elsewhere, even for a moment:
    another thread's error output would vanish into heapscope's file."""
    script = write(tmp_path / "prog.py", """\
import json, os, sys
import heapscope
touched = []
for name in ("dup2", "dup", "close"):
    original = getattr(os, name)
    def spy(*args, _original=original, _name=name):
        touched.append([_name] + list(args))
        return _original(*args)
    setattr(os, name, spy)
before = os.fstat(2)
with heapscope.Tracker(sys.argv[1]):
    during = os.fstat(2)
    x = [str(i) for i in range(1000)]
print(json.dumps({"fd2_calls": [c for c in touched if 2 in c[1:] or c[0] == "dup" and c[1] == 2],
                  "same": (before.st_dev, before.st_ino) == (during.st_dev, during.st_ino)}))
""")
    capture = tmp_path / "api.hsc"
    proc = hs.python(str(script), str(capture), env=clean_env())
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == {"fd2_calls": [], "same": True}
    # The geometry is still cross-checked against the interpreter's own statistics.
    header = hs("parse", str(capture)).stdout.decode().splitlines()[1]
    metadata = json.loads(header[len("METADATA "):])
    assert {"small_request_threshold", "alignment", "arena_size"} <= set(metadata["pymalloc"]["cross_checked"])


def test_command_line_longer_than_an_environment_variable(hs, tmp_path):
    # Linux limits one argument or environment string to 128 KiB: 300 KiB of arguments.
    arguments = [f"{i:04d}" + "a" * 996 for i in range(300)]
    script = write(tmp_path / "prog.py", "import sys\nprint(len(sys.argv) - 1, sum(map(len, sys.argv[1:])))\n")
    capture = tmp_path / "long.hsc"
    proc = hs("run", "-q", "-o", str(capture), str(script), *arguments)
    assert proc.returncode == 0, proc.stderr[:500]
    assert proc.stdout == b"300 300000\n"
    header = hs("parse", str(capture)).stdout.decode().splitlines()[1]
    assert json.loads(header[len("METADATA "):])["command_line"] == [str(script)] + arguments


def imported_modules(stderr):
    return {line.rsplit("|", 1)[1].strip() for line in stderr.decode().splitlines() if line.startswith("import time:")}


def test_the_command_starts_no_python_before_the_cli(tmp_path):
    """Every `heapscope run` would pay for an interpreter's start in front of
    the Swift CLI: the console script (a shell script) starts none."""
    script = Path(sysconfig.get_path("scripts")) / "heapscope"
    proc = run([script, "--version"], tmp_path, env=clean_env(PYTHONPROFILEIMPORTTIME="1"))
    assert proc.returncode == 0, proc.stderr
    assert imported_modules(proc.stderr) == set(), proc.stderr


def test_python_m_heapscope_imports_only_what_it_needs(tmp_path):
    """`python -m heapscope` imports the package and its small front module
    (run as __main__), and not re, enum, json or typing, before it hands over
    to the CLI."""
    proc = run([sys.executable, "-m", "heapscope", "--version"], tmp_path, env=clean_env(PYTHONPROFILEIMPORTTIME="1"))
    assert proc.returncode == 0, proc.stderr
    imported = imported_modules(proc.stderr)
    assert "heapscope" in imported, imported
    assert not imported & {"re", "enum", "json", "typing"}, sorted(imported)
