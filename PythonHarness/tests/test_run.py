"""`heapscope run`: the program runs exactly as it would under plain python."""
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import clean_env, write

MAGIC = b"\x89HSC\r\n\x1a\n"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

PROBE = textwrap.dedent(
    """
    import json, os, sys
    info = {
        "argv": sys.argv,
        "path": sys.path,
        "file": globals().get("__file__"),
        "executable": sys.executable,
        "env": sorted(k for k in os.environ),
        "pythonpath": os.environ.get("PYTHONPATH"),
    }
    print(json.dumps(info))
    """
)


def is_capture(path):
    head = Path(path).read_bytes()[:8]
    return head == MAGIC or head[:4] == ZSTD_MAGIC


def test_exit_status_is_the_programs(hs, tmp_path):
    write(tmp_path / "exit3.py", "import sys\nprint('bye')\nsys.exit(3)\n")
    proc = hs("run", "-q", "-o", "out.hsc", "exit3.py")
    assert proc.returncode == 3
    assert proc.stdout == b"bye\n"
    assert proc.stderr == b""
    assert is_capture(tmp_path / "out.hsc")


def test_exit_status_zero_and_summary(hs, tmp_path):
    write(tmp_path / "ok.py", "x = [str(i) for i in range(1000)]\n")
    proc = hs("run", "-o", "ok.hsc", "ok.py")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "ok.hsc" in err
    assert "heapscope summary ok.hsc" in err or "heapscope stats ok.hsc" in err
    assert "ok.py" in err  # the command line
    assert is_capture(tmp_path / "ok.hsc")


def test_uncaught_exception_same_traceback_as_python(hs, tmp_path):
    write(
        tmp_path / "boom.py",
        "def inner():\n    raise ValueError('bad value 42')\n\ndef outer():\n    inner()\n\nprint('before')\nouter()\n",
    )
    plain = hs.python("boom.py")
    proc = hs("run", "-q", "-o", "boom.hsc", "boom.py")
    assert plain.returncode == 1
    assert proc.returncode == 1
    assert proc.stdout == plain.stdout
    assert proc.stderr == plain.stderr  # byte-identical traceback, nothing else
    assert b"ValueError: bad value 42" in proc.stderr
    assert is_capture(tmp_path / "boom.hsc")


def test_stdout_passthrough_byte_identical(hs, tmp_path):
    write(
        tmp_path / "bytes.py",
        "import sys\n"
        "sys.stdout.write('text line\\n')\n"
        "sys.stdout.flush()\n"
        "sys.stdout.buffer.write(bytes(range(256)) * 3)\n"
        "sys.stdout.buffer.write(b'\\xff\\xfe no newline at end')\n",
    )
    plain = hs.python("bytes.py")
    proc = hs("run", "-q", "-o", "b.hsc", "bytes.py")
    assert proc.returncode == 0
    assert proc.stdout == plain.stdout
    assert len(proc.stdout) > 768


def test_stdin_passthrough(hs, tmp_path):
    write(tmp_path / "echo.py", "import sys\ndata = sys.stdin.buffer.read()\nsys.stdout.buffer.write(data[::-1])\n")
    payload = b"first line\nsecond \x00 line\n" * 100
    proc = hs("run", "-q", "-o", "e.hsc", "echo.py", input=payload)
    assert proc.returncode == 0
    assert proc.stdout == payload[::-1]


def test_argv_path_and_environment_identical(hs, tmp_path):
    write(tmp_path / "probe.py", PROBE)
    args = ["probe.py", "--foo", "-x", "-o", "value", "--", "-q", "spaced arg", ""]
    plain = hs.python(*args)
    proc = hs("run", "-q", "-o", "p.hsc", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout
    assert plain.stdout  # it printed something


def test_user_pythonpath_preserved(hs, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    write(extra / "helper_mod.py", "VALUE = 'from extra'\n")
    write(tmp_path / "probe.py", PROBE + "import helper_mod\nprint(helper_mod.VALUE)\n")
    env = clean_env(PYTHONPATH=str(extra))
    plain = hs.python("probe.py", env=env)
    proc = hs("run", "-q", "-o", "p.hsc", "probe.py", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout
    assert b"from extra" in proc.stdout


def test_user_sitecustomize_still_runs(hs, tmp_path):
    site_dir = tmp_path / "site_dir"
    site_dir.mkdir()
    write(site_dir / "sitecustomize.py", "import builtins\nbuiltins.USER_SITECUSTOMIZE = 'ran'\n")
    write(tmp_path / "uses.py", "print(USER_SITECUSTOMIZE)\n")
    env = clean_env(PYTHONPATH=str(site_dir))
    plain = hs.python("uses.py", env=env)
    proc = hs("run", "-q", "-o", "u.hsc", "uses.py", env=env)
    assert plain.stdout == b"ran\n"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"ran\n"


def test_module_mode_matches_python_m(hs, tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    write(pkg / "__init__.py", "")
    write(pkg / "tool.py", PROBE + "import sys\nsys.exit(4)\n")
    plain = hs.python("-m", "mypkg.tool", "a", "-b", "--c")
    proc = hs("run", "-q", "-o", "m.hsc", "-m", "mypkg.tool", "a", "-b", "--c")
    assert plain.returncode == 4
    assert proc.returncode == 4
    assert proc.stdout == plain.stdout
    assert is_capture(tmp_path / "m.hsc")


def test_code_mode_matches_python_c(hs, tmp_path):
    code = "import sys, json; print(json.dumps(sys.argv)); print(sum(range(10)))"
    plain = hs.python("-c", code, "x", "-y")
    proc = hs("run", "-q", "-o", "c.hsc", "-c", code, "x", "-y")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout
    assert is_capture(tmp_path / "c.hsc")


def test_default_output_name(hs, tmp_path):
    write(tmp_path / "named.py", "print('hi')\n")
    proc = hs("run", "named.py")
    assert proc.returncode == 0, proc.stderr
    captures = sorted(p.name for p in tmp_path.glob("heapscope-named.*.hsc"))
    assert len(captures) == 1, list(tmp_path.iterdir())
    pid = captures[0].split(".")[1]
    assert pid.isdigit()
    assert captures[0] in proc.stderr.decode()

    proc = hs("run", "-c", "pass")
    assert proc.returncode == 0
    assert len(list(tmp_path.glob("heapscope-c.*.hsc"))) == 1


def test_quiet_prints_nothing(hs, tmp_path):
    write(tmp_path / "q.py", "print('only this')\n")
    proc = hs("run", "-q", "-o", "q.hsc", "q.py")
    assert proc.stdout == b"only this\n"
    assert proc.stderr == b""


def test_atexit_handlers_of_the_program_run(hs, tmp_path):
    write(
        tmp_path / "ae.py",
        "import atexit\n"
        "atexit.register(lambda: print('program atexit', len([0] * 1000)))\n"
        "print('main')\n",
    )
    plain = hs.python("ae.py")
    proc = hs("run", "-q", "-o", "ae.hsc", "ae.py")
    assert proc.stdout == plain.stdout == b"main\nprogram atexit 1000\n"
    assert proc.returncode == 0


def test_program_killed_by_signal_kills_heapscope_the_same(hs, tmp_path):
    write(tmp_path / "killme.py", "import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGTERM)\n")
    plain = hs.python("killme.py")
    proc = hs("run", "-q", "-o", "k.hsc", "killme.py")
    assert plain.returncode == -signal.SIGTERM
    assert proc.returncode == -signal.SIGTERM
    assert proc.stdout == b"x\n"


def test_keyboard_interrupt_exits_like_python(hs, tmp_path):
    write(tmp_path / "ki.py", "raise KeyboardInterrupt\n")
    plain = hs.python("ki.py")
    proc = hs("run", "-q", "-o", "ki.hsc", "ki.py")
    assert proc.returncode == plain.returncode == -signal.SIGINT
    assert proc.stderr == plain.stderr


def test_sigint_reaches_the_program_not_heapscope(hs, tmp_path):
    import subprocess
    import time

    write(
        tmp_path / "waits.py",
        "import time, sys\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(7)\n",
    )
    # Like a terminal: the signal goes to the whole process group.
    proc = subprocess.Popen(
        hs.command + ["run", "-q", "-o", "w.hsc", "waits.py"],
        cwd=str(tmp_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert out == b"interrupted\n"
    assert proc.returncode == 7, err
    assert is_capture(tmp_path / "w.hsc")


def test_force_overwrites(hs, tmp_path):
    write(tmp_path / "s.py", "print(1)\n")
    (tmp_path / "out.hsc").write_bytes(b"old contents")
    proc = hs("run", "-f", "-q", "-o", "out.hsc", "s.py")
    assert proc.returncode == 0, proc.stderr
    assert is_capture(tmp_path / "out.hsc")


def test_no_compress_writes_a_raw_stream(hs, tmp_path):
    write(tmp_path / "s.py", "x = [bytes(100) for _ in range(100)]\n")
    proc = hs("run", "-q", "--no-compress", "-o", "raw.hsc", "s.py")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "raw.hsc").read_bytes()[:8] == MAGIC


def test_options_reach_the_capture_metadata(hs, tmp_path):
    import json
    import struct

    write(tmp_path / "s.py", "x = 1\n")
    proc = hs(
        "run", "-q", "--no-compress", "--no-trace-python-allocators", "--memory-interval-ms", "25",
        "-o", "meta.hsc", "s.py", "arg1",
    )
    assert proc.returncode == 0, proc.stderr
    data = (tmp_path / "meta.hsc").read_bytes()
    assert data[:8] == MAGIC
    version, flags = struct.unpack("<HH", data[8:12])
    assert version == 1
    assert not flags & 2  # Python allocators not traced
    (length,) = struct.unpack("<I", data[32:36])
    meta = json.loads(data[36 : 36 + length])
    assert meta["source"] == "run"
    assert meta["command_line"] == ["s.py", "arg1"]
    assert meta["trace_python_allocators"] is False
    assert meta["memory_interval_ms"] == 25
    assert meta["native"] is False
    assert meta["python_version"] == sys.version.split()[0]
    assert meta["python_executable"] == sys.executable
    assert meta["python_allocator"] in ("pymalloc", "malloc", "pymalloc_debug", "malloc_debug", "mimalloc")


def test_python_dash_m_heapscope_is_the_same_program(hs, tmp_path):
    for args in (["--help"], ["run", "--help"], ["--version"]):
        a = hs(*args)
        b = hs.python("-m", "heapscope", *args)
        assert a.returncode == b.returncode == 0
        assert a.stdout == b.stdout
        assert a.stdout
    write(tmp_path / "s.py", "import sys\nprint(sys.argv)\nsys.exit(5)\n")
    a = hs("run", "-q", "-o", "a.hsc", "s.py", "z")
    b = hs.python("-m", "heapscope", "run", "-q", "-o", "b.hsc", "s.py", "z")
    assert a.returncode == b.returncode == 5
    assert a.stdout == b.stdout == b"['s.py', 'z']\n"
    assert is_capture(tmp_path / "a.hsc") and is_capture(tmp_path / "b.hsc")


def non_pie_python():
    """A non-PIE CPython of this minor version (Debian's /usr/bin/python3.11 is one), or None."""
    candidate = "/usr/bin/python3.%d" % sys.version_info[1]
    try:
        with open(candidate, "rb") as f:
            header = f.read(18)
    except OSError:
        return None
    if header[:4] == b"\x7fELF" and int.from_bytes(header[16:18], "little") == 2:  # ET_EXEC
        return os.path.realpath(candidate)
    return None


@pytest.mark.parametrize("native", [False, True])
def test_non_pie_interpreter_stops_cleanly(hs, tmp_path, native):
    # Its PLT entries are the canonical addresses of malloc & co.: putting the
    # GOT back must not point an entry at itself (the program hung at exit).
    python = non_pie_python()
    if python is None:
        pytest.skip("no non-PIE CPython 3.%d on this machine" % sys.version_info[1])
    write(tmp_path / "block.py", "block = bytearray(5_000_000)\nprint('done')\n")
    args = ["run", "-q", "-o", "out.hsc"] + (["--native"] if native else []) + ["block.py"]
    proc = hs(*args, env=clean_env(HEAPSCOPE_PYTHON=python), timeout=60)
    assert (proc.returncode, proc.stdout) == (0, b"done\n"), proc.stderr.decode(errors="replace")
    stats = hs.stats_json(tmp_path / "out.hsc")
    assert stats["metadata"]["python_executable"] == python
    assert stats["peak_bytes"] >= 5_000_000
