"""Shared helpers for heapscope's pytest suite.

The suite runs the installed `heapscope` (make install / pip install
./PythonHarness) on real programs. HEAPSCOPE_TEST_COMMAND overrides the
command (e.g. a freshly built .build/release/heapscope).
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TIMEOUT = 300


def heapscope_command():
    override = os.environ.get("HEAPSCOPE_TEST_COMMAND")
    if override:
        return shlex.split(override)
    script = Path(sysconfig.get_path("scripts")) / "heapscope"
    if script.exists():
        return [str(script)]
    found = shutil.which("heapscope")
    if found:
        return [found]
    pytest.fail("the heapscope command is not installed: run `make install` first")


def clean_env(**overrides):
    """The test process's environment without heapscope's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPSCOPE_") or k == "HEAPSCOPE_TEST_COMMAND"}
    env.pop("HEAPSCOPE_TEST_COMMAND", None)
    env.pop("PYTHONPATH", None)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(cmd, cwd, env=None, input=b"", timeout=TIMEOUT):
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=str(cwd),
        env=env if env is not None else clean_env(),
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )


class Heapscope:
    def __init__(self, cwd):
        self.cwd = cwd
        self.command = heapscope_command()

    def __call__(self, *args, cwd=None, env=None, input=b"", timeout=TIMEOUT):
        return run(self.command + list(args), cwd or self.cwd, env=env, input=input, timeout=timeout)

    def python(self, *args, cwd=None, env=None, input=b"", timeout=TIMEOUT):
        """The same program without heapscope, for comparison."""
        return run([sys.executable] + list(args), cwd or self.cwd, env=env, input=input, timeout=timeout)

    def stats_json(self, capture, *extra):
        proc = self("stats", "--json", *extra, str(capture))
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return json.loads(proc.stdout)


@pytest.fixture
def hs(tmp_path):
    return Heapscope(tmp_path)


def reported_name(qualname):
    """The name reports give the function of this qualified name: 3.10's code
    objects carry no qualified name, only co_name ("Thread._bootstrap" is
    "_bootstrap" there)."""
    return qualname if sys.version_info >= (3, 11) else qualname.rsplit(".", 1)[-1]


def comprehension_frame(function):
    """The frame name reports give a list comprehension inside `function`.

    3.11 runs it in a frame of its own, named by its qualified name; 3.10 has
    no co_qualname, so the frame is only "<listcomp>"; 3.12 and later run
    list, dict and set comprehensions inline in the enclosing function's
    frame (PEP 709), so its allocations are the function's own.
    """
    if sys.version_info >= (3, 12):
        return function
    if sys.version_info >= (3, 11):
        return function + ".<locals>.<listcomp>"
    return "<listcomp>"


def write(path, text):
    path = Path(path)
    path.write_text(text)
    return path


def summary_numbers(stderr):
    """(allocations, bytes allocated, peak bytes) from the summary `run` and `attach` print."""
    def figure(label):
        line = re.search(rf"^  {label}:\s+(.*)$", stderr, re.M).group(1)
        exact = re.search(r"\(([\d,]+) bytes\)", line) or re.match(r"([\d,]+)", line)
        return int(exact.group(1).replace(",", ""))
    return figure("total allocations"), figure("total allocated"), figure("peak memory")
