#!/usr/bin/env python3
"""Overhead while attached against `heapscope run` (issue 14).

Each workload runs under bench/workloads/timed.py, which times the workload
itself from inside the process (start-up, the attach itself and the
capture's end at exit are outside the figure, as they differ between the
two ways of starting), three ways:

  untracked  python timed.py GO W.py
  run        heapscope run -q -f -o OUT timed.py GO W.py
  attach     python timed.py GO W.py, started plainly, waiting for GO;
             heapscope attach -f -o OUT PID; once attach says it records,
             GO is created; attach records until the process exits

Each repetition runs the three back to back, in a rotating order; the
figures are the medians over repetitions of run/untracked and
attach/untracked (wall and CPU time of the workload), and attach/run.

    python bench/attach.py                     # 4 workloads, 5 repetitions
    python bench/attach.py --reps 3 --only threads,raytrace --mode=--native

heapscope is the one installed in the interpreter running this script.
Results on stdout and in bench/out/attach.json.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(BENCH_DIR, "workloads")
TIMED = os.path.join(WORKLOADS, "timed.py")
OUT_DIR = os.path.join(BENCH_DIR, "out")
DEFAULT = ["class_sim", "json_roundtrip", "raytrace", "threads"]
WAYS = ["untracked", "run", "attach"]


def timed_result(stderr, what):
    last = stderr.decode(errors="replace").strip().splitlines()[-1:]
    if not last or not last[0].startswith("timed: "):
        raise SystemExit("attach bench: %s gave no timing:\n%s" % (what, stderr.decode(errors="replace")))
    wall, cpu = last[0].split()[1:]
    return float(wall), float(cpu)


def one(way, workload, heapscope, options, work):
    """(wall, cpu) of the workload run this way, and its stdout."""
    go = os.path.join(work, "go")
    capture = os.path.join(work, "out.hsc")
    if os.path.exists(go):
        os.unlink(go)
    timed = [TIMED, go, workload]
    if way != "attach":
        open(go, "w").close()
        command = [sys.executable] + timed if way == "untracked" else [heapscope, "run", "-q", "-f", *options, "-o", capture] + timed
        proc = subprocess.run(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        if proc.returncode:
            raise SystemExit("attach bench: %s %s failed:\n%s" % (way, workload, proc.stderr.decode(errors="replace")))
        return timed_result(proc.stderr, way), proc.stdout
    target = subprocess.Popen([sys.executable] + timed, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    attach = subprocess.Popen([heapscope, "attach", "-f", *options, "-o", capture, str(target.pid)],
                              cwd=work, stderr=subprocess.PIPE)
    try:
        first = attach.stderr.readline()
        if b"heapscope: attached to process" not in first:
            raise SystemExit("attach bench: attach did not start: %s%s" % (first.decode(), attach.stderr.read().decode()))
        open(go, "w").close()
        out, err = target.communicate(timeout=600)
        attach_err = attach.stderr.read()
        attach.wait(timeout=60)
    finally:
        for proc in (target, attach):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if target.returncode or attach.returncode:
        raise SystemExit("attach bench: attach of %s failed (%s, %s):\n%s" % (
            workload, target.returncode, attach.returncode, attach_err.decode(errors="replace")))
    return timed_result(err, way), out


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default=",".join(DEFAULT), help="workloads of bench/workloads (comma-separated)")
    parser.add_argument("--mode", action="append", default=[], help="an option for run and attach (repeatable)")
    parser.add_argument("--json-out", default=os.path.join(OUT_DIR, "attach.json"))
    args = parser.parse_args()
    heapscope = os.path.join(sysconfig.get_path("scripts"), "heapscope")
    os.makedirs(OUT_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix="attach-", dir=OUT_DIR)

    results = {}
    print("%-15s %8s %18s %18s %10s" % ("workload", "untracked", "run/untracked", "attach/untracked", "attach/run"))
    for name in args.only.split(","):
        workload = os.path.join(WORKLOADS, name + ".py")
        pairs = {way: [] for way in WAYS}
        outputs = set()
        for rep in range(args.reps):
            order = WAYS[rep % 3:] + WAYS[:rep % 3]
            for way in order:
                timing, out = one(way, workload, heapscope, args.mode, work)
                pairs[way].append(timing)
                outputs.add(out)
        if len(outputs) != 1:
            raise SystemExit("attach bench: %s printed different outputs" % name)
        ratio = {}
        for way in ("run", "attach"):
            for i, kind in enumerate(("wall", "cpu")):
                ratio[way, kind] = statistics.median(t[i] / u[i] for t, u in zip(pairs[way], pairs["untracked"]))
        ratio["attach/run"] = statistics.median(a[0] / r[0] for a, r in zip(pairs["attach"], pairs["run"]))
        results[name] = {
            "untracked_wall_median": statistics.median(t[0] for t in pairs["untracked"]),
            "run_wall_ratio": ratio["run", "wall"], "attach_wall_ratio": ratio["attach", "wall"],
            "run_cpu_ratio": ratio["run", "cpu"], "attach_cpu_ratio": ratio["attach", "cpu"],
            "attach_over_run": ratio["attach/run"], "timings": pairs,
        }
        print("%-15s %7.2fs %9.2fx (cpu %.2fx) %9.2fx (cpu %.2fx) %9.2fx" % (
            name, results[name]["untracked_wall_median"], ratio["run", "wall"], ratio["run", "cpu"],
            ratio["attach", "wall"], ratio["attach", "cpu"], ratio["attach/run"]), flush=True)
    summary = {key: geomean([r[key] for r in results.values()])
               for key in ("run_wall_ratio", "attach_wall_ratio", "run_cpu_ratio", "attach_cpu_ratio", "attach_over_run")}
    print("%-15s %8s %9.2fx (cpu %.2fx) %9.2fx (cpu %.2fx) %9.2fx" % (
        "geomean", "", summary["run_wall_ratio"], summary["run_cpu_ratio"], summary["attach_wall_ratio"],
        summary["attach_cpu_ratio"], summary["attach_over_run"]))
    with open(args.json_out, "w") as f:
        json.dump({"reps": args.reps, "options": args.mode, "python": sys.version.split()[0],
                   "workloads": results, "geomean": summary}, f)
    for leftover in os.listdir(work):
        os.unlink(os.path.join(work, leftover))
    os.rmdir(work)


if __name__ == "__main__":
    main()
