"""`heapscope run --leaks` and leak figures: exact, with a floor, with suppressions."""
import json
import re
import textwrap

import pytest

from conftest import EXAMPLES, clean_env, write

# make_blob runs K * ITERATIONS times: fewer than 1024, the calls after which
# CPython 3.10 gives a function an opcache (two blocks that live as long as
# its code object, so they would be exact leaks of make_blob too).
K = 200
ITERATIONS = 5
SIZE = 200  # bytes(200): one PyObject_Calloc of 33 + 200 bytes, a pymalloc block

K_LEAK = textwrap.dedent(
    f"""
    K = {K}
    ITERATIONS = {ITERATIONS}
    SIZE = {SIZE}
    store = [None] * (K * ITERATIONS)   # never grows: the only leak is the blobs

    def make_blob():
        return bytes(SIZE)

    def iteration(n):
        for k in range(K):
            store[n * K + k] = make_blob()
        scratch = [bytes(SIZE) for _ in range(K)]   # freed: not a leak
        del scratch

    for n in range(ITERATIONS):
        iteration(n)
    """
)
BLOB_BYTES = 33 + SIZE
SCRATCH_LINE = next(n for n, text in enumerate(K_LEAK.splitlines(), 1) if "scratch = " in text)

NO_LEAK = textwrap.dedent(
    """
    import json

    def work():
        data = [str(i) * 10 for i in range(100000)]
        table = {i: (i, str(i), float(i)) for i in range(50000)}
        text = json.dumps(list(table)[:1000])
        cycle = []
        cycle.append(cycle)   # unreachable after return: freed by the collection
        del data, table, text

    for _ in range(3):
        work()
    """
)


def leak_sites(hs, capture):
    """Leak figures per location from `stats --leaks --json`."""
    proc = hs("stats", "--leaks", "--json", "-n", "20", str(capture))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


def site(stats, function):
    found = [entry for entry in stats["top_by_bytes"] if entry["function"] == function]
    assert found, stats["top_by_bytes"]
    return found[0]


def summary_site(stderr, function):
    """(bytes text, count) of a site in the run --leaks summary."""
    match = re.search(r"\d+\. %s \([^)]*\): ([\d.]+ \w+) in ([\d,]+) allocations" % re.escape(function), stderr)
    assert match, stderr
    return match.group(1), int(match.group(2).replace(",", ""))


def test_exact_leak_under_leaks_mode(hs, tmp_path):
    write(tmp_path / "kleak.py", K_LEAK)
    proc = hs("run", "--leaks", "-o", "k.hsc", "kleak.py")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "allocator:" in err and "malloc" in err and "set by heapscope run --leaks" in err
    _, count = summary_site(err, "make_blob")
    assert count == K * ITERATIONS
    stats = leak_sites(hs, tmp_path / "k.hsc")
    assert stats["metadata"]["python_allocator"] == "malloc"
    assert stats["metadata"]["leaks_mode"] is True
    assert stats["metadata"]["pythonmalloc_set_by_heapscope"] is True
    assert stats["metadata"]["trace_python_allocators"] is True
    blob = site(stats, "make_blob")
    assert blob["count"] == K * ITERATIONS
    assert blob["bytes"] == K * ITERATIONS * BLOB_BYTES


def test_exact_leak_with_pymalloc_traced(hs, tmp_path):
    write(tmp_path / "kleak.py", K_LEAK)
    proc = hs("run", "--trace-python-allocators", "-o", "k.hsc", "kleak.py")
    assert proc.returncode == 0, proc.stderr
    stats = leak_sites(hs, tmp_path / "k.hsc")
    assert stats["metadata"]["python_allocator"] == "pymalloc"
    assert "leaks_mode" not in stats["metadata"]
    blob = site(stats, "make_blob")
    assert blob["count"] == K * ITERATIONS
    assert blob["bytes"] == K * ITERATIONS * BLOB_BYTES
    # The scratch blobs were freed into pymalloc's pools: not leaks.
    assert all(e["line"] != SCRATCH_LINE for e in stats["top_by_bytes"]), stats["top_by_bytes"]


def test_pythonmalloc_from_the_environment_is_kept(hs, tmp_path):
    write(tmp_path / "probe.py", "import os, sys\nprint(os.environ.get('PYTHONMALLOC'))\nsys.stdout.flush()\n")
    proc = hs("run", "--leaks", "-o", "p.hsc", "probe.py", env=clean_env(PYTHONMALLOC="pymalloc"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"pymalloc\n"
    err = proc.stderr.decode()
    assert "PYTHONMALLOC=pymalloc from the environment, kept" in err
    meta = hs.stats_json(tmp_path / "p.hsc")["metadata"]
    assert meta["python_allocator"] == "pymalloc"
    assert meta["pythonmalloc_set_by_heapscope"] is False
    assert meta["user_pythonmalloc"] == "pymalloc"


def test_program_does_not_see_heapscopes_pythonmalloc(hs, tmp_path):
    write(tmp_path / "probe.py", "import os\nprint(os.environ.get('PYTHONMALLOC'))\n")
    proc = hs("run", "--leaks", "-o", "p.hsc", "probe.py", env=clean_env(PYTHONMALLOC=None))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"None\n"


def test_unbounded_cache_leaks_50_mb_at_fetch_profile(hs, tmp_path):
    proc = hs("run", "--leaks", "-o", "cache.hsc", str(EXAMPLES / "unbounded_cache.py"))
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    first = re.search(r"1\. (\S+) \(", err)
    assert first and first.group(1) == "fetch_profile", err
    stats = leak_sites(hs, tmp_path / "cache.hsc")
    fetch = site(stats, "fetch_profile")
    assert 48e6 <= fetch["bytes"] <= 56e6, fetch
    assert fetch["count"] >= 5000


def test_no_leak_stays_under_the_floor(hs, tmp_path):
    write(tmp_path / "noleak.py", NO_LEAK)
    proc = hs("run", "--leaks", "-o", "n.hsc", "noleak.py")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "leaks:             none above the floor" in err, err
    assert "The floor is memory any Python program still holds" in err
    assert "free lists" in err
    stats = hs.stats_json(tmp_path / "n.hsc")
    # What is left (the imports of json, re and enum, interned strings) is
    # small next to one round's data, which is most of the peak: a round
    # that leaked would leave more than half the peak behind.
    assert stats["peak_bytes"] > 10 * 1024 * 1024, stats["peak_bytes"]
    assert stats["leaked_bytes"] < stats["peak_bytes"] / 10, (stats["leaked_bytes"], stats["peak_bytes"])


def test_suppressions_hide_and_count(hs, tmp_path):
    write(tmp_path / "kleak.py", K_LEAK)
    write(tmp_path / "known.supp", "# known leaks\nfunction:make_blob\n")
    proc = hs("run", "--leaks", "--suppressions", "known.supp", "-o", "k.hsc", "kleak.py")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "make_blob (" not in err
    match = re.search(r"suppressed: +[\d.]+ \w+ in ([\d,]+) allocations hidden by known.supp", err)
    assert match, err
    assert int(match.group(1).replace(",", "")) == K * ITERATIONS
    assert "function:make_blob" in err


def test_suppressions_by_module_and_file(hs, tmp_path):
    write(tmp_path / "kleak.py", K_LEAK)
    write(tmp_path / "known.supp", "module:kleak\n")
    proc = hs("run", "--leaks", "--suppressions", "known.supp", "-o", "k.hsc", "kleak.py")
    assert proc.returncode == 0, proc.stderr
    assert "none above the floor" in proc.stderr.decode()
    write(tmp_path / "file.supp", "file:*/kleak.py\n")
    proc = hs("run", "--leaks", "--suppressions", "file.supp", "-f", "-o", "k.hsc", "kleak.py")
    assert "none above the floor" in proc.stderr.decode()


def test_bad_suppressions_file(hs, tmp_path):
    write(tmp_path / "ok.py", "pass\n")
    write(tmp_path / "bad.supp", "function:x\nclass:Y\n")
    proc = hs("run", "--leaks", "--suppressions", "bad.supp", "-o", "o.hsc", "ok.py")
    assert proc.returncode == 2
    assert b"bad.supp: line 2: unknown pattern kind 'class'" in proc.stderr
    assert not (tmp_path / "o.hsc").exists()
    proc = hs("run", "--leaks", "--suppressions", "missing.supp", "-o", "o.hsc", "ok.py")
    assert proc.returncode == 2
    assert b"cannot read the suppressions file missing.supp" in proc.stderr
    proc = hs("run", "--suppressions", "bad.supp", "-o", "o.hsc", "ok.py")
    assert proc.returncode == 2
    assert b"--suppressions works with --leaks" in proc.stderr


def test_suppressions_in_leak_reports(hs, tmp_path):
    """summary/stats/flamegraph --leaks --suppressions: the matched sites are gone, and the terminal says how much."""
    proc = hs("run", "--leaks", "-q", "-o", "cache.hsc", str(EXAMPLES / "unbounded_cache.py"))
    assert proc.returncode == 0, proc.stderr.decode()
    write(tmp_path / "known.txt", "# the cache is known\nfunction:fetch_profile\n")
    shown = hs.stats_json(tmp_path / "cache.hsc", "--leaks")
    assert shown["top_by_bytes"][0]["function"] == "fetch_profile"
    proc = hs("stats", "--json", "--leaks", "--suppressions", "known.txt", "cache.hsc")
    assert proc.returncode == 0, proc.stderr.decode()
    hidden = json.loads(proc.stdout)
    assert all(t["function"] != "fetch_profile" for t in hidden["top_by_bytes"])
    match = re.search(r"suppressions in known.txt hid ([\d.]+) MiB", proc.stderr.decode())
    assert match and 45 < float(match.group(1)) < 55, proc.stderr.decode()
    proc = hs("flamegraph", "--leaks", "--suppressions", "known.txt", "-o", "cache.html", "cache.hsc")
    assert proc.returncode == 0, proc.stderr.decode()
    # What is left is the floor (imports, interpreter): kilobytes, not the cache's 50 MB.
    assert re.search(r"leaks flame graph, [\d.]+ KiB in", proc.stderr.decode()), proc.stderr.decode()
    assert hs("summary", "--suppressions", "known.txt", "cache.hsc").returncode != 0   # leaks only
