"""Deep stacks: the whole Python stack is recorded, its frames keep their ids
from the root (no re-interning as the depth changes), and a stack deeper
than the tracker keeps (16384 frames) ends in a marker frame every report
shows."""
import re

from conftest import write

MARKER = "[outer frames not recorded]"


def stacks(hs, capture, size_range):
    """(stacks of the ALLOCs whose size is in size_range, innermost first, as
    function names; frame records per function)."""
    proc = hs("parse", str(capture))
    assert proc.returncode == 0, proc.stderr.decode()
    strings, codes, frames, found = {}, {}, {}, []
    frame_records = {}
    for line in proc.stdout.decode().splitlines():
        if m := re.match(r'STRING (\d+) "(.*)"$', line):
            strings[int(m[1])] = m[2]
        elif m := re.match(r"CODE (\d+) name=\d+ qualname=(\d+)", line):
            codes[int(m[1])] = strings[int(m[2])]
        elif m := re.match(r"FRAME (\d+) parent=(\d+) code=(\d+)", line):
            name = codes[int(m[3])]
            frames[int(m[1])] = (int(m[2]), name)
            frame_records[name] = frame_records.get(name, 0) + 1
        elif (m := re.match(r"ALLOC \w+ 0x[0-9a-f]+ (\d+) frame=(\d+)", line)) and int(m[1]) in size_range:
            stack, frame = [], int(m[2])
            while frame:
                frame, name = frames[frame]
                stack.append(name)
            found.append(stack)
    return found, frame_records


def test_a_recursion_1000_deep_is_recorded_whole_without_reinterning(hs, tmp_path):
    write(tmp_path / "deep.py", """
import sys
sys.setrecursionlimit(5_000)

def down(n, size):
    if n == 0:
        return bytearray(size)
    return down(n - 1, size)

kept = []
for i in range(20):
    kept.append(down(1000 + i, 200_000 + i))
""")
    proc = hs("run", "-q", "-o", "deep.hsc", "deep.py")
    assert proc.returncode == 0, proc.stderr.decode()
    found, frame_records = stacks(hs, tmp_path / "deep.hsc", range(200_000, 200_030))
    assert len(found) == 20
    for i, stack in enumerate(sorted(found, key=len)):
        # down(1000 + i) ... down(0): every frame, then the module's.
        assert stack[:1001 + i] == ["down"] * (1001 + i), stack[:3]
        assert stack[1001 + i] == "<module>"
        assert MARKER not in stack
    # Each deeper call shares its outer frames with the one before: at most
    # two FRAMEs per level (the call, and the `n - 1` that allocates an int
    # above 256), not a thousand per allocation.
    assert frame_records["down"] <= 2 * 1020 + 20


def test_a_stack_deeper_than_kept_ends_in_a_marker_frame(hs, tmp_path):
    # A thread with a large C stack: 3.10 runs each Python call on it.
    write(tmp_path / "deeper.py", """
import sys, threading
sys.setrecursionlimit(50_000)
threading.stack_size(512 * 1024 * 1024)

def down(n):
    if n == 0:
        return bytearray(300_001)
    return down(n - 1)

def main():
    global kept
    kept = down(20_000)

t = threading.Thread(target=main)
t.start()
t.join()
""")
    proc = hs("run", "-q", "-o", "deeper.hsc", "deeper.py")
    assert proc.returncode == 0, proc.stderr.decode()
    found, _ = stacks(hs, tmp_path / "deeper.hsc", range(300_001, 300_003))
    assert len(found) == 1
    stack = found[0]
    assert len(stack) == 16384
    assert stack[:-1] == ["down"] * 16383 and stack[-1] == MARKER
    # Reports name it like any other function.
    tree = hs("tree", str(tmp_path / "deeper.hsc"))
    assert tree.returncode == 0, tree.stderr.decode()
    assert MARKER in tree.stdout.decode()
