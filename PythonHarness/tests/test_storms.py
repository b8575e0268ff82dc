"""Thread and fork storms: threads allocating while another thread forks and
threads start and end, round after round. No deadlock, no crash, every
capture complete, and the counts exact: each thread's allocations are known
to the script, and `heapscope parse` lists every record to count them by."""
import collections
import re

import pytest

from conftest import write

ROUNDS, THREADS, BLOCKS, CHILD_BLOCKS = 100, 8, 40, 25
# Sizes nothing else in the interpreter asks for: thread i's blocks are
# bytearray(THREAD_SIZE + i), the fork children's bytearray(CHILD_SIZE); a
# bytearray's buffer is one byte more than its length.
THREAD_SIZE, CHILD_SIZE = 20_011, 30_011

STORM = """
import os, sys, threading, warnings
# 3.12+ warns that a multithreaded process forks: that is the point here.
warnings.simplefilter("ignore", DeprecationWarning)
ROUNDS, THREADS, BLOCKS, CHILD_BLOCKS, THREAD_SIZE, CHILD_SIZE = map(int, sys.argv[1:])
children = []

def allocate(size, go):
    go.wait()
    held = []
    for _ in range(BLOCKS):
        held.append(bytearray(size))
    del held  # every block freed by the thread that made it

def fork(round, go):
    go.wait()  # the allocating threads are running now
    pid = os.fork()
    if pid == 0:
        kept = [bytearray(CHILD_SIZE) for _ in range(CHILD_BLOCKS)]
        os._exit(round % 5)
    _, status = os.waitpid(pid, 0)
    children.append((pid, os.waitstatus_to_exitcode(status), round % 5))

for round in range(ROUNDS):
    go = threading.Barrier(THREADS + 1)
    threads = [threading.Thread(target=allocate, args=(THREAD_SIZE + i, go), name="storm-%d-%d" % (round, i))
               for i in range(THREADS)]
    threads.append(threading.Thread(target=fork, args=(round, go), name="forker-%d" % round))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
bad = [c for c in children if c[1] != c[2]]
print(len(children), "children", "bad statuses:", bad)
print(" ".join(str(c[0]) for c in children))
"""


def parse(hs, capture):
    """The records of a capture: its ALLOC and FREE lines as (kind, address,
    size, thread), the thread names, and whether it ends with END."""
    proc = hs("parse", str(capture))
    assert proc.returncode == 0, proc.stderr
    assert b"cut short" not in proc.stderr, (capture, proc.stderr)
    lines = proc.stdout.decode().splitlines()
    names, events = {}, []
    for line in lines:
        fields = line.split()
        if fields[0] == "THREAD_INFO":
            names[int(fields[1])] = re.search(r'name="([^"]*)"', line).group(1)
        elif fields[0] == "ALLOC":
            events.append(("ALLOC", fields[2], int(fields[3]), int(fields[-1].split("=")[1])))
        elif fields[0] == "FREE":
            events.append(("FREE", fields[2], None, int(fields[-1].split("=")[1])))
    return events, names, lines[-1].startswith("END ")


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_threads_allocating_while_another_forks(hs, tmp_path, native):
    write(tmp_path / "storm.py", STORM)
    args = [str(n) for n in (ROUNDS, THREADS, BLOCKS, CHILD_BLOCKS, THREAD_SIZE, CHILD_SIZE)]
    proc = hs("run", "-q", "--follow-fork", *(["--native"] if native else []), "-o", "s.hsc", "storm.py", *args,
              timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary, pids = proc.stdout.decode().splitlines()
    assert summary == "%d children bad statuses: []" % ROUNDS

    # The parent: each storm thread made BLOCKS blocks of its own size and
    # freed every one of them itself.
    events, names, complete = parse(hs, tmp_path / "s.hsc")
    assert complete
    storm = {tid: name for tid, name in names.items() if name.startswith("storm-")}
    assert len(storm) == ROUNDS * THREADS, len(storm)
    sizes = {THREAD_SIZE + i + 1: i for i in range(THREADS)}
    made = collections.defaultdict(collections.Counter)  # thread -> size -> blocks
    live = {}
    freed = collections.Counter()
    for kind, address, size, thread in events:
        if kind == "ALLOC":
            if size in sizes:
                made[thread][size] += 1
                live[address] = thread
        elif address in live:
            assert live.pop(address) == thread
            freed[thread] += 1
    assert sorted(made) == sorted(storm)
    for thread, name in storm.items():
        i = int(name.rsplit("-", 1)[1])
        assert made[thread] == {THREAD_SIZE + i + 1: BLOCKS}, (name, made[thread])
        assert freed[thread] == BLOCKS, name
    assert not live

    # Every fork child: a complete capture of its own, holding its
    # CHILD_BLOCKS blocks (made after the fork, so none of the parent's).
    for pid in pids.split():
        events, names, complete = parse(hs, tmp_path / ("s.hsc." + pid))
        assert complete, pid
        child = [e for e in events if e[0] == "ALLOC" and e[2] == CHILD_SIZE + 1]
        assert len(child) == CHILD_BLOCKS, pid
        assert not [e for e in events if e[0] == "ALLOC" and e[2] in sizes], pid
