"""Who holds the small objects still alive when tracking stops.

A capture records where each block was *allocated*. Why a block is still
alive is a different question: which object refers to it. `heapscope run`
answers it once, when tracking has stopped (the walk itself is not
recorded): for every container the garbage collector knows (lists, dicts,
sets, instances, ...), each small object it refers to is noted with the
container as its *holder*; the contents of tuples it holds (tuples that only
hold atomic objects are untracked by the GC and never listed on their own)
are held by the same container.

The result is a sidecar next to the capture, ``<capture>.refs``, read by
``heapscope pymalloc`` to say which objects keep pinned arenas alive
(docs/PYMALLOC.md). Addresses are those of the allocator's blocks, as in the
capture: an object's address minus its pre-header (the GC header, and on
3.11 the managed-dict pointers).

Format: the 8 bytes ``HSREFS1\\n``, a u32 flags word (bit 0: the walk stopped
at its budget, so some holders are missing), a u32 reserved word, then pairs
of little-endian u64 (referent block address, holder block address).
"""
from __future__ import annotations

import gc
import struct
import sys
import time
from array import array

MAGIC = b"HSREFS1\n"
FLAG_INCOMPLETE = 1

_HAVE_GC = 1 << 14
_MANAGED_DICT = 1 << 4
_MANAGED_WEAKREF = 1 << 3


def _preheader_size(tp):
    flags = tp.__flags__
    size = 0
    if flags & _HAVE_GC:
        size += 16 if sys.maxsize > 2**32 else 8
    word = 8 if sys.maxsize > 2**32 else 4
    if sys.version_info[:2] == (3, 11):
        if flags & _MANAGED_DICT:
            size += 2 * word
    elif sys.version_info[:2] >= (3, 12):
        if flags & (_MANAGED_DICT | _MANAGED_WEAKREF):
            size += 2 * word
    return size


def collect(threshold=512, max_pairs=1_000_000, budget_seconds=2.0):
    """(pairs, complete): referent and holder block addresses, flattened."""
    deadline = time.monotonic() + budget_seconds
    preheaders = {}
    pairs = array("Q")
    complete = True

    def block(obj):
        tp = type(obj)
        size = preheaders.get(tp)
        if size is None:
            size = preheaders[tp] = _preheader_size(tp)
        return id(obj) - size

    getsizeof = sys.getsizeof
    objects = gc.get_objects()
    own = {id(objects), id(pairs), id(preheaders)}
    for index, holder in enumerate(objects):
        if index & 1023 == 0 and time.monotonic() > deadline:
            complete = False
            break
        if type(holder) is tuple or id(holder) in own:
            continue
        try:
            referents = gc.get_referents(holder)
        except Exception:
            continue
        holder_block = block(holder)
        pending = referents
        depth = 0
        while pending and depth < 3:
            nested = []
            for obj in pending:
                try:
                    size = getsizeof(obj)
                except Exception:
                    continue
                if size <= threshold:
                    pairs.append(block(obj))
                    pairs.append(holder_block)
                if type(obj) is tuple:
                    nested.extend(gc.get_referents(obj))
            pending = nested
            depth += 1
        if len(pairs) >= 2 * max_pairs:
            complete = False
            break
    del objects
    return pairs, complete


def write_sidecar(capture_path, threshold=512):
    """Writes ``<capture_path>.refs``; returns its path, or None on failure."""
    try:
        pairs, complete = collect(threshold=threshold)
        if sys.byteorder != "little":
            pairs.byteswap()
        path = capture_path + ".refs"
        with open(path, "wb") as out:
            out.write(MAGIC)
            out.write(struct.pack("<II", 0 if complete else FLAG_INCOMPLETE, 0))
            pairs.tofile(out)
        return path
    except Exception:
        return None
