#!/usr/bin/env python3
"""Soak: does heapscope's own memory stay bounded over a long run?

Runs bench/workloads/service.py (a paced request loop over a bounded live
set, a new thread per batch of requests) for MINUTES, untracked and under
`heapscope run` side by side, and samples the resident set (VmRSS) of both
interpreters every INTERVAL seconds. The tracker's overhead is the
difference; it should stay flat once the tables of the (few) distinct
stacks are filled. Both processes serve the same requests at the same pace,
so their live sets are the same at the same moment.

    python bench/soak.py                      # 10 minutes
    python bench/soak.py --minutes 1          # smoke run
    python bench/soak.py --mode=--native      # heapscope run's options (repeatable)
    python bench/soak.py --same-thread-name   # every batch thread named alike
    python bench/soak.py --aggregate          # under run --aggregate: also the capture's size
                                              # over time and the aggregating heapscope's RSS

heapscope is the one installed in the interpreter running this script.
Results: a line per minute and a summary on stdout, bench/out/soak.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SERVICE = os.path.join(BENCH_DIR, "workloads", "service.py")
OUT_DIR = os.path.join(BENCH_DIR, "out")


def rss(pid):
    """VmRSS of a process in bytes, or None once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def interpreter_of(heapscope_pid, deadline):
    """The python that `heapscope run` started (its only child)."""
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/task/%d/children" % (heapscope_pid, heapscope_pid)) as f:
                children = f.read().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.01)
    raise SystemExit("soak: heapscope run started no interpreter")


def slope_per_minute(samples):
    """Least-squares slope of (seconds, bytes) samples, in bytes per minute."""
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def mib(n):
    return "%.1f MiB" % (n / 2**20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=2000, help="requests per second (default 2000)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--mode", action="append", default=[], help="an option for heapscope run (repeatable)")
    parser.add_argument("--same-thread-name", action="store_true",
                        help="every batch thread named alike (default: each its own name)")
    parser.add_argument("--aggregate", action="store_true",
                        help="run --aggregate: sample the capture's size and heapscope's own RSS too")
    parser.add_argument("--json-out", default=os.path.join(OUT_DIR, "soak.json"))
    args = parser.parse_args()

    heapscope = os.path.join(sysconfig.get_path("scripts"), "heapscope")
    requests = int(args.minutes * 60 * args.rate)
    os.makedirs(OUT_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix="soak-", dir=OUT_DIR)
    capture = os.path.join(work, "soak.hsc")
    if args.aggregate:
        args.mode.append("--aggregate")
    service = [SERVICE, str(requests), str(args.rate), "same" if args.same_thread_name else "unique"]
    began = time.monotonic()
    plain = subprocess.Popen([sys.executable] + service, stdout=subprocess.PIPE)
    traced_cli = subprocess.Popen([heapscope, "run", "-q", "-f", *args.mode, "-o", capture] + service,
                                  stdout=subprocess.PIPE)
    traced = interpreter_of(traced_cli.pid, began + 30)

    samples = []  # (seconds, untracked RSS, tracked RSS)
    aggregator = []  # --aggregate: (seconds, capture bytes, heapscope's RSS)
    while True:
        a, b = rss(plain.pid), rss(traced)
        if a is None or b is None or plain.poll() is not None or traced_cli.poll() is not None:
            break
        now = time.monotonic() - began
        samples.append((now, a, b))
        if args.aggregate and os.path.exists(capture):
            aggregator.append((now, os.path.getsize(capture), rss(traced_cli.pid) or 0))
        if len(samples) == 1 or int(now // 60) != int(samples[-2][0] // 60):
            print("%6.0f s  untracked %s  tracked %s  overhead %s" % (now, mib(a), mib(b), mib(b - a)), flush=True)
        time.sleep(args.interval)
    plain_out, _ = plain.communicate()
    plain_end = time.monotonic() - began
    traced_out, _ = traced_cli.communicate()
    traced_end = time.monotonic() - began
    if plain.returncode or traced_cli.returncode or plain_out != traced_out:
        raise SystemExit("soak: the runs differed: %r %r / %r %r"
                         % (plain.returncode, plain_out, traced_cli.returncode, traced_out))

    # Both still running: the samples to judge. The first tenth is warm-up
    # (tables filling); flat means the last tenth's overhead is the same as
    # the second tenth's, and the slope over everything after warm-up ~0.
    n = len(samples)
    if n < 20:
        raise SystemExit("soak: too few samples (%d): run longer" % n)
    overhead = [(t, b - a) for t, a, b in samples]
    steady = overhead[n // 10:]
    early = statistics.median(v for _, v in overhead[n // 10: n // 5])
    late = statistics.median(v for _, v in overhead[-(n // 10):])
    stats = json.loads(subprocess.run([heapscope, "stats", "--json", "-n", "1", capture], check=True,
                                      stdout=subprocess.PIPE).stdout)
    result = {
        "minutes": args.minutes, "rate": args.rate, "requests": requests, "heapscope_options": args.mode,
        "thread_names": service[-1],
        "python": sys.version.split()[0], "samples": n,
        "untracked_rss_median": statistics.median(a for _, a, _ in samples),
        "tracked_rss_median": statistics.median(b for _, _, b in samples),
        "overhead_early": early, "overhead_late": late, "overhead_max": max(v for _, v in steady),
        "overhead_slope_per_minute": slope_per_minute(steady),
        "untracked_seconds": plain_end, "tracked_seconds": traced_end,
        "capture_bytes": os.path.getsize(capture), "events_allocations": stats["total_allocations"],
        "capture_truncated": stats["truncated"], "threads_in_capture": len(stats["threads"]),
        "rss_samples": samples,
    }
    if args.aggregate:
        result.update({
            "capture_bytes_max": max(c for _, c, _ in aggregator),
            "aggregator_rss_early": statistics.median(r for _, _, r in aggregator[n // 10: n // 5]),
            "aggregator_rss_late": statistics.median(r for _, _, r in aggregator[-(n // 10):]),
            "aggregator_samples": aggregator,
        })
    os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
    with open(args.json_out, "w") as f:
        json.dump(result, f)
    os.unlink(capture)
    os.rmdir(work)
    print("requests %d at %d/s; untracked %.0f s, tracked %.0f s" % (requests, args.rate, plain_end, traced_end))
    print("RSS median: untracked %s, tracked %s" % (mib(result["untracked_rss_median"]), mib(result["tracked_rss_median"])))
    print("overhead: %s after warm-up (10-20%% of the run), %s at the end (last 10%%), max %s; slope %+.3f MiB/min"
          % (mib(early), mib(late), mib(result["overhead_max"]), result["overhead_slope_per_minute"] / 2**20))
    print("capture: %s, %d allocations, %d threads, truncated: %s"
          % (mib(result["capture_bytes"]), result["events_allocations"], result["threads_in_capture"], stats["truncated"]))
    if args.aggregate:
        print("aggregated capture: at most %s while running; heapscope's own RSS %s after warm-up, %s at the end"
              % (mib(result["capture_bytes_max"]), mib(result["aggregator_rss_early"]), mib(result["aggregator_rss_late"])))


if __name__ == "__main__":
    main()
