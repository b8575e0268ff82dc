#!/usr/bin/env python3
"""Capture-side figures of issue 10, next to memray where it applies:

- the exit summary of `heapscope run`, as a user meets it: `heapscope run`
  (which prints it) against `heapscope run -q` (which does not, so the
  tracker keeps no totals), in rounds with the untracked script, order
  flipped every other round; medians of the wall time and of the peak RSS of
  the profiled process, on workloads/live_10m.py (~20M events, 10M objects
  live at the peak, then freed) and four bench workloads; the budget is
  0.1 s + 5% of `run -q`. Also what `heapscope stats` takes on the live_10m
  capture (the replay the summary no longer does);
- allocations through dlsym (workloads/dlsym_malloc.py: 40 ctypes mallocs of
  1,200,000-1,200,039 bytes): how many of them each tool recorded.

Run with the interpreter heapscope is installed in; memray comes from the
bench venv run.py made for it (bench/.venv-py3XY):

    .venvs/py311/bin/python bench/capture_side.py [--reps N]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")
SUMMARY_WORKLOADS = [os.path.join(WORKLOADS, "live_10m.py"), os.path.join(EXAMPLES, "two_copies.py"),
                     os.path.join(WORKLOADS, "threads.py"), os.path.join(EXAMPLES, "churn.py"),
                     os.path.join(WORKLOADS, "json_roundtrip.py")]
HEAPSCOPE = os.path.join(sysconfig.get_path("scripts"), "heapscope")
VENV_PY = os.path.join(HERE, ".venv-py%d%d" % sys.version_info[:2], "bin", "python")
SIZES = range(1_200_000, 1_200_040)

MEMRAY_SIZES = r"""
import sys, memray
lo, hi = int(sys.argv[2]), int(sys.argv[3])
print(sum(1 for r in memray.FileReader(sys.argv[1]).get_allocation_records()
          if lo <= r.size < hi and r.allocator == memray.AllocatorType.MALLOC))
"""


def timed(argv):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - start, proc


def measured(argv):
    """Wall time and peak RSS (bytes) of one child and its descendants, from a
    tiny wrapper process whose RUSAGE_CHILDREN holds only them."""
    code = ("import resource, subprocess, sys, time;"
            "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,"
            " stderr=subprocess.DEVNULL); w = time.perf_counter() - t;"
            "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    out = subprocess.run([sys.executable, "-c", code] + argv, stdout=subprocess.PIPE, check=True).stdout.split()
    if int(out[2]) != 0:
        raise SystemExit(f"failed ({out[2]}): {' '.join(argv)}")
    return float(out[0]), int(out[1]) * 1024


def exit_summary(reps, out):
    print("exit summary: `run` against `run -q` (medians; s, peak RSS MB)")
    print(f"  {'workload':<16} {'untracked':>9} {'run -q':>14} {'run':>14} {'cost':>8} {'budget':>7}")
    for script in SUMMARY_WORKLOADS:
        capture = os.path.join(out, "summary.hsc")
        argvs = {"untracked": [sys.executable, script],
                 "quiet": [HEAPSCOPE, "run", "-q", "-f", "-o", capture, script],
                 "summary": [HEAPSCOPE, "run", "-f", "-o", capture, script]}
        samples = {name: [] for name in argvs}
        for rep in range(reps):
            for name in (list(argvs) if rep % 2 == 0 else list(argvs)[::-1]):
                samples[name].append(measured(argvs[name]))
        wall = {name: statistics.median(w for w, _ in runs) for name, runs in samples.items()}
        rss = {name: statistics.median(r for _, r in runs) / 1e6 for name, runs in samples.items()}
        cost = wall["summary"] - wall["quiet"]
        print(f"  {os.path.basename(script)[:-3]:<16} {wall['untracked']:>8.2f}s "
              f"{wall['quiet']:>6.2f}s {rss['quiet']:>5.0f}MB {wall['summary']:>6.2f}s {rss['summary']:>5.0f}MB "
              f"{cost:>+7.2f}s {0.1 + 0.05 * wall['quiet']:>6.2f}s")
    capture = os.path.join(out, "live_10m.hsc")
    subprocess.run([HEAPSCOPE, "run", "-q", "-f", "-o", capture, os.path.join(WORKLOADS, "live_10m.py")],
                   stdout=subprocess.DEVNULL, check=True)
    stats, _ = timed([HEAPSCOPE, "stats", capture])
    print(f"  stats on the live_10m capture (the replay the summary does not do): {stats:.2f} s")


def dlsym_case(out):
    script = os.path.join(WORKLOADS, "dlsym_malloc.py")
    hsc = os.path.join(out, "dlsym.hsc")
    proc = subprocess.run([HEAPSCOPE, "run", "-f", "-q", "-o", hsc, script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    parsed = subprocess.run([HEAPSCOPE, "parse", hsc], capture_output=True, text=True).stdout
    sizes = [int(m) for m in re.findall(r"^ALLOC malloc 0x[0-9a-f]+ (\d+) ", parsed, re.M)]
    print("dlsym case, workloads/dlsym_malloc.py: 40 ctypes mallocs")
    print(f"  heapscope: {sum(1 for s in sizes if s in SIZES)} of 40 recorded")
    if os.path.exists(VENV_PY):
        for extra in ([], ["--trace-python-allocators"]):
            binary = os.path.join(out, "dlsym.bin")
            memray = [VENV_PY, "-m", "memray", "run", "-f", "-q", *extra, "-o", binary, script]
            if subprocess.run(memray, capture_output=True).returncode != 0:
                print("  memray: the run failed")
                continue
            counted = subprocess.run([VENV_PY, "-c", MEMRAY_SIZES, binary, str(SIZES.start), str(SIZES.stop)],
                                     capture_output=True, text=True).stdout.strip()
            print(f"  memray {' '.join(extra) or '(default)'}: {counted} of 40 recorded")
    else:
        print(f"  memray: no bench venv at {VENV_PY} (bench/run.py creates it)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="heapscope-bench-") as out:
        dlsym_case(out)
        exit_summary(args.reps, out)


if __name__ == "__main__":
    main()
