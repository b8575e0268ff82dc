"""Faults of the machine while recording (issue 16): a full disk, the capture
file deleted, a read-only output directory. The program must run on with its
output and exit status unchanged; heapscope says once on stderr what happened,
and the capture reads to its last complete record and says why it ends.

The full-disk tests mount a 2 MiB tmpfs, so they need root (as `make test`
runs in CI)."""
import os
import subprocess
import sys
import uuid

import pytest

from conftest import write

# 200 rounds of 20,000 short strings: far more records than 2 MiB holds.
PROGRAM = """\
import sys
total = 0
for i in range(200):
    data = [str(j) * 3 for j in range(20000)]
    total += len(data)
print("done", total)
sys.exit(3)
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def heapscope_lines(stderr):
    return [line for line in stderr.decode(errors="replace").splitlines() if line.startswith("heapscope: ")]


@needs_root
@pytest.mark.parametrize("compress", [True, False], ids=["zstd", "raw"])
def test_full_disk(hs, tmp_path, small_disk, compress):
    script = write(tmp_path / "prog.py", PROGRAM)
    capture = small_disk / "prog.hsc"
    expected = hs.python(str(script))
    args = ["run", "-o", str(capture)] + ([] if compress else ["--no-compress"]) + [str(script)]
    proc = hs(*args)
    assert proc.returncode == expected.returncode == 3
    assert proc.stdout == expected.stdout == b"done 4000000\n"
    full = [line for line in heapscope_lines(proc.stderr) if "disk is full" in line]
    assert len(full) == 1, proc.stderr
    assert f"the capture {capture} stopped after " in full[0]
    assert " events and " in full[0] and full[0].endswith(" s; the program runs on untracked")
    assert "note:              the capture was cut short because the disk was full" in proc.stderr.decode()

    # The file ends with the STOPPED record after the last complete record.
    parsed = hs("parse", str(capture))
    assert parsed.returncode == 0, parsed.stderr
    last = parsed.stdout.decode().splitlines()[-1]
    assert last.startswith("STOPPED ") and 'cause="the disk was full"' in last
    assert b"cut short because the disk was full" in parsed.stderr
    stats = hs("stats", str(capture))
    assert stats.returncode == 0, stats.stderr
    assert b"Note: the capture was cut short because the disk was full" in stats.stdout
    summary = hs("summary", str(capture))
    assert b"cut short because the disk was full" in summary.stdout
    data = hs.stats_json(capture)
    assert data["truncated"] is True and data["stop_cause"] == "the disk was full"
    assert data["total_allocations"] > 0


def test_capture_deleted_while_recording(hs, tmp_path):
    capture = tmp_path / "gone.hsc"
    script = write(tmp_path / "prog.py", """\
import os, sys, time
keep = []
for i in range(100):
    keep.append([str(j) for j in range(2000)])
    if i == 20:
        os.unlink(sys.argv[1])
        time.sleep(0.2)
print("done", sum(len(k) for k in keep))
""")
    proc = hs("run", "-o", str(capture), str(script), str(capture))
    assert proc.returncode == 0
    assert proc.stdout == b"done 200000\n"
    deleted = [line for line in heapscope_lines(proc.stderr) if "was deleted while recording" in line]
    assert len(deleted) == 1, proc.stderr
    assert deleted[0].startswith(f"heapscope: the capture file {capture} was deleted while recording: recording stopped after ")
    assert not capture.exists()


def test_output_directory_removed_while_recording(hs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    capture = out / "x.hsc"
    script = write(tmp_path / "prog.py", """\
import shutil, sys, time
keep = []
for i in range(60):
    keep.append(bytes(1000) * (i + 1))
    if i == 10:
        shutil.rmtree(sys.argv[1])
        time.sleep(0.2)
print("done", len(keep))
""")
    proc = hs("run", "-o", str(capture), str(script), str(out))
    assert proc.returncode == 0 and proc.stdout == b"done 60\n"
    assert sum("was deleted while recording" in line for line in heapscope_lines(proc.stderr)) == 1, proc.stderr


@needs_root
def test_read_only_output(hs, tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mount)], check=True)
    try:
        script = write(tmp_path / "prog.py", "print('ran')\n")
        proc = hs("run", "-o", str(mount / "x.hsc"), str(script))
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
    assert proc.returncode == 2
    assert proc.stdout == b""  # refused before the program ran: nothing half-done
    assert heapscope_lines(proc.stderr) == [f"heapscope: error: output directory is not writable: {mount}"]


@needs_root
def test_full_disk_under_the_python_api(hs, tmp_path, small_disk):
    """A Tracker whose disk fills up: the `with` block and stop() go on without
    an exception, and a new Tracker can record afterwards."""
    script = write(tmp_path / "prog.py", """\
import sys
import heapscope
with heapscope.Tracker(sys.argv[1]):
    for i in range(200):
        data = [str(j) * 3 for j in range(20000)]
with heapscope.Tracker(sys.argv[2]):
    after = [str(j) for j in range(1000)]
print("ok")
""")
    full, second = small_disk / "api.hsc", tmp_path / "second.hsc"
    proc = hs.python(str(script), str(full), str(second))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"ok\n"
    lines = heapscope_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"heapscope: the disk is full: the capture {full} stopped after "), proc.stderr
    assert b"Note: the capture was cut short because the disk was full" in hs("stats", str(full)).stdout
    stats = hs("stats", str(second))
    assert stats.returncode == 0 and b"cut short" not in stats.stdout
