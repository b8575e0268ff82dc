"""The `heapscope` console script (PythonHarness/scripts/heapscope): a shell
script that finds the package and its interpreter from where pip put it, and
starts the Swift CLI with no Python start-up in front of it.

Each test lays out a prefix as pip would (bin/heapscope beside
lib/pythonX.Y/site-packages/heapscope, the package a link to the installed
one), with a logging stand-in for the interpreter, and checks which
interpreter ran the program, and how often.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import heapscope
from conftest import clean_env, write

SCRIPT = Path(sysconfig.get_path("scripts")) / "heapscope"
PYTHON_NAME = "python%d.%d" % sys.version_info[:2]
PACKAGE = Path(heapscope.__file__).parent


def logging_python(path, log):
    """An interpreter that notes each start (the name it was run by) in `log`, then is this one."""
    write(path, f'#!/bin/sh\necho "$0" >> {log}\nexec {sys.executable} "$@"\n').chmod(0o755)
    return path


def prefix_with_package(root, site="site-packages", python_name=PYTHON_NAME):
    (root / "bin").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "bin" / "heapscope")
    site_dir = root / "lib" / python_name / site
    site_dir.mkdir(parents=True)
    (site_dir / "heapscope").symlink_to(PACKAGE)
    return root


def tools_only_path(root):
    """A PATH with the one tool the script needs (readlink) and no Python."""
    tools = root / "tools"
    tools.mkdir()
    (tools / "readlink").symlink_to(shutil.which("readlink"))
    return str(tools)


def run(command, *args, path=None):
    env = clean_env()
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(command)] + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120)


def test_the_installed_command_is_the_shell_script():
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")


def test_runs_the_program_with_the_prefix_interpreter_started_once(tmp_path):
    prefix = prefix_with_package(tmp_path / "venv")
    log = tmp_path / "starts.log"
    python = logging_python(prefix / "bin" / PYTHON_NAME, log)
    proc = run(prefix / "bin" / "heapscope", "run", "-q", "-o", str(tmp_path / "x.hsc"), "-c",
               "import os, sys; print(sorted(k for k in os.environ if k.startswith('HEAPSCOPE'))); print(sys.prefix)")
    assert proc.returncode == 0, proc.stderr
    # The program's one start: nothing Python ran before the CLI.
    assert log.read_text() == f"{python}\n"
    assert proc.stdout.splitlines() == ["[]", sys.prefix]
    assert (tmp_path / "x.hsc").stat().st_size > 0
    info = run(prefix / "bin" / "heapscope", "stats", "--json", str(tmp_path / "x.hsc"))
    assert info.returncode == 0, info.stderr


def test_a_user_install_takes_the_interpreter_from_path(tmp_path):
    """pip install --user: ~/.local/bin has the script but no interpreter."""
    prefix = prefix_with_package(tmp_path / "local")
    path = tools_only_path(tmp_path)
    log = tmp_path / "starts.log"
    python = logging_python(Path(path) / PYTHON_NAME, log)
    proc = run(prefix / "bin" / "heapscope", "run", "-q", "-o", str(tmp_path / "x.hsc"), "-c", "print('ran')", path=path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran\n"
    assert log.read_text() == f"{python}\n"


def test_python_names_the_interpreter_where_it_is_the_same_file(tmp_path):
    """A venv's bin/python: the program's sys.executable is then what it is
    without heapscope. A bin/python of another version is left alone."""
    prefix = prefix_with_package(tmp_path / "venv")
    log = tmp_path / "starts.log"
    python = logging_python(prefix / "bin" / PYTHON_NAME, log)
    (prefix / "bin" / "python").symlink_to(python.name)
    command = [prefix / "bin" / "heapscope", "run", "-f", "-q", "-o", str(tmp_path / "x.hsc"), "-c", "pass"]
    assert run(*command).returncode == 0
    assert log.read_text() == f"{prefix}/bin/python\n"
    (prefix / "bin" / "python").unlink()
    logging_python(prefix / "bin" / "python", log)   # another file
    log.unlink()
    assert run(*command).returncode == 0
    assert log.read_text() == f"{python}\n"


def test_debian_dist_packages_and_a_linked_command(tmp_path):
    prefix = prefix_with_package(tmp_path / "usr-local", site="dist-packages")
    logging_python(prefix / "bin" / PYTHON_NAME, tmp_path / "starts.log")
    link = tmp_path / "home-bin" / "heapscope"
    link.parent.mkdir()
    link.symlink_to(prefix / "bin" / "heapscope")
    proc = run(link, "run", "-q", "-o", str(tmp_path / "x.hsc"), "-c", "print('ran')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran\n"


def test_no_interpreter_anywhere_is_one_error_line(tmp_path):
    prefix = prefix_with_package(tmp_path / "local")
    proc = run(prefix / "bin" / "heapscope", "--version", path=tools_only_path(tmp_path))
    assert proc.returncode == 2
    package = prefix / "lib" / PYTHON_NAME / "site-packages" / "heapscope"
    assert proc.stderr.splitlines() == [
        f"heapscope: error: heapscope in {package} is for {PYTHON_NAME}, which is neither in {prefix}/bin "
        "nor on PATH (set HEAPSCOPE_PYTHON to it)"]


def test_no_package_beside_the_script_is_one_error_line(tmp_path):
    (tmp_path / "bin").mkdir()
    shutil.copy(SCRIPT, tmp_path / "bin" / "heapscope")
    proc = run(tmp_path / "bin" / "heapscope", "--version")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"heapscope: error: cannot find the heapscope package under {tmp_path}/lib (this command is "
        f"{tmp_path}/bin/heapscope); reinstall heapscope, or run it as python -m heapscope"]


def test_heapscope_for_two_pythons_in_one_prefix_is_refused(tmp_path):
    prefix = prefix_with_package(tmp_path / "usr-local")
    other = prefix / "lib" / "python3.99" / "site-packages" / "heapscope"
    other.mkdir(parents=True)
    (other / "_tracker.cpython-399-x86_64-linux-gnu.so").write_bytes(b"")
    proc = run(prefix / "bin" / "heapscope", "--version")
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"heapscope: error: {prefix} holds heapscope for more than one Python (")
    assert line.endswith("); run it as pythonX.Y -m heapscope")


def test_a_value_the_user_set_wins(tmp_path):
    prefix = prefix_with_package(tmp_path / "venv")
    logging_python(prefix / "bin" / PYTHON_NAME, tmp_path / "prefix.log")
    chosen = logging_python(tmp_path / "chosen-python", tmp_path / "chosen.log")
    env = clean_env(HEAPSCOPE_PYTHON=str(chosen))
    proc = subprocess.run([str(prefix / "bin" / "heapscope"), "run", "-q", "-o", str(tmp_path / "x.hsc"), "-c",
                           "import os; print(os.environ.get('HEAPSCOPE_PYTHON'))"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The user's variable is theirs: the program sees it, and it chose the interpreter.
    assert proc.stdout == f"{chosen}\n"
    assert (tmp_path / "chosen.log").read_text() == f"{chosen}\n"
    assert not (tmp_path / "prefix.log").exists()
