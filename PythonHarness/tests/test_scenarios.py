"""The example programs, run for real and checked against what their docstrings say.

Figures are checked against arithmetic on CPython's object sizes: an int
below 2**30 is 28 bytes, a list holds 8-byte pointers, a bytes object of n
bytes is 33 + n bytes, and a compact ASCII str of n characters is STR_HEADER
+ n bytes (49 up to 3.11; 41 from 3.12, which dropped the wstr pointer).
"""
import ast
import shutil
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES

MB = 1_000_000
STR_HEADER = sys.getsizeof("")   # the header and the terminating NUL


def copy_example(tmp_path, name):
    target = tmp_path / name
    shutil.copy(EXAMPLES / name, target)
    return target


def record(hs, tmp_path, name, *options):
    copy_example(tmp_path, name)
    capture = tmp_path / (name[:-3] + ".hsc")
    proc = hs("run", "-q", *options, "-o", str(capture), name)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc, hs.stats_json(capture, "-n", "10")


def function_lines(path, name):
    """The lines of the function `name` defined in the file at `path`."""
    tree = ast.parse(Path(path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return range(node.lineno, node.end_lineno + 1)
    return range(0)


def belongs_to(entry, name):
    """Whether a top-list entry is the function `name` or a comprehension in it
    (3.11 names those `name.<locals>.<listcomp>`, 3.10 only `<listcomp>`, at a
    line of the function; 3.12+ runs them inline)."""
    fn = entry["function"]
    if fn == name or fn.startswith(name + ".<locals>."):
        return True
    return fn.startswith("<") and Path(entry["file"]).is_file() and entry["line"] in function_lines(entry["file"], name)


def function_entry(entries, name):
    """The totals of `name` over a top list: its entries are per (function, line)."""
    found = None
    for entry in entries:
        if belongs_to(entry, name):
            if found is None:
                found = {"function": name, "count": 0, "bytes": 0}
            found["count"] += entry["count"]
            found["bytes"] += entry["bytes"]
    return found


def test_two_copies(hs, tmp_path):
    proc, stats = record(hs, tmp_path, "two_copies.py")
    assert proc.stdout == b"rendered 5000000 values\n"
    n = 5_000_000
    ints = n * 28                    # the 5 million ints (i * 3 > 256 almost always)
    strings = n * (STR_HEADER + 7)          # "0".."14999997": 7 characters on average, about
    lists = 2 * n * 8                # two lists of 5 million pointers
    expected_peak = ints + strings + lists  # ~500 MB
    assert 0.85 * expected_peak < stats["peak_bytes"] < 1.2 * expected_peak, stats["peak_bytes"]

    numbers = function_entry(stats["top_by_bytes"], "build_numbers")
    texts = function_entry(stats["top_by_bytes"], "render_strings")
    assert numbers and texts, stats["top_by_bytes"]
    # build_numbers: the 5 million ints and the list holding them
    assert numbers["count"] >= n
    assert numbers["bytes"] >= ints + n * 8
    # render_strings: 5 million strings and their list, the larger of the two
    assert texts["count"] >= n
    assert texts["bytes"] >= n * STR_HEADER + n * 8
    assert texts["bytes"] > numbers["bytes"]
    assert belongs_to(stats["top_by_bytes"][0], "render_strings"), stats["top_by_bytes"][0]
    assert stats["total_allocations"] >= 2 * n
    assert stats["metadata"]["source"] == "run"
    assert stats["metadata"]["command_line"] == ["two_copies.py"]
    assert stats["by_allocator"]["pymem_obj"]["count"] >= 2 * n


def test_unbounded_cache(hs, tmp_path):
    proc, stats = record(hs, tmp_path, "unbounded_cache.py")
    assert proc.stdout == b"served 51200000 bytes, cache holds 5000 entries\n"
    payloads = 5_000 * (33 + 10 * 1024)  # bytes(10 KiB) objects, all still cached at exit
    assert payloads <= stats["leaked_bytes"] < payloads + 2 * MB, stats["leaked_bytes"]
    fetch = function_entry(stats["top_by_bytes"], "fetch_profile")
    assert fetch is not None, stats["top_by_bytes"]
    assert fetch["bytes"] >= payloads
    assert stats["top_by_bytes"][0]["function"] == "fetch_profile"


def test_worker_threads(hs, tmp_path):
    proc, stats = record(hs, tmp_path, "worker_threads.py")
    assert proc.stdout == b"1600000 items\n"
    threads = {t["name"]: t for t in stats["threads"]}
    workers = ["worker-%d" % k for k in range(4)]
    for name in workers:
        assert name in threads, stats["threads"]
    assert "MainThread" in threads
    n = 400_000
    each = [threads[name]["bytes"] for name in workers]
    for b in each:
        assert b >= n * (STR_HEADER + 8) + n * 8  # the strings "tK-i" and the list of them
    # about a quarter of the workers' bytes each
    assert max(each) < 1.2 * min(each)
    total = sum(t["bytes"] for t in stats["threads"])
    for b in each:
        assert 0.2 < b / total < 0.3
    assert function_entry(stats["top_by_bytes"], "work") is not None


def test_forking_follow_fork(hs, tmp_path):
    proc, stats = record(hs, tmp_path, "forking.py", "--follow-fork")
    # sum over k=0..3 of k * sum(range(300000))
    assert proc.stdout == b"%d\n" % (6 * (300_000 * 299_999 // 2))
    children = sorted(p for p in tmp_path.glob("forking.hsc.*") if p.name.split(".")[-1].isdigit())
    assert len(children) == 2, list(tmp_path.iterdir())  # Pool(2): one capture per worker process
    parent_pid = stats["pid"]
    for child in children:
        child_stats = hs.stats_json(child, "-n", "10")
        assert child_stats["pid"] == int(child.name.split(".")[-1])
        assert child_stats["parent_pid"] == parent_pid
        top = child_stats["top_by_bytes"][0]
        assert belongs_to(top, "chunk"), child_stats["top_by_bytes"]
    # Each worker runs chunk() on 2 of the 4 inputs on average: its peak holds
    # one list of 300,000 pointers and up to 300,000 ints.
    peaks = [hs.stats_json(c)["peak_bytes"] for c in children]
    assert max(peaks) >= 300_000 * 8 + 300_000 * 28


def test_tracker_block(hs, tmp_path):
    copy_example(tmp_path, "tracker_block.py")
    import subprocess

    from conftest import clean_env

    proc = subprocess.run(
        [sys.executable, "tracker_block.py"], cwd=str(tmp_path), env=clean_env(), capture_output=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith(b"hits\n")
    stats = hs.stats_json(tmp_path / "tracker_block.hsc", "-n", "20")
    assert stats["metadata"]["source"] == "api"
    functions = [e["function"] for e in stats["top_by_bytes"] + stats["top_by_count"]]
    assert stats["top_by_bytes"][0]["function"] == "build_index", stats["top_by_bytes"]
    # The corpus set-up and search() ran outside the block.
    assert not any(f == "search" or f.startswith("search.") for f in functions), functions
    build = function_entry(stats["top_by_bytes"], "build_index")
    # 60,000 documents of ~5 words: a lowered copy and a split per document, plus the postings lists
    assert build["count"] >= 60_000
    assert build["bytes"] >= 0.9 * stats["total_bytes"]


@pytest.mark.parametrize("content", [b"", b"this is just text\n", b"\x89HSC\r\n\x1a\n\x09\x00"])
def test_stats_on_bad_files(hs, tmp_path, content):
    bad = tmp_path / "bad.hsc"
    bad.write_bytes(content)
    proc = hs("stats", str(bad))
    assert proc.returncode != 0
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heapscope: error: "), lines
    assert proc.stdout == b""


def test_stats_on_missing_file(hs, tmp_path):
    proc = hs("stats", str(tmp_path / "missing.hsc"))
    assert proc.returncode != 0
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heapscope: error: "), lines


def test_stats_on_truncated_capture(hs, tmp_path):
    (tmp_path / "s.py").write_text("x = [str(i) for i in range(50000)]\n")
    proc = hs("run", "-q", "--no-compress", "-o", "full.hsc", "s.py")
    assert proc.returncode == 0, proc.stderr
    data = (tmp_path / "full.hsc").read_bytes()
    cut = tmp_path / "cut.hsc"
    cut.write_bytes(data[: len(data) // 2])
    proc = hs("stats", str(cut))
    err = proc.stderr.decode(errors="replace")
    if proc.returncode == 0:
        assert "cut short" in err or "cut short" in proc.stdout.decode()
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("heapscope: error: "), lines
