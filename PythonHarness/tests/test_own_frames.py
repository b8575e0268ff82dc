"""heapscope's own Python code (the Tracker's methods, the bootstrap of
`heapscope run`) is not in any capture: nothing of it runs while recording,
so no allocation, and no report, names its frames."""
import importlib.util
import os
import re

import pytest

from conftest import write

# The installed package the tests run (its __init__.py, _bootstrap/ ...).
PACKAGE = os.path.dirname(os.path.abspath(importlib.util.find_spec("heapscope").origin))


def code_files(hs, capture):
    """The file of every code object the capture defines, and its THREAD_INFO names."""
    proc = hs("parse", str(capture))
    assert proc.returncode == 0, proc.stderr.decode()
    files, names = set(), []
    for line in proc.stdout.decode().splitlines():
        if m := re.match(r"CODE \d+ .* \((.*) in (.*)\)$", line):
            files.add(m[2])
        elif m := re.match(r'THREAD_INFO \d+ tid=\d+ name="(.*)"$', line):
            names.append(m[1])
    return files, names


def own(files):
    return sorted(f for f in files if f.startswith(PACKAGE + os.sep))


@pytest.mark.parametrize("mode", [[], ["--native"], ["--follow-fork"]], ids=["default", "native", "follow-fork"])
def test_run_records_none_of_heapscopes_frames(hs, tmp_path, mode):
    # A thread started while recording is named as it starts (heapscope's
    # hook on Thread._bootstrap_inner), with no frame of heapscope's under
    # what it allocates.
    script = write(tmp_path / "prog.py", """
import threading
data = [str(i) * 2 for i in range(10_000)]
def work():
    global more
    more = [str(i) * 3 for i in range(10_000)]
worker = threading.Thread(target=work, name="the-worker")
worker.start()
worker.join()
""")
    proc = hs("run", "-q", *mode, "-o", "prog.hsc", str(script))
    assert proc.returncode == 0, proc.stderr.decode()
    files, names = code_files(hs, tmp_path / "prog.hsc")
    assert str(script) in files
    assert own(files) == []
    assert "the-worker" in names


def test_tracker_api_records_none_of_its_frames_and_names_the_threads(hs, tmp_path):
    script = write(tmp_path / "api.py", """
import sys, threading, time
import heapscope

stop = threading.Event()
def churn():
    while not stop.is_set():
        [str(i) for i in range(100)]
        time.sleep(0.001)

worker = threading.Thread(target=churn, name="churner")
worker.start()
with heapscope.Tracker(sys.argv[1]):
    kept = [bytearray(100) for _ in range(1000)]
    time.sleep(0.05)
    worker.name = "renamed-churner"
stop.set()
worker.join()
""")
    proc = hs.python(str(script), str(tmp_path / "api.hsc"))
    assert proc.returncode == 0, proc.stderr.decode()
    files, names = code_files(hs, tmp_path / "api.hsc")
    assert str(script) in files
    assert own(files) == []
    # Named at start (before recording) and again at stop (after it).
    assert names.count("churner") == 1 and names[-1] == "renamed-churner"
    assert "MainThread" in names
