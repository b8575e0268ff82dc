#!/usr/bin/env python3
"""heapscope benchmark: overhead, peak RSS, capture size and stats time, against memray.

Run from the repository root (``make bench`` does ``python3 bench/run.py``).

For every workload, every tracked mode is measured as a *paired* A/B ratio:
an untracked run of the same interpreter and the tracked run, back to back,
the order flipped on every other repetition (ABBA), so slow drift of a noisy
shared machine cancels out. The reported ratio is the median over the
repetitions; the geometric mean is taken over the workloads' medians.
Absolute timings are printed for orientation only.

Modes:
  hs          heapscope run -f -q -o OUT W.py                                (Python allocators traced: default)
  hs-nopy     heapscope run -f -q --no-trace-python-allocators -o OUT W.py
  memray      memray run -f -q -o OUT W.py                                   (memray default)
  memray-py   memray run -f -q --trace-python-allocators -o OUT W.py
  hs-live     heapscope run -f -q --live-remote --live-port P -o OUT W.py   (opt-in: live mode with a viewer that
              keeps up, a thread of this script reading the whole stream; compare with hs)

heapscope runs with the interpreter it is installed in (the one running this
script); memray runs from a venv of the same CPython version at
bench/.venv-py3XY (created on first use, memray from PyPI). Each tracked run is paired with an untracked run of *its own*
interpreter.

Results: a table per workload and a summary on stdout, bench/out/results.json.
"""
import argparse
import datetime
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
WORKLOAD_DIR = os.path.join(BENCH_DIR, "workloads")
EXAMPLES_DIR = os.path.join(REPO, "examples")
VENV = os.path.join(BENCH_DIR, ".venv-py%d%d" % sys.version_info[:2])
OUT_DIR = os.path.join(BENCH_DIR, "out")
# one directory per run, so two runs at once do not delete each other's captures
CAPTURE_DIR = os.path.join(OUT_DIR, f"captures-{os.getpid()}")

# (name, path, needs) -- needs: a module both interpreters must import, or None.
WORKLOADS = [
    ("class_sim", os.path.join(WORKLOAD_DIR, "class_sim.py"), None),
    ("json_roundtrip", os.path.join(WORKLOAD_DIR, "json_roundtrip.py"), None),
    ("nbody", os.path.join(WORKLOAD_DIR, "nbody.py"), None),
    ("raytrace", os.path.join(WORKLOAD_DIR, "raytrace.py"), None),
    ("regex", os.path.join(WORKLOAD_DIR, "regex.py"), None),
    ("threads", os.path.join(WORKLOAD_DIR, "threads.py"), None),
    ("two_copies", os.path.join(EXAMPLES_DIR, "two_copies.py"), None),
    ("csv_pipeline", os.path.join(EXAMPLES_DIR, "csv_pipeline.py"), None),
    ("churn", os.path.join(EXAMPLES_DIR, "churn.py"), None),
    ("unbounded_cache", os.path.join(EXAMPLES_DIR, "unbounded_cache.py"), None),
    ("worker_threads", os.path.join(EXAMPLES_DIR, "worker_threads.py"), None),
    ("numpy_native", os.path.join(EXAMPLES_DIR, "numpy_native.py"), "numpy"),
]
QUICK_WORKLOADS = ["class_sim", "json_roundtrip", "churn", "threads"]

FIXTURE = os.path.join(WORKLOAD_DIR, "alloc_20m.py")

# mode -> (tool, extra args, capture extension, same-mode peer for size comparison)
MODES = {
    "hs": ("heapscope", [], ".hsc", "memray-py"),
    "hs-nopy": ("heapscope", ["--no-trace-python-allocators"], ".hsc", "memray"),
    "memray": ("memray", [], ".bin", "hs-nopy"),
    "memray-py": ("memray", ["--trace-python-allocators"], ".bin", "hs"),
    # Native stacks (issue 4), opt-in: --modes hs-native,hs-native-nopy,memray-native,memray-py-native
    "hs-native": ("heapscope", ["--native"], ".hsc", "memray-py-native"),
    "hs-native-nopy": ("heapscope", ["--native", "--no-trace-python-allocators"], ".hsc", "memray-native"),
    "memray-native": ("memray", ["--native"], ".bin", "hs-native-nopy"),
    "memray-py-native": ("memray", ["--native", "--trace-python-allocators"], ".bin", "hs-native"),
    # Live mode (issue 13), opt-in: --modes hs,hs-live
    "hs-live": ("heapscope", ["--live-remote"], ".hsc", "memray-py"),
}
MODE_ORDER = ["hs", "hs-nopy", "memray", "memray-py"]
NATIVE_MODES = ["hs-native", "hs-native-nopy", "memray-native", "memray-py-native"]
LIVE_MODES = ["hs-live"]
# A live run's overhead within 10% of a normal run's (issue 13): hs-live / hs.
LIVE_TARGET = 1.10

TARGETS = {"hs": 1.6, "hs-nopy": 1.10, "hs-native": 3.0, "hs-native-nopy": 1.2}
SIZE_TARGET = 0.7
STATS_TARGET_S = 1.0

RUN_TIMEOUT = 900


# ----------------------------------------------------------------------------- helpers

def log(*parts):
    print(*parts, flush=True)


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def fmt_bytes(n):
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0


def fmt_s(x):
    return "-" if x is None else f"{x:.2f}s"


def real_python():
    """The interpreter running this script, with symlinks and pyenv shims out of the way."""
    exe = sys.executable
    # sys.executable is already the real binary under pyenv (the shim execs it).
    return exe


TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_measured(argv, env=None, cwd=None, stdout_path=None, timeout=RUN_TIMEOUT):
    """Run argv to completion; return dict(wall, maxrss, rc, stdout, stderr, timed_out).

    Wall time is perf_counter around spawn..reap. Peak RSS is ru_maxrss of the
    child as wait4 reports it; Linux folds in the descendants it waited for,
    so a tool that spawns the interpreter reports the interpreter's peak too.
    A child forked from this process would start from *our* peak RSS (exec
    records the old mm's high-water mark), so when GNU time is there the
    command runs under it (-f %M): its own footprint is ~2 MB, below any child.
    """
    out = open(stdout_path, "w+b") if stdout_path else tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    rss_file = None
    if TIME_BIN:
        fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        argv = [TIME_BIN, "-f", "%M %U %S", "-o", rss_file] + list(argv)
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd,
                                start_new_session=True)
        # A blocking wait, and a timer for the timeout: Popen.wait(timeout)
        # polls with sleeps of up to 50 ms, which rounded every wall time up
        # to the next poll (most for the short runs, and more for the longer,
        # tracked one of a pair: start-up figures were 32 or 64 ms, nothing between).
        expired = threading.Event()

        def kill_on_timeout():
            expired.set()
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass

        timer = threading.Timer(timeout, kill_on_timeout)
        timer.start()
        try:
            proc.wait()
        except BaseException:
            timer.cancel()
            # interrupted: do not leave the child (its own session) running
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
            proc.wait()
            raise
        wall = time.perf_counter() - start
        timer.cancel()
        timed_out = expired.is_set()
        maxrss = cpu = None
        if rss_file:
            with open(rss_file) as f:
                lines = [ln.split() for ln in f if ln.strip()]
            if lines and len(lines[-1]) == 3:
                try:
                    maxrss = int(lines[-1][0]) * 1024
                    cpu = float(lines[-1][1]) + float(lines[-1][2])
                except ValueError:
                    pass
        out.seek(0)
        err.seek(0)
        return {
            "wall": wall,
            "maxrss": maxrss,
            "cpu": cpu,
            "rc": proc.returncode,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
            "timed_out": timed_out,
        }
    finally:
        out.close()
        err.close()
        if rss_file:
            os.unlink(rss_file)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain_live(port):
    """A live viewer that keeps up: connects once heapscope listens and reads the stream to its end."""
    def run():
        end = time.monotonic() + 60
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > end:
                    return
                time.sleep(0.005)
        with conn:
            while conn.recv(1 << 20):
                pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_plain(argv, env=None, timeout=RUN_TIMEOUT, check=True):
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return res


# ----------------------------------------------------------------------------- tools

class Tools:
    def __init__(self, args):
        self.system_py = real_python()
        self.py = self.system_py
        self.env = dict(os.environ)
        self.env.pop("PYTHONMALLOC", None)
        self.env.pop("MODE", None)           # csv_pipeline's switch: measure the default (bulk)
        self.env["PYTHONHASHSEED"] = "0"
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.memray = None
        self.venv_py = None
        if not args.no_memray or args.heapscope_python == "venv":
            self.venv_py, self.memray = self._ensure_venv(with_memray=not args.no_memray)
        self.installed_pkg = None
        self.snapshot_parent = None
        self.heapscope = self._find_heapscope(args.heapscope, snapshot=not args.no_snapshot)
        # heapscope's interpreter: by default the bench venv's (the same CPython
        # binary), so heapscope and memray share one baseline and the system
        # site-packages' start-up hooks (.pth files) are charged to neither.
        if args.heapscope_python == "venv" and self.snapshot_parent:
            self.py = self.venv_py
            self.env["HEAPSCOPE_PYTHON"] = self.venv_py

    def _find_heapscope(self, given, snapshot=True):
        if given:
            return [given]
        if snapshot:
            # Run a private copy of the installed package: others may rebuild and
            # reinstall heapscope while the bench runs, and a run must not mix builds.
            res = run_plain([self.system_py, "-c", "import heapscope, os; print(os.path.dirname(os.path.abspath(heapscope.__file__)))"],
                            check=False)
            pkg = res.stdout.strip()
            if res.returncode == 0 and os.path.isfile(os.path.join(pkg, "bin", "heapscope")):
                self.installed_pkg = pkg
                self.snapshot_parent = os.path.join(OUT_DIR, f"hs-snapshot-{os.getpid()}")
                shutil.copytree(pkg, os.path.join(self.snapshot_parent, "heapscope"),
                                ignore=shutil.ignore_patterns("__pycache__"))
                # Compiled as pip compiles an install: with PYTHONDONTWRITEBYTECODE
                # set (as on these machines) an uncompiled copy would charge every
                # start of the bench with compiling heapscope's modules (~20-40 ms).
                run_plain([self.system_py, "-m", "compileall", "-q", self.snapshot_parent])
                # Started as the console script starts it (scripts/heapscope).
                copy = os.path.join(self.snapshot_parent, "heapscope")
                self.env.update(HEAPSCOPE_PYTHON=self.py, HEAPSCOPE_PACKAGE_DIR=copy,
                                HEAPSCOPE_ENTRY_SET="HEAPSCOPE_PYTHON,HEAPSCOPE_PACKAGE_DIR")
                return [os.path.join(copy, "bin", "heapscope")]
        # The console script in this interpreter's scripts dir (not a pyenv shim,
        # whose bash start-up would be charged to heapscope).
        import sysconfig
        script = os.path.join(sysconfig.get_path("scripts"), "heapscope")
        if os.path.isfile(script):
            return [script]
        found = shutil.which("heapscope")
        if found:
            return [found]
        return [self.py, "-m", "heapscope"]

    def _ensure_venv(self, with_memray=True):
        vpy = os.path.join(VENV, "bin", "python")
        memray = os.path.join(VENV, "bin", "memray")
        if not os.path.isfile(vpy):
            log(f"creating {VENV} (memray from PyPI)")
            run_plain([self.py, "-m", "venv", VENV])
        if with_memray and not os.path.isfile(memray):
            run_plain([vpy, "-m", "pip", "install", "--quiet", "memray"], timeout=1800)
        # numpy_native needs numpy in both interpreters: same version as ours.
        have = run_plain([self.system_py, "-c", "import numpy; print(numpy.__version__)"], check=False)
        if have.returncode == 0:
            vhave = run_plain([vpy, "-c", "import numpy"], check=False)
            if vhave.returncode != 0:
                log(f"installing numpy=={have.stdout.strip()} into {VENV}")
                run_plain([vpy, "-m", "pip", "install", "--quiet", f"numpy=={have.stdout.strip()}"],
                          check=False, timeout=1800)
        return vpy, ([memray] if with_memray else None)

    def has_module(self, python, module):
        return run_plain([python, "-c", f"import {module}"], check=False).returncode == 0

    def binary_fingerprint(self):
        """sha256 of the Swift CLI and tracker behind the heapscope command (a rebuild mid-run shows)."""
        import hashlib
        pkg = os.path.join(self.snapshot_parent, "heapscope") if self.snapshot_parent else None
        if pkg is None:
            res = run_plain([self.system_py, "-c", "import heapscope, os; print(os.path.dirname(heapscope.__file__))"], check=False)
            pkg = res.stdout.strip()
        out = {}
        if pkg and os.path.isdir(pkg):
            for root, _, files in os.walk(pkg):
                for fn in files:
                    if fn.startswith("_tracker") or root.endswith("bin"):
                        path = os.path.join(root, fn)
                        h = hashlib.sha256()
                        with open(path, "rb") as f:   # in chunks: this process's peak RSS must stay small
                            for chunk in iter(lambda: f.read(1 << 16), b""):
                                h.update(chunk)
                        out[os.path.relpath(path, pkg)] = h.hexdigest()[:16]
        return out

    def versions(self):
        info = {
            "python": run_plain([self.py, "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip(),
            "python_executable": self.py,
            "system_python": self.system_py,
            "heapscope_cmd": ("heapscope (snapshot of %s in %s)" % (self.installed_pkg, self.snapshot_parent)
                              if self.snapshot_parent else " ".join(self.heapscope)),
            "nproc": os.cpu_count(),
            "machine": platform.machine(),
            "kernel": platform.release(),
        }
        hv = run_plain(self.heapscope + ["--version"], env=self.env, check=False)
        info["heapscope"] = (hv.stdout or hv.stderr).strip()
        if self.memray:
            mv = run_plain(self.memray + ["--version"], check=False)
            info["memray"] = (mv.stdout or mv.stderr).strip()
            info["venv_python"] = run_plain([self.venv_py, "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
            info["venv_executable"] = os.path.realpath(self.venv_py)
        git = run_plain(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=False)
        info["git_head"] = git.stdout.strip()
        dirty = run_plain(["git", "-C", REPO, "status", "--porcelain"], check=False)
        info["git_dirty"] = bool(dirty.stdout.strip())
        info["heapscope_binaries"] = self.binary_fingerprint()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        info["cpu"] = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        return info

    # argv builders
    def untracked(self, mode, script):
        tool = MODES[mode][0]
        py = self.venv_py if tool == "memray" else self.py
        return [py, script]

    def tracked(self, mode, script, capture, live_port=None):
        tool, extra, _, _ = MODES[mode]
        if live_port is not None:
            extra = extra + ["--live-port", str(live_port)]
        if tool == "heapscope":
            return self.heapscope + ["run", "-f", "-q"] + extra + ["-o", capture, script]
        return self.memray + ["run", "-f", "-q"] + extra + ["-o", capture, script]

    def stats_argv(self, tool, capture, json_out):
        if tool == "heapscope":
            return self.heapscope + ["stats", "--json", capture], json_out   # JSON on stdout
        return self.memray + ["stats", "--json", "-f", "-o", json_out, capture], None


def stats_json_path(capture, what):
    d = os.path.join(CAPTURE_DIR, "stats")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"{os.path.basename(capture)}.{what}.json")


def output_sizes(capture):
    """(capture file bytes, bytes of the tool's side files next to it: OUT.*).

    heapscope run also writes OUT.refs (who holds the objects alive at exit,
    for `heapscope pymalloc`). The capture-size target compares the capture
    file; the summary also gives the ratio with the side files added.
    """
    main_bytes = os.path.getsize(capture)
    side = 0
    prefix = os.path.basename(capture) + "."
    for fn in os.listdir(os.path.dirname(capture)):
        if fn.startswith(prefix):
            side += os.path.getsize(os.path.join(os.path.dirname(capture), fn))
    return main_bytes, side


def remove_capture(capture):
    d, base = os.path.dirname(capture), os.path.basename(capture)
    for fn in os.listdir(d):
        if fn == base or fn.startswith(base + "."):
            os.unlink(os.path.join(d, fn))


def capture_path(workload, mode):
    return os.path.join(CAPTURE_DIR, f"{workload}.{mode}{MODES[mode][2]}")


def heapscope_counts(tools, capture):
    """allocations/events from `heapscope stats --json` (events estimated when no frees are given)."""
    json_out = stats_json_path(capture, "counts")
    argv, _ = tools.stats_argv("heapscope", capture, json_out)
    res = run_measured(argv, env=tools.env, stdout_path=json_out)
    if res["rc"] != 0:
        return {"error": res["stderr"].strip()[-500:] or f"exit {res['rc']}"}
    try:
        with open(json_out) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        return {"error": f"stats --json output unreadable: {exc}"}
    allocs = data.get("total_allocations")
    frees = None
    for key in ("total_frees", "total_deallocations", "frees", "deallocations"):
        if isinstance(data.get(key), int):
            frees = data[key]
            break
    leaked = data.get("leaked_allocations")
    out = {"allocations": allocs, "records": data.get("records"), "leaked": leaked,
           "peak_bytes": data.get("peak_bytes"), "stats_wall": res["wall"]}
    if allocs is None:
        out["error"] = "no total_allocations in stats --json"
    elif frees is not None:
        out.update(frees=frees, events=allocs + frees, events_estimated=False)
    elif isinstance(leaked, int):
        # Every allocation that did not leak was freed: frees ~ allocations - leaked
        # (frees of memory allocated before tracking began are not counted).
        out.update(frees=allocs - leaked, events=2 * allocs - leaked, events_estimated=True)
    else:
        out.update(events=2 * allocs, events_estimated=True)
    return out


MEMRAY_COUNT = r"""
import json, sys, memray
r = memray.FileReader(sys.argv[1])
# metadata.total_allocations counts every allocator record, frees included.
print(json.dumps({"events": r.metadata.total_allocations, "peak_bytes": r.metadata.peak_memory}))
"""


def memray_counts(tools, capture):
    json_out = stats_json_path(capture, "counts")
    argv, _ = tools.stats_argv("memray", capture, json_out)
    res = run_measured(argv, env=tools.env)
    out = {"stats_wall": res["wall"]}
    if res["rc"] != 0:
        out["error"] = res["stderr"].strip()[-500:]
        return out
    try:
        with open(json_out) as f:
            data = json.load(f)
        out["allocations"] = data.get("total_num_allocations")
    except (OSError, ValueError) as exc:
        out["error"] = f"memray stats json unreadable: {exc}"
    meta = run_plain([tools.venv_py, "-c", MEMRAY_COUNT, capture], check=False)
    if meta.returncode == 0:
        m = json.loads(meta.stdout)
        out.update(events=m["events"], events_estimated=False, peak_bytes=m["peak_bytes"])
        if out.get("allocations") is not None:
            out["frees"] = m["events"] - out["allocations"]
    return out


# ----------------------------------------------------------------------------- the benchmark

def measure_workload(tools, name, script, modes, reps):
    """Paired, alternating runs. Returns the per-workload record."""
    rec = {"workload": name, "script": os.path.relpath(script, REPO), "modes": {}, "untracked": {}}
    base_runs = {"system": [], "venv": []}
    expected_stdout = None
    for mode in modes:
        rec["modes"][mode] = {"ratios": [], "cpu_ratios": [], "diffs": [], "walls": [], "base_walls": [], "maxrss": [], "capture_bytes": None,
                              "errors": [], "stdout_mismatch": 0}
    for rep in range(reps):
        # rotate the mode order per repetition, flip A/B order every other one
        order = modes[rep % len(modes):] + modes[:rep % len(modes)]
        for mode in order:
            m = rec["modes"][mode]
            cap = capture_path(name, mode)
            remove_capture(cap)
            tracked_first = rep % 2 == 1
            pair = {}
            for which in (("tracked", "base") if tracked_first else ("base", "tracked")):
                if which == "base":
                    pair["base"] = run_measured(tools.untracked(mode, script), env=tools.env, cwd=CAPTURE_DIR)
                else:
                    port = free_port() if mode in LIVE_MODES else None
                    viewer = drain_live(port) if port else None
                    pair["tracked"] = run_measured(tools.tracked(mode, script, cap, port), env=tools.env, cwd=CAPTURE_DIR)
                    if viewer:
                        viewer.join(10)
            b, t = pair["base"], pair["tracked"]
            kind = "venv" if MODES[mode][0] == "memray" else "system"
            if b["rc"] != 0:
                m["errors"].append(f"untracked run failed (exit {b['rc']}): {b['stderr'].strip()[-300:]}")
                continue
            base_runs[kind].append(b)
            if expected_stdout is None:
                expected_stdout = b["stdout"]
            if t["rc"] != 0 or t["timed_out"]:
                m["errors"].append(f"tracked run failed (exit {t['rc']}): {t['stderr'].strip()[-300:]}")
                continue
            if t["stdout"] != expected_stdout:
                m["stdout_mismatch"] += 1
            m["ratios"].append(t["wall"] / b["wall"])
            m["diffs"].append(t["wall"] - b["wall"])
            if t.get("cpu") and b.get("cpu"):
                m["cpu_ratios"].append(t["cpu"] / b["cpu"])
            m["walls"].append(t["wall"])
            m["base_walls"].append(b["wall"])
            m["maxrss"].append(t["maxrss"])
            if os.path.exists(cap):
                m["capture_bytes"], m["sidecar_bytes"] = output_sizes(cap)
            log(f"  {name:16s} rep {rep + 1}/{reps} {mode:10s} {t['wall']:7.2f}s / {b['wall']:6.2f}s = {t['wall'] / b['wall']:.2f}x"
                f"  rss {fmt_bytes(t['maxrss'])}")
    for kind, runs in base_runs.items():
        if runs:
            rec["untracked"][kind] = {"wall_median": median([r["wall"] for r in runs]),
                                      "maxrss_median": median([r["maxrss"] for r in runs]), "runs": len(runs)}
    for mode in modes:
        m = rec["modes"][mode]
        m["ratio_median"] = median(m["ratios"])
        m["cpu_ratio_median"] = median(m["cpu_ratios"])
        m["wall_median"] = median(m["walls"])
        m["maxrss_median"] = median(m["maxrss"])
        cap = capture_path(name, mode)
        if m["capture_bytes"] is not None and os.path.exists(cap):
            counts = heapscope_counts(tools, cap) if MODES[mode][0] == "heapscope" else memray_counts(tools, cap)
            m["counts"] = counts
            ev = counts.get("events")
            m["bytes_per_event"] = (m["capture_bytes"] / ev) if ev else None
            # added wall time per recorded event (start-up cost included: rough on small captures)
            d = median(m["diffs"])
            m["ns_per_event"] = (d / ev * 1e9) if ev and d is not None else None
    return rec


def print_workload(rec):
    base = rec["untracked"].get("system") or rec["untracked"].get("venv") or {}
    log(f"\n== {rec['workload']}  ({rec['script']})  untracked {fmt_s(base.get('wall_median'))}, "
        f"peak RSS {fmt_bytes(base.get('maxrss_median'))}")
    log(f"   {'mode':10s} {'ratio':>7s} {'min..max':>13s} {'cpu':>7s} {'peak RSS':>11s} {'capture':>11s} {'+ .refs':>10s} {'events':>12s} {'B/event':>8s} {'ns/ev':>6s}")
    for mode, m in rec["modes"].items():
        rs = m["ratios"]
        spread = f"{min(rs):.2f}..{max(rs):.2f}" if rs else "-"
        ev = (m.get("counts") or {}).get("events")
        est = "~" if (m.get("counts") or {}).get("events_estimated") else ""
        bpe = m.get("bytes_per_event")
        log(f"   {mode:10s} {fmt_ratio(m['ratio_median']):>7s} {spread:>13s} {fmt_ratio(m.get('cpu_ratio_median')):>7s} {fmt_bytes(m['maxrss_median']):>11s} "
            f"{fmt_bytes(m['capture_bytes']):>11s} {fmt_bytes(m.get('sidecar_bytes')) if m.get('sidecar_bytes') else '':>10s} {(est + format(ev, ',')) if ev else '-':>12s} "
            f"{format(bpe, '.3f') if bpe else '-':>8s} "
            f"{format(m['ns_per_event'], '.0f') if m.get('ns_per_event') and ev > 100_000 else '-':>6s}")
        for e in m["errors"][:2]:
            log(f"     ! {e}")
        if m["stdout_mismatch"]:
            log(f"     ! output differed from the untracked run in {m['stdout_mismatch']} run(s)")
        if (m.get("counts") or {}).get("error"):
            log(f"     ! stats: {m['counts']['error']}")


def time_stats(tools, pairs, reps):
    """Paired stats timings: pairs = [(label, tool, capture)], alternated per repetition."""
    out = {label: {"tool": tool, "capture": os.path.relpath(cap, REPO), "capture_bytes": os.path.getsize(cap),
                   "walls": [], "errors": []} for label, tool, cap in pairs}
    for rep in range(reps):
        seq = pairs if rep % 2 == 0 else list(reversed(pairs))
        for label, tool, cap in seq:
            json_out = stats_json_path(cap, "timed")
            argv, stdout_path = tools.stats_argv(tool, cap, json_out)
            res = run_measured(argv, env=tools.env, stdout_path=stdout_path)
            if res["rc"] != 0:
                out[label]["errors"].append(res["stderr"].strip()[-300:])
                continue
            out[label]["walls"].append(res["wall"])
            out[label]["maxrss"] = res["maxrss"]
            log(f"  stats {label:28s} rep {rep + 1}/{reps}: {res['wall']:.2f}s")
    for label in out:
        out[label]["wall_median"] = median(out[label]["walls"])
    return out


def fixture_capture(tools, mode, n, reps_note=""):
    """Record the stats fixture under `mode`; returns (capture, run record)."""
    cap = os.path.join(CAPTURE_DIR, f"alloc_20m.{mode}{MODES[mode][2]}")
    remove_capture(cap)
    env = dict(tools.env, ALLOC_20M_N=str(n))
    b = run_measured(tools.untracked(mode, FIXTURE), env=env, cwd=CAPTURE_DIR)
    t = run_measured(tools.tracked(mode, FIXTURE, cap), env=env, cwd=CAPTURE_DIR)
    rec = {"mode": mode, "iterations": n, "wall": t["wall"], "base_wall": b["wall"],
           "ratio": t["wall"] / b["wall"] if b["rc"] == 0 and t["rc"] == 0 else None,
           "maxrss": t["maxrss"], "rc": t["rc"]}
    if t["rc"] != 0:
        rec["error"] = t["stderr"].strip()[-500:]
        return None, rec
    rec["capture_bytes"], rec["sidecar_bytes"] = output_sizes(cap)
    counts = heapscope_counts(tools, cap) if MODES[mode][0] == "heapscope" else memray_counts(tools, cap)
    rec["counts"] = counts
    if counts.get("events"):
        rec["bytes_per_event"] = rec["capture_bytes"] / counts["events"]
    log(f"  fixture {mode:10s}: {t['wall']:.2f}s (untracked {b['wall']:.2f}s), capture {fmt_bytes(rec['capture_bytes'])}, "
        f"events {counts.get('events')}{' (estimated)' if counts.get('events_estimated') else ''}")
    return cap, rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="paired repetitions per workload and mode (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help=f"a fast subset: {', '.join(QUICK_WORKLOADS)}; 1 repetition; a 2M-event stats fixture")
    ap.add_argument("--only", help="comma-separated workload names")
    ap.add_argument("--modes", default=",".join(MODE_ORDER), help="comma-separated modes (default: all)")
    ap.add_argument("--no-memray", action="store_true", help="skip memray (and its venv)")
    ap.add_argument("--no-fixture", action="store_true", help="skip the ~20M-event stats fixture")
    ap.add_argument("--no-startup", action="store_true", help="skip the start-up cost measurement (empty script)")
    ap.add_argument("--fixture-n", type=int, default=None, help="fixture iterations (default 10,000,000)")
    ap.add_argument("--stats-reps", type=int, default=3, help="paired repetitions of the stats timings")
    ap.add_argument("--heapscope", help="path of the heapscope command (default: this interpreter's console script)")
    ap.add_argument("--keep-captures", action="store_true", help="keep bench/out/captures-<pid> afterwards")
    ap.add_argument("--heapscope-python", choices=["venv", "system"], default="venv",
                    help="interpreter heapscope profiles and its baseline runs: the bench venv's (default; same "
                         "CPython binary as the system one) or the one running this script")
    ap.add_argument("--no-snapshot", action="store_true",
                    help="run the installed heapscope in place (default: a private copy taken at start)")
    ap.add_argument("--json-out", default=os.path.join(OUT_DIR, "results.json"))
    args = ap.parse_args()

    reps = 1 if args.quick and "--reps" not in sys.argv else args.reps
    fixture_n = args.fixture_n or (1_000_000 if args.quick else 10_000_000)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r} (choose from {', '.join(MODE_ORDER + NATIVE_MODES + LIVE_MODES)})")
    if args.no_memray:
        modes = [m for m in modes if MODES[m][0] != "memray"]

    names = [w[0] for w in WORKLOADS]
    selected = args.only.split(",") if args.only else (QUICK_WORKLOADS if args.quick else names)
    for s in selected:
        if s not in names:
            ap.error(f"unknown workload {s!r} (choose from {', '.join(names)})")

    os.makedirs(CAPTURE_DIR, exist_ok=True)
    tools = None
    try:
        tools = Tools(args)
        bench(args, tools, reps, fixture_n, modes, selected)
    finally:
        if not args.keep_captures:
            shutil.rmtree(CAPTURE_DIR, ignore_errors=True)
        if tools is not None and tools.snapshot_parent:
            shutil.rmtree(tools.snapshot_parent, ignore_errors=True)


def bench(args, tools, reps, fixture_n, modes, selected):
    info = tools.versions()
    info["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    log("heapscope bench --", ", ".join(f"{k}={v}" for k, v in info.items()))

    results = {"info": info, "reps": reps, "modes": modes, "workloads": [], "skipped": []}

    if not args.no_startup:
        log("\n-- start-up cost (workloads/empty.py), paired")
        empty = os.path.join(WORKLOAD_DIR, "empty.py")
        st = {}
        for rep in range(max(5, reps)):
            for mode in modes:
                pair = {}
                for which in (("tracked", "base") if rep % 2 else ("base", "tracked")):
                    if which == "base":
                        pair[which] = run_measured(tools.untracked(mode, empty), env=tools.env, cwd=CAPTURE_DIR)
                    else:
                        pair[which] = run_measured(tools.tracked(mode, empty, capture_path("empty", mode)),
                                                   env=tools.env, cwd=CAPTURE_DIR)
                if pair["base"]["rc"] == 0 and pair["tracked"]["rc"] == 0:
                    st.setdefault(mode, {"base": [], "tracked": []})
                    st[mode]["base"].append(pair["base"]["wall"])
                    st[mode]["tracked"].append(pair["tracked"]["wall"])
        for mode, d in st.items():
            d["base_median"] = median(d["base"])
            d["tracked_median"] = median(d["tracked"])
            d["added_ms_median"] = median([t - b for t, b in zip(d["tracked"], d["base"])]) * 1000
            log(f"  {mode:10s} untracked {d['base_median'] * 1000:6.0f} ms, tracked {d['tracked_median'] * 1000:6.0f} ms: "
                f"+{d['added_ms_median']:.0f} ms")
        results["startup"] = st

    for name, script, needs in WORKLOADS:
        if name not in selected:
            continue
        if needs:
            pys = [tools.py] + ([tools.venv_py] if any(MODES[m][0] == "memray" for m in modes) else [])
            if not all(tools.has_module(p, needs) for p in pys):
                log(f"skipping {name}: {needs} is not importable")
                results["skipped"].append({"workload": name, "reason": f"{needs} not installed"})
                continue
        log(f"\n-- {name}")
        rec = measure_workload(tools, name, script, modes, reps)
        results["workloads"].append(rec)
        print_workload(rec)

    # --- summary: geometric means and size ratios
    summary = {"geomean_ratio": {}, "size_ratio": {}, "size_ratio_geomean": {}}
    for mode in modes:
        summary["geomean_ratio"][mode] = geomean([w["modes"][mode]["ratio_median"] for w in results["workloads"]])
        summary.setdefault("geomean_cpu_ratio", {})[mode] = geomean(
            [w["modes"][mode].get("cpu_ratio_median") for w in results["workloads"]])
    for hs_mode in ("hs", "hs-nopy"):
        peer = MODES[hs_mode][3]
        if hs_mode in modes and peer in modes:
            per = {}
            for w in results["workloads"]:
                a, b = w["modes"][hs_mode]["capture_bytes"], w["modes"][peer]["capture_bytes"]
                per[w["workload"]] = (a / b) if a and b else None
            summary["size_ratio"][hs_mode] = per
            summary["size_ratio_geomean"][hs_mode] = geomean(per.values())
            tot_a = sum(w["modes"][hs_mode]["capture_bytes"] or 0 for w in results["workloads"] if per[w["workload"]])
            tot_side = sum(w["modes"][hs_mode].get("sidecar_bytes") or 0 for w in results["workloads"] if per[w["workload"]])
            tot_b = sum(w["modes"][peer]["capture_bytes"] or 0 for w in results["workloads"] if per[w["workload"]])
            summary.setdefault("size_ratio_total", {})[hs_mode] = (tot_a / tot_b) if tot_b else None
            with_side = {}
            for w in results["workloads"]:
                a, b = w["modes"][hs_mode]["capture_bytes"], w["modes"][peer]["capture_bytes"]
                side = w["modes"][hs_mode].get("sidecar_bytes") or 0
                with_side[w["workload"]] = ((a + side) / b) if a and b else None
            summary.setdefault("size_ratio_with_sidecar", {})[hs_mode] = with_side
            summary.setdefault("size_ratio_with_sidecar_geomean", {})[hs_mode] = geomean(with_side.values())
            summary.setdefault("size_ratio_with_sidecar_total", {})[hs_mode] = ((tot_a + tot_side) / tot_b) if tot_b else None
            bpe = {}
            for w in results["workloads"]:
                a, b = w["modes"][hs_mode].get("bytes_per_event"), w["modes"][peer].get("bytes_per_event")
                bpe[w["workload"]] = (a / b) if a and b else None
            summary.setdefault("bytes_per_event_ratio", {})[hs_mode] = bpe
            summary.setdefault("bytes_per_event_ratio_geomean", {})[hs_mode] = geomean(bpe.values())
    results["summary"] = summary

    # --- stats time: the largest heapscope capture (and memray's in the same workload/mode)
    largest = None
    for w in results["workloads"]:
        for mode in modes:
            if MODES[mode][0] == "heapscope" and w["modes"][mode]["capture_bytes"]:
                size = w["modes"][mode]["capture_bytes"]
                if largest is None or size > largest[2]:
                    largest = (w["workload"], mode, size)
    stats_pairs = []
    if largest:
        wl, mode, _ = largest
        stats_pairs.append((f"heapscope {wl}.{mode}", "heapscope", capture_path(wl, mode)))
        peer = MODES[mode][3]
        if peer in modes and os.path.exists(capture_path(wl, peer)):
            stats_pairs.append((f"memray {wl}.{peer}", "memray", capture_path(wl, peer)))
    if stats_pairs:
        log("\n-- stats time on the largest capture")
        results["stats_largest"] = time_stats(tools, stats_pairs, args.stats_reps)

    # --- the ~20M-event fixture
    if not args.no_fixture and "hs" in modes:
        log(f"\n-- stats fixture: {fixture_n:,} allocations + frees")
        fx = {}
        pairs = []
        cap, rec = fixture_capture(tools, "hs", fixture_n)
        fx["hs"] = rec
        if cap:
            pairs.append(("heapscope alloc_20m.hs", "heapscope", cap))
        if "memray-py" in modes:
            cap, rec = fixture_capture(tools, "memray-py", fixture_n)
            fx["memray-py"] = rec
            if cap:
                pairs.append(("memray alloc_20m.memray-py", "memray", cap))
        if pairs:
            fx["stats"] = time_stats(tools, pairs, args.stats_reps)
        results["fixture"] = fx

    try:
        results["info"]["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    # A forked child starts from this process's peak RSS (exec records the old
    # mm's high-water mark in the child's ru_maxrss), so every RSS figure has
    # this process's peak as its floor: it must stay below the smallest child.
    import resource
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    results["info"]["harness_maxrss"] = own
    smallest = min((r for w in results["workloads"] for r in
                    [u.get("maxrss_median") for u in w["untracked"].values()] if r), default=None)
    if not TIME_BIN:
        log("note: /usr/bin/time (GNU time) is missing: no peak RSS figures")
    if TIME_BIN is None and smallest is not None and own >= smallest * 0.9:
        log(f"WARNING: the harness's own peak RSS ({fmt_bytes(own)}) is close to the smallest child peak "
            f"({fmt_bytes(smallest)}): peak RSS figures may be floored by it")
    end_fp = tools.binary_fingerprint()
    if end_fp != info["heapscope_binaries"]:
        results["info"]["heapscope_binaries_end"] = end_fp
        log("WARNING: the heapscope binaries changed during the run (someone rebuilt): figures mix two builds")

    # --- print the summary
    log("\n================ summary (median paired ratio to untracked, geometric mean over workloads)")
    size_cols = list(summary["size_ratio"])
    header = f"{'workload':16s}" + "".join(f"{m:>11s}" for m in modes) + "".join(
        f"{'size ' + m + '/' + MODES[m][3]:>22s}" for m in size_cols)
    log(header)
    for w in results["workloads"]:
        log(f"{w['workload']:16s}" + "".join(f"{fmt_ratio(w['modes'][m]['ratio_median']):>11s}" for m in modes)
            + "".join(f"{fmt_ratio(summary['size_ratio'][m].get(w['workload'])):>22s}" for m in size_cols))
    log(f"{'geomean':16s}" + "".join(f"{fmt_ratio(summary['geomean_ratio'][m]):>11s}" for m in modes)
        + "".join(f"{fmt_ratio(summary['size_ratio_geomean'][m]):>22s}" for m in size_cols))
    log(f"{'geomean (cpu)':16s}" + "".join(f"{fmt_ratio(summary['geomean_cpu_ratio'][m]):>11s}" for m in modes))
    for m, target in TARGETS.items():
        g = summary["geomean_ratio"].get(m)
        if g is not None:
            verdict = "PASS" if g <= target else f"MISS by {g - target:.2f}x ({(g / target - 1) * 100:.0f}% over)"
            log(f"target {m}: geomean {g:.2f}x <= {target:.2f}x: {verdict}")
    live, normal = summary["geomean_ratio"].get("hs-live"), summary["geomean_ratio"].get("hs")
    if live is not None and normal is not None:
        ratio = live / normal
        verdict = "PASS" if ratio <= LIVE_TARGET else f"MISS ({(ratio - 1) * 100:.0f}% over a normal run)"
        log(f"target live: hs-live / hs geomean {ratio:.3f} <= {LIVE_TARGET:.2f}: {verdict}")
        summary["live_over_normal"] = ratio
    for m, g in summary["size_ratio_geomean"].items():
        if g is not None:
            peer = MODES[m][3]
            verdict = "PASS" if g <= SIZE_TARGET else f"MISS ({g:.2f} vs {SIZE_TARGET})"
            log(f"capture size {m} / {peer}: geomean {g:.2f}, total {summary['size_ratio_total'][m]:.2f}: {verdict}"
                f"  (with the .refs sidecar added: geomean {summary['size_ratio_with_sidecar_geomean'][m]:.2f}, "
                f"total {summary['size_ratio_with_sidecar_total'][m]:.2f})")
            gb = summary["bytes_per_event_ratio_geomean"].get(m)
            if gb is not None:
                log(f"  bytes per event {m} / {peer}: geomean {gb:.2f} (memray may record more events: see README)")
    for key in ("stats_largest",):
        for label, s in (results.get(key) or {}).items():
            log(f"stats on largest capture, {label} ({fmt_bytes(s['capture_bytes'])}): {fmt_s(s['wall_median'])}")
    fx = results.get("fixture") or {}
    fx_events = ((fx.get("hs") or {}).get("counts") or {}).get("events") or 0
    for label, s in (fx.get("stats") or {}).items():
        verdict = ""
        if s["tool"] == "heapscope":
            if fx_events >= 19_000_000:
                ok = s["wall_median"] is not None and s["wall_median"] < STATS_TARGET_S
                verdict = f"  target < {STATS_TARGET_S:.0f}s: {'PASS' if ok else 'MISS'}"
            else:
                verdict = f"  ({fx_events:,} events: too small for the 20M-event target)"
        log(f"stats on the fixture, {label} ({fmt_bytes(s['capture_bytes'])}): {fmt_s(s['wall_median'])}{verdict}")

    os.makedirs(os.path.dirname(args.json_out), exist_ok=True)
    with open(args.json_out, "w") as f:
        json.dump(results, f, indent=1, default=str)
    log(f"\nwrote {os.path.relpath(args.json_out, REPO)}")


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    main()
