"""SIGTERM and SIGINT: a program they end leaves a complete capture, and
`heapscope run` ends as the program would have; a program's own handlers stay."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import clean_env, write

# Allocates until told to stop: the signal lands while the hooks are busy.
BUSY = """
import sys
held = []
def grow():
    held.append(bytearray(100_000))
    held.append([object() for _ in range(1000)])
    if len(held) > 400:
        del held[:200]
print("ready", flush=True)
while True:
    grow()
"""

# Four threads allocate at once: the signal may land inside the recorder.
THREADS = """
import threading
held = []
def grow():
    while True:
        held.append(bytearray(10_000))
        x = [object() for _ in range(100)]
        if len(held) > 1000:
            del held[:500]
for _ in range(3):
    threading.Thread(target=grow, daemon=True).start()
print("ready", flush=True)
grow()
"""

OWN_HANDLER = """
import signal, sys, time
got = []
signal.signal(signal.SIGTERM, lambda sig, frame: got.append(sig))
print("ready", flush=True)
while not got:
    time.sleep(0.01)
print("handled", got[0], flush=True)
data = bytearray(3_000_000)
sys.exit(5)
"""


def start(hs, tmp_path, *args):
    proc = subprocess.Popen(
        hs.command + ["run", *args],
        cwd=str(tmp_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout.readline() == b"ready\n"
    time.sleep(0.3)
    return proc


def python_pid(heapscope_pid):
    """The interpreter heapscope run started (its only child)."""
    with open("/proc/%d/task/%d/children" % (heapscope_pid, heapscope_pid)) as f:
        (pid,) = f.read().split()
    return int(pid)


def finish(proc):
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return out, err


@pytest.mark.parametrize("compress", [True, False], ids=["zstd", "raw"])
def test_sigterm_leaves_a_complete_capture_and_kills_heapscope_the_same(hs, tmp_path, compress):
    write(tmp_path / "busy.py", BUSY)
    proc = start(hs, tmp_path, "-o", "t.hsc", *([] if compress else ["--no-compress"]), "busy.py")
    os.kill(python_pid(proc.pid), signal.SIGTERM)
    out, err = finish(proc)
    assert proc.returncode == -signal.SIGTERM, err
    text = err.decode()
    assert "killed by signal:  15" in text, text
    assert "cut short" not in text, text
    stats = hs.stats_json(tmp_path / "t.hsc")
    assert stats["truncated"] is False
    # The program ran its loop: a few of its 100,000-byte blocks at least.
    top = [e for e in stats["top_by_bytes"] if e["function"] == "grow"]
    assert top and top[0]["bytes"] >= 300_000, stats["top_by_bytes"]


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_sigterm_while_threads_allocate(hs, tmp_path, native):
    write(tmp_path / "threads.py", THREADS)
    for attempt in range(3):
        capture = "th%d.hsc" % attempt
        proc = start(hs, tmp_path, "-q", "-o", capture, *(["--native"] if native else []), "threads.py")
        os.kill(python_pid(proc.pid), signal.SIGTERM)
        out, err = finish(proc)
        assert proc.returncode == -signal.SIGTERM, err
        stats = hs.stats_json(tmp_path / capture)
        assert stats["truncated"] is False
        assert len([t for t in stats["threads"] if t["bytes"] > 0]) == 4, stats["threads"]


def test_sigterm_sent_to_the_process_group(hs, tmp_path):
    # As a supervisor stopping a service does: heapscope and the program both get it.
    write(tmp_path / "busy.py", BUSY)
    proc = start(hs, tmp_path, "-q", "-o", "g.hsc", "busy.py")
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = finish(proc)
    assert proc.returncode == -signal.SIGTERM, err
    assert hs.stats_json(tmp_path / "g.hsc")["truncated"] is False


def test_sigint_ends_the_program_like_python_with_a_complete_capture(hs, tmp_path):
    # Python's own handler raises KeyboardInterrupt; the interpreter then dies of SIGINT.
    write(tmp_path / "busy.py", BUSY)
    proc = start(hs, tmp_path, "-o", "i.hsc", "busy.py")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = finish(proc)
    assert proc.returncode == -signal.SIGINT, err
    assert b"KeyboardInterrupt" in err
    assert b"cut short" not in err
    assert hs.stats_json(tmp_path / "i.hsc")["truncated"] is False


def test_sigint_left_at_its_default_by_the_program(hs, tmp_path):
    write(tmp_path / "busy.py", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_DFL)\n" + BUSY)
    plain = subprocess.Popen([sys.executable, "busy.py"], cwd=str(tmp_path), stdout=subprocess.PIPE)
    assert plain.stdout.readline() == b"ready\n"
    plain.send_signal(signal.SIGINT)
    assert plain.wait(timeout=60) == -signal.SIGINT
    # Under heapscope, the program sets SIG_DFL after tracking started: it
    # dies of SIGINT as without heapscope (the capture is then cut short).
    proc = start(hs, tmp_path, "-q", "-o", "d.hsc", "busy.py")
    os.kill(python_pid(proc.pid), signal.SIGINT)
    out, err = finish(proc)
    assert proc.returncode == -signal.SIGINT, err


def test_a_programs_own_sigterm_handler_is_kept(hs, tmp_path):
    write(tmp_path / "own.py", OWN_HANDLER)
    plain = subprocess.Popen([sys.executable, "own.py"], cwd=str(tmp_path), stdout=subprocess.PIPE)
    assert plain.stdout.readline() == b"ready\n"
    plain.send_signal(signal.SIGTERM)
    plain_out, _ = plain.communicate(timeout=60)
    proc = start(hs, tmp_path, "-o", "own.hsc", "own.py")
    os.kill(python_pid(proc.pid), signal.SIGTERM)
    out, err = finish(proc)
    assert plain.returncode == proc.returncode == 5
    assert out == b"handled %d\n" % signal.SIGTERM == plain_out
    stats = hs.stats_json(tmp_path / "own.hsc")
    assert stats["truncated"] is False
    # The program went on after its handler: its last allocation is there.
    assert stats["peak_bytes"] >= 3_000_000


def test_getsignal_still_says_default(hs, tmp_path):
    # heapscope's handler is invisible to the program.
    code = "import signal; print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)"
    plain, traced = hs.python("-c", code), hs("run", "-q", "-o", "gs.hsc", "-c", code)
    assert (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout) == (0, b"True\n"), traced.stderr


def test_pool_terminate_leaves_complete_worker_captures(hs, tmp_path):
    write(
        tmp_path / "pool.py",
        "import multiprocessing as mp, time\n"
        "def work(n):\n"
        "    return len([bytearray(1000) for _ in range(n)])\n"
        "if __name__ == '__main__':\n"
        "    mp.set_start_method('fork')\n"
        "    with mp.Pool(2) as pool:\n"
        "        print(sum(pool.map(work, [2000] * 8)))\n"
        "        time.sleep(0.3)\n",
    )
    proc = hs("run", "--follow-fork", "-o", "p.hsc", "pool.py", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"16000\n"
    children = sorted(p for p in tmp_path.glob("p.hsc.*") if p.name.split(".")[-1].isdigit())
    assert len(children) == 2, list(tmp_path.iterdir())
    for child in children:
        stats = hs.stats_json(child)
        assert stats["truncated"] is False, child
    assert b"cut short" not in proc.stderr


def test_sigterm_right_after_fork(hs, tmp_path):
    # The parent kills each child at once, while the child may still be
    # opening its capture: a capture, when there is one, is complete.
    write(
        tmp_path / "forks.py",
        "import os, signal, time\n"
        "for i in range(30):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        time.sleep(5)\n"
        "        os._exit(0)\n"
        "    time.sleep(i * 0.0001)  # 0 to 3 ms after the fork: across the child's start\n"
        "    os.kill(pid, signal.SIGTERM)\n"
        "    assert os.waitpid(pid, 0)[1] == signal.SIGTERM\n"
        "print('ok')\n",
    )
    proc = hs("run", "-q", "--follow-fork", "-o", "f.hsc", "forks.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"ok\n"
    children = [p for p in tmp_path.glob("f.hsc.*")]
    assert len(children) >= 5  # the later kills find the child recording
    for child in children:
        assert child.stat().st_size > 0, child
        assert hs.stats_json(child)["truncated"] is False, child


def test_sigterm_while_stop_names_the_threads(hs, tmp_path):
    # Stop has paused recording and is naming the threads when SIGTERM comes
    # (a pool worker leaving as Pool.terminate() kills it): the capture still
    # gets its END, and the process dies of the signal.
    write(
        tmp_path / "late.py",
        "import os, signal, threading, heapscope\n"
        "class Killer(threading.Thread):\n"
        "    @property\n"
        "    def name(self):\n"
        "        if armed:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "        return 'killer'\n"
        "    @name.setter\n"
        "    def name(self, value):\n"
        "        pass\n"
        "armed = False\n"
        "stop = threading.Event()\n"
        "killer = Killer(target=stop.wait, daemon=True)\n"
        "tracker = heapscope.Tracker('late.hsc').start()\n"
        "killer.start()\n"
        "held = [bytearray(1000) for _ in range(500)]\n"
        "armed = True\n"
        "tracker.stop()\n"
        "print('not reached')\n",
    )
    proc = hs.python("late.py", cwd=str(tmp_path))
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert proc.stdout == b""
    stats = hs.stats_json(tmp_path / "late.hsc")
    assert stats["truncated"] is False
    assert stats["total_bytes"] >= 500 * 1000


def test_sigterm_as_a_child_calls_os_exit(hs, tmp_path):
    # Each child allocates, then leaves by os._exit (as a forkserver worker
    # does) while the parent's SIGTERM lands, before, during or after: the
    # signal may come inside an allocation hook just before the exit. Every
    # capture is complete, whichever came first.
    write(
        tmp_path / "exits.py",
        "import os, signal, time\n"
        "for i in range(40):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        held = []\n"
        "        end = time.monotonic() + 0.02\n"
        "        while time.monotonic() < end:\n"
        "            held.append(bytearray(100))\n"
        "        os._exit(0)\n"
        "    time.sleep(0.015 + i * 0.0003)  # across the child's exit\n"
        "    os.kill(pid, signal.SIGTERM)\n"
        "    assert os.waitpid(pid, 0)[1] in (0, signal.SIGTERM)\n"
        "print('ok')\n",
    )
    proc = hs("run", "-q", "--follow-fork", "-o", "x.hsc", "exits.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"ok\n"
    children = [p for p in tmp_path.glob("x.hsc.*")]
    assert len(children) == 40
    for child in children:
        assert hs.stats_json(child)["truncated"] is False, child
