"""The summary `heapscope run` prints at exit: the tracker's own totals (the
capture's summary trailer, docs/FORMAT.md), which must be `heapscope stats`'
figures for the same capture; a capture cut short has no trailer and the
summary replays it instead."""
import os
import signal
import struct
import subprocess
import time

import pytest

from conftest import clean_env, summary_numbers, write

# Frees, reallocations, a block replaced at a live address, whole and partial
# munmaps (ctypes calls libc directly: its mmap is not recorded, so the
# mmap'd range below is the mmap module's), and a peak in the middle. The
# blobs, of 1 MiB and more, are kept apart from the small blocks in the
# tracker's table: were their FREEs lost there, the peak would be 12 MiB higher.
SCRIPT = """
import mmap
blobs = [bytes(3 << 20) for _ in range(4)]
del blobs
xs = [str(i) * 3 for i in range(100_000)]
ys = [bytearray(1000) for _ in range(2000)]
for b in ys[::2]:
    b.extend(bytes(3000))     # realloc
del ys
big = mmap.mmap(-1, 1 << 22)
big[0] = 1
xs = None
big.close()
zs = [bytes(i % 700) for i in range(20_000)]
"""

SKIPPABLE_MAGIC = 0x184D2A5E


def trailer_fields(capture):
    """The summary trailer, decoded here from the file's last 48 bytes: (allocations,
    bytes allocated, peak bytes, most blocks live at once), or None."""
    tail = capture.read_bytes()[-48:]
    magic, size = struct.unpack_from("<II", tail)
    if magic != SKIPPABLE_MAGIC or size != 40 or tail[8:12] != b"HSCS":
        return None
    version, allocations, allocated, peak, most_live = struct.unpack_from("<IQQQQ", tail, 12)
    assert version == 2
    return allocations, allocated, peak, most_live


def trailer(capture):
    """The trailer's figures that `stats` also computes, or None."""
    fields = trailer_fields(capture)
    return fields and fields[:3]


def stats_numbers(hs, capture):
    stats = hs.stats_json(capture)
    return stats, (stats["total_allocations"], stats["total_bytes"], stats["peak_bytes"])


@pytest.mark.parametrize("mode", [[], ["--no-trace-python-allocators"], ["--native"], ["--no-compress"]],
                         ids=["default", "no-python-allocators", "native", "raw"])
def test_summary_is_the_trackers_and_equals_stats(hs, tmp_path, mode):
    write(tmp_path / "s.py", SCRIPT)
    proc = hs("run", *mode, "-o", "s.hsc", "s.py")
    assert proc.returncode == 0, proc.stderr
    capture = tmp_path / "s.hsc"
    stats, expected = stats_numbers(hs, capture)
    assert stats["truncated"] is False
    # The tracker wrote its totals, and the summary printed them.
    assert trailer(capture) == expected
    assert summary_numbers(proc.stderr.decode()) == expected
    assert "cut short" not in proc.stderr.decode()
    # The script's 2,000 bytearrays and the 4 MiB mapping are in the peak.
    assert expected[2] >= (1 << 22) if mode != ["--no-trace-python-allocators"] else expected[2] > 0


# Two million small blocks live at once, freed in the middle of a churn: the
# tracker's table of live blocks has grown past the sizes that fit in the
# caches (its shards past 16 Ki slots, updated in prefetched batches).
MANY_LIVE = """
kept = [str(i) for i in range(2_000_000)]
del kept[::2]
churn = [bytes(i % 300) for i in range(200_000)]
del kept
tail = [str(i) * 2 for i in range(100_000)]
"""


def test_summary_with_millions_of_blocks_live_equals_stats(hs, tmp_path):
    write(tmp_path / "many.py", MANY_LIVE)
    proc = hs("run", "-o", "many.hsc", "many.py")
    assert proc.returncode == 0, proc.stderr
    capture = tmp_path / "many.hsc"
    stats, expected = stats_numbers(hs, capture)
    assert trailer(capture) == expected
    assert summary_numbers(proc.stderr.decode()) == expected
    assert expected[0] >= 2_300_000
    # The most blocks live at once is when `kept` is whole, which is also the
    # peak: the blocks live at the peak, give or take the list's own growth.
    most_live = trailer_fields(capture)[3]
    assert stats["peak_allocations"] <= most_live <= stats["peak_allocations"] + 100


def reports(hs, capture):
    """stats --json and summary of `capture`, with its file name taken out."""
    texts = []
    for command in (["stats", "--json"], ["summary"]):
        proc = hs(*command, str(capture))
        assert proc.returncode == 0, proc.stderr
        texts.append(proc.stdout.decode().replace(capture.name, "CAPTURE"))
    return texts


def test_reports_do_not_depend_on_the_trailers_hint(hs, tmp_path):
    # A replay sizes its table of live blocks by the trailer's most blocks
    # live at once; without the trailer, or with one that lies, it reads the same.
    write(tmp_path / "many.py", MANY_LIVE)
    assert hs("run", "-o", "many.hsc", "many.py").returncode == 0
    data = (tmp_path / "many.hsc").read_bytes()
    (tmp_path / "bare.hsc").write_bytes(data[:-48])
    (tmp_path / "lying.hsc").write_bytes(data[:-8] + struct.pack("<Q", 1 << 62))
    (tmp_path / "small.hsc").write_bytes(data[:-8] + struct.pack("<Q", 3))
    assert trailer_fields(tmp_path / "bare.hsc") is None
    expected = reports(hs, tmp_path / "many.hsc")
    for name in ("bare.hsc", "lying.hsc", "small.hsc"):
        assert reports(hs, tmp_path / name) == expected, name


SLEEPER = """
import os, time
kept = [bytearray(1_000) for i in range(50_000)]
print(os.getpid(), flush=True)
time.sleep(60)
"""


def start_sleeper(hs, tmp_path):
    """`heapscope run` of a program that allocates, then sleeps; and its pid."""
    script = write(tmp_path / "sleeper.py", SLEEPER)
    proc = subprocess.Popen(hs.command + ["run", "-o", "sleeper.hsc", str(script)], cwd=tmp_path, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, int(proc.stdout.readline())


def test_summary_of_a_killed_program_replays_what_was_written(hs, tmp_path):
    proc, child = start_sleeper(hs, tmp_path)
    # Snapshot intervals pass: the records reach the file, then the process dies.
    time.sleep(0.5)
    os.kill(child, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    capture = tmp_path / "sleeper.hsc"
    assert trailer(capture) is None
    stats, expected = stats_numbers(hs, capture)
    assert stats["truncated"] is True
    assert "the capture was cut short" in err
    assert summary_numbers(err) == expected
    assert expected[0] >= 50_000 and expected[2] >= 50_000 * 1_000


def test_sigterm_finishes_the_capture_with_its_totals(hs, tmp_path):
    proc, child = start_sleeper(hs, tmp_path)
    os.kill(child, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    capture = tmp_path / "sleeper.hsc"
    stats, expected = stats_numbers(hs, capture)
    assert stats["truncated"] is False
    assert trailer(capture) == expected
    assert summary_numbers(err.decode()) == expected


def test_no_summary_no_totals(hs, tmp_path):
    # `run -q` and the Python API print no summary: their tracker keeps no
    # table of live blocks for one, and the capture has no trailer; it reads
    # the same (stats replays it).
    write(tmp_path / "s.py", SCRIPT)
    proc = hs("run", "-q", "-o", "quiet.hsc", "s.py")
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    write(tmp_path / "api.py", "import heapscope\nwith heapscope.Tracker('api.hsc'):\n" +
          "".join("    " + line + "\n" for line in SCRIPT.strip().splitlines()))
    api = hs.python("api.py")
    assert api.returncode == 0, api.stderr
    proc = hs("run", "-o", "loud.hsc", "s.py")
    assert proc.returncode == 0, proc.stderr
    loud = trailer(tmp_path / "loud.hsc")
    for name in ("quiet.hsc", "api.hsc"):
        assert trailer(tmp_path / name) is None
        stats, figures = stats_numbers(hs, tmp_path / name)
        assert stats["truncated"] is False
        # The same script: the allocation count of the run with a summary, within
        # the interpreter's start-up (which the API's capture does not hold).
        assert abs(figures[0] - loud[0]) < 0.05 * loud[0]
