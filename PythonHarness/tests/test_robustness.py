"""The capture survives what programs do: failed execs in vfork'ed children,
os._exit, threads that outlive tracking."""
import textwrap

from conftest import write

FAILED_EXEC = textwrap.dedent(
    """
    import subprocess
    before = [str(i) for i in range(1000)]
    try:
        subprocess.run(["/nonexistent/command"])   # vfork child: exec fails, child calls _exit
    except FileNotFoundError:
        pass
    after = [str(i) for i in range(200_000)]
    """
)


def test_failed_exec_in_a_vfork_child_does_not_end_the_capture(hs, tmp_path):
    write(tmp_path / "failed_exec.py", FAILED_EXEC)
    proc = hs("run", "-q", "-o", "out.hsc", "failed_exec.py")
    assert proc.returncode == 0, proc.stderr.decode()
    stats = hs.stats_json(tmp_path / "out.hsc")
    assert stats["truncated"] is False
    # The 200,000 strings made after the failed exec are in the capture.
    assert any(t["count"] >= 200_000 for t in stats["top_by_count"]), stats["top_by_count"]


OS_EXIT = textwrap.dedent(
    """
    import os
    kept = [bytearray(1000) for _ in range(10_000)]
    os._exit(7)
    """
)


def test_os_exit_still_ends_the_capture(hs, tmp_path):
    write(tmp_path / "os_exit.py", OS_EXIT)
    proc = hs("run", "-q", "-o", "out.hsc", "os_exit.py")
    assert proc.returncode == 7
    stats = hs.stats_json(tmp_path / "out.hsc")
    assert stats["truncated"] is False
    assert stats["peak_bytes"] >= 10_000 * 1000


PYTEST_UNDER_RUN = textwrap.dedent(
    """
    def test_sum():
        assert sum(range(10)) == 45
    """
)


def test_pytest_under_run_is_recorded_whole(hs, tmp_path):
    write(tmp_path / "test_small.py", PYTEST_UNDER_RUN)
    proc = hs("run", "-q", "-o", "out.hsc", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_small.py")
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert b"PytestAssertRewriteWarning" not in proc.stdout + proc.stderr
    assert hs.stats_json(tmp_path / "out.hsc")["truncated"] is False
