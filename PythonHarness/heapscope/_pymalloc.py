"""pymalloc's geometry, read when tracking starts (docs/PYMALLOC.md).

CPython does not export its small-object allocator's constants, so they are
derived from the interpreter version (the values obmalloc.c compiles in for
a 64-bit build) and cross-checked against ``sys._debugmallocstats()``. Its
report goes to the C-level standard error, which must stay the program's own
while tracking starts, so it is read from a fresh interpreter of the same
executable and allocator, whose pymalloc has the same constants. That
interpreter costs about 20 ms, so what it said is kept per interpreter build
and allocator in the user's cache folder (``_debug_stats_text``) and asked
again only for a new build:

- "Small block threshold = 512, in 32 size classes" gives the threshold and
  the alignment (threshold / classes);
- "# arenas allocated current = N" and the "Total" of the arena section give
  the arena size (Total / N);
- "# bytes lost to pool headers" divided by the number of pools in use gives
  the pool header size;
- "# bytes lost to arena alignment" is a multiple of the pool size (an arena
  that is not pool-aligned loses the part of a pool before its first pool).

The result goes into the capture's metadata as the "pymalloc" object.
"""
from __future__ import annotations

import os
import sys

__all__ = ["geometry"]


def _derived():
    """What obmalloc.c compiles in for this CPython version (default build)."""
    pointer = 8 if sys.maxsize > 2**32 else 4
    version = sys.version_info[:2]
    alignment = 16 if pointer == 8 and version >= (3, 8) else 8
    threshold = 512 if version >= (3, 8) else 256
    if version >= (3, 10):
        # WITH_PYMALLOC_RADIX_TREE on 64-bit: ARENA_BITS 20, POOL_BITS 14.
        arena_size = (1 << 20) if pointer == 8 else (256 << 10)
        pool_size = (16 << 10) if pointer == 8 else (4 << 10)
    else:
        arena_size = 256 << 10
        pool_size = 4 << 10
    # struct pool_header: ref (union, padded to a pointer), freeblock,
    # nextpool, prevpool (pointers), arenaindex, szidx, nextoffset, maxnextoffset (uint).
    pool_header = 4 * pointer + 4 * 4
    return {
        "arena_size": arena_size,
        "pool_size": pool_size,
        "alignment": alignment,
        "small_request_threshold": threshold,
        "pool_header_size": pool_header,
        "size_classes": threshold // alignment,
    }


def _number(text):
    return int(text.replace(",", ""))


_reports = {}   # allocator name -> report, for the next start in this process


def _debug_stats_text(allocator_name):
    """sys._debugmallocstats()'s report from a fresh interpreter (no site, so
    no sitecustomize) running `allocator_name`, or the one kept from an
    earlier start of the same interpreter build. A cache that cannot be read
    or written only costs the time."""
    if allocator_name not in _reports:
        path = _cache_path(allocator_name)
        text = _read_text(path)
        if text is None:
            text = _fresh_report(allocator_name)
            if text:
                _write_text(path, text)
        _reports[allocator_name] = text
    return _reports[allocator_name]


def _fresh_report(allocator_name):
    if not (sys.executable and hasattr(sys, "_debugmallocstats")):
        return ""
    import subprocess   # here: most starts read the kept report instead

    env = dict(os.environ)
    env["PYTHONMALLOC"] = "pymalloc_debug" if str(allocator_name).endswith("_debug") else "pymalloc"
    try:
        proc = subprocess.run(
            [sys.executable, "-S", "-c", "import sys; sys._debugmallocstats()"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stderr.decode("ascii", "replace")


def _cache_path(allocator_name):
    """Where the report of this interpreter build and allocator is kept: the
    build is named by its executable and `sys.version` (which has its build
    date), so a rebuilt or upgraded interpreter is asked again."""
    import zlib

    folder = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    build = "%s\0%s\0%s" % (os.path.realpath(sys.executable or ""), sys.version, allocator_name)
    name = "debugmallocstats-%d%d-%08x.txt" % (sys.version_info[0], sys.version_info[1], zlib.crc32(build.encode()))
    return os.path.join(folder, "heapscope", name)


def _read_text(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _write_text(path, text):
    """Written whole or not at all: a start that reads it never sees half."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = "%s.%d" % (path, os.getpid())
        with open(temporary, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(temporary, path)
    except OSError:
        pass


def _report_numbers(text):
    """The report's `name = number` lines as {name: number} (the first of
    each name), the `Total` after the arena-alignment line as "arena total",
    and the threshold line's two numbers. Plain string work: importing re
    here would cost every start ~5 ms."""
    numbers = {}
    previous = None
    for line in text.splitlines():
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals:
            previous = None
            continue
        if name == "Small block threshold":
            # "Small block threshold = 512, in 32 size classes."
            words = value.replace(",", " ").split()
            if len(words) >= 3 and words[0].isdigit() and words[2].isdigit():
                numbers["threshold"], numbers["size classes"] = int(words[0]), int(words[2])
        digits = value.strip().replace(",", "")
        if digits.isdigit():
            key = "arena total" if name == "Total" and previous == "# bytes lost to arena alignment" else name
            numbers.setdefault(key, int(digits))
        previous = name
    return numbers


def _cross_check(geometry, text):
    """Checks the derived values against the report; returns the checks made."""
    numbers = _report_numbers(text)
    checks = {}
    if "threshold" in numbers:
        threshold, classes = numbers["threshold"], numbers["size classes"]
        checks["small_request_threshold"] = threshold == geometry["small_request_threshold"]
        checks["alignment"] = classes > 0 and threshold // classes == geometry["alignment"]
        checks["size_classes"] = classes == geometry["size_classes"]
    arenas = numbers.get("# arenas allocated current", 0)
    if arenas > 0 and "arena total" in numbers:
        checks["arena_size"] = numbers["arena total"] == arenas * geometry["arena_size"]
    pools = 0
    for line in text.splitlines():
        # class   size   num pools   blocks in use  avail blocks
        parts = line.split()
        if len(parts) == 5 and all(p.replace(",", "").isdigit() for p in parts):
            pools += _number(parts[2])
    if "# bytes lost to pool headers" in numbers and pools > 0:
        checks["pool_header_size"] = numbers["# bytes lost to pool headers"] == pools * geometry["pool_header_size"]
    lost = numbers.get("# bytes lost to arena alignment", 0)
    if lost > 0 and "# arenas allocated current" in numbers:
        # The report counts one whole pool for each arena that does not start
        # on a pool boundary (from 3.10 arenas are only page-aligned).
        checks["pool_size"] = lost % geometry["pool_size"] == 0 and lost <= arenas * geometry["pool_size"]
    return checks


def geometry(allocator_name=None):
    """The "pymalloc" metadata object: pymalloc's constants, how they were
    found, and whether the interpreter's own statistics agree with them."""
    result = _derived()
    result["source"] = "derived from CPython %d.%d" % sys.version_info[:2]
    checks = {}
    if allocator_name is None or str(allocator_name).startswith("pymalloc"):
        try:
            checks = _cross_check(result, _debug_stats_text(allocator_name))
        except Exception:
            checks = {}
    result["cross_checked"] = sorted(k for k, ok in checks.items() if ok)
    failed = sorted(k for k, ok in checks.items() if not ok)
    if failed:
        result["cross_check_failed"] = failed
    if str(allocator_name or "").endswith("_debug"):
        # The debug hooks put 2 * sizeof(size_t) before the data (the size
        # and the API id + forbidden bytes) and 1 * sizeof(size_t) after it.
        word = 8 if sys.maxsize > 2**32 else 4
        result["debug_offset"] = 2 * word
        result["debug_extra"] = 3 * word
    return result


if __name__ == "__main__":  # pragma: no cover - a manual check
    import json

    print(json.dumps(geometry("pymalloc"), indent=2))
