"""`heapscope attach PID` / `heapscope detach PID` on real processes started
plainly with `python` (no heapscope in them until attach loads it, through ptrace).

The target scripts allocate `bytes(N)` on a line of their own: one allocation
of exactly N + 33 bytes (the bytes object's header and trailing NUL in
CPython 3.11), so a location's count and bytes can be checked against each
other. Each target runs until the test creates its stop file.
"""
import glob
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import test_live
from conftest import REPO, clean_env, summary_numbers, write
from test_live import tmux  # noqa: F401 (the fixture)

BYTES_OVERHEAD = 33   # sizeof(PyBytesObject) in CPython 3.11: header + the trailing NUL
BEFORE_SIZE = 30_000
LOOP_SIZE = 40_000

LOOP_SCRIPT = f"""\
import os, sys, time

keep = []

def before():
    block = bytes({BEFORE_SIZE})
    keep.append(block)
    del keep[:-4]

def loop():
    block = bytes({LOOP_SIZE})
    keep.append(block)
    del keep[:-4]

for _ in range(200):
    before()
print("before done", flush=True)
n = 0
while not os.path.exists(sys.argv[1]):
    loop()
    n += 1
    time.sleep(0.005)
print("loop ran", n, "times", flush=True)
"""

THREADS_SCRIPT = """\
import os, sys, threading, time

stop = sys.argv[1]
keep = {}

def work(k):
    size = 20_000 + k
    while not os.path.exists(stop):
        block = bytes(size)
        keep[k] = block
        time.sleep(0.005)

threads = [threading.Thread(target=work, args=(k,), name="worker-%d" % k) for k in range(3)]
for t in threads:
    t.start()
print("threads started", flush=True)
while not os.path.exists(stop):   # the main thread runs bytecode: pending calls run there
    time.sleep(0.01)
for t in threads:
    t.join()
print("threads done", flush=True)
"""

SLEEP_SCRIPT = """\
import sys, time

print("sleeping", flush=True)
time.sleep(float(sys.argv[1]))
data = [bytes(1000) for _ in range(100)]
print("woke up", len(data), flush=True)
"""


class Target:
    """A Python process started plainly, stopped by creating its stop file."""

    def __init__(self, tmp_path, script, *args, python=None, prefix=()):
        self.stop_file = tmp_path / ("stop-%d" % id(self))
        path = write(tmp_path / ("target-%d.py" % id(self)), script)
        argv = list(prefix) + [python or sys.executable, str(path)] + [str(a) for a in args or [self.stop_file]]
        self.proc = subprocess.Popen(
            argv, cwd=str(tmp_path), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.pid = self.proc.pid
        self.first_line = self.proc.stdout.readline().decode()

    def alive(self):
        return self.proc.poll() is None

    def finish(self, timeout=30):
        self.stop_file.touch()
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, self.first_line + out.decode(), err.decode()

    def kill(self):
        if self.alive():
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def targets(tmp_path):
    started = []

    def start(script, *args, **kwargs):
        target = Target(tmp_path, script, *args, **kwargs)
        started.append(target)
        return target

    yield start
    for target in started:
        target.kill()


def one_error_line(proc):
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode != 0, proc.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("heapscope: error: "), lines
    return lines[0]


def attach_in_background(hs, tmp_path, capture, target):
    """A `heapscope attach` with no --duration, once it says it records."""
    attach = subprocess.Popen(
        hs.command + ["attach", "-o", str(capture), str(target.pid)],
        cwd=str(tmp_path), env=clean_env(), stderr=subprocess.PIPE,
    )
    assert b"heapscope: attached to process" in attach.stderr.readline()
    return attach


def attach_ok(hs, target, *args):
    """`heapscope attach ARGS PID`, which must succeed; its stderr."""
    proc = hs("attach", *args, str(target.pid))
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stderr.decode()


def locations(hs, capture):
    """{function: (count, bytes)} of every allocating location."""
    stats = hs.stats_json(capture, "-n", "1000")
    found = {}
    for entry in stats["top_by_bytes"]:
        count, size = found.get(entry["function"], (0, 0))
        found[entry["function"]] = (count + entry["count"], size + entry["bytes"])
    return stats, found


def test_attach_records_the_window_and_the_target_runs_on(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    assert target.first_line == "before done\n"
    capture = tmp_path / "window.hsc"
    err = attach_ok(hs, target, "--duration", "2", "-o", str(capture))
    assert f"heapscope: capture written to {capture}" in err
    assert "total allocations:" in err and "peak memory:" in err
    assert target.alive()
    code, out, target_err = target.finish()
    assert code == 0, target_err
    assert target_err == ""
    total_loops = int(out.split()[-2])   # "loop ran N times"

    stats, found = locations(hs, capture)
    assert stats["truncated"] is False
    # The summary's totals are the tracker's, and stats' figures.
    assert summary_numbers(err) == (stats["total_allocations"], stats["total_bytes"], stats["peak_bytes"])
    assert "before" not in found   # its allocations were all made before the attach
    count, size = found["loop"]
    # Every allocation of loop() is its bytes(LOOP_SIZE): one block per iteration.
    assert size == count * (LOOP_SIZE + BYTES_OVERHEAD)
    # A 2 s window of a loop that sleeps 5 ms per iteration: a good share of
    # its iterations, not all of them.
    assert 20 <= count < total_loops
    assert 1.9 <= stats["duration_seconds"] < 10
    meta = stats["metadata"]
    assert meta["source"] == "attach"
    assert meta["attach"]["method"] == "ptrace"
    assert meta["attach"]["time"].endswith("Z")
    assert meta["command_line"] == [str(tmp_path / os.path.basename(meta["command_line"][0])), str(target.stop_file)]
    assert stats["pid"] == target.pid
    assert not list(tmp_path.glob(".heapscope-attach-*"))   # the status file is gone


def test_attach_twice_in_a_row_then_detach_of_an_idle_process(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    first, second = tmp_path / "first.hsc", tmp_path / "second.hsc"
    for capture in (first, second):
        attach_ok(hs, target, "--duration", "0.5", "-o", str(capture))
    for capture in (first, second):
        _, found = locations(hs, capture)
        count, size = found["loop"]
        assert count > 0 and size == count * (LOOP_SIZE + BYTES_OVERHEAD)
    # The tracker stays loaded, inactive: detach says it is not tracking.
    line = one_error_line(hs("detach", str(target.pid)))
    assert f"process {target.pid}" in line and "is not being tracked by heapscope" in line
    code, out, err = target.finish()
    assert code == 0 and err == "" and out.startswith("before done\nloop ran ")


def test_detach_ends_the_recording(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    capture = tmp_path / "detached.hsc"
    attach = attach_in_background(hs, tmp_path, capture, target)
    # attach is recording; detach ends it.
    proc = hs("detach", str(target.pid))
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"heapscope: detached from process {target.pid}" in proc.stderr.decode()
    assert f"capture: {capture}" in proc.stderr.decode()
    rest = attach.stderr.read().decode()
    assert attach.wait(timeout=30) == 0, rest
    assert "ended by:          heapscope detach" in rest
    _, found = locations(hs, capture)
    assert found["loop"][0] > 0
    code, _, err = target.finish()
    assert code == 0 and err == ""


def test_target_exit_while_attached_finishes_the_capture(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    capture = tmp_path / "exit.hsc"
    attach = attach_in_background(hs, tmp_path, capture, target)
    code, out, err = target.finish()
    assert code == 0 and err == "" and "loop ran" in out
    rest = attach.stderr.read().decode()
    assert attach.wait(timeout=30) == 0, rest
    assert "ended by:          the process's exit" in rest
    stats, found = locations(hs, capture)
    assert stats["truncated"] is False
    assert found["loop"][0] > 0


def test_multithreaded_target(hs, targets, tmp_path):
    target = targets(THREADS_SCRIPT)
    assert target.first_line == "threads started\n"
    capture = tmp_path / "threads.hsc"
    attach_ok(hs, target, "--duration", "1", "-o", str(capture))
    code, out, err = target.finish()
    assert code == 0 and err == "" and out.endswith("threads done\n")
    stats = hs.stats_json(capture, "-n", "1000")
    by_name = {t["name"]: t for t in stats["threads"]}
    for k in range(3):
        assert by_name["worker-%d" % k]["count"] > 0, stats["threads"]
    assert "MainThread" in by_name
    # The workers' blocks, bytes(20000 + k), all come from one line of work().
    block_line = THREADS_SCRIPT.splitlines().index("        block = bytes(size)") + 1
    (line,) = [e for e in stats["top_by_bytes"] if e["function"] == "work" and e["line"] == block_line]
    smallest = 20_000 + BYTES_OVERHEAD
    assert smallest * line["count"] <= line["bytes"] <= (smallest + 2) * line["count"]


def test_native_stacks_on_an_attached_process(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    capture = tmp_path / "native.hsc"
    attach_ok(hs, target, "--native", "--duration", "1", "-o", str(capture))
    stats = hs.stats_json(capture)
    assert stats["flags"]["native"] is True
    tree = hs("tree", "-b", "1", "--stacks", "hybrid", str(capture))
    assert tree.returncode == 0, tree.stderr.decode()
    lines = tree.stdout.decode()
    # The biggest site: loop()'s bytes(), then CPython's C functions under it.
    assert "loop" in lines and "_PyBytes_FromSize" in lines, lines
    code, _, err = target.finish()
    assert code == 0 and err == ""


def test_target_blocked_in_sleep_is_left_alone(hs, targets, tmp_path):
    # Sleeps 6 s: attach gives up after 1 s (and returns well before the
    # target wakes up); the start it scheduled must not run when it does.
    target = targets(SLEEP_SCRIPT, 6)
    assert target.first_line == "sleeping\n"
    capture = tmp_path / "never.hsc"
    began = time.monotonic()
    proc = hs("attach", "--timeout", "1", "-o", str(capture), str(target.pid))
    took = time.monotonic() - began
    line = one_error_line(proc)
    assert f"process {target.pid}" in line and "did not reach a safe point within 1.00 s" in line
    assert "tracking was not started" in line
    assert took < 6
    assert target.alive()
    out, err = target.proc.communicate(timeout=30)
    assert target.proc.returncode == 0 and err == b"" and out == b"woke up 100\n"
    assert not capture.exists()
    assert not list(tmp_path.glob(".heapscope-attach-*"))


def test_detach_of_a_target_gone_to_sleep_waits_a_bounded_time(hs, targets, tmp_path):
    # Recording, then the main thread sleeps 4 s: detach gives up after 1 s
    # and says when tracking will stop; it does stop when the target wakes,
    # and the attach that started it finishes normally.
    script = LOOP_SCRIPT.replace("    time.sleep(0.005)\n", "    time.sleep(0.005)\n    if os.path.exists(sys.argv[1] + '.nap'):\n        time.sleep(4)\n        break\n")
    target = targets(script)
    capture = tmp_path / "nap.hsc"
    attach = attach_in_background(hs, tmp_path, capture, target)
    (tmp_path / (target.stop_file.name + ".nap")).touch()
    time.sleep(0.2)   # the loop sees it and goes to sleep
    line = one_error_line(hs("detach", "--timeout", "1", str(target.pid)))
    assert f"process {target.pid}" in line
    assert "did not reach a safe point within 1.00 s; tracking stops when its main thread next runs Python code" in line
    rest = attach.stderr.read().decode()
    assert attach.wait(timeout=30) == 0, rest
    assert "ended by:          heapscope detach" in rest
    code, out, err = target.finish()
    assert code == 0 and err == "" and "loop ran" in out
    stats, found = locations(hs, capture)
    assert stats["truncated"] is False and found["loop"][0] > 0


def test_no_such_process(hs, tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    line = one_error_line(hs("attach", str(gone.pid)))
    assert line == f"heapscope: error: no such process: {gone.pid}"
    line = one_error_line(hs("detach", str(gone.pid)))
    assert line == f"heapscope: error: no such process: {gone.pid}"
    assert one_error_line(hs("attach", "abc")) == "heapscope: error: not a process id: abc"


def test_not_a_cpython_process(hs, tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        line = one_error_line(hs("attach", str(sleeper.pid)))
        assert f"process {sleeper.pid} (sleep 30) is not a CPython process" in line
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def tracker_versions(hs):
    """The CPython versions the heapscope under test has a tracker for: "3.11", ..."""
    program = os.path.realpath(hs.command[-1] if hs.command[-1].endswith("heapscope") else hs.command[0])
    package = os.path.dirname(os.path.dirname(program))   # <package>/bin/heapscope
    if not os.path.exists(os.path.join(package, "__init__.py")):
        package = importlib.util.find_spec("heapscope").submodule_search_locations[0]
    tags = [os.path.basename(p).split("-")[1] for p in glob.glob(os.path.join(package, "_tracker.cpython-*.so"))]
    return sorted("%s.%s" % (tag[0], tag[1:]) for tag in tags)


def other_minor_python(built):
    """(version, interpreter) of a CPython none of `built` is for, if there is one."""
    for version in ("3.10", "3.11", "3.12", "3.13"):
        if version in built:
            continue
        found = glob.glob(os.path.expanduser("~/.pyenv/versions/%s.*/bin/python%s" % (version, version)))
        found += [p for p in [shutil.which("python" + version)] if p]
        for candidate in found:
            if os.access(candidate, os.X_OK):
                return version, candidate
    return None, None


def test_other_minor_version(hs, targets):
    built = tracker_versions(hs)
    assert built, "no tracker found for the heapscope under test"
    version, python = other_minor_python(built)
    if python is None:
        pytest.skip("no CPython here of a minor version heapscope has no tracker for")
    target = targets(LOOP_SCRIPT, python=python)
    line = one_error_line(hs("attach", str(target.pid)))
    assert f"runs CPython {version}, but this heapscope's tracker was built for CPython {', '.join(built)}" in line
    code, _, err = target.finish()
    assert code == 0 and err == ""


def test_ptrace_not_permitted(hs, targets, tmp_path):
    # A process that made itself non-dumpable: only CAP_SYS_PTRACE may trace
    # it, which attach lacks here (removed from its bounding and inheritable sets).
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run attach without CAP_SYS_PTRACE")
    script = "import ctypes\nctypes.CDLL(None).prctl(4, 0)   # PR_SET_DUMPABLE 0\n" + LOOP_SCRIPT
    target = targets(script)
    proc = subprocess.run(
        [setpriv, "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace"] + hs.command + ["attach", str(target.pid)],
        cwd=str(tmp_path), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
    )
    line = one_error_line(proc)
    assert f"ptrace is not permitted on process {target.pid}" in line
    assert "CAP_SYS_PTRACE" in line and "kernel.yama.ptrace_scope" in line
    code, _, err = target.finish()
    assert code == 0 and err == ""


# The main thread is caught in C code with live vector registers (numpy's
# summation loop: the calls' memcpy and strlen use those registers too), in
# a sleep, or blocked in a read: each must go on as if nothing had happened
# (the same sum; no EINTR or ERESTART* leaking out).
STATE_SCRIPT = """\
import os, sys, threading, time
import numpy

stop = sys.argv[1]
data = numpy.arange(4_000_000, dtype=numpy.float64) * 0.5 + 0.25
expected = numpy.add.reduce(data)
r, w = os.pipe()

def writer():
    while not os.path.exists(stop):
        time.sleep(0.003)
        os.write(w, b"x")
    os.write(w, b"q")

threading.Thread(target=writer, daemon=True).start()
print("ready", flush=True)
rounds = 0
while os.read(r, 1) != b"q":
    if numpy.add.reduce(data) != expected:
        sys.exit("sum changed")
    time.sleep(0.0005)
    rounds += 1
print("rounds", rounds, flush=True)
"""


def test_repeated_attach_leaves_the_target_exactly_as_it_was(hs, targets, tmp_path):
    target = targets(STATE_SCRIPT)
    # No gdb or other debugger is involved: attach needs nothing on PATH.
    empty = tmp_path / "empty-path"
    empty.mkdir()
    for k in range(6):
        capture = tmp_path / f"state-{k}.hsc"
        proc = subprocess.run(
            hs.command + ["attach", "--duration", "0.3", "-o", str(capture), str(target.pid)],
            cwd=str(tmp_path), env=clean_env(PATH=str(empty)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        assert hs.stats_json(capture)["total_allocations"] > 0
        assert target.alive()
    code, out, err = target.finish()
    assert (code, err) == (0, "")
    assert re.search(r"^rounds [1-9]", out, re.M), out


# The main thread spends its time inside glibc's malloc, free and memset:
# attach stops it again until it is outside the C library (where it could
# hold malloc's lock, which the calls need too), so no call waits on it.
MALLOC_SCRIPT = """\
import os, sys

stop = sys.argv[1]
print("ready", flush=True)
while not os.path.exists(stop):
    for _ in range(1000):
        block = bytearray(60_000)
        del block
print("done", flush=True)
"""


def test_main_thread_busy_in_malloc(hs, targets, tmp_path):
    target = targets(MALLOC_SCRIPT)
    for k in range(5):
        capture = tmp_path / f"malloc-{k}.hsc"
        proc = hs("attach", "--duration", "0.3", "-o", str(capture), str(target.pid), timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        # Line 7, each bytearray: its 60,001-byte buffer and one or two small objects.
        [(count, size)] = [(e["count"], e["bytes"]) for e in hs.stats_json(capture)["top_by_bytes"] if e["line"] == 7]
        assert count > 1 and size >= count // 3 * 60_001
    code, out, err = target.finish()
    assert (code, err) == (0, "") and "done" in out


def test_stopped_target(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    os.kill(target.pid, signal.SIGSTOP)
    try:
        proc = hs("attach", str(target.pid))
        line = one_error_line(proc)
        assert f"process {target.pid} (" in line and "is stopped" in line and f"kill -CONT {target.pid}" in line
    finally:
        os.kill(target.pid, signal.SIGCONT)
    assert not list(tmp_path.glob("heapscope-attach-*"))
    code, _, err = target.finish()
    assert code == 0 and err == ""


def test_target_already_tracked_by_run(hs, tmp_path):
    script = write(tmp_path / "tracked.py", LOOP_SCRIPT)
    stop = tmp_path / "stop"
    run = subprocess.Popen(
        hs.command + ["run", "-q", "-o", str(tmp_path / "run.hsc"), str(script), str(stop)],
        cwd=str(tmp_path), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert run.stdout.readline() == b"before done\n"
        # heapscope run starts the interpreter itself: its child is the target.
        children = open(f"/proc/{run.pid}/task/{run.pid}/children").read().split()
        pid = int(children[0])
        line = one_error_line(hs("attach", "-o", str(tmp_path / "second.hsc"), str(pid)))
        assert f"process {pid}" in line and "is already being tracked by heapscope" in line
        line = one_error_line(hs("detach", str(pid)))
        assert "is tracked by heapscope run or a heapscope.Tracker, not by attach" in line
    finally:
        stop.touch()
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert b"loop ran" in out
    assert not (tmp_path / "second.hsc").exists()


def test_attach_while_attached(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    attach = attach_in_background(hs, tmp_path, tmp_path / "one.hsc", target)
    line = one_error_line(hs("attach", "-o", str(tmp_path / "two.hsc"), str(target.pid)))
    assert "is already being tracked by heapscope" in line
    attach.send_signal(signal.SIGINT)   # Ctrl-C ends the recording cleanly
    rest = attach.stderr.read().decode()
    assert attach.wait(timeout=30) == 0, rest
    assert "capture written to" in rest
    assert not (tmp_path / "two.hsc").exists()
    code, _, err = target.finish()
    assert code == 0 and err == ""


@pytest.mark.parametrize(
    "copied, expected",
    [
        # A `heapscope` of the program's own, without attach support.
        ((), "tracking could not start in process {pid}: cannot import heapscope._attach"),
        # A copy of this heapscope's Python files elsewhere: its Tracker would
        # load that copy's tracker, not the one attach loaded.
        (("__init__.py", "VERSION", "_attach.py", "_pymalloc.py"), "another heapscope package is imported in this process ({dir})"),
    ],
    ids=["without-attach", "another-installation"],
)
def test_target_imported_another_heapscope(hs, targets, tmp_path, copied, expected):
    # attach does not mix two heapscopes in one process, and the program runs on.
    other = tmp_path / "other" / "heapscope"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    for name in copied:
        shutil.copy(REPO / "PythonHarness" / "heapscope" / name, other)
    script = "import sys\nsys.path.insert(0, %r)\nimport heapscope\n" % str(other.parent) + LOOP_SCRIPT
    target = targets(script)
    line = one_error_line(hs("attach", "-o", str(tmp_path / "mixed.hsc"), str(target.pid)))
    assert expected.format(pid=target.pid, dir=other) in line
    assert not (tmp_path / "mixed.hsc").exists()
    code, _, err = target.finish()
    assert code == 0 and err == ""


def test_output_exists_without_force(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    existing = tmp_path / "kept.hsc"
    existing.write_bytes(b"recorded earlier")
    line = one_error_line(hs("attach", "-o", str(existing), str(target.pid)))
    assert line == f"heapscope: error: output file already exists: {existing} (use -f to overwrite)"
    assert existing.read_bytes() == b"recorded earlier"
    attach_ok(hs, target, "-f", "--duration", "0.3", "-o", str(existing))
    assert hs.stats_json(existing)["metadata"]["source"] == "attach"
    code, _, err = target.finish()
    assert code == 0 and err == ""


def test_default_output_name(hs, targets, tmp_path):
    target = targets(LOOP_SCRIPT)
    err = attach_ok(hs, target, "--duration", "0.3")
    made = [p.name for p in tmp_path.glob("heapscope-attach-*.hsc")]
    assert len(made) == 1 and made[0].startswith(f"heapscope-attach-{target.pid}.")
    assert f"capture written to {made[0]}" in err
    code, _, err = target.finish()
    assert code == 0 and err == ""


# ---- attach --live and --live-remote -------------------------------------------

# Grows grow() by 5 MiB twice, each time once the test says so, so a view
# shows each step; after the stop file, 5 MiB more (untracked by then).
GROW_SCRIPT = """\
import os, sys, time

hold = []


def grow(n):
    for _ in range(n):
        hold.append(bytes(1 << 20))


print("ready", flush=True)
for phase in ("go", "more", sys.argv[1]):
    while not os.path.exists(phase):
        time.sleep(0.02)
    grow(5)
print("done", len(hold), flush=True)
"""


def grow_mib(screen):
    """grow's own bytes on the screen, in MiB (None while it is not there)."""
    row = test_live.grow_row(screen)
    return row and row[0]


def check_grow_capture(hs, capture, blocks=10):
    # The capture of the attached window: grow's 1 MiB blocks of that window
    # (and the list's few resizes on the same line), as without --live; not those after the detach.
    _, found = locations(hs, capture)
    count, size = found["grow"]
    assert count >= blocks and blocks * (1 << 20) < size < blocks * (1 << 20) + 4096, found["grow"]


def test_attach_live_in_a_terminal_and_q_detaches(hs, targets, tmp_path, tmux):
    target = targets(GROW_SCRIPT)
    status = tmux.start("attach", test_live.command_line("attach", "--live", "-o", "live.hsc", str(target.pid)), width=100)
    tmux.wait_screen("attach", lambda s: "running" in s and "q detach" in s, "the view")
    (tmp_path / "go").touch()
    tmux.wait_screen("attach", lambda s: grow_mib(s) == "5.00 MiB", "grow at 5 MiB")
    (tmp_path / "more").touch()
    tmux.wait_screen("attach", lambda s: grow_mib(s) == "10.00 MiB", "grow at 10 MiB")
    tmux.keys("attach", "q")
    tmux.wait_screen("attach", lambda s: f"Detach from process {target.pid}?" in s, "the question")
    tmux.keys("attach", "n")
    tmux.wait_screen("attach", lambda s: "Detach from" not in s, "the question gone")
    assert not status.exists() and target.alive()
    tmux.keys("attach", "q")
    tmux.wait_screen("attach", lambda s: "Detach from" in s, "the question again")
    tmux.keys("attach", "y")
    assert test_live.wait_until(lambda: status.exists() and status.read_text().strip(), "attach's exit") == "0"
    assert "capture written to live.hsc" in tmux.screen("attach")
    # Detached, not stopped: the target runs on and ends as it would have.
    assert target.alive()
    code, out, err = target.finish()
    assert (code, out, err) == (0, "ready\ndone 15\n", "")
    check_grow_capture(hs, tmp_path / "live.hsc")
    assert not list(tmp_path.glob(".heapscope-*"))   # the status file and the feed's directory are gone


def test_attach_live_when_the_process_exits(hs, targets, tmp_path, tmux):
    # The process ends while attached: the view says so and stays until q.
    target = targets(GROW_SCRIPT)
    status = tmux.start("exit", test_live.command_line("attach", "--live", "-o", "exit.hsc", str(target.pid)), width=100)
    tmux.wait_screen("exit", lambda s: "running" in s, "the view")
    for phase in ("go", "more"):
        (tmp_path / phase).touch()
    code, out, err = target.finish()
    assert (code, out, err) == (0, "ready\ndone 15\n", "")
    tmux.wait_screen("exit", lambda s: "the process exited" in s and grow_mib(s) == "15.00 MiB", "the end")
    assert not status.exists()
    tmux.keys("exit", "q")
    assert test_live.wait_until(lambda: status.exists() and status.read_text().strip(), "attach's exit") == "0"
    assert "ended by:          the process's exit" in tmux.screen("exit")
    check_grow_capture(hs, tmp_path / "exit.hsc", blocks=15)


def test_attach_live_closed_by_sigterm_detaches(hs, targets, tmp_path, tmux):
    # SIGTERM (or SIGHUP: the terminal closed) to attach --live ends the view
    # and the recording; heapscope does not die leaving the process tracked.
    target = targets(GROW_SCRIPT)
    attach = test_live.command_line("attach", "--live", "-o", "term.hsc", str(target.pid))
    status = tmux.start("term", "sh -c 'echo $$ > attach.pid; exec %s'" % attach, width=100)
    tmux.wait_screen("term", lambda s: "running" in s and "q detach" in s, "the view")
    (tmp_path / "go").touch()
    tmux.wait_screen("term", lambda s: grow_mib(s) == "5.00 MiB", "grow at 5 MiB")
    os.kill(int((tmp_path / "attach.pid").read_text()), signal.SIGTERM)
    assert test_live.wait_until(lambda: status.exists() and status.read_text().strip(), "attach's exit") == "0"
    assert "capture written to term.hsc" in tmux.screen("term")
    assert target.alive()
    (tmp_path / "more").touch()
    code, out, err = target.finish()
    assert (code, out, err) == (0, "ready\ndone 15\n", "")
    check_grow_capture(hs, tmp_path / "term.hsc", blocks=5)


def test_attach_live_remote_with_a_viewer_then_detach(hs, targets, tmp_path, tmux):
    target = targets(GROW_SCRIPT)
    attach = subprocess.Popen(
        hs.command + ["attach", "--live-remote", "-o", str(tmp_path / "remote.hsc"), str(target.pid)],
        cwd=str(tmp_path), env=clean_env(), stderr=subprocess.PIPE,
    )
    line = attach.stderr.readline().decode()
    m = re.search(r"watch it with `heapscope live (\d+)`; tracking starts when a viewer connects", line)
    assert m, line
    viewer = tmux.start("viewer", test_live.command_line("live", m.group(1)), width=100)
    assert b"heapscope: attached to process" in attach.stderr.readline()
    (tmp_path / "go").touch()
    tmux.wait_screen("viewer", lambda s: grow_mib(s) == "5.00 MiB", "grow at 5 MiB")
    (tmp_path / "more").touch()
    tmux.wait_screen("viewer", lambda s: grow_mib(s) == "10.00 MiB", "grow at 10 MiB")
    detach = hs("detach", str(target.pid))
    assert detach.returncode == 0, detach.stderr.decode()
    tmux.wait_screen("viewer", lambda s: "the stream ended" in s and grow_mib(s) == "10.00 MiB", "the end of the stream")
    rest = attach.stderr.read().decode()
    assert attach.wait(timeout=30) == 0, rest
    assert "ended by:          heapscope detach" in rest
    tmux.keys("viewer", "q")
    assert test_live.wait_until(lambda: viewer.exists() and viewer.read_text().strip(), "the viewer's exit") == "0"
    code, out, err = target.finish()
    assert (code, out, err) == (0, "ready\ndone 15\n", "")
    check_grow_capture(hs, tmp_path / "remote.hsc")


def test_attach_live_bad_inputs_leave_the_target_alone(hs, targets, tmp_path):
    target = targets(GROW_SCRIPT)
    pid = str(target.pid)
    for args, text in [
        (["--live"], "--live needs a terminal"),
        (["--live", "--live-remote"], "--live and --live-remote cannot be used together"),
        (["--live-port", "5000"], "--live-port works with --live-remote"),
        (["--live-remote", "--live-port", "70000"], "--live-port must be between 1 and 65535, not 70000"),
        (["--live-remote", "--follow-fork"], "live mode does not follow child processes"),
    ]:
        assert text in one_error_line(hs("attach", *args, "-o", "bad.hsc", pid)), args
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        line = one_error_line(hs("attach", "--live-remote", "--live-port", port, "-o", "bad.hsc", pid))
        assert line == f"heapscope: error: --live-port {port}: the port is already in use on 127.0.0.1"
    assert not (tmp_path / "bad.hsc").exists() and not list(tmp_path.glob(".heapscope-*"))
    # Never tracked: a plain attach works, and the target ends as it would have.
    (tmp_path / "go").touch()
    (tmp_path / "more").touch()
    attach_ok(hs, target, "--duration", "0.3", "-o", "after.hsc")
    code, out, err = target.finish()
    assert (code, out, err) == (0, "ready\ndone 15\n", "")
