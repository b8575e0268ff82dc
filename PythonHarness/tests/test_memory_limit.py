"""`heapscope run --memory-limit SIZE`: the program is stopped when its traced
heap exceeds SIZE; the capture ends there, complete, with a flame graph of
that moment next to it, and heapscope exits with status 120."""
import re
import subprocess
import sys

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
