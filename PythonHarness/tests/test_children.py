"""--follow-fork follows every Python child: fork, multiprocessing's spawn and
forkserver, subprocess of sys.executable, os.execv. Each records into
`<parent's capture>.<pid>` with the same options; the summary lists them all."""
import json
import os
import re

import pytest

from conftest import write

# No comprehension: its frame is named differently by each CPython version.
WORK = """
def work(n):
    held = []
    for _ in range(n):
        held.append(bytearray(1000))
    return len(held)
"""


def captures(tmp_path, base):
    return sorted(p.name for p in tmp_path.iterdir() if re.fullmatch(re.escape(base) + r"(\.\d+(-\d+)?)*", p.name))


def top_function(hs, capture):
    stats = hs.stats_json(capture, "-n", "5")
    return stats, [e["function"] for e in stats["top_by_bytes"]]


def run_followed(hs, tmp_path, script, text, capture):
    """`heapscope run --follow-fork -o capture script` of a script with this text; it must succeed."""
    write(tmp_path / script, text)
    proc = hs("run", "--follow-fork", "-o", capture, script)
    assert proc.returncode == 0, proc.stderr
    return proc


def listed_children(stderr):
    line = next(l for l in stderr.decode().splitlines() if l.strip().startswith("child processes:"))
    return sorted(os.path.basename(p.strip()) for p in line.split("captures:")[1].split(","))


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_pool_workers_of_every_start_method(hs, tmp_path, method):
    write(
        tmp_path / "pool.py",
        "import multiprocessing as mp\n" + WORK + "if __name__ == '__main__':\n"
        "    with mp.get_context(%r).Pool(2) as pool:\n"
        "        print(sum(pool.map(work, [3000] * 4)))\n" % method,
    )
    proc = hs("run", "--follow-fork", "--native", "-o", "p.hsc", "pool.py", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"12000\n"
    children = captures(tmp_path, "p.hsc")[1:]
    assert listed_children(proc.stderr) == children
    stats = {name: hs.stats_json(tmp_path / name, "-n", "5") for name in children}
    for name, child in stats.items():
        assert child["truncated"] is False, name
        assert child["metadata"]["native"] is True  # the parent's options
    # The workers: spawn's run spawn_main; forkserver's are forked by the
    # server, so named <server capture>.<pid>.
    if method == "spawn":
        workers = [n for n in children if "spawn_main" in " ".join(stats[n]["metadata"]["command_line"])]
    else:
        workers = [n for n in children if n.count(".") == 3]
    assert len(workers) == 2, children
    # Together they ran work() 4 times on 3000 blocks of 1000 bytes (which
    # worker ran how many is the pool's business).
    total = sum(e["bytes"] for n in workers for e in stats[n]["top_by_bytes"] if e["function"] == "work")
    assert total >= 4 * 3000 * 1000


def test_subprocess_of_sys_executable(hs, tmp_path):
    write(tmp_path / "child.py", WORK + "print(work(2500))\n")
    parent = (
        "import os, subprocess, sys\n"
        "subprocess.run([sys.executable, 'child.py'], check=True)\n"
        # The program sees the user's environment, not heapscope's.
        "print(sorted(k for k in os.environ if k.startswith('HEAPSCOPE')), os.environ.get('PYTHONPATH'))\n"
    )
    proc = run_followed(hs, tmp_path, "parent.py", parent, "s.hsc")
    assert proc.stdout == b"2500\n[] None\n"
    (child,) = captures(tmp_path, "s.hsc")[1:]
    stats, functions = top_function(hs, tmp_path / child)
    assert stats["truncated"] is False
    assert functions[0] == "work", functions
    assert stats["metadata"]["command_line"] == ["child.py"]
    assert stats["parent_pid"] == hs.stats_json(tmp_path / "s.hsc")["pid"]
    # The parent's capture is its own: work() never ran there.
    parent, parent_functions = top_function(hs, tmp_path / "s.hsc")
    assert "work" not in parent_functions
    assert listed_children(proc.stderr) == [child]


def test_without_follow_fork_children_are_not_traced(hs, tmp_path):
    write(tmp_path / "parent.py", "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'pass'], check=True)\n")
    proc = hs("run", "-o", "n.hsc", "parent.py")
    assert proc.returncode == 0, proc.stderr
    assert captures(tmp_path, "n.hsc") == ["n.hsc"]


def test_os_execv_of_python(hs, tmp_path):
    # The program forks; the child execs a Python; then the program execs itself.
    script = (
        "import os, sys\n" + WORK + "if len(sys.argv) > 1:\n"
        "    print(sys.argv[1], work(1500), flush=True)\n"
        "    sys.exit(0)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.execv(sys.executable, [sys.executable, 'ex.py', 'child'])\n"
        "os.waitpid(pid, 0)\n"
        "os.execv(sys.executable, [sys.executable, 'ex.py', 'again'])\n"
    )
    proc = run_followed(hs, tmp_path, "ex.py", script, "e.hsc")
    assert proc.stdout == b"child 1500\nagain 1500\n"
    names = captures(tmp_path, "e.hsc")
    # e.hsc (before its exec), e.hsc.<root pid> (after), e.hsc.<fork pid>
    # (the fork child before its exec) and e.hsc.<fork pid>-2 (after).
    assert len(names) == 4, names
    root_pid = hs.stats_json(tmp_path / "e.hsc")["pid"]
    assert "e.hsc.%d" % root_pid in names
    assert any(n.endswith("-2") for n in names), names
    execd = {}
    for name in names:
        stats, functions = top_function(hs, tmp_path / name)
        assert stats["truncated"] is False, name  # exec ends the image's capture
        if stats["metadata"]["command_line"][-1] in ("child", "again"):
            execd[stats["metadata"]["command_line"][-1]] = functions
    assert sorted(execd) == ["again", "child"]
    for functions in execd.values():
        assert functions[0] == "work", functions
    assert listed_children(proc.stderr) == names[1:]


def test_a_child_never_overwrites_a_capture(hs, tmp_path):
    # A file already at a child's name stays; the child writes <name>-2.
    run_followed(hs, tmp_path, "parent.py", "import os, sys\n"
                 "open('c.hsc.%d' % os.getpid(), 'w').write('mine')\n"
                 "os.execv(sys.executable, [sys.executable, '-c', 'x = bytearray(10**6)'])\n", "c.hsc")
    pid = hs.stats_json(tmp_path / "c.hsc")["pid"]
    assert (tmp_path / ("c.hsc.%d" % pid)).read_text() == "mine"
    stats = hs.stats_json(tmp_path / ("c.hsc.%d-2" % pid))
    assert stats["truncated"] is False and stats["peak_bytes"] >= 10**6


# The parent holds 10 blocks of 100,000 bytes, each forked child n of them.
TREE = """
import os
def parent_work():
    return [bytearray(100_000) for _ in range(10)]
def child_work(n):
    return [bytearray(100_000) for _ in range(n)]
held = parent_work()
pids = []
for n in (20, 30):
    pid = os.fork()
    if pid == 0:
        x = child_work(n)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""


def test_reports_over_the_process_tree(hs, tmp_path):
    run_followed(hs, tmp_path, "tree.py", TREE, "t.hsc")
    names = captures(tmp_path, "t.hsc")
    assert len(names) == 3, names
    own = {name: hs.stats_json(tmp_path / name) for name in names}
    # Found by the headers' pid chain, not file times: old times change nothing,
    # a file at a child's name from another process is left out with a note.
    for name in names[1:]:
        os.utime(tmp_path / name, (0, 0))
    (tmp_path / "t.hsc.1").write_bytes((tmp_path / names[1]).read_bytes())
    proc = hs("stats", "--children", "--json", "t.hsc")
    assert proc.returncode == 0, proc.stderr
    assert b"t.hsc.1: left out: not a child of process" in proc.stderr
    tree = json.loads(proc.stdout)
    processes = {p["capture"]: p for p in tree["processes"]}
    assert sorted(processes) == names
    for name, stats in own.items():
        for key in ("pid", "parent_pid", "total_allocations", "total_bytes", "peak_bytes", "leaked_bytes"):
            assert processes[name][key] == stats[key], (name, key)
    for key in ("total_allocations", "total_bytes", "peak_bytes", "leaked_bytes"):
        assert tree[key] == sum(stats[key] for stats in own.values()), key
    # Each process's own figures hold what it allocated: 10, 20 and 30 blocks.
    blocks = sorted(p["peak_bytes"] // 100_000 for p in processes.values())
    assert blocks == [10, 20, 30], blocks
    assert b"sum of the 3 processes' own peaks" in hs("stats", "--children", "t.hsc").stdout

    # One root per process, the children under the parent's.
    text = hs("tree", "--children", "-b", "20", "t.hsc").stdout.decode()
    roots = [l for l in text.splitlines() if re.search(r"process \d+: tree\.py", l)]
    assert len(roots) == 3, text
    depth = [len(l) - len(l.lstrip("│├└─ ")) for l in roots]
    assert depth[0] < depth[1] == depth[2], roots
    page = tmp_path / "t.html"
    assert hs("flamegraph", "--children", "-o", str(page), "t.hsc").returncode == 0
    for stats in own.values():
        assert "process %d: tree.py" % stats["pid"] in page.read_text()


def test_process_tree_with_children_cut_short(hs, tmp_path):
    # One child's capture loses its end (it is read to its last complete
    # record), the other's is cut inside its header (left out): notes, not failures.
    write(tmp_path / "tree.py", TREE)
    # Uncompressed: a small zstd capture is one block, unreadable once cut.
    assert hs("run", "--follow-fork", "--no-compress", "-o", "c.hsc", "tree.py").returncode == 0
    first, second = (tmp_path / name for name in captures(tmp_path, "c.hsc")[1:])
    first.write_bytes(first.read_bytes()[:-200])
    second.write_bytes(second.read_bytes()[:100])
    proc = hs("stats", "--children", "--json", "c.hsc")
    assert proc.returncode == 0, proc.stderr
    assert ("%s: left out" % second.name).encode() in proc.stderr
    processes = json.loads(proc.stdout)["processes"]
    assert [(p["capture"], p["truncated"]) for p in processes] == [("c.hsc", False), (first.name, True)]
