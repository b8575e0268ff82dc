"""`heapscope run --memory-limit SIZE`: the program is stopped when its traced
heap exceeds SIZE, or when the memory it can still get falls below the floor;
the capture ends there, complete, with a flame graph of that moment next to
it, and heapscope exits with status 120. A program killed by SIGKILL (the OOM
killer) leaves a capture that reads to its last complete record, and the
flame graph of its peak."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import clean_env, write

LIMIT_STATUS = 120
MB = 1_000_000

GROW = """
import sys
held = []
def grow_step():
    held.append(bytearray(1_000_000))
def main():
    for i in range(300):
        grow_step()
        print(i, flush=True)
main()
"""


def test_stops_within_one_step_of_the_limit_naming_the_growing_function(hs, tmp_path):
    write(tmp_path / "grow.py", GROW)
    proc = hs("run", "-o", "g.hsc", "--memory-limit", "40MB", "grow.py")
    assert proc.returncode == LIMIT_STATUS, proc.stderr
    steps = proc.stdout.decode().split()
    # Stopped inside the step that crossed 40 MB: the interpreter's own heap
    # is small, so about 40 steps completed, and never 300.
    assert 30 <= len(steps) <= 40, steps[-3:]
    stats = hs.stats_json(tmp_path / "g.hsc")
    assert stats["truncated"] is False
    # The capture ends at the limit: the heap went over 40 MB by at most one
    # 1 MB block, and everything live then is still live at the end.
    assert 40 * MB < stats["peak_bytes"] <= 41 * MB + 200_000
    assert stats["leaked_bytes"] == stats["peak_bytes"]
    top = stats["top_by_bytes"][0]
    assert top["function"] == "grow_step", stats["top_by_bytes"][:3]
    assert top["bytes"] >= (len(steps)) * MB
    err = proc.stderr.decode()
    assert "memory limit:" in err and "38.1 MiB (40,000,000 bytes)" in err, err
    # The top functions by what they allocated themselves: the growing one first.
    table = err[err.index("Function"):].splitlines()
    assert table[2].split()[0] == "grow_step", table[:4]
    page = tmp_path / "heapscope-flamegraph-g.html"
    assert "flame graph:       heapscope-flamegraph-g.html" in err
    html = page.read_text()
    assert "grow_step" in html
    assert "exit status" not in err  # the stop is said as such, not as the program's status


def test_flame_graph_of_that_moment_equals_the_flamegraph_command(hs, tmp_path):
    write(tmp_path / "grow.py", GROW)
    proc = hs("run", "-q", "-o", "g.hsc", "--memory-limit", "20MiB", "grow.py")
    assert proc.returncode == LIMIT_STATUS, proc.stderr
    assert proc.stderr == b""  # -q: nothing said, the files are written
    again = hs("flamegraph", "-o", "again.html", "g.hsc")
    assert again.returncode == 0, again.stderr
    strip = lambda text: re.sub(r"g\.hsc|again\.html|heapscope-flamegraph-g\.html", "", text)
    assert strip((tmp_path / "heapscope-flamegraph-g.html").read_text()) == strip((tmp_path / "again.html").read_text())


def test_an_existing_flame_graph_is_not_overwritten(hs, tmp_path):
    write(tmp_path / "grow.py", GROW)
    write(tmp_path / "heapscope-flamegraph-g.html", "mine")
    proc = hs("run", "-o", "g.hsc", "--memory-limit", "10MB", "grow.py")
    assert proc.returncode == LIMIT_STATUS
    assert (tmp_path / "heapscope-flamegraph-g.html").read_text() == "mine"
    assert "not written: heapscope-flamegraph-g.html exists" in proc.stderr.decode()


def test_a_program_under_the_limit_runs_to_its_end(hs, tmp_path):
    write(tmp_path / "small.py", "x = [bytearray(100_000) for _ in range(20)]\nprint('done')\n")
    proc = hs("run", "-o", "s.hsc", "--memory-limit", "50MB", "small.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"done\n"
    assert "memory limit" not in proc.stderr.decode()
    assert not (tmp_path / "heapscope-flamegraph-s.html").exists()


def test_a_program_exiting_120_by_itself_is_not_called_stopped(hs, tmp_path):
    write(tmp_path / "exits.py", "import sys\nsys.exit(120)\n")
    proc = hs("run", "-o", "e.hsc", "--memory-limit", "50MB", "exits.py")
    assert proc.returncode == 120
    err = proc.stderr.decode()
    assert "exit status:       120" in err and "memory limit" not in err


@pytest.mark.parametrize("size", ["lots", "0", "-5MB", "12 parsecs"])
def test_bad_sizes(hs, tmp_path, size):
    write(tmp_path / "small.py", "pass\n")
    proc = hs("run", "-o", "b.hsc", "--memory-limit=" + size, "small.py")
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--memory-limit" in lines[0], lines
    assert not (tmp_path / "b.hsc").exists()


def test_tracker_memory_limit(hs, tmp_path):
    write(
        tmp_path / "api.py",
        "import heapscope\n" + GROW.replace("main()\n", "")
        + "with heapscope.Tracker('api.hsc', memory_limit=15_000_000):\n    main()\n",
    )
    # The heapscope installed for this interpreter, as test_tracker.py uses it.
    proc = subprocess.run([sys.executable, "api.py"], cwd=str(tmp_path), env=clean_env(), capture_output=True, timeout=120)
    assert proc.returncode == LIMIT_STATUS, proc.stderr
    stats = hs.stats_json(tmp_path / "api.hsc")
    assert stats["truncated"] is False
    assert 15 * MB < stats["peak_bytes"] <= 16 * MB + 200_000
    assert stats["metadata"]["memory_limit"] == 15_000_000
    assert stats["top_by_bytes"][0]["function"] == "grow_step"


# --- The floor, the OOM killer, SIGKILL ------------------------------------
# A cgroup with a memory limit of its own (v2's unified hierarchy, else v1's
# memory controller; creating one needs root) holds `heapscope run` and the
# program, so that the memory the program can still get, and the OOM killer,
# are the cgroup's and not the machine's.

GROW_FOREVER = """
import time
held = []
def grow_step():
    held.append(bytearray(1_000_000))
for i in range(5000):
    grow_step()
    print(i, flush=True)
    time.sleep(0.001)
"""


def make_memory_cgroup(limit):
    """A new cgroup directory limited to `limit` bytes, or None where none can be made."""
    name = "heapscope-test-%d-%d" % (os.getpid(), time.monotonic_ns())
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        parent, limit_file = "/sys/fs/cgroup", "memory.max"
    else:
        parent, limit_file = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
    path = os.path.join(parent, name)
    try:
        os.mkdir(path)
    except OSError:
        return None
    try:
        with open(os.path.join(path, limit_file), "w") as f:
            f.write(str(limit))
        if limit_file == "memory.max" and os.path.exists(os.path.join(path, "memory.swap.max")):
            with open(os.path.join(path, "memory.swap.max"), "w") as f:
                f.write("0")
    except OSError:
        os.rmdir(path)
        return None
    return path


@pytest.fixture
def memory_cgroup():
    made = []

    def make(limit):
        path = make_memory_cgroup(limit)
        if path is None:
            pytest.skip("no memory cgroup can be created here (needs root and a memory controller)")
        made.append(path)
        return path

    yield make
    for path in made:
        for _ in range(50):  # its processes may take a moment to leave
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)


def run_in_cgroup(hs, tmp_path, cgroup, *args):
    def enter():
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    return subprocess.run(hs.command + ["run", *args], cwd=str(tmp_path), env=clean_env(), preexec_fn=enter,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


def check_peak_report(hs, tmp_path, stderr, capture, page_note):
    """The summary's flame graph of the capture's peak, and the top function."""
    err = stderr.decode()
    page = tmp_path / ("heapscope-flamegraph-%s.html" % capture.rsplit(".", 1)[0])
    assert "flame graph:       %s (%s)" % (page.name, page_note) in err, err
    assert "grow_step" in page.read_text()
    table = err[err.index("Function"):].splitlines()
    assert table[2].split()[0] == "grow_step", table[:4]


def test_memory_floor_of_the_cgroup_stops_the_program(hs, tmp_path, memory_cgroup):
    # 400 MB: the floor is 100 MiB (more than 2% of it). The limit itself is
    # far away; the floor is what stops the program, before the OOM killer.
    cgroup = memory_cgroup(400 * 2**20)
    write(tmp_path / "grow.py", GROW_FOREVER)
    proc = run_in_cgroup(hs, tmp_path, cgroup, "-o", "f.hsc", "--memory-limit", "10GB", "grow.py")
    assert proc.returncode == LIMIT_STATUS, proc.stderr
    steps = len(proc.stdout.split())
    err = proc.stderr.decode()
    # Stopped with at most 300 MiB in use in the cgroup (the interpreters and
    # heapscope's own included): at most the 1,000,000-byte steps that fit
    # between the floor and the limit (314), never 400.
    assert 150 <= steps <= (400 - 100) * 2**20 // 1_000_000, steps
    assert re.search(r"memory floor:      the program could get only [\d.]+ MiB \([\d,]+ bytes\) more \(cgroup %s\), "
                     r"under the floor of 100\.0 MiB \(104,857,600 bytes\)" % re.escape(cgroup), err), err
    assert "exit status" not in err and "killed by signal" not in err, err
    stats = hs.stats_json(tmp_path / "f.hsc")
    assert stats["truncated"] is False  # SIGTERM: the tracker finished the capture
    assert (steps - 5) * MB <= stats["peak_bytes"] <= (steps + 5) * MB
    check_peak_report(hs, tmp_path, proc.stderr, "f.hsc", "what was live at that moment")


def test_tracker_memory_limit_watches_the_floor_of_its_cgroup(hs, tmp_path, memory_cgroup):
    # A Tracker on its own (no heapscope process outside) in a 400 MB cgroup:
    # its writer thread sees the room fall under the 100 MiB floor long
    # before the traced heap reaches the 10 GB limit.
    cgroup = memory_cgroup(400 * 2**20)
    write(tmp_path / "api.py", "import heapscope\nwith heapscope.Tracker('api.hsc', memory_limit=10**10):\n"
          + "".join("    " + line + "\n" for line in GROW_FOREVER.strip().splitlines()))

    def enter():
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    proc = subprocess.run([sys.executable, "api.py"], cwd=str(tmp_path), env=clean_env(), preexec_fn=enter,
                          capture_output=True, timeout=120)
    assert proc.returncode == LIMIT_STATUS, proc.stderr
    err = proc.stderr.decode()
    assert re.search(r"heapscope: the process can get only \d+ MiB more memory \(%s\), under the floor of 100 MiB: "
                     r"the capture ends here \(api\.hsc\)" % re.escape(cgroup), err), err
    steps = len(proc.stdout.split())
    stats = hs.stats_json(tmp_path / "api.hsc")
    assert stats["truncated"] is False
    # Stopped past the cgroup's 400 MiB less the 100 MiB floor (about 300
    # steps of 1 MB, less the interpreter; up to 100 ms of steps more between
    # two looks) and before the cgroup's limit, where the OOM killer would be.
    assert 150 <= steps < 400 * 2**20 // MB, steps
    assert (steps - 5) * MB <= stats["peak_bytes"] <= (steps + 5) * MB
    assert stats["top_by_bytes"][0]["function"] == "grow_step"


def test_killed_by_the_oom_killer(hs, tmp_path, memory_cgroup):
    cgroup = memory_cgroup(200 * 2**20)
    write(tmp_path / "grow.py", GROW_FOREVER)
    proc = run_in_cgroup(hs, tmp_path, cgroup, "-o", "o.hsc", "grow.py")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    steps = len(proc.stdout.split())
    assert 50 <= steps <= 210, steps  # 200 MiB is 209.7 MB
    err = proc.stderr.decode()
    assert "out of memory:     the kernel's OOM killer killed the program" in err, err
    # Cut short, read to its last complete record: all but the last interval
    # (10 ms: about 10 steps) of the growth, at most the step it died in more.
    stats = hs.stats_json(tmp_path / "o.hsc")
    assert stats["truncated"] is True
    assert (steps - 30) * MB <= stats["peak_bytes"] <= (steps + 1) * MB + 500_000, (steps, stats["peak_bytes"])
    check_peak_report(hs, tmp_path, proc.stderr, "o.hsc", "its peak")


def test_killed_by_sigkill(hs, tmp_path):
    # Where no cgroup can be made, the OOM killer's signal from outside.
    write(tmp_path / "grow.py", GROW_FOREVER.replace("range(5000)", "range(40)") + "time.sleep(60)\n")
    proc = subprocess.Popen(hs.command + ["run", "-o", "k.hsc", "grow.py"], cwd=str(tmp_path), env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(40):
            proc.stdout.readline()
        time.sleep(0.3)  # a few writer intervals: the 40 blocks are on disk
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
            os.kill(int(f.read().split()[0]), signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, err
    assert "SIGKILL:           the capture reads to its last complete record" in err.decode(), err
    stats = hs.stats_json(tmp_path / "k.hsc")
    assert stats["truncated"] is True
    assert 40 * MB <= stats["peak_bytes"] <= 40 * MB + 500_000
    check_peak_report(hs, tmp_path, err, "k.hsc", "its peak")


# Waits for its go file, then grows as GROW does.
GROW_WHEN_TOLD = """
import os, sys, time
held = []
def grow_step():
    held.append(bytearray(1_000_000))
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
for i in range(300):
    grow_step()
"""


def attach_to_growing(hs, tmp_path, capture, limit, preexec_fn=None):
    """Starts grow.py plainly, attaches with --memory-limit, lets it grow:
    (the target's status, attach's status, attach's stderr)."""
    go = tmp_path / "go"
    target = subprocess.Popen([sys.executable, "grow.py", str(go)], cwd=str(tmp_path), env=clean_env(),
                              preexec_fn=preexec_fn, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert target.stdout.readline() == b"ready\n"
        attach = subprocess.Popen(hs.command + ["attach", "--memory-limit", limit, "-o", capture, str(target.pid)],
                                  cwd=str(tmp_path), env=clean_env(), stderr=subprocess.PIPE)
        assert b"heapscope: attached to process" in attach.stderr.readline()
        go.touch()
        err = attach.communicate(timeout=60)[1].decode()
        return target.wait(timeout=30), attach.returncode, err
    finally:
        target.kill()


def test_attach_memory_limit_stops_the_target(hs, tmp_path):
    write(tmp_path / "grow.py", GROW_WHEN_TOLD)
    status, attach_status, err = attach_to_growing(hs, tmp_path, "a.hsc", "20MB")
    assert status == LIMIT_STATUS
    assert attach_status == LIMIT_STATUS, err
    stats = hs.stats_json(tmp_path / "a.hsc")
    assert stats["truncated"] is False
    assert 20 * MB < stats["peak_bytes"] <= 21 * MB + 200_000
    assert stats["top_by_bytes"][0]["function"] == "grow_step"
    assert "memory limit:" in err and "19.1 MiB (20,000,000 bytes)" in err, err
    assert "capture written to a.hsc" in err
    assert "flame graph:       heapscope-flamegraph-a.html" in err
    assert "grow_step" in (tmp_path / "heapscope-flamegraph-a.html").read_text()
    table = err[err.index("Function"):].splitlines()
    assert table[2].split()[0] == "grow_step", table[:4]


def test_attach_watches_the_floor_of_the_target_cgroup(hs, tmp_path, memory_cgroup):
    # The target alone in a 400 MB cgroup (attach is outside it): the floor is
    # the target's cgroup's, and attach stops the target there.
    cgroup = memory_cgroup(400 * 2**20)
    # Blocks whose pages are written: the cgroup counts them as the heap does.
    write(tmp_path / "grow.py", GROW_WHEN_TOLD.replace("range(300)", "range(5000)")
          .replace("bytearray(1_000_000)", "b'x' * 1_000_000")
          .replace("    grow_step()\n", "    grow_step()\n    time.sleep(0.001)\n"))

    def enter():
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    status, attach_status, err = attach_to_growing(hs, tmp_path, "f.hsc", "10GB", preexec_fn=enter)
    assert status == -signal.SIGTERM
    assert attach_status == LIMIT_STATUS, err
    assert re.search(r"memory floor:      the program could get only [\d.]+ MiB \([\d,]+ bytes\) more \(cgroup \S*%s\), "
                     r"under the floor of 100\.0 MiB" % re.escape(os.path.basename(cgroup)), err), err
    stats = hs.stats_json(tmp_path / "f.hsc")
    assert stats["truncated"] is False  # SIGTERM: the tracker finished the capture
    # Stopped by SIGTERM near the floor (300 MiB in use), before the OOM killer.
    assert 200 * MB <= stats["peak_bytes"] < 400 * 2**20
    check_peak_report(hs, tmp_path, err.encode(), "f.hsc", "what was live at that moment")
