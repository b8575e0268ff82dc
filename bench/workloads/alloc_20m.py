"""Stats-time fixture: about 10 million allocations and 10 million frees.

A ring of live objects: each step allocates a bytes object (one of 13 sizes,
at one of four call sites) into a slot chosen by a fixed stride, freeing what
the slot held. Lifetimes, sizes and stacks vary, so the capture is neither
trivially compressible nor a strict alloc/free alternation. The hot loop
makes no Python calls, so a tracer that materialises frames (memray's profile
function) records the same ~20 million events as one that does not.
ALLOC_20M_N overrides the number of steps.
"""
import os

RING = 4099          # live objects at any time (prime: the stride visits every slot)
STRIDE = 1543
SIZES = [1, 7, 16, 24, 33, 60, 100, 180, 260, 400, 700, 1500, 4000]


def plan(length):
    """Parallel lists (slot, call site, size) and the step indices.

    The hot loop indexes them instead of unpacking tuples: with specialisation
    off (a profile function set), tuple unpacking allocates an iterator per
    step, and the event count would differ between tools.
    """
    slots, sites, sizes = [], [], []
    slot = 0
    for i in range(length):
        slot = (slot + STRIDE) % RING
        slots.append(slot)
        sites.append((i * 7 + i // 5) % 4)
        sizes.append(SIZES[(i * 5 + i // 3) % len(SIZES)])
    return slots, sites, sizes, list(range(length))


def parse_round(ring, slots, sites, sizes, steps):
    for k in steps:
        site = sites[k]
        if site == 0:
            ring[slots[k]] = bytes(sizes[k])      # call site 1
        elif site == 1:
            ring[slots[k]] = bytes(sizes[k])      # call site 2
        elif site == 2:
            ring[slots[k]] = bytes(sizes[k])      # call site 3
        else:
            ring[slots[k]] = bytes(sizes[k])      # call site 4


def run(n):
    ring = [None] * RING
    slots, sites, sizes, steps = plan(10007)
    rounds, rest = divmod(n, len(steps))
    for _ in range(rounds):
        parse_round(ring, slots, sites, sizes, steps)
    parse_round(ring, slots, sites, sizes, steps[:rest])
    return sum(len(b) for b in ring if b is not None)


if __name__ == "__main__":
    n = int(os.environ.get("ALLOC_20M_N", "10000000"))
    print("steps", n, "live bytes", run(n))
