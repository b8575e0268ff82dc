"""`heapscope diff` on real captures of real scripts.

Two runs of one script that keeps N bytearrays of 100,000 bytes at one line,
with different N: the diff at that line is checked against arithmetic (a
bytearray of n bytes asks for n + 1 bytes of buffer and its object,
`bytearray.__basicsize__` bytes) and against tracemalloc run on the same code.
"""
import json
import subprocess
import sys

import pytest

from conftest import Heapscope, write

KEEP = '''\
import sys


def keep(n):
    held = [None] * n
    for i in range(n):
        held[i] = bytearray(100_000)  # line 7: what the tests diff
    return held


if __name__ == "__main__":
    kept = keep(int(sys.argv[1]))
'''
KEEP_LINE = 7
OBJECT_BYTES = 100_000 + 1 + bytearray.__basicsize__

TRACEMALLOC = '''\
import sys, tracemalloc
sys.path.insert(0, ".")
import keep
tracemalloc.start()
kept = keep.keep(int(sys.argv[1]))
stats = [s for s in tracemalloc.take_snapshot().statistics("lineno")
         if s.traceback[0].filename.endswith("keep.py") and s.traceback[0].lineno == %d]
print(stats[0].size, stats[0].count)
''' % KEEP_LINE

OTHER = '''\
def build():
    held = []
    for _ in range(4):
        held.append(bytes(50_000))
    return held


kept = build()
'''


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("diff")


@pytest.fixture(scope="module")
def hsm(work):
    return Heapscope(work)


@pytest.fixture(scope="module")
def runs(hsm, work):
    """Captures of keep.py with N = 3 and N = 8, and of another script."""
    write(work / "keep.py", KEEP)
    write(work / "other.py", OTHER)
    captures = {}
    for name, args in (("three", ["keep.py", "3"]), ("eight", ["keep.py", "8"]), ("other", ["other.py"])):
        out = work / f"{name}.hsc"
        proc = hsm("run", "-q", "-f", "-o", str(out), *args)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        captures[name] = out
    return captures


def diff_json(hs, *args):
    proc = hs("diff", "--json", *map(str, args))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


def site_at(result, line, file_suffix="keep.py"):
    found = [s for s in result["sites"] if s["line"] == line and s["file"].endswith(file_suffix)]
    assert len(found) == 1, result["sites"]
    return found[0]


def test_delta_at_the_line_is_exact(hsm, work, runs):
    result = diff_json(hsm, runs["three"], runs["eight"])
    site = site_at(result, KEEP_LINE)
    assert site["function"] == "keep"
    # Each bytearray: its object and its buffer, two allocations.
    assert site["base_bytes"] == 3 * OBJECT_BYTES and site["new_bytes"] == 8 * OBJECT_BYTES
    assert site["delta_bytes"] == 5 * OBJECT_BYTES
    assert (site["base_count"], site["new_count"], site["delta_count"]) == (6, 16, 10)
    # An independent tool agrees.
    measured = {}
    write(work / "measure.py", TRACEMALLOC)
    for n in (3, 8):
        proc = subprocess.run([sys.executable, "measure.py", str(n)], cwd=work, capture_output=True, check=True)
        measured[n] = tuple(map(int, proc.stdout.split()))
    assert site["delta_bytes"] == measured[8][0] - measured[3][0]
    assert site["delta_count"] == measured[8][1] - measured[3][1]
    # The biggest change comes first, and the totals are the two peaks.
    assert result["sites"][0] == site
    assert result["view"] == "peak"
    assert result["base"]["bytes"] == result["base"]["peak_bytes"]
    assert result["delta_bytes"] == result["new"]["bytes"] - result["base"]["bytes"]
    # The peaks differ by the five objects and the interpreter's own few bytes.
    assert abs(result["delta_bytes"] - 5 * OBJECT_BYTES) < 4096, result["delta_bytes"]
    for entry in result["sites"]:
        assert entry["delta_bytes"] == entry["new_bytes"] - entry["base_bytes"]
        assert entry["delta_count"] == entry["new_count"] - entry["base_count"]
    deltas = [abs(s["delta_bytes"]) for s in result["sites"]]
    assert deltas == sorted(deltas, reverse=True)


def test_reverse_diff_shrinks(hsm, runs):
    site = site_at(diff_json(hsm, runs["eight"], runs["three"]), KEEP_LINE)
    assert site["delta_bytes"] == -5 * OBJECT_BYTES and site["delta_count"] == -10


def test_a_capture_against_itself_is_empty(hsm, runs):
    result = diff_json(hsm, runs["three"], runs["three"])
    assert result["sites"] == []
    assert result["delta_bytes"] == 0 and result["delta_count"] == 0
    assert result["unchanged_sites"] > 0
    proc = hsm("diff", "--summary", "--fail-over", "0", str(runs["three"]), str(runs["three"]))
    assert proc.returncode == 0, proc.stderr
    assert b"No site changed" in proc.stdout


def test_fail_over_below_and_above_the_growth(hsm, runs):
    growth = 5 * OBJECT_BYTES
    base, new = str(runs["three"]), str(runs["eight"])
    total = diff_json(hsm, base, new)["delta_bytes"]
    # Just under both growths (the total also carries the interpreter's own
    # few bytes of difference, either way): the site and the total are named.
    proc = hsm("diff", "--summary", "--fail-over", str(min(growth, total) - 1), base, new)
    assert proc.returncode == 3
    err = proc.stderr.decode()
    assert "keep at " in err and f"keep.py:{KEEP_LINE} grew by" in err
    assert "the total grew by" in err
    # Above both growths: passes, in decimal units too.
    proc = hsm("diff", "--summary", "--fail-over", str(max(growth, total)), base, new)
    assert proc.returncode == 0, proc.stderr
    proc = hsm("diff", "--json", "--fail-over", "1 MB", base, new)
    assert proc.returncode == 0 and b"grew" not in proc.stderr
    # Between the site's growth and the total's: only the total fails.
    if total > growth:
        proc = hsm("diff", "--json", "--fail-over", str(growth), base, new)
        assert proc.returncode == 3
        assert b"the total grew" in proc.stderr and b"keep.py" not in proc.stderr
    # Shrinking never fails. Not at 0: a start-up object of the interpreter's
    # may differ by a few bytes either way (once +3 B at no Python frame).
    proc = hsm("diff", "--json", "--fail-over", "1 KiB", new, base)
    assert proc.returncode == 0, proc.stderr
    proc = hsm("diff", "--fail-over", "12 parsecs", base, new)
    assert proc.returncode != 0 and b"malformed size" in proc.stderr


def test_two_different_scripts(hsm, runs):
    result = diff_json(hsm, runs["three"], runs["other"])
    keep = site_at(result, KEEP_LINE)
    assert keep["new_bytes"] == 0 and keep["delta_bytes"] == -3 * OBJECT_BYTES and keep["new_count"] == 0
    build = site_at(result, 4, "other.py")
    assert build["function"] == "build"
    assert build["base_bytes"] == 0 and build["base_count"] == 0
    assert build["new_bytes"] >= 4 * 50_000 and build["new_count"] >= 4
    assert result["base"]["command_line"][0] == "keep.py" and result["new"]["command_line"][0] == "other.py"


def test_allocated_and_leaks_views(hsm, runs):
    allocated = diff_json(hsm, "--allocated", runs["three"], runs["eight"])
    assert allocated["view"] == "allocated"
    assert site_at(allocated, KEEP_LINE)["delta_bytes"] == 5 * OBJECT_BYTES
    assert allocated["base"]["bytes"] == allocated["base"]["allocated_bytes"]
    leaks = diff_json(hsm, "--leaks", runs["three"], runs["eight"])
    assert leaks["view"] == "leaks"
    # Kept until the end: leaked as far as tracking could see.
    assert site_at(leaks, KEEP_LINE)["delta_bytes"] == 5 * OBJECT_BYTES
    proc = hsm("diff", "--allocated", "--leaks", str(runs["three"]), str(runs["eight"]))
    assert proc.returncode != 0 and b"choose one" in proc.stderr


def test_summary_table(hsm, runs):
    proc = hsm("diff", "--summary", str(runs["three"]), str(runs["eight"]))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    row = next(line for line in text.splitlines() if f"keep.py:{KEEP_LINE}" in line)
    assert "+488.56 KiB" in row  # 5 * 100,057 bytes
    assert "293.14 KiB" in row and "781.70 KiB" in row
    assert row.split()[-3:] == ["6", "16", "+10"]
    assert text.startswith(f"Base: {runs['three']}\nNew:  {runs['eight']}\n")


def test_page_is_written_and_never_overwritten_silently(hsm, work, runs):
    out = work / "page.html"
    proc = hsm("diff", "-o", str(out), str(runs["three"]), str(runs["eight"]))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert '"diff":{"baseBytes":' in page and "Sites that changed" in page
    out.write_text("mine")
    proc = hsm("diff", "-o", str(out), str(runs["three"]), str(runs["eight"]))
    assert proc.returncode == 1 and b"exists: use -f" in proc.stderr
    assert out.read_text() == "mine"
    proc = hsm("diff", "-f", "-o", str(out), str(runs["three"]), str(runs["eight"]))
    assert proc.returncode == 0 and out.read_text() != "mine"
    # The default name is next to NEW and says both.
    proc = hsm("diff", str(runs["three"]), str(runs["eight"]))
    assert proc.returncode == 0, proc.stderr
    assert (work / "heapscope-diff-three-eight.html").exists()


@pytest.mark.parametrize("make_bad, message", [
    (lambda path: None, "no such file"),
    (lambda path: path.write_bytes(b"not a capture at all\n"), "not a heapscope capture"),
    (lambda path: path.write_bytes(b""), None),
])
def test_bad_input_is_one_clear_line(hsm, work, runs, make_bad, message):
    bad = work / "bad.hsc"
    bad.unlink(missing_ok=True)
    make_bad(bad)
    for args in ((runs["three"], bad), (bad, runs["three"])):
        proc = hsm("diff", "--json", *map(str, args))
        assert proc.returncode == 1
        lines = proc.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"heapscope: error: {bad}: "), lines
        if message:
            assert message in lines[0]
        assert proc.stdout == b""


def test_cut_capture_is_diffed_with_a_warning(hsm, work, runs):
    whole = work / "whole.hsc"
    proc = hsm("run", "-q", "-f", "--no-compress", "-o", str(whole), "keep.py", "8")
    assert proc.returncode == 0, proc.stderr
    data = whole.read_bytes()
    cut = work / "cut.hsc"
    cut.write_bytes(data[: len(data) * 2 // 3])
    proc = hsm("diff", "--json", str(runs["three"]), str(cut))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["new"]["truncated"] is True and result["base"]["truncated"] is False
    assert f"heapscope: warning: {cut} was cut short".encode() in proc.stderr


def test_native_frames_match_across_runs(hsm, work, runs):
    """Two --native runs load libpython at different addresses (ASLR): sites
    still match, by symbol and source line."""
    captures = []
    for n in ("3", "8"):
        out = work / f"native-{n}.hsc"
        proc = hsm("run", "-q", "-f", "--native", "-o", str(out), "keep.py", n)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        captures.append(out)
    hybrid = diff_json(hsm, *captures)
    assert hybrid["stacks"] == "hybrid"
    python = diff_json(hsm, "--stacks", "python", *captures)
    assert python["delta_bytes"] == hybrid["delta_bytes"] == python["new"]["bytes"] - python["base"]["bytes"]
    assert sum(s["delta_bytes"] for s in hybrid["sites"]) == hybrid["delta_bytes"]
    # The 5 more buffers of 100,001 bytes come from one native site, in both
    # runs (matched, not one site gone and another new).
    buffers = [s for s in hybrid["sites"] if s["delta_bytes"] == 5 * 100_001]
    assert len(buffers) == 1, hybrid["sites"]
    assert buffers[0]["base_count"] == 3 and buffers[0]["new_count"] == 8
    assert not buffers[0]["file"].endswith("keep.py")
    # Python frames name it the same as without native stacks.
    assert site_at(python, KEEP_LINE)["delta_bytes"] == 5 * OBJECT_BYTES


def test_native_against_python_only_compares_python_stacks(hsm, work, runs):
    native = work / "native-only.hsc"
    proc = hsm("run", "-q", "-f", "--native", "-o", str(native), "keep.py", "8")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    proc = hsm("diff", "--json", str(runs["three"]), str(native))
    assert proc.returncode == 0, proc.stderr
    assert f"only {native} has native stacks: comparing Python stacks".encode() in proc.stderr
    result = json.loads(proc.stdout)
    assert result["stacks"] == "python"
    assert site_at(result, KEEP_LINE)["delta_bytes"] == 5 * OBJECT_BYTES
