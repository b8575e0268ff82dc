"""Runs a workload as __main__ once GO_FILE exists, and writes the workload's
own time as the last line of stderr: `timed: WALL_SECONDS CPU_SECONDS`.
For bench/attach.py: a process started plainly waits here (in Python code,
so the pending call of `heapscope attach` runs) until attach records.

usage: timed.py GO_FILE WORKLOAD [ARGS...]
"""
import os
import runpy
import sys
import time

go, workload = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.005)
sys.argv = sys.argv[2:]
wall, cpu = time.perf_counter(), time.process_time()
runpy.run_path(workload, run_name="__main__")
print("timed: %.6f %.6f" % (time.perf_counter() - wall, time.process_time() - cpu), file=sys.stderr, flush=True)
