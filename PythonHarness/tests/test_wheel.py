"""The wheel from `make wheel`, installed into a bare venv and used there.

The venv has no system site-packages, PATH has no Swift toolchain and no
pyenv shims, LD_LIBRARY_PATH is empty: everything heapscope runs must come
from the wheel or from the base system (glibc, libstdc++, libgcc).

`make wheel-test` (part of `make test`) builds the wheel and runs this file
with HEAPSCOPE_WHEEL set to it; without that variable (a plain run of the
whole suite) the file is skipped, and with it set it can only pass or fail.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, REPO, run, write

WHEEL = os.environ.get("HEAPSCOPE_WHEEL")
pytestmark = pytest.mark.skipif(not WHEEL, reason="HEAPSCOPE_WHEEL is not set: `make wheel-test` builds the wheel and sets it")

# What the wheel may take from the machine: the manylinux base.
SYSTEM_LIBRARIES = re.compile(
    r"^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|/lib64/ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|"
    r"libstdc\+\+\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1)$"
)
# What the build links and the wheel must carry.
VENDORED = re.compile(r"^lib(dw|elf|unwind|zstd|lzma|bz2|z)[-.]")
MB = 1024 * 1024


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    wheel = Path(WHEEL)
    assert wheel.is_file(), f"HEAPSCOPE_WHEEL is not a file: {wheel}"
    tag = "cp%d%d" % sys.version_info[:2]
    assert f"-{tag}-{tag}-manylinux_" in wheel.name, f"{wheel.name} is not a manylinux wheel for this interpreter ({tag})"
    root = tmp_path_factory.mktemp("wheel-venv")
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    env = {
        "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",
        "LD_LIBRARY_PATH": "",
        "HOME": os.environ.get("HOME", str(root)),
        "LANG": "C.UTF-8",
    }
    assert shutil.which("swift", path=env["PATH"]) is None, "swift is reachable from the test PATH"
    proc = run(["pip", "install", "--no-index", "--quiet", str(wheel)], root, env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    site = Path(
        run(["python", "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"], root, env=env)
        .stdout.decode().strip()
    )
    assert (site / "heapscope" / "__init__.py").is_file()
    return {"dir": env_dir, "site": site, "env": env, "wheel": wheel}


def in_venv(venv, cmd, cwd, **kw):
    return run(cmd, cwd, env=venv["env"], **kw)


def ok(proc):
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode(errors="replace")
    return proc.stdout.decode(), proc.stderr.decode()


def elf_files(root):
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    yield path


def test_every_elf_file_needs_only_the_wheel_and_the_base_system(venv, tmp_path):
    site = venv["site"]
    files = list(elf_files(site / "heapscope")) + list(elf_files(site / "heapscope.libs"))
    names = {p.relative_to(site).as_posix() for p in files}
    assert "heapscope/bin/heapscope" in names and any(n.startswith("heapscope/_tracker.") for n in names), names
    vendored_users = {}
    for path in files:
        out, _ = ok(run(["ldd", str(path)], tmp_path, env=venv["env"]))
        for line in out.splitlines():
            line = line.strip()
            if line == "statically linked":
                continue
            assert "not found" not in line, f"{path}: {line}"
            name, _, rest = line.partition(" => ")
            name = name.split(" (")[0]
            target = rest.split(" (")[0] if rest else name
            if SYSTEM_LIBRARIES.match(name):
                continue
            assert VENDORED.match(name), f"{path.name} needs {name} from {target}: not in the allowed base"
            assert Path(target).resolve().is_relative_to(site / "heapscope.libs"), f"{path.name}: {line}"
            vendored_users.setdefault(path.name, set()).add(re.match(r"lib[a-z0-9]+", name).group(0))
    # The check above is not vacuous: the CLI's symbolication and the tracker's
    # unwinder and compressor are the wheel's own copies.
    assert {"libdw", "libelf", "libzstd"} <= vendored_users["heapscope"], vendored_users
    tracker = next(n for n in vendored_users if n.startswith("_tracker."))
    assert {"libunwind", "libzstd"} <= vendored_users[tracker], vendored_users


def test_one_version_everywhere(venv, tmp_path):
    version = (REPO / "PythonHarness" / "heapscope" / "VERSION").read_text().strip()
    assert venv["wheel"].name.startswith(f"heapscope-{version}-")
    cli, _ = ok(in_venv(venv, ["heapscope", "--version"], tmp_path))
    module, _ = ok(in_venv(venv, ["python", "-c", "import heapscope, importlib.metadata as m; "
                                  "print(heapscope.__version__, m.version('heapscope'), heapscope.__file__)"], tmp_path))
    api, dist, where = module.split()
    assert cli.strip() == api == dist == version
    assert Path(where).is_relative_to(venv["site"])
    assert (venv["site"] / "heapscope" / "py.typed").is_file()


LEAK_SCRIPT = """\
store = [None] * 3000    # sized up front: the only leak is the payloads

def fill():
    for i in range(len(store)):
        store[i] = bytes(10_000)

fill()
print("filled", len(store))
"""


def test_run_leaks_then_stats(venv, tmp_path):
    write(tmp_path / "leak.py", LEAK_SCRIPT)
    out, err = ok(in_venv(venv, ["heapscope", "run", "--leaks", "-o", "leak.hsc", "leak.py"], tmp_path))
    assert out == "filled 3000\n"
    assert "fill" in err, err
    text, _ = ok(in_venv(venv, ["heapscope", "stats", "leak.hsc"], tmp_path))
    assert "fill" in text and "peak" in text.lower(), text
    stats = json.loads(ok(in_venv(venv, ["heapscope", "stats", "--leaks", "--json", "leak.hsc"], tmp_path))[0])
    site = next(e for e in stats["top_by_bytes"] if e["function"] == "fill")
    # 3,000 payloads, each one malloc of the object's full size (PYTHONMALLOC=malloc).
    assert (site["line"], site["count"]) == (5, 3000)
    assert site["bytes"] == 3000 * sys.getsizeof(bytes(10_000))


ATTACH_TARGET = """\
import os, sys, time

keep = None
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    keep = bytes(50_000)
    time.sleep(0.005)
"""


def test_attach_to_a_plain_python(venv, tmp_path):
    # Nothing but the wheel: no debugger on PATH, the tracker loaded from the wheel's package.
    write(tmp_path / "target.py", ATTACH_TARGET)
    stop = tmp_path / "stop"
    target = subprocess.Popen([str(venv["dir"] / "bin" / "python"), "target.py", str(stop)], cwd=tmp_path,
                              env=venv["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert target.stdout.readline() == b"ready\n"
        ok(in_venv(venv, ["heapscope", "attach", "--duration", "0.5", "-o", "a.hsc", str(target.pid)], tmp_path))
        stats = json.loads(ok(in_venv(venv, ["heapscope", "stats", "--json", "a.hsc"], tmp_path))[0])
        site = next(e for e in stats["top_by_bytes"] if e["line"] == 6)
        # Each bytes(50_000): one block, the object's header and its 50,000 bytes.
        assert site["count"] >= 3 and site["bytes"] == site["count"] * sys.getsizeof(bytes(50_000))
        stop.touch()
        _, err = target.communicate(timeout=60)
        assert target.returncode == 0 and err == b""
    finally:
        target.kill()
        target.wait()


NATIVE_SCRIPT = """\
def make_blocks():
    return [bytearray(3 * 1024 * 1024) for _ in range(4)]

blocks = make_blocks()
"""


def test_run_native_then_flamegraph_and_symbols(venv, tmp_path):
    write(tmp_path / "blocks.py", NATIVE_SCRIPT)
    ok(in_venv(venv, ["heapscope", "run", "--native", "-q", "-o", "native.hsc", "blocks.py"], tmp_path))
    _, err = ok(in_venv(venv, ["heapscope", "flamegraph", "-o", "native.html", "native.hsc"], tmp_path))
    page = (tmp_path / "native.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "make_blocks" in page
    # Native frames named through libdw (the wheel's copy): the interpreter's own functions.
    tree, _ = ok(in_venv(venv, ["heapscope", "tree", "--stacks", "native", "-b", "3", "native.hsc"], tmp_path))
    assert "Py_BytesMain" in tree, tree
    assert "warning" not in err


TRACKER_SCRIPT = """\
import heapscope

with heapscope.Tracker("block.hsc"):
    kept = bytearray(12_345_678)
print(heapscope._tracker.__file__)
"""


def test_tracker_block(venv, tmp_path):
    write(tmp_path / "block.py", TRACKER_SCRIPT)
    out, _ = ok(in_venv(venv, ["python", "block.py"], tmp_path))
    assert Path(out.strip()).is_relative_to(venv["site"] / "heapscope")
    stats = json.loads(ok(in_venv(venv, ["heapscope", "stats", "--json", "block.hsc"], tmp_path))[0])
    assert stats["metadata"]["source"] == "api"
    top = stats["top_by_bytes"][0]
    assert (top["function"], top["line"]) == ("<module>", 4)
    assert top["bytes"] >= 12_345_678 and stats["peak_bytes"] >= 12_345_678


@pytest.fixture(scope="module")
def front_ends(venv, tmp_path_factory):
    """pytest and IPython in the venv, from PyPI (pip's cache): heapscope needs nothing else."""
    ok(in_venv(venv, ["pip", "install", "--quiet", "pytest", "ipython"], tmp_path_factory.mktemp("pip")))
    return venv


def test_pytest_plugin_on_the_budget_example(front_ends, tmp_path):
    venv = front_ends
    shutil.copy(EXAMPLES / "test_budget.py", tmp_path)
    proc = in_venv(venv, ["python", "-m", "pytest", "--heapscope", "-p", "no:cacheprovider", "test_budget.py"], tmp_path)
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode == 1, text
    assert "1 failed, 1 passed" in text, text
    assert "FAILED test_budget.py::test_small_report - Test was limited to 50 MB" in text
    assert "1. test_budget.py::test_large_report" in text.split("heapscope: tests that allocated the most", 1)[1]


MAGIC_SCRIPT = """\
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "heapscope")
shell.run_cell_magic("heapscope_flamegraph", "-o out", "def grow():\\n    return bytearray(7_654_321)\\nkept = grow()\\n")
"""


def test_jupyter_magic(front_ends, tmp_path):
    venv = front_ends
    write(tmp_path / "magic.py", MAGIC_SCRIPT)
    out, _ = ok(in_venv(venv, ["python", "magic.py"], tmp_path))
    assert "heapscope: capture" in out, out
    [page] = (tmp_path / "out").glob("cell-*.html")
    assert "grow" in page.read_text()
    [capture] = (tmp_path / "out").glob("cell-*.hsc")
    stats = json.loads(ok(in_venv(venv, ["heapscope", "stats", "--json", str(capture)], tmp_path))[0])
    assert stats["top_by_bytes"][0]["function"] == "grow" and stats["peak_bytes"] >= 7_654_321


def test_sdist_without_a_toolchain_says_what_is_missing(venv, tmp_path):
    sdist = os.environ.get("HEAPSCOPE_SDIST")
    assert sdist and Path(sdist).is_file(), "HEAPSCOPE_SDIST (set by `make wheel-test`) is not an sdist"
    # No swift on PATH, none where SWIFT points: the build stops before compiling anything.
    env = dict(venv["env"], SWIFT=str(tmp_path / "no-swift"))
    proc = run(["pip", "install", "--quiet", "--no-deps", sdist], tmp_path, env=env)
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode != 0, text
    lines = [line for line in text.splitlines() if "heapscope: error:" in line]
    assert len(lines) == 1, text
    assert "cannot build from source, this machine lacks the Swift 6.3 toolchain" in lines[0]
    assert "install a prebuilt wheel instead" in lines[0] and "make wheel" in lines[0]
    assert "error: compile" not in text.lower() and "swift build" not in text
