"""The program's own behaviour passes through every mode of `heapscope run`:
exceptions in atexit handlers, os._exit, os.exec*, SIGUSR1/SIGUSR2 handlers,
faulthandler, sys.setprofile/sys.settrace/sys.monitoring users and
coverage.py. Under each mode the output, the exit status and the tracebacks
are those of plain python, and the capture is complete: it ends with END
and holds every marker block the program made, up to its last moment
(inside its atexit handler, its signal handlers, just before the exec)."""
import re
import sys
import textwrap

import pytest

from conftest import clean_env, write

# A size nothing else asks for: the marker blocks are bytearray(MARK_SIZE),
# whose buffer is one byte more.
MARK_SIZE = 7_654_321

PRELUDE = """
import os, signal, sys
kept = []
def mark():
    kept.append(bytearray(%d))
""" % MARK_SIZE

# name -> (the program after PRELUDE, the marker blocks it makes)
CASES = {
    "atexit_exception": ("""
import atexit
def handler():
    mark()
    raise RuntimeError("raised in an atexit handler")
atexit.register(handler)
mark()
print("main done")
""", 2),
    "os_exit": ("""
mark()
print("before", flush=True)
sys.stdout.write("never flushed")
os._exit(9)
""", 1),
    "execv": ("""
mark()
print("before exec", flush=True)
os.execv("/bin/sh", ["sh", "-c", "echo after exec; exit 6"])
""", 1),
    "execve": ("""
mark()
print("before exec", flush=True)
os.execve("/bin/sh", ["sh", "-c", 'echo "after exec, X=$X"; exit 6'], {"X": "1"})
""", 1),
    # Each signal is waited for before the next is sent (two pending ones
    # would merge); the last comes from another thread while main allocates.
    "signal_handlers": ("""
import threading
got = []
def handler(signum, frame):
    mark()
    got.append(signal.Signals(signum).name)
signal.signal(signal.SIGUSR1, handler)
signal.signal(signal.SIGUSR2, handler)
for i, sig in enumerate([signal.SIGUSR1, signal.SIGUSR2] * 5):
    os.kill(os.getpid(), sig)
    while len(got) <= i:
        pass
threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGUSR2)).start()
while len(got) < 11:
    junk = [object() for _ in range(100)]
print(got)
""", 11),
    "faulthandler": ("""
import faulthandler
faulthandler.enable()
faulthandler.register(signal.SIGUSR1, all_threads=True)
def dump():
    mark()
    os.kill(os.getpid(), signal.SIGUSR1)
dump()
faulthandler.dump_traceback(all_threads=True)
print("dumped")
""", 1),
    # A crash: faulthandler reports it, the process dies of SIGSEGV; the
    # marker was flushed (every 10 ms) before it.
    "faulthandler_crash": ("""
import faulthandler, time
faulthandler.enable()
mark()
time.sleep(0.3)
faulthandler._sigsegv()
""", 1),
    "setprofile": ("""
import threading
calls = {}
# This file's functions only: how often threading's own waits run depends on timing.
def profiler(frame, event, arg):
    if event == "call" and frame.f_code.co_filename == __file__:
        calls[frame.f_code.co_name] = calls.get(frame.f_code.co_name, 0) + 1
        if frame.f_code.co_name == "work":
            mark()
def work(n):
    return [str(i) for i in range(n)]
sys.setprofile(profiler)
threading.setprofile(profiler)
for _ in range(3):
    work(100)
t = threading.Thread(target=work, args=(10,))
t.start(); t.join()
sys.setprofile(None)
threading.setprofile(None)
print(sorted(calls.items()))
""", 4),
    "settrace": ("""
lines = []
def tracer(frame, event, arg):
    if frame.f_code.co_name == "work":
        lines.append((event, frame.f_lineno - frame.f_code.co_firstlineno))
        if event == "return":
            mark()
    return tracer
def work(n):
    total = 0
    for i in range(n):
        total += len(str(i))
    return total
sys.settrace(tracer)
print(work(3), work(2))
sys.settrace(None)
print(lines)
""", 2),
    "thread_exception": ("""
import threading
def fails():
    mark()
    raise ValueError("raised in a thread")
t = threading.Thread(target=fails, name="failing")
t.start(); t.join()
print("joined")
sys.exit(4)
""", 1),
    # 3.12+ warns at fork in a multithreaded process. heapscope's writer
    # thread must not bring the warning to a program without threads (the
    # fork of the follow-fork mode below) nor hide it from one with a thread.
    "fork_with_a_thread": ("""
import threading, time
t = threading.Thread(target=time.sleep, args=(0.5,))
t.start()
mark()
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
t.join()
print("forked")
""", 1),
}
if sys.version_info >= (3, 12):
    CASES["sys_monitoring"] = ("""
mon = sys.monitoring
mon.use_tool_id(mon.PROFILER_ID, "counter")
starts = {}
def on_start(code, offset):
    starts[code.co_name] = starts.get(code.co_name, 0) + 1
    if code.co_name == "work":
        mark()
mon.register_callback(mon.PROFILER_ID, mon.events.PY_START, on_start)
mon.set_events(mon.PROFILER_ID, mon.events.PY_START)
def work():
    return [0] * 10
for _ in range(3):
    work()
mon.set_events(mon.PROFILER_ID, 0)
mon.free_tool_id(mon.PROFILER_ID)
print(starts)
""", 3)

# --follow-fork runs the program in a fork child (a followed process); the
# parent passes its exit status on. Plain python runs the same wrapper.
FORKED = """
import os, runpy, signal, sys
pid = os.fork()
if pid == 0:
    runpy.run_path("case.py", run_name="__main__")
else:
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code < 0:
        os.kill(os.getpid(), -code)
    sys.exit(code)
"""

MODES = {"default": [], "native": ["--native"], "leaks": ["--leaks"], "follow-fork": ["--follow-fork"]}

# Tracebacks name functions and faulthandler names threads by their
# address, and the fork warning names the pid: they differ between runs.
ADDRESS = re.compile(rb"0x[0-9a-f]{6,}")
PID = re.compile(rb"\(pid=\d+\)")


TRACKER_LISTED = b"\nExtension modules: heapscope._tracker (total: 1)\n"


def normalised(stream):
    return PID.sub(b"(pid=...)", ADDRESS.sub(b"0x...", stream))


def capture_records(hs, capture):
    """(the marker blocks in the capture, whether it ends with END)."""
    proc = hs("parse", str(capture))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    marks = sum(1 for l in lines if l.startswith("ALLOC ") and l.split()[3] == str(MARK_SIZE + 1))
    return marks, lines[-1].startswith("END ")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES)
def test_program_behaviour_passes_through(hs, tmp_path, case, mode):
    text, marks = CASES[case]
    forked = mode == "follow-fork"
    write(tmp_path / "case.py", PRELUDE + text)
    write(tmp_path / "main.py", FORKED)
    expected = hs.python("main.py" if forked else "case.py")
    proc = hs("run", "-q", *MODES[mode], "-o", "o.hsc", "main.py" if forked else "case.py")
    assert proc.returncode == expected.returncode, proc.stderr
    assert proc.stdout == expected.stdout
    stderr = proc.stderr
    if case == "faulthandler_crash":
        # The one difference: faulthandler lists the extension modules
        # loaded besides the standard library's, and heapscope's tracker is one.
        assert stderr.endswith(TRACKER_LISTED), stderr
        stderr = stderr[: -len(TRACKER_LISTED)]
    assert normalised(stderr) == normalised(expected.stderr)

    captures = sorted(p for p in tmp_path.iterdir() if re.fullmatch(r"o\.hsc(\.\d+)?", p.name))
    assert len(captures) == (2 if forked else 1), captures
    found = 0
    for capture in captures:
        count, complete = capture_records(hs, capture)
        found += count
        # A process killed by SIGSEGV writes no END; its capture reads to
        # its last complete record. (Forked, the parent passes the signal on
        # by killing itself with it.)
        assert complete == (case != "faulthandler_crash"), capture.name
    assert found == marks


@pytest.mark.parametrize("core", ["ctrace", "pytrace"] + (["sysmon"] if sys.version_info >= (3, 12) else []))
def test_coverage_py_measures_the_same(hs, tmp_path, core):
    program = PRELUDE + textwrap.dedent(
        """
        def work(n):
            if n > 2:
                mark()
                return "big"
            return "small"
        print(work(1), work(5))
        """
    )
    env = clean_env(COVERAGE_CORE=core)
    reports = []
    for name, command in (("plain", None), ("traced", ["run", "-q", "-o", "c.hsc"])):
        folder = tmp_path / name
        folder.mkdir()
        write(folder / "prog.py", program)
        args = ["-m", "coverage", "run", "--branch", "prog.py"]
        proc = hs(*command, *args, cwd=folder, env=env) if command else hs.python(*args, cwd=folder, env=env)
        assert (proc.returncode, proc.stdout) == (0, b"small big\n"), proc.stderr
        report = hs.python("-m", "coverage", "report", "-m", cwd=folder, env=env)
        assert report.returncode == 0, report.stderr
        reports.append(report.stdout)
    assert reports[0] == reports[1]
    assert b"prog.py" in reports[0]
    count, complete = capture_records(hs, tmp_path / "traced" / "c.hsc")
    assert (count, complete) == (1, True)


def test_the_program_starts_with_the_modules_plain_python_has(hs, tmp_path):
    # heapscope's own start (options, metadata, pymalloc's cross-check) uses
    # neither json nor re: the program finds them unimported, as under plain
    # python, and pays for their import itself, recorded.
    write(tmp_path / "modules.py", """
import sys
print(sorted(m for m in ("json", "re", "enum") if m in sys.modules))
import json
""")
    expected = hs.python("modules.py")
    proc = hs("run", "-q", "-o", "m.hsc", "modules.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected.stdout
    assert b"'json'" not in proc.stdout and b"'re'" not in proc.stdout
    # The program's `import json` is in the capture.
    stats = hs.stats_json(tmp_path / "m.hsc", "-n", "1000")
    assert any(e["file"].endswith(("json/__init__.py", "json/decoder.py")) for e in stats["top_by_bytes"])
