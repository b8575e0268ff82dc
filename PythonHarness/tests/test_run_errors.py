"""Bad input to `heapscope run`: one clear error, a non-zero exit, nothing run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import clean_env, write

MARKER_SCRIPT = "open('ran.marker', 'w').write('ran')\n"


def error_lines(proc):
    return [line for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]


def assert_one_error(proc, *fragments):
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert lines, "no error message"
    assert lines[0].startswith("heapscope: error: "), lines
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert proc.stdout == b""


def test_missing_script(hs, tmp_path):
    proc = hs("run", "x.py")
    assert_one_error(proc)
    assert error_lines(proc) == ["heapscope: error: no such script: x.py"]
    assert list(tmp_path.iterdir()) == []


def test_missing_module(hs, tmp_path):
    proc = hs("run", "-o", "m.hsc", "-m", "no_such_module_here")
    assert_one_error(proc, "no_such_module_here")
    assert not (tmp_path / "m.hsc").exists()


def test_unknown_option(hs, tmp_path):
    write(tmp_path / "s.py", MARKER_SCRIPT)
    proc = hs("run", "--bogus", "s.py")
    assert_one_error(proc, "--bogus")
    assert not (tmp_path / "ran.marker").exists()


def test_bad_option_value(hs, tmp_path):
    write(tmp_path / "s.py", MARKER_SCRIPT)
    proc = hs("run", "--memory-interval-ms", "0", "s.py")
    assert_one_error(proc, "memory-interval-ms")
    proc = hs("run", "--memory-interval-ms", "lots", "s.py")
    assert proc.returncode != 0
    assert b"lots" in proc.stderr
    assert not (tmp_path / "ran.marker").exists()


def test_no_program(hs):
    assert_one_error(hs("run"), "no script")
    assert_one_error(hs("run", "-m"), "module")
    assert_one_error(hs("run", "-c"), "code")


def test_existing_output_without_force(hs, tmp_path):
    write(tmp_path / "s.py", MARKER_SCRIPT)
    (tmp_path / "out.hsc").write_bytes(b"precious")
    proc = hs("run", "-o", "out.hsc", "s.py")
    assert_one_error(proc, "out.hsc", "-f")
    assert (tmp_path / "out.hsc").read_bytes() == b"precious"
    assert not (tmp_path / "ran.marker").exists()


def test_output_directory_missing(hs, tmp_path):
    write(tmp_path / "s.py", MARKER_SCRIPT)
    proc = hs("run", "-o", "no/such/dir/out.hsc", "s.py")
    assert_one_error(proc, "no/such/dir")
    assert not (tmp_path / "ran.marker").exists()


def test_output_directory_is_a_file(hs, tmp_path):
    write(tmp_path / "s.py", MARKER_SCRIPT)
    write(tmp_path / "afile", "")
    proc = hs("run", "-o", "afile/out.hsc", "s.py")
    assert_one_error(proc, "afile")
    assert not (tmp_path / "ran.marker").exists()


def test_output_directory_not_writable(hs, tmp_path):
    write(tmp_path / "s.py", MARKER_SCRIPT)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    target = "ro"
    if os.access(str(ro), os.W_OK):
        # root writes anywhere: use a directory even root cannot create files in
        if os.access("/proc/1", os.W_OK):
            pytest.skip("no unwritable directory available")
        target = "/proc/1"
    proc = hs("run", "-o", target + "/out.hsc", "s.py")
    assert_one_error(proc, "not writable", target)
    assert not (tmp_path / "ran.marker").exists()


def test_output_is_a_directory(hs, tmp_path):
    write(tmp_path / "s.py", MARKER_SCRIPT)
    (tmp_path / "adir").mkdir()
    proc = hs("run", "-f", "-o", "adir", "s.py")
    assert_one_error(proc, "adir")
    assert not (tmp_path / "ran.marker").exists()


def other_python():
    here = "%d.%d" % sys.version_info[:2]
    root = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
    for version in ("3.12", "3.10", "3.13", "3.9"):
        if version == here:
            continue
        for candidate in sorted(root.glob(version + ".*/bin/python" + version)):
            return candidate
    return None


def test_wrong_python_version(hs, tmp_path):
    python = other_python()
    if python is None:
        pytest.skip("no other CPython minor version installed")
    write(tmp_path / "s.py", MARKER_SCRIPT)
    proc = hs("run", "-o", "out.hsc", "s.py", env=clean_env(HEAPSCOPE_PYTHON=str(python)))
    assert_one_error(proc, "CPython")
    assert "%d.%d" % sys.version_info[:2] in error_lines(proc)[0]
    assert not (tmp_path / "ran.marker").exists()
    assert not (tmp_path / "out.hsc").exists()


@pytest.mark.parametrize("old", ["2.7", "3.7", "3.9"])
def test_an_unsupported_python_is_refused_clearly(hs, tmp_path, old):
    root = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
    candidates = sorted(root.glob("%s.*/bin/python%s" % (old, old)))
    if not candidates:
        pytest.skip("no Python %s installed" % old)
    write(tmp_path / "s.py", MARKER_SCRIPT)
    proc = hs("run", "-o", "out.hsc", "s.py", env=clean_env(HEAPSCOPE_PYTHON=str(candidates[0])))
    assert_one_error(proc, "Python %s " % old, "3.10 to 3.13")
    assert not (tmp_path / "ran.marker").exists()


def test_heapscope_python_not_found(hs, tmp_path):
    write(tmp_path / "s.py", MARKER_SCRIPT)
    proc = hs("run", "s.py", env=clean_env(HEAPSCOPE_PYTHON=str(tmp_path / "nope" / "python3")))
    assert_one_error(proc, "HEAPSCOPE_PYTHON")
    assert not (tmp_path / "ran.marker").exists()


def test_missing_binary_is_one_clear_line(tmp_path):
    code = (
        "import sys, heapscope.__main__ as m\n"
        "m.binary_path = lambda: '/nonexistent/heapscope'\n"
        "sys.exit(m.main(['--help']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=clean_env(), cwd=str(tmp_path))
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("heapscope: error: "), lines
    assert "binary" in lines[0]
