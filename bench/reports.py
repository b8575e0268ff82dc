#!/usr/bin/env python3
"""Report timings: flamegraph, table and stats of a 20-million-event capture.

Records bench/workloads/alloc_20m.py (10 million allocations and 10 million
frees, Python allocators traced) once, then times each report REPS times
(wall clock and peak RSS of the report process) and prints the medians. With
--memray, also times `memray flamegraph` of a memray capture of the same
workload (memray from bench/.venv, as bench/run.py sets it up).

Writes the figures into bench/RESULTS.md between the markers
<!-- reports:begin --> and <!-- reports:end --> (the rest of the file is kept).

    python3 bench/reports.py [--reps 3] [--heapscope PATH] [--memray]

Targets (issue 3): flamegraph at most 0.5 s and 200 MB peak RSS.
"""
import argparse
import datetime
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(BENCH, "workloads", "alloc_20m.py")
RESULTS = os.path.join(BENCH, "RESULTS.md")
BEGIN, END = "<!-- reports:begin -->", "<!-- reports:end -->"


def timed(argv):
    """Wall time and peak RSS (bytes) of one child process."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr.decode(errors='replace')}")
    return wall


def measure(argv):
    """Runs argv under a tiny wrapper that reports the child's own max RSS."""
    code = ("import resource, subprocess, sys, time;"
            "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL);"
            "w = time.perf_counter() - t;"
            "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    out = subprocess.run([sys.executable, "-c", code] + argv, stdout=subprocess.PIPE, check=True).stdout.split()
    wall, rss_kb, rc = float(out[0]), int(out[1]), int(out[2])
    if rc != 0:
        raise SystemExit(f"failed ({rc}): {' '.join(argv)}")
    return wall, rss_kb * 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--heapscope", default=shutil.which("heapscope") or "heapscope")
    parser.add_argument("--memray", action="store_true", help="also time memray flamegraph (bench/.venv)")
    parser.add_argument("--keep", help="directory for the captures (default: a temporary one)")
    args = parser.parse_args()
    hs = args.heapscope.split()

    work = args.keep or tempfile.mkdtemp(prefix="heapscope-bench-reports-")
    os.makedirs(work, exist_ok=True)
    capture = os.path.join(work, "alloc_20m.hsc")
    if not os.path.exists(capture):
        print(f"recording {capture} ...", flush=True)
        timed(hs + ["run", "-q", "-f", "-o", capture, WORKLOAD])
    stats = subprocess.run(hs + ["stats", "--json", capture], stdout=subprocess.PIPE, check=True).stdout
    import json
    info = json.loads(stats)
    events = info.get("records")
    print(f"capture: {os.path.getsize(capture) / 1e6:.1f} MB, {info['total_allocations']:,} allocations, {events:,} records")

    reports = [
        ("flamegraph", hs + ["flamegraph", "-f", "-o", os.path.join(work, "fg.html"), capture]),
        ("table", hs + ["table", "-f", "-o", os.path.join(work, "table.html"), capture]),
        ("stats", hs + ["stats", capture]),
        ("stats --json", hs + ["stats", "--json", capture]),
        ("flamegraph --leaks", hs + ["flamegraph", "--leaks", "-f", "-o", os.path.join(work, "fgl.html"), capture]),
        ("flamegraph --temporal", hs + ["flamegraph", "--temporal", "-f", "-o", os.path.join(work, "fgt.html"), capture]),
    ]
    memray = os.path.join(BENCH, ".venv", "bin", "memray")
    if args.memray and os.path.exists(memray):
        mcap = os.path.join(work, "alloc_20m.bin")
        if not os.path.exists(mcap):
            print("recording the memray capture ...", flush=True)
            timed([memray, "run", "-q", "-f", "--trace-python-allocators", "-o", mcap, WORKLOAD])
        reports.append(("memray flamegraph", [memray, "flamegraph", "-f", "-o", os.path.join(work, "memray.html"), mcap]))

    rows = []
    for name, argv in reports:
        walls, rsss = [], []
        for rep in range(args.reps):
            wall, rss = measure(argv)
            walls.append(wall)
            rsss.append(rss)
        rows.append((name, statistics.median(walls), min(walls), max(rsss)))
        print(f"{name:24s} median {statistics.median(walls):6.2f} s  best {min(walls):6.2f} s  peak RSS {max(rsss) / 1e6:7.1f} MB", flush=True)

    load = os.getloadavg()
    lines = [
        BEGIN,
        "## Report timings (bench/reports.py)",
        "",
        f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} during the run; capture of bench/workloads/alloc_20m.py "
        f"({info['total_allocations']:,} allocations, {events:,} records, {os.path.getsize(capture) / 1e6:.1f} MB compressed); "
        f"{args.reps} runs each.",
        "",
        "| report | median wall | best wall | peak RSS |",
        "|---|---|---|---|",
    ]
    for name, median, best, rss in rows:
        lines.append(f"| {name} | {median:.2f} s | {best:.2f} s | {rss / 1e6:.0f} MB |")
    lines += ["", "Targets: flamegraph at most 0.5 s and 200 MB (memray on the same kind of capture: 9.8 s and 1.08 GB).", END]
    section = "\n".join(lines) + "\n"
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip() + "\n\n" + section
    with open(RESULTS, "w") as f:
        f.write(text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
