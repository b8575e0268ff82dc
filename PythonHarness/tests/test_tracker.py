"""The Python API: heapscope.Tracker. Each test runs its program in a fresh interpreter."""
import json
import struct
import sys
import textwrap

from conftest import clean_env, run, write

MAGIC = b"\x89HSC\r\n\x1a\n"


def py(tmp_path, code, *args):
    script = write(tmp_path / "prog.py", textwrap.dedent(code))
    return run([sys.executable, str(script)] + list(args), tmp_path, env=clean_env())


def header(path):
    data = path.read_bytes()
    assert data[:8] == MAGIC, data[:16]
    version, flags, pid, ppid, _reserved, start_us, length = struct.unpack("<HHIIIQI", data[8:36])
    return {
        "version": version,
        "flags": flags,
        "pid": pid,
        "ppid": ppid,
        "start_us": start_us,
        "metadata": json.loads(data[36 : 36 + length]),
    }


def test_context_manager_writes_a_capture(tmp_path):
    proc = py(
        tmp_path,
        """
        import heapscope, os
        with heapscope.Tracker("block.hsc", compress=False) as t:
            assert t.active
            data = [str(i) for i in range(10000)]
        assert not t.active
        print(os.getpid())
        """,
        "arg-one",
    )
    assert proc.returncode == 0, proc.stderr
    h = header(tmp_path / "block.hsc")
    assert h["version"] == 1
    assert h["pid"] == int(proc.stdout)
    assert h["flags"] & 2  # Python allocators traced by default
    meta = h["metadata"]
    assert meta["source"] == "api"
    assert meta["command_line"] == [str(tmp_path / "prog.py"), "arg-one"]
    assert meta["python_executable"] == sys.executable
    assert meta["trace_python_allocators"] is True
    assert meta["native"] is False
    assert meta["follow_fork"] is False
    assert meta["memory_interval_ms"] == 10
    assert meta["platform"].startswith(sys.platform)
    for key in ("python_version", "python_allocator"):
        assert meta[key]


def test_compressed_by_default(tmp_path):
    proc = py(
        tmp_path,
        """
        import heapscope
        with heapscope.Tracker("c.hsc"):
            x = [bytes(64) for _ in range(1000)]
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c.hsc").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"


def test_second_tracker_is_a_clear_error(tmp_path):
    proc = py(
        tmp_path,
        """
        import heapscope
        with heapscope.Tracker("one.hsc"):
            try:
                with heapscope.Tracker("two.hsc"):
                    pass
            except RuntimeError as e:
                print("RuntimeError:", e)
        # The first one finished normally; a new one can start afterwards.
        with heapscope.Tracker("three.hsc"):
            pass
        print("done")
        """,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "RuntimeError:" in out and "already active" in out and "one.hsc" in out
    assert out.endswith("done\n")
    assert (tmp_path / "one.hsc").exists()
    assert not (tmp_path / "two.hsc").exists()
    assert (tmp_path / "three.hsc").exists()


def test_existing_file_needs_overwrite(tmp_path):
    (tmp_path / "exists.hsc").write_bytes(b"keep me")
    proc = py(
        tmp_path,
        """
        import heapscope
        try:
            with heapscope.Tracker("exists.hsc"):
                print("block ran")
        except FileExistsError as e:
            print("FileExistsError:", e)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"FileExistsError:" in proc.stdout and b"overwrite=True" in proc.stdout
    assert b"block ran" not in proc.stdout
    assert (tmp_path / "exists.hsc").read_bytes() == b"keep me"

    proc = py(
        tmp_path,
        """
        import heapscope
        with heapscope.Tracker("exists.hsc", overwrite=True, compress=False):
            x = list(range(1000))
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "exists.hsc").read_bytes()[:8] == MAGIC


def test_unwritable_path_is_oserror(tmp_path):
    proc = py(
        tmp_path,
        """
        import heapscope
        try:
            with heapscope.Tracker("no/such/dir/x.hsc"):
                print("block ran")
        except OSError as e:
            print("OSError", type(e).__name__)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"OSError")
    assert b"block ran" not in proc.stdout


def test_tracker_cannot_be_reused(tmp_path):
    proc = py(
        tmp_path,
        """
        import heapscope
        t = heapscope.Tracker("once.hsc")
        with t:
            pass
        try:
            with t:
                pass
        except RuntimeError as e:
            print("RuntimeError:", e)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"RuntimeError:" in proc.stdout


def test_exception_in_block_stops_tracking_and_propagates(tmp_path):
    proc = py(
        tmp_path,
        """
        import heapscope, threading
        from heapscope import _tracker
        original = threading.Thread._bootstrap_inner
        try:
            with heapscope.Tracker("exc.hsc", compress=False):
                assert threading.Thread._bootstrap_inner is not original
                raise KeyError("inside")
        except KeyError:
            print("propagated")
        print("active after:", _tracker.is_active())
        print("hook restored:", threading.Thread._bootstrap_inner is original)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == ["propagated", "active after: False", "hook restored: True"]
    assert (tmp_path / "exc.hsc").read_bytes()[:8] == MAGIC


def test_tracker_inside_heapscope_run_is_an_error(hs, tmp_path):
    write(
        tmp_path / "nested.py",
        "import heapscope\n"
        "try:\n"
        "    with heapscope.Tracker('inner.hsc'):\n"
        "        pass\n"
        "except RuntimeError as e:\n"
        "    print('RuntimeError')\n",
    )
    proc = hs("run", "-q", "-o", "outer.hsc", "nested.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"RuntimeError\n"
    assert not (tmp_path / "inner.hsc").exists()


def test_thread_names_reported(hs, tmp_path):
    # Threads started while recording are named as they start, the ones
    # already running when it starts: THREAD_INFO records with their OS ids.
    proc = py(
        tmp_path,
        """
        import threading
        import heapscope
        seen = {}
        def work():
            seen[threading.current_thread().name] = threading.get_native_id()
        with heapscope.Tracker("threads.hsc"):
            ts = [threading.Thread(target=work, name="worker-%d" % k) for k in range(3)]
            for t in ts: t.start()
            for t in ts: t.join()
        seen["MainThread"] = threading.main_thread().native_id
        for name, nid in sorted(seen.items()):
            print(name, nid)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    expected = {tuple(line.split()) for line in proc.stdout.decode().splitlines()}
    assert len(expected) == 4
    parsed = hs("parse", str(tmp_path / "threads.hsc"))
    assert parsed.returncode == 0, parsed.stderr
    recorded = set()
    for line in parsed.stdout.decode().splitlines():
        if line.startswith("THREAD_INFO "):
            fields = dict(f.split("=", 1) for f in line.split()[2:])
            recorded.add((fields["name"].strip('"'), fields["tid"]))
    assert expected <= recorded, (expected, recorded)


def test_import_error_message_names_the_versions():
    import heapscope

    message = heapscope._explain_import_failure(ImportError("x"))
    assert message  # always an explanation, never empty
