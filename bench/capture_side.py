#!/usr/bin/env python3
"""Capture-side figures of issue 10, next to memray where it applies:

- the exit summary of `heapscope run`: the wall time of `heapscope run` (which
  prints it) minus the tracked run's own duration (its "duration:" line), on
  workloads/live_10m.py (~20M events, 10M objects live at the peak), and what
  `heapscope stats` takes on the same capture (the replay the summary no
  longer does); the budget is 0.1 s + 5% of the duration;
- allocations through dlsym (workloads/dlsym_malloc.py: 40 ctypes mallocs of
  1,200,000-1,200,039 bytes): how many of them each tool recorded.

Run with the interpreter heapscope is installed in; memray comes from the
bench venv run.py made for it (bench/.venv-py3XY):

    .venvs/py311/bin/python bench/capture_side.py [--reps N]
"""
import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")
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


def exit_summary(reps, out):
    script = os.path.join(WORKLOADS, "live_10m.py")
    capture = os.path.join(out, "live_10m.hsc")
    print("exit summary, workloads/live_10m.py")
    for rep in range(reps):
        wall, proc = timed([HEAPSCOPE, "run", "-f", "-o", capture, script])
        assert proc.returncode == 0, proc.stderr
        duration = float(re.search(r"duration:\s+([\d.]+) s", proc.stderr).group(1))
        stats, _ = timed([HEAPSCOPE, "stats", capture])
        cost = wall - duration
        print(f"  rep {rep + 1}: run {wall:.2f} s, tracked duration {duration:.2f} s, summary {cost:.3f} s "
              f"(budget {0.1 + 0.05 * duration:.3f} s); stats on the capture {stats:.2f} s")


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
