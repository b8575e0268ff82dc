"""Aggregated captures (`run --aggregate`, `Tracker(aggregate=True)`): the
same figures per stack as a full capture of the same script (compared with
`diff --json` site by site and `stats --json` key by key), a program killed
by SIGKILL, the size bound, the atomic rewrite and the refusals."""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time


import pytest

from conftest import EXAMPLES, clean_env, run, write

KIB = 1024

# Keys of `stats --json` that differ between any two runs, or by design
# between a full capture and an aggregated one (docs/STATS_JSON.md).
RUN_KEYS = {"capture", "format_version", "compressed", "pid", "start_time_us", "duration_seconds",
            "peak_rss_bytes", "snapshots", "records", "flags", "threads"}


def comparable(stats):
    figures = {k: v for k, v in stats.items() if k not in RUN_KEYS and k != "metadata"}
    # pymalloc's arenas depend on the addresses the system hands out: never counted in the figures.
    figures["by_allocator"].pop("pymalloc_arena", None)
    figures["threads"] = [(t["thread"], t["name"], t["count"], t["bytes"]) for t in stats["threads"]]
    return figures


def same_sites(hs, full, aggregated, view, slack_bytes=0):
    """`diff --json` finds no site changed. With `slack_bytes` (two runs, not
    one stream): at most one site, by at most one block of that many bytes."""
    proc = hs("diff", "--json", *([view] if view else []), str(full), str(aggregated))
    assert proc.returncode == 0, proc.stderr.decode()
    diff = json.loads(proc.stdout)
    blocks = 1 if slack_bytes else 0
    assert diff["changed_sites"] <= blocks and diff["unchanged_sites"] > 0, diff["sites"][:5]
    assert abs(diff["base"]["bytes"] - diff["new"]["bytes"]) <= slack_bytes
    assert abs(diff["base"]["count"] - diff["new"]["count"]) <= blocks


def aggregate_of(hs, capture, output):
    """The aggregated capture of a full capture's events: its bytes sent, as the
    tracker streams them (docs/FORMAT.md, "The live stream"), to the process
    `Tracker(aggregate=True)` starts. Same events, so the figures must be equal."""
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(hs.command + ["aggregate", "--fd", str(theirs.fileno()), str(output)],
                            pass_fds=(theirs.fileno(),), env=clean_env(), stderr=subprocess.PIPE)
    theirs.close()
    data = capture.read_bytes()
    for start in range(0, len(data), 1 << 16):
        piece = data[start:start + (1 << 16)]
        ours.sendall(b"\x01" + struct.pack("<I", len(piece)) + piece)
    ours.close()
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()


@pytest.mark.parametrize("script,options", [
    ("unbounded_cache.py", []),
    ("worker_threads.py", []),
    ("unbounded_cache.py", ["--leaks"]),
    ("csv_pipeline.py", ["--native"]),
])
def test_aggregated_figures_equal_the_full_capture(hs, tmp_path, script, options):
    full, aggregated = tmp_path / "full.hsc", tmp_path / "agg.hsc"
    proc = hs("run", "-q", *options, "-o", full, EXAMPLES / script)
    assert proc.returncode == 0, proc.stderr.decode()
    aggregate_of(hs, full, aggregated)
    stats, full_stats = hs.stats_json(aggregated), hs.stats_json(full)
    assert stats["format_version"] == 2 and stats["flags"]["aggregated"] and not stats["truncated"]
    assert comparable(stats) == comparable(full_stats) and stats["by_allocator"] == full_stats["by_allocator"]
    assert stats["threads"] == full_stats["threads"]
    # At most 2,048 samples: of a longer run, one of each `stride` consecutive ones.
    stride = -(-full_stats["snapshots"] // 2048)
    assert stats["snapshots"] == -(-full_stats["snapshots"] // stride)
    for view in (None, "--leaks", "--allocated"):
        same_sites(hs, full, aggregated, view)
    assert aggregated.stat().st_size < full.stat().st_size


def test_run_aggregate_equals_run(hs, tmp_path):
    # Deterministic (one thread, one hash seed, no address randomization: on
    # 3.10 which of two equal strings the import machinery frees depends on
    # their addresses): both runs make the same allocations.
    env = clean_env(PYTHONHASHSEED="0")
    for name, extra in (("full.hsc", []), ("agg.hsc", ["--aggregate"])):
        proc = run(["setarch", "--addr-no-randomize"] + hs.command + ["run", "-q", *extra, "-o", tmp_path / name,
                   EXAMPLES / "unbounded_cache.py"], tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr.decode()
    aggregated, full = comparable(hs.stats_json(tmp_path / "agg.hsc")), comparable(hs.stats_json(tmp_path / "full.hsc"))
    # Two processes, not one stream: whether the interpreter frees one of its
    # start-up objects before tracking ends is not the same in every run (a
    # 45-byte string, once in CI under 3.12). Every allocation is the same;
    # what is left at the end may differ by that one object.
    assert abs(aggregated.pop("leaked_allocations") - full.pop("leaked_allocations")) <= 1
    assert abs(aggregated.pop("leaked_bytes") - full.pop("leaked_bytes")) <= 512
    assert aggregated == full
    same_sites(hs, tmp_path / "full.hsc", tmp_path / "agg.hsc", None)
    same_sites(hs, tmp_path / "full.hsc", tmp_path / "agg.hsc", "--leaks", slack_bytes=512)


def test_sigkill_keeps_what_was_sent(hs, tmp_path):
    # 300 blocks of 100 KiB held by hold(), then the program waits to be killed.
    script = write(tmp_path / "killed.py", """\
import os, time
kept = []
def hold():
    for _ in range(300):
        kept.append(bytearray(100 * 1024))
hold()
open("pid", "w").write(str(os.getpid()))
while True:
    time.sleep(1)
""")
    capture = tmp_path / "killed.hsc"
    run = subprocess.Popen(hs.command + ["run", "--aggregate", "-o", str(capture), str(script)], cwd=tmp_path,
                           env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        held = 0
        # The checkpoints show hold()'s blocks once they reached heapscope; then kill.
        while held < 300 * (100 * KIB + 1) and time.monotonic() < deadline:
            time.sleep(0.1)
            if (tmp_path / "pid").exists() and capture.exists():
                top = hs.stats_json(capture, "-n", "1")["top_by_bytes"]
                held = top[0]["bytes"] if top and top[0]["function"] == "hold" else 0
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == -signal.SIGKILL, err.decode()
    stats = hs.stats_json(capture, "-n", "1")
    assert stats["truncated"] and stats["flags"]["aggregated"]
    top = stats["top_by_bytes"][0]
    # Each bytearray: its buffer (100 KiB and a NUL byte) and the object; the list grows meanwhile.
    assert top["function"] == "hold" and 300 * (100 * KIB + 1) <= top["bytes"] < 300 * (100 * KIB + 1) + 64 * KIB
    assert 600 <= top["count"] < 700
    assert stats["leaked_bytes"] >= 300 * 100 * KIB and stats["peak_bytes"] >= 300 * 100 * KIB


def test_size_grows_with_stacks_not_events(hs, tmp_path):
    script = write(tmp_path / "churn.py", """\
def churn():
    for i in range(600_000):
        b = bytearray(100 + i % 7)
churn()
""")
    capture = tmp_path / "churn.hsc"
    proc = hs("run", "-q", "--aggregate", "-o", capture, script)
    assert proc.returncode == 0, proc.stderr.decode()
    stats = hs.stats_json(capture)
    assert stats["total_allocations"] >= 600_000
    assert capture.stat().st_size < 64 * KIB


def test_threads_after_the_first_64_are_summed(hs, tmp_path):
    # A thread per task (a service's pattern): the aggregated capture keeps 64
    # threads apart and sums the rest into one, exactly; its sites do not grow
    # with the threads.
    def run(threads):
        script = write(tmp_path / ("t%d.py" % threads), """\
import threading
held = []
def work():
    for _ in range(20):
        held.append(bytearray(10_000))
for i in range(%d):
    t = threading.Thread(target=work)
    t.start()
    t.join()
""" % threads)
        full, aggregated = tmp_path / ("full%d.hsc" % threads), tmp_path / ("agg%d.hsc" % threads)
        proc = hs("run", "-q", "-o", full, script)
        assert proc.returncode == 0, proc.stderr.decode()
        aggregate_of(hs, full, aggregated)
        return hs.stats_json(full), hs.stats_json(aggregated), aggregated

    full, stats, aggregated = run(200)
    kept = [t for t in full["threads"] if t["thread"] <= 64]
    later = [t for t in full["threads"] if t["thread"] > 64]
    assert len(later) >= 135
    summed = {"thread": 65, "tid": None, "name": "[threads after the first 64, summed]",
              "count": sum(t["count"] for t in later), "bytes": sum(t["bytes"] for t in later)}
    assert stats["threads"] == kept + [summed]
    assert {k: v for k, v in comparable(stats).items() if k != "threads"} == \
        {k: v for k, v in comparable(full).items() if k != "threads"}
    for view in (None, "--leaks"):
        same_sites(hs, tmp_path / "full200.hsc", aggregated, view)

    def sites(capture):
        return sum(1 for line in hs("parse", str(capture)).stdout.decode().splitlines() if line.startswith("SITE"))
    # Twice the threads: the same sites but for the list `held` reaching a
    # size bucket or two more (each thread apart has about 20 of its own).
    assert sites(run(400)[2]) - sites(aggregated) < 10


def test_checkpoints_always_read(hs, tmp_path):
    # Allocates until the test has read five checkpoints, each a whole capture.
    script = write(tmp_path / "service.py", """\
import os
live = []
while not os.path.exists("stop"):
    live.append(bytearray(1000))
    if len(live) > 5000:
        live.clear()
""")
    capture = tmp_path / "service.hsc"
    run = subprocess.Popen(hs.command + ["run", "-q", "--aggregate", "-o", str(capture), str(script)], cwd=tmp_path,
                           env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        reads, allocations, deadline = 0, 0, time.monotonic() + 60
        while reads < 5 and time.monotonic() < deadline:
            if capture.exists():
                stats = hs.stats_json(capture)   # fails the test if a checkpoint does not read
                assert stats["truncated"] and stats["total_allocations"] >= allocations
                allocations = stats["total_allocations"]
                reads += 1
        assert reads == 5
        (tmp_path / "stop").write_text("")
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, err.decode()
    final = hs.stats_json(capture)
    assert not final["truncated"] and final["total_allocations"] >= allocations
    assert not list(tmp_path.glob("service.hsc.tmp-*"))


def test_tracker_aggregate_equals_tracker(hs, tmp_path):
    script = write(tmp_path / "api.py", """\
import sys, heapscope
def build(n):
    return [bytearray(1000 + i) for i in range(n)]
with heapscope.Tracker(sys.argv[1], aggregate=sys.argv[2] == "1"):
    kept = build(2000)
    build(500)
print("done")
""")
    for name, flag in (("full.hsc", "0"), ("agg.hsc", "1")):
        proc = hs.python(script, str(tmp_path / name), flag)
        assert proc.returncode == 0 and proc.stdout == b"done\n", proc.stderr.decode()
    assert hs.stats_json(tmp_path / "agg.hsc")["flags"]["aggregated"]
    for view in (None, "--leaks", "--allocated"):
        same_sites(hs, tmp_path / "full.hsc", tmp_path / "agg.hsc", view)
    proc = hs.python("-c", "import heapscope; heapscope.Tracker('x.hsc', aggregate=True, follow_fork=True)")
    assert b"ValueError: aggregate=True does not follow child processes" in proc.stderr


def test_refusals(hs, tmp_path):
    script = write(tmp_path / "small.py", "x = [bytearray(100) for _ in range(100)]\n")
    capture = tmp_path / "small.hsc"
    assert hs("run", "-q", "--aggregate", "-o", capture, script).returncode == 0
    needs = "an aggregated capture (--aggregate) keeps no events: %s needs them in order"
    for args, what in ((["flamegraph", "--temporal"], "--temporal"),
                       (["table", "--temporary-allocations"], "--temporary-allocations"),
                       (["pymalloc"], "the pymalloc model (it places each block by its address)")):
        proc = hs(*args, capture)
        assert proc.returncode != 0
        assert (needs % what) in proc.stderr.decode().strip().splitlines()[-1]
    for extra, message in ((["--follow-fork"], "--aggregate does not follow child processes"),
                           (["--live-remote"], "--aggregate cannot be used with live mode"),
                           (["--memory-limit", "1GB"], "--memory-limit cannot be used with --aggregate")):
        proc = hs("run", "--aggregate", *extra, script)
        assert proc.returncode == 2 and message in proc.stderr.decode()
    # The default name says what it is.
    proc = hs("run", "-q", "--aggregate", script)
    assert proc.returncode == 0 and len(list(tmp_path.glob("heapscope-small.*.aggregated.hsc"))) == 1


def test_attach_aggregate(hs, tmp_path):
    from test_attach import BYTES_OVERHEAD, LOOP_SCRIPT, LOOP_SIZE, Target

    target = Target(tmp_path, LOOP_SCRIPT)
    try:
        proc = hs("attach", "--aggregate", "--duration", "0.5", str(target.pid))
        assert proc.returncode == 0, proc.stderr.decode()
        made = list(tmp_path.glob("heapscope-attach-%d.*.aggregated.hsc" % target.pid))
        assert len(made) == 1 and ("capture written to %s" % made[0].name) in proc.stderr.decode()
        stats = hs.stats_json(made[0], "-n", "1")
        assert stats["flags"]["aggregated"] and not stats["truncated"] and stats["metadata"]["source"] == "attach"
        top = stats["top_by_bytes"][0]
        assert top["function"] == "loop" and top["count"] > 0 and top["bytes"] == top["count"] * (LOOP_SIZE + BYTES_OVERHEAD)
        assert one_line(hs("attach", "--aggregate", "--live-remote", str(target.pid))) \
            == "heapscope: error: --aggregate cannot be used with live mode (--live, --live-remote)"
    finally:
        code, _, err = target.finish()
    assert code == 0 and err == ""


def one_line(proc):
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    return lines[0]
