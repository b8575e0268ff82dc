#!/usr/bin/env python3
"""Report timings: stats, summary, tree and flamegraph of 20-million-event captures.

Records each fixture once with heapscope (`heapscope run`, as a user does:
default mode, Python allocators traced, with the exit summary, so the
capture ends with its summary trailer) and, with --memray, once with memray
(--trace-python-allocators, its equivalent) of the same script, then times
each report REPS times, in turns (wall clock and peak RSS of the report
process) and prints the medians. "stats, no trailer" is stats on the same
capture without its trailer, as `run -q` and the Python API write it (the
trailer's block count sizes the replay's table ahead):

- bench/workloads/live_10m.py: 10 million objects live at the peak
  (issue 10's capture: ~20M events);
- bench/workloads/alloc_20m.py: ~20M events, a few thousand live at a time.

--synthetic 1e8,1e9 also writes synthetic captures of that many events with
heapscope-bench-capture (bench/CaptureGenerator, through CaptureWriter) and
times stats and flamegraph of each once: time should grow with the events
and memory not at all.

Writes the figures into bench/RESULTS.md between the markers
<!-- reports:begin --> and <!-- reports:end --> (the rest of the file is kept).

    python3 bench/reports.py [--reps 3] [--heapscope PATH] [--memray] [--synthetic 1e8,1e9]

Targets (issue 10): stats, summary, tree and flamegraph each at most 0.6 s and
250 MB on the live_10m capture.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
FIXTURES = ["live_10m", "alloc_20m"]
RESULTS = os.path.join(BENCH, "RESULTS.md")
BEGIN, END = "<!-- reports:begin -->", "<!-- reports:end -->"
GENERATOR = os.path.join(ROOT, ".build", "release", "heapscope-bench-capture")
MEMRAY = os.path.join(BENCH, ".venv-py%d%d" % sys.version_info[:2], "bin", "memray")
# The summary trailer's length (docs/FORMAT.md).
TRAILER = 48


def run_quiet(argv):
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr.decode(errors='replace')}")


def measure(argv):
    """Wall time and peak RSS (bytes) of one child, from a tiny wrapper
    process whose RUSAGE_CHILDREN holds only that child."""
    code = ("import resource, subprocess, sys, time;"
            "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL);"
            "w = time.perf_counter() - t;"
            "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    out = subprocess.run([sys.executable, "-c", code] + argv, stdout=subprocess.PIPE, check=True).stdout.split()
    wall, rss_kb, rc = float(out[0]), int(out[1]), int(out[2])
    if rc != 0:
        raise SystemExit(f"failed ({rc}): {' '.join(argv)}")
    return wall, rss_kb * 1024


def heapscope_reports(hs, capture, work):
    return [
        ("stats", hs + ["stats", capture]),
        ("summary", hs + ["summary", capture]),
        ("tree", hs + ["tree", capture]),
        ("flamegraph", hs + ["flamegraph", "-f", "-o", os.path.join(work, "fg.html"), capture]),
    ]


def time_all(reports, reps):
    """Each report REPS times, in turns (a slow spell of the machine hits all)."""
    samples = {name: ([], []) for name, _ in reports}
    for _ in range(reps):
        for name, argv in reports:
            wall, rss = measure(argv)
            samples[name][0].append(wall)
            samples[name][1].append(rss)
    rows = []
    for name, _ in reports:
        walls, rsss = samples[name]
        rows.append((name, statistics.median(walls), min(walls), max(rsss)))
        print(f"  {name:20s} median {statistics.median(walls):6.2f} s  best {min(walls):6.2f} s  "
              f"peak RSS {max(rsss) / 1e6:7.1f} MB", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--heapscope", default=shutil.which("heapscope") or "heapscope")
    parser.add_argument("--memray", action="store_true", help=f"also memray stats/flamegraph ({MEMRAY})")
    parser.add_argument("--synthetic", default="", help="event counts of synthetic captures, e.g. 1e8,1e9")
    parser.add_argument("--generator", default=GENERATOR)
    parser.add_argument("--keep", help="directory for the captures (default: a temporary one, removed)")
    args = parser.parse_args()
    hs = args.heapscope.split()
    use_memray = args.memray and os.path.exists(MEMRAY)
    if args.memray and not use_memray:
        raise SystemExit(f"no memray at {MEMRAY} (python3 -m venv {os.path.dirname(os.path.dirname(MEMRAY))} && "
                         "... pip install memray)")

    work = args.keep or tempfile.mkdtemp(prefix="heapscope-bench-reports-")
    os.makedirs(work, exist_ok=True)
    load_before = os.getloadavg()[0]
    sections = []
    for fixture in FIXTURES:
        script = os.path.join(BENCH, "workloads", fixture + ".py")
        capture = os.path.join(work, fixture + ".hsc")
        if not os.path.exists(capture):
            print(f"recording {capture} ...", flush=True)
            run_quiet(hs + ["run", "-f", "-o", capture, script])
        bare = os.path.join(work, fixture + "-bare.hsc")
        with open(capture, "rb") as f:
            data = f.read()
        with open(bare, "wb") as f:
            f.write(data[:-TRAILER] if data[-TRAILER + 8:-TRAILER + 12] == b"HSCS" else data)
        info = json.loads(subprocess.run(hs + ["stats", "--json", capture], stdout=subprocess.PIPE, check=True).stdout)
        print(f"{fixture}: {os.path.getsize(capture) / 1e6:.1f} MB, {info['total_allocations']:,} allocations, "
              f"{info['records']:,} records, peak {info['peak_allocations']:,} allocations live", flush=True)
        reports = heapscope_reports(hs, capture, work) + [("stats, no trailer", hs + ["stats", bare])]
        if use_memray:
            mcap = os.path.join(work, fixture + ".bin")
            if not os.path.exists(mcap):
                print(f"recording {mcap} ...", flush=True)
                run_quiet([MEMRAY, "run", "-q", "-f", "--trace-python-allocators", "-o", mcap, script])
            reports += [
                ("memray stats", [MEMRAY, "stats", "--json", "-o", os.path.join(work, "memray-stats.json"), "-f", mcap]),
                ("memray flamegraph", [MEMRAY, "flamegraph", "-f", "-o", os.path.join(work, "memray.html"), mcap]),
            ]
        rows = time_all(reports, args.reps)
        sections.append((fixture, info, os.path.getsize(capture), rows))

    scaling = []
    for text in [t for t in args.synthetic.split(",") if t]:
        events = int(float(text))
        capture = os.path.join(work, f"synthetic-{text}.hsc")
        if not os.path.exists(capture):
            print(f"writing {capture} ...", flush=True)
            start = time.perf_counter()
            run_quiet([args.generator, str(events), capture])
            print(f"  {time.perf_counter() - start:.1f} s", flush=True)
        for name, argv in [("stats", hs + ["stats", capture]),
                           ("flamegraph", hs + ["flamegraph", "-f", "-o", os.path.join(work, "syn.html"), capture])]:
            wall, rss = measure(argv)
            scaling.append((events, os.path.getsize(capture), name, wall, rss))
            print(f"  {text} events {name:10s} {wall:7.2f} s  {wall / events * 1e9:5.1f} ns/event  "
                  f"peak RSS {rss / 1e6:6.1f} MB", flush=True)

    load = max(load_before, os.getloadavg()[0])
    lines = [
        BEGIN,
        "## Report timings (bench/reports.py)",
        "",
        f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, load average up to "
        f"{load:.1f} around the run; `python3 bench/reports.py {' '.join(os.path.relpath(a, ROOT) if a.startswith('/') else a for a in sys.argv[1:])}`; "
        f"{args.reps} runs of each report, in turns. memray: its own capture of the same script "
        "(`memray run --trace-python-allocators`).",
        "",
    ]
    for fixture, info, size, rows in sections:
        lines += [
            f"**{fixture}.py**: {info['total_allocations']:,} allocations, {info['records']:,} records, "
            f"{info['peak_allocations']:,} allocations live at the peak, {size / 1e6:.1f} MB compressed.",
            "",
            "| report | median wall | best wall | peak RSS |",
            "|---|---|---|---|",
        ]
        for name, median, best, rss in rows:
            lines.append(f"| {name} | {median:.2f} s | {best:.2f} s | {rss / 1e6:.0f} MB |")
        lines.append("")
    if scaling:
        lines += [
            "**Synthetic captures** (heapscope-bench-capture: 65,536 blocks live at any time, 64 stacks), one run each:",
            "",
            "| events | capture | report | wall | ns/event | peak RSS |",
            "|---|---|---|---|---|---|",
        ]
        for events, size, name, wall, rss in scaling:
            lines.append(f"| {events:.0e} | {size / 1e6:.0f} MB | {name} | {wall:.2f} s | {wall / events * 1e9:.1f} | {rss / 1e6:.0f} MB |")
        lines.append("")
    lines += ["Targets (issue 10): stats, summary, tree and flamegraph each at most 0.6 s and 250 MB on live_10m.", END]
    section = "\n".join(lines) + "\n"
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip() + "\n\n" + section
    with open(RESULTS, "w") as f:
        f.write(text)
    print(f"wrote {RESULTS}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
