"""heapscope's pytest plugin: memory budgets as test failures.

Registered through the ``pytest11`` entry point when the ``heapscope`` package
is installed; inert unless pytest runs with ``--heapscope`` (or ``heapscope =
true`` in the ini file). See docs/PYTEST.md.

With ``--heapscope`` every test's call phase runs under a ``heapscope.Tracker``
writing one capture per test; the figures come from one ``heapscope stats
--json`` call on that capture (none when nothing needs them), and

- ``@pytest.mark.limit_memory("50 MB")`` fails a test whose peak memory
  exceeds the limit;
- ``@pytest.mark.limit_leaks("1 MB", filter_fn=None)`` fails a test that
  leaves more than the limit allocated (and not freed by its end) at any one
  location;
- ``--fail-on-increase`` fails a test whose peak grew beyond
  ``--increase-threshold`` since the previous run (its peak and capture kept
  in pytest's cache), naming the sites that grew (``heapscope diff --json``);
- the end of the run lists the tests that allocated the most.

This module is imported by every pytest run in an environment where heapscope
is installed: it imports nothing heavy at module level (the tracker extension
is loaded only when tracking starts).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Tuple, Union

import pytest

__all__ = ["parse_size", "parse_threshold", "LeakLocation"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CACHE_KEY = "heapscope/peaks"
# The capture of each test's last accepted run, for `heapscope diff` (under pytest's cache).
_BASELINE_DIR = "heapscope-baselines"

_MARKERS = (
    "limit_memory(limit): with --heapscope, fail the test when its peak memory exceeds "
    "limit, a size such as \"50 MB\" (B, KB, MB, GB, KiB, MiB, GiB). Inert without --heapscope.",
    "limit_leaks(limit, filter_fn=None): with --heapscope, fail the test when memory it "
    "allocated and did not free by its end exceeds limit at any one location. filter_fn(location) "
    "returning False ignores a location. Inert without --heapscope.",
)

# ---------------------------------------------------------------------------
# Sizes

_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]+)\s*$")


def parse_size(value: Union[str, int, float]) -> int:
    """Bytes in a size such as ``"50 MB"``, ``"1.5GiB"``, ``"512 B"`` or an int of bytes.

    Decimal units (KB, MB, GB, TB: powers of 1000) and binary units (KiB,
    MiB, GiB, TiB: powers of 1024); units are case-insensitive, the space is
    optional. Raises ValueError on anything else.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size such as \"50 MB\", got %r" % (value,))
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative: %r" % (value,))
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("a size must be a finite number of bytes, 0 or more: %r" % (value,))
        return int(value)
    if not isinstance(value, str):
        raise ValueError("expected a size such as \"50 MB\", got %r" % (value,))
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(
            "malformed size %r: expected a number and a unit, such as \"50 MB\" "
            "(units: B, KB, MB, GB, KiB, MiB, GiB)" % (value,)
        )
    number, unit = match.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(
            "unknown unit %r in size %r (units: B, KB, MB, GB, KiB, MiB, GiB)" % (unit, value)
        )
    return int(round(float(number) * factor))


def parse_threshold(value: Union[str, int, float]) -> Tuple[str, float]:
    """``("percent", 10.0)`` for ``"10%"``, ``("bytes", n)`` for a size such as ``"1 MB"``."""
    text = str(value).strip()
    if text.endswith("%"):
        try:
            percent = float(text[:-1].strip())
        except ValueError:
            percent = -1.0
        if not math.isfinite(percent) or percent < 0:
            raise ValueError("malformed threshold %r: expected a percentage such as \"10%%\" or a size such as \"1 MB\"" % (value,))
        return ("percent", percent)
    try:
        return ("bytes", parse_size(text))
    except ValueError:
        raise ValueError(
            "malformed threshold %r: expected a percentage such as \"10%%\" or a size such as \"1 MB\"" % (value,)
        ) from None


def _uses_binary_units(text):
    return isinstance(text, str) and "i" in text.lower()


def format_size(n: float, binary: bool = True) -> str:
    """``12.34 MiB`` (binary=True, as the CLI prints) or ``12.94 MB``."""
    n = float(n)
    base = 1024.0 if binary else 1000.0
    units = ["B", "KiB", "MiB", "GiB", "TiB"] if binary else ["B", "KB", "MB", "GB", "TB"]
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in units:
        if n < base or unit == units[-1]:
            if unit == "B":
                return "%s%d B" % (sign, n)
            return "%s%.2f %s" % (sign, n, unit)
        n /= base
    return "%s%.2f %s" % (sign, n, units[-1])  # pragma: no cover


# ---------------------------------------------------------------------------
# Markers


class LeakLocation:
    """One location that still held memory at the end of a test, given to ``filter_fn``.

    ``function``, ``file`` and ``line`` name the Python frame that made the
    allocations, ``bytes`` and ``count`` are what it still held. ``frames``
    is the same location as a one-element list of ``(function, file, line)``.
    """

    __slots__ = ("function", "file", "line", "bytes", "count")

    def __init__(self, function: str, file: str, line: int, bytes: int, count: int) -> None:
        self.function = function
        self.file = file
        self.line = line
        self.bytes = bytes
        self.count = count

    @property
    def frames(self) -> List[Tuple[str, str, int]]:
        return [(self.function, self.file, self.line)]

    def __repr__(self) -> str:
        return "LeakLocation(%r, %r, %r, bytes=%r, count=%r)" % (
            self.function, self.file, self.line, self.bytes, self.count)


class _MarkerError(Exception):
    pass


def _marker_limit(marker, name):
    args = list(marker.args)
    kwargs = dict(marker.kwargs)
    if args and "limit" in kwargs:
        raise _MarkerError("@pytest.mark.%s: the limit is given twice" % name)
    if args:
        limit = args.pop(0)
    elif "limit" in kwargs:
        limit = kwargs.pop("limit")
    else:
        raise _MarkerError("@pytest.mark.%s needs a limit, such as @pytest.mark.%s(\"50 MB\")" % (name, name))
    if args:
        raise _MarkerError("@pytest.mark.%s takes one positional argument (the limit), got %d" % (name, len(args) + 1))
    try:
        size = parse_size(limit)
    except ValueError as exc:
        raise _MarkerError("@pytest.mark.%s(%r): %s" % (name, limit, exc)) from None
    return limit, size, kwargs


def _item_limits(item):
    """``{"memory": (text, bytes), "leaks": (text, bytes, filter_fn)}`` from the closest markers."""
    limits = {}
    marker = item.get_closest_marker("limit_memory")
    if marker is not None:
        text, size, extra = _marker_limit(marker, "limit_memory")
        if extra:
            raise _MarkerError("@pytest.mark.limit_memory: unexpected argument(s) %s" % ", ".join(sorted(extra)))
        limits["memory"] = (text, size)
    marker = item.get_closest_marker("limit_leaks")
    if marker is not None:
        text, size, extra = _marker_limit(marker, "limit_leaks")
        filter_fn = extra.pop("filter_fn", None)
        if extra:
            raise _MarkerError("@pytest.mark.limit_leaks: unexpected argument(s) %s" % ", ".join(sorted(extra)))
        if filter_fn is not None and not callable(filter_fn):
            raise _MarkerError("@pytest.mark.limit_leaks: filter_fn must be callable, got %r" % (filter_fn,))
        limits["leaks"] = (text, size, filter_fn)
    return limits


# ---------------------------------------------------------------------------
# Options


def _other_plugin_has_generic_options():
    """Whether pytest-memray is installed: it defines --native, --stacks, ... too.

    Two plugins adding the same option make argparse fail for every pytest run,
    so then heapscope offers only its prefixed spellings (--heapscope-native, ...).
    """
    try:
        from importlib.metadata import entry_points

        try:
            eps = entry_points(group="pytest11")
        except TypeError:  # Python 3.9: a dict of groups
            eps = entry_points().get("pytest11", [])
        return any("memray" in (ep.value or "") for ep in eps)
    except Exception:
        return False


def pytest_addoption(parser):
    group = parser.getgroup("heapscope", "memory profiling with heapscope")
    shared = not _other_plugin_has_generic_options()

    def names(generic):
        prefixed = "--heapscope-" + generic[2:]
        return (generic, prefixed) if shared else (prefixed,)

    group.addoption("--heapscope", action="store_true", default=None,
                    help="Track every test's allocations with heapscope: enables the limit_memory and "
                         "limit_leaks markers and the summary of the tests that allocated the most.")
    group.addoption("--heapscope-bin-path", metavar="DIR", default=None,
                    help="Keep each test's capture in DIR, named after the test id (default: captures are deleted).")
    group.addoption(*names("--most-allocations"), metavar="N", type=int, default=None, dest="heapscope_most_allocations",
                    help="Show the N tests that allocated the most at the end of the run (default 5; 0 shows all).")
    group.addoption(*names("--stacks"), metavar="N", type=int, default=None, dest="heapscope_stacks",
                    help="Show the N locations that allocated the most for each test in the summary and "
                         "in failure messages (default 5).")
    group.addoption(*names("--native"), action="store_true", default=None, dest="heapscope_native",
                    help="heapscope: record native (C, C++, Rust) stacks as well.")
    group.addoption(*names("--no-trace-python-allocators"), action="store_false", default=None,
                    dest="heapscope_trace_python_allocators",
                    help="heapscope: record system allocations only, not CPython's PyMem/PyObject "
                         "allocators (makes limit_leaks inexact under pymalloc).")
    group.addoption(*names("--trace-python-allocators"), action="store_true", default=None,
                    dest="heapscope_trace_python_allocators",
                    help="heapscope: trace CPython's allocators (the default).")
    group.addoption("--hide-heapscope-summary", action="store_true", default=None,
                    help="Do not print the summary of the tests that allocated the most.")
    group.addoption(*names("--fail-on-increase"), action="store_true", default=None, dest="heapscope_fail_on_increase",
                    help="Fail a test whose peak memory grew beyond --increase-threshold since the "
                         "previous run (kept in pytest's cache).")
    group.addoption(*names("--increase-threshold"), metavar="THRESHOLD", default=None, dest="heapscope_increase_threshold",
                    help="Growth allowed by --fail-on-increase: a percentage (\"10%%\", the default) "
                         "or a size (\"1 MB\").")

    parser.addini("heapscope", type="bool", default=False, help="Same as --heapscope.")
    parser.addini("heapscope_bin_path", default="", help="Same as --heapscope-bin-path.")
    parser.addini("heapscope_most_allocations", default="5", help="Same as --most-allocations.")
    parser.addini("heapscope_stacks", default="5", help="Same as --stacks.")
    parser.addini("heapscope_native", type="bool", default=False, help="Same as --native.")
    parser.addini("heapscope_trace_python_allocators", type="bool", default=True,
                  help="false: same as --no-trace-python-allocators.")
    parser.addini("hide_heapscope_summary", type="bool", default=False, help="Same as --hide-heapscope-summary.")
    parser.addini("heapscope_fail_on_increase", type="bool", default=False, help="Same as --fail-on-increase.")
    parser.addini("heapscope_increase_threshold", default="10%", help="Same as --increase-threshold.")


def _setting(config, option, ini):
    value = config.getoption(option)
    if value is None:
        value = config.getini(ini)
    return value


def _int_setting(config, option, ini):
    value = _setting(config, option, ini)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise pytest.UsageError("heapscope: %s must be a whole number, got %r" % (ini, value)) from None
    if number < 0:
        raise pytest.UsageError("heapscope: %s must be 0 or more, got %d" % (ini, number))
    return number


def pytest_configure(config):
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    if not _setting(config, "heapscope", "heapscope"):
        return
    plugin = HeapscopePlugin(config)
    config.pluginmanager.register(plugin, "heapscope-session")


# ---------------------------------------------------------------------------
# The CLI


def _binary():
    from heapscope.__main__ import binary_path

    return binary_path()


def _nodeid_filename(nodeid):
    """A file name for a test id: ``tests/test_a.py::test_x[1]`` -> ``tests_test_a.py-test_x[1].hsc``."""
    name = nodeid.replace("::", "-").replace("/", "_").replace("\\", "_")
    name = re.sub(r"[^A-Za-z0-9._\-\[\]=,+@]", "_", name)
    if len(name) > 200:
        import hashlib

        digest = hashlib.sha1(nodeid.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        name = name[:180] + "-" + digest
    return name + ".hsc"


class HeapscopePlugin:
    """The per-session state of a run with --heapscope."""

    def __init__(self, config):
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.native = bool(_setting(config, "heapscope_native", "heapscope_native"))
        self.trace_python_allocators = bool(
            _setting(config, "heapscope_trace_python_allocators", "heapscope_trace_python_allocators"))
        self.hide_summary = bool(_setting(config, "hide_heapscope_summary", "hide_heapscope_summary"))
        self.most_allocations = _int_setting(config, "heapscope_most_allocations", "heapscope_most_allocations")
        self.stacks = _int_setting(config, "heapscope_stacks", "heapscope_stacks")
        self.fail_on_increase = bool(_setting(config, "heapscope_fail_on_increase", "heapscope_fail_on_increase"))
        threshold = _setting(config, "heapscope_increase_threshold", "heapscope_increase_threshold") or "10%"
        try:
            self.threshold = parse_threshold(threshold)
        except ValueError as exc:
            raise pytest.UsageError("heapscope: --increase-threshold: %s" % exc) from None
        self.threshold_text = str(threshold).strip()

        bin_path = _setting(config, "heapscope_bin_path", "heapscope_bin_path") or None
        if bin_path:
            bin_path = os.path.abspath(os.path.expanduser(str(bin_path)))
            try:
                os.makedirs(bin_path, exist_ok=True)
            except OSError as exc:
                raise pytest.UsageError("heapscope: cannot create --heapscope-bin-path %s: %s" % (bin_path, exc)) from None
        self.bin_path = bin_path
        self.tmpdir = None

        tracker_mod = sys.modules.get("heapscope._tracker")
        if not self.is_worker and tracker_mod is not None and tracker_mod.is_active():
            raise pytest.UsageError(
                "heapscope: --heapscope cannot track tests while this process is already tracked "
                "(by `heapscope run` or a heapscope.Tracker): only one Tracker can record at a time")
        binary = _binary()
        if not os.path.isfile(binary):
            raise pytest.UsageError(
                "heapscope: the heapscope binary is missing (%s); build it with `make build` "
                "or reinstall with `pip install ./PythonHarness`" % binary)
        self.binary = binary

        # Baselines for --fail-on-increase: read by the process that owns the
        # cache (the only process, or the xdist controller) and passed to workers.
        self.baselines = {}
        self.new_baselines = {}
        self.baseline_dir = None
        if self.fail_on_increase and getattr(config, "cache", None) is not None:
            self.baseline_dir = str(config.cache.mkdir(_BASELINE_DIR))
        if self.fail_on_increase:
            if self.is_worker:
                self.baselines = dict(config.workerinput.get("heapscope_baselines") or {})
            else:
                cache = getattr(config, "cache", None)
                if cache is None:
                    raise pytest.UsageError(
                        "heapscope: --fail-on-increase keeps the previous peaks in pytest's cache; "
                        "it cannot run with -p no:cacheprovider")
                self.baselines = dict(cache.get(_CACHE_KEY, {}) or {})
        self.results = []  # summaries of the call phases, from reports (also from xdist workers)

    # -- xdist ------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node):
        if self.fail_on_increase:
            node.workerinput["heapscope_baselines"] = self.baselines

    # -- collection: malformed markers are collection errors ---------------

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector):
        outcome = yield
        report = outcome.get_result()
        if report.outcome != "passed" or not report.result:
            return
        problems = []
        for node in report.result:
            if not isinstance(node, pytest.Item):
                continue
            try:
                _item_limits(node)
            except _MarkerError as exc:
                problems.append("%s: %s" % (node.nodeid, exc))
        if problems:
            report.outcome = "failed"
            report.longrepr = "heapscope: invalid memory limit marker\n" + "\n".join(problems)
            report.result = []

    # -- running a test ----------------------------------------------------

    def _capture_path(self, item):
        if self.bin_path:
            return os.path.join(self.bin_path, _nodeid_filename(item.nodeid))
        if self.tmpdir is None:
            self.tmpdir = tempfile.mkdtemp(prefix="heapscope-pytest-")
        return os.path.join(self.tmpdir, "test.hsc")

    # Tracking covers the test function only: for ordinary test functions
    # (pytest-asyncio's coroutines included) the innermost pytest_pyfunc_call,
    # so that pytest's own bookkeeping around the call (PYTEST_CURRENT_TEST,
    # hook dispatch) is not measured; for other items (unittest cases,
    # doctests, plugin items) the innermost pytest_runtest_call.

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_call(self, item):
        if not _tracks_in_pyfunc_call(item):
            yield from self._tracking(item)
            return
        yield
        if _STATE not in item.stash and self._wants_tracking(item):
            # The function was not called through pytest_pyfunc_call.
            item.stash[_STATE] = {"limits": {}, "capture": None,
                                  "error": "the test was not run through pytest_pyfunc_call, so it was not tracked"}

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        if _tracks_in_pyfunc_call(pyfuncitem) and _STATE not in pyfuncitem.stash:
            yield from self._tracking(pyfuncitem)
        else:
            yield

    def _wants_tracking(self, item):
        try:
            limits = _item_limits(item)
        except _MarkerError:  # reported at collection; not reached
            limits = {}
        return limits if (limits or self.bin_path or self.fail_on_increase or not self.hide_summary) else None

    def _tracking(self, item):
        """The body of a hook wrapper: the wrapped call runs under a Tracker."""
        import heapscope

        limits = self._wants_tracking(item)
        if limits is None:
            yield  # nothing would use the figures: do not track
            return
        path = self._capture_path(item)
        tracker = heapscope.Tracker(
            path,
            native=self.native,
            trace_python_allocators=self.trace_python_allocators,
            overwrite=True,
            compress=bool(self.bin_path),
        )
        state = {"limits": limits, "capture": path if self.bin_path else None}
        item.stash[_STATE] = state
        tracker.start()
        try:
            yield
        finally:
            tracker.stop()
            try:
                self._analyse(item, path, limits, state)
            except Exception as exc:  # a heapscope failure: reported on the test
                state["error"] = str(exc)
            finally:
                if not self.bin_path:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass

    def _stats(self, path, *extra):
        cmd = [self.binary, "stats", "--json", *extra, path]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError("`heapscope %s` failed: %s" % (
                " ".join(cmd[1:]), proc.stderr.decode("utf-8", "replace").strip()))
        return json.loads(proc.stdout)

    def _analyse(self, item, path, limits, state):
        needs_stats = bool(limits.get("memory")) or not self.hide_summary or self.fail_on_increase
        if needs_stats:
            n = max(self.stacks, 5)
            stats = self._stats(path, "-n", str(n))
            state["peak"] = int(stats.get("peak_bytes", 0))
            state["total_bytes"] = int(stats.get("total_bytes", 0))
            state["total_allocations"] = int(stats.get("total_allocations", 0))
            state["top"] = _own_locations(stats.get("top_by_bytes") or [])
        if "leaks" in limits:
            state["leaks"] = self._leaks(path, limits["leaks"])
        if self.fail_on_increase and self.baseline_dir:
            # Compared with the last accepted run's capture now (the capture may
            # be deleted before the report); kept as the next baseline if it passes.
            baseline = os.path.join(self.baseline_dir, _nodeid_filename(item.nodeid))
            if os.path.isfile(baseline):
                state["diff"] = self._diff(baseline, path)
            pending = baseline + ".pending"
            shutil.copyfile(path, pending)
            state["pending_baseline"] = pending

    def _diff(self, base, new):
        """``heapscope diff --json`` of the peaks of two captures."""
        cmd = [self.binary, "diff", "--json", base, new]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError("`heapscope %s` failed: %s" % (
                " ".join(cmd[1:]), proc.stderr.decode("utf-8", "replace").strip()))
        return json.loads(proc.stdout)

    def _leaks(self, path, leak_limit):
        """Locations that leaked more than the limit, after filter_fn."""
        _text, limit, filter_fn = leak_limit
        n = 50
        while True:
            stats = self._stats(path, "--leaks", "-n", str(n))
            locations = stats.get("top_by_bytes") or []
            over = []
            for entry in locations:
                if int(entry.get("bytes", 0)) <= limit:
                    continue
                if _is_own_location(entry):
                    continue
                if filter_fn is not None:
                    loc = LeakLocation(entry.get("function"), entry.get("file"), entry.get("line"),
                                       int(entry.get("bytes", 0)), int(entry.get("count", 0)))
                    if not filter_fn(loc):
                        continue
                over.append(entry)
            full = len(locations) >= n
            if not full or not locations or int(locations[-1].get("bytes", 0)) <= limit:
                return {"over": over}
            n *= 10  # every location above the limit may matter: ask for more

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.when != "call":
            return
        state = item.stash.get(_STATE, None)
        if state is None:
            return
        summary = {
            "nodeid": item.nodeid,
            "peak": state.get("peak"),
            "total_bytes": state.get("total_bytes"),
            "total_allocations": state.get("total_allocations"),
            "top": state.get("top") or [],
            "capture": state.get("capture"),
            "baseline_ok": False,
        }
        report.heapscope = summary
        try:
            self._check(item, report, state, summary)
        finally:
            pending = state.get("pending_baseline")
            if pending and os.path.exists(pending):
                if summary["baseline_ok"]:
                    os.replace(pending, pending[: -len(".pending")])
                else:
                    os.unlink(pending)

    def _check(self, item, report, state, summary):
        """Fails a passed test whose figures broke a limit; else marks its figures the new baseline."""
        if not report.passed:
            return
        if "error" in state:
            self._fail(report, "heapscope could not measure this test: %s" % state["error"])
            return
        messages = []
        limits = state["limits"]
        if "memory" in limits:
            text, limit = limits["memory"]
            peak = state["peak"]
            if peak > limit:
                messages.append(self._memory_message(text, limit, peak, state))
        if "leaks" in limits:
            message = self._leaks_message(limits["leaks"], state["leaks"])
            if message:
                messages.append(message)
        if self.fail_on_increase and state.get("peak") is not None:
            message = self._increase_message(item.nodeid, state["peak"], state.get("diff"))
            if message:
                messages.append(message)
        if messages:
            if state.get("capture"):
                messages.append("Capture: %s" % state["capture"])
            self._fail(report, "\n\n".join(messages))
        else:
            summary["baseline_ok"] = True

    @staticmethod
    def _fail(report, text):
        report.outcome = "failed"
        report.longrepr = text
        if hasattr(report, "wasxfail"):
            del report.wasxfail

    def _rel(self, path):
        if not path or path.startswith("<"):
            return path
        try:
            rel = os.path.relpath(path, str(self.config.rootpath))
        except ValueError:
            return path
        return path if rel.startswith("..") else rel

    def _location_lines(self, entries, binary, indent="    ", what="allocations"):
        lines = []
        for entry in entries[: self.stacks] if self.stacks else []:
            where = entry.get("function") or "?"
            if entry.get("file"):
                where += " at %s:%s" % (self._rel(entry["file"]), entry.get("line"))
            lines.append("%s%s in %s %s: %s" % (
                indent, format_size(entry.get("bytes", 0), binary),
                "{:,}".format(int(entry.get("count", 0))), what, where))
        return lines

    def _memory_message(self, text, limit, peak, state):
        binary = _uses_binary_units(text)
        lines = [
            "Test was limited to %s but its peak memory was %s (%s bytes; limit exceeded by %s)" % (
                text if isinstance(text, str) else format_size(limit, binary),
                format_size(peak, binary), "{:,}".format(peak), format_size(peak - limit, binary)),
        ]
        top = state.get("top") or []
        if top and self.stacks:
            lines.append("Locations that allocated the most during the test (%s in %s allocations in all):" % (
                format_size(state.get("total_bytes", 0), binary), "{:,}".format(state.get("total_allocations", 0))))
            lines.extend(self._location_lines(top, binary))
        return "\n".join(lines)

    def _leaks_message(self, leak_limit, leaks):
        text, limit, _filter = leak_limit
        over = leaks["over"]
        if not over:
            return None
        binary = _uses_binary_units(text)
        shown = text if isinstance(text, str) else format_size(limit, binary)
        lines = ["Test was limited to %s of leaked memory per location, but %d location%s leaked more:" % (
            shown, len(over), "" if len(over) == 1 else "s")]
        saved, self.stacks = self.stacks, max(self.stacks, len(over))
        try:
            lines.extend(self._location_lines(over, binary, what="allocations not freed"))
        finally:
            self.stacks = saved
        return "\n".join(lines)

    def _increase_message(self, nodeid, peak, diff=None):
        previous = self.baselines.get(nodeid)
        if diff is not None:
            # The diff's totals are the two peaks.
            previous, peak = int(diff["base"]["bytes"]), int(diff["new"]["bytes"])
        if previous is None:
            return None
        kind, amount = self.threshold
        allowed = previous * (1 + amount / 100.0) if kind == "percent" else previous + amount
        if peak <= allowed:
            return None
        growth = peak - previous
        percent = (" (+%.1f%%)" % (100.0 * growth / previous)) if previous else ""
        message = (
            "Peak memory grew from %s in the previous run to %s: +%s%s, beyond the allowed "
            "increase of %s (--fail-on-increase)" % (
                format_size(previous), format_size(peak), format_size(growth), percent, self.threshold_text))
        grown = [site for site in (diff or {}).get("sites", [])
                 if site["delta_bytes"] > 0 and not _is_own_location(site)][: self.stacks]
        if grown:
            lines = [message, "Sites that grew most since the previous run (heapscope diff):"]
            for site in grown:
                where = site["function"] + (" at %s:%s" % (self._rel(site["file"]), site["line"]) if site["file"] else "")
                lines.append("    +%s (%s -> %s, %s -> %s allocations): %s" % (
                    format_size(site["delta_bytes"]), format_size(site["base_bytes"]), format_size(site["new_bytes"]),
                    "{:,}".format(site["base_count"]), "{:,}".format(site["new_count"]), where))
            message = "\n".join(lines)
        return message

    # -- results, summary, cache -------------------------------------------

    def pytest_runtest_logreport(self, report):
        data = getattr(report, "heapscope", None)
        if report.when == "call" and isinstance(data, dict):
            self.results.append(data)
            if data.get("baseline_ok") and data.get("peak") is not None:
                self.new_baselines[data["nodeid"]] = int(data["peak"])

    def pytest_sessionfinish(self, session):
        if self.fail_on_increase and not self.is_worker and self.new_baselines:
            cache = getattr(self.config, "cache", None)
            if cache is not None:
                baselines = dict(cache.get(_CACHE_KEY, {}) or {})
                baselines.update(self.new_baselines)
                cache.set(_CACHE_KEY, baselines)

    def pytest_unconfigure(self, config):
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def pytest_terminal_summary(self, terminalreporter):
        if self.is_worker or self.hide_summary:
            return
        measured = [r for r in self.results if r.get("total_bytes") is not None]
        tr = terminalreporter
        tr.write_sep("=", "heapscope: tests that allocated the most")
        if not measured:
            tr.write_line("no test was measured")
            return
        measured.sort(key=lambda r: (r["total_bytes"], r.get("peak") or 0), reverse=True)
        shown = measured if self.most_allocations == 0 else measured[: self.most_allocations]
        tr.write_line("%d of %d tests, by memory allocated during the test:" % (len(shown), len(measured)))
        for rank, r in enumerate(shown, 1):
            tr.write_line("")
            tr.write_line("%d. %s" % (rank, r["nodeid"]), bold=True)
            tr.write_line("   allocated %s in %s allocations; peak memory %s" % (
                format_size(r["total_bytes"]), "{:,}".format(r["total_allocations"] or 0), format_size(r["peak"] or 0)))
            top = r.get("top") or []
            if top and self.stacks:
                tr.write_line("   locations that allocated the most:")
                for line in self._location_lines(top, True, indent="     "):
                    tr.write_line(line)
            if r.get("capture"):
                tr.write_line("   capture: %s" % r["capture"])


def _package_dir(name):
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else None


# Allocations made by the machinery around the test (heapscope's own start and
# stop, which names the running threads through threading.enumerate; pytest
# and pluggy calling the test) are left out of the lists and of limit_leaks.
_MACHINERY_DIRS = tuple(d + os.sep for d in (_PACKAGE_DIR, _package_dir("_pytest"), _package_dir("pluggy")) if d)
_THREADING_FILE = getattr(sys.modules.get("threading"), "__file__", None) or ""


def _tracks_in_pyfunc_call(item):
    """Whether the item's function is called through pytest_pyfunc_call (pytest.Function.runtest)."""
    if not isinstance(item, pytest.Function):
        return False
    runtest = getattr(type(item), "runtest", None)
    if runtest is pytest.Function.runtest:
        return True
    # pytest-asyncio's items wrap the coroutine, then call Function.runtest.
    return type(item).__module__.split(".")[0] == "pytest_asyncio"


def _is_own_location(entry):
    path = entry.get("file") or ""
    if path.startswith(_MACHINERY_DIRS):
        return True
    return entry.get("function") == "enumerate" and path == _THREADING_FILE


def _own_locations(entries):
    return [
        {k: e.get(k) for k in ("function", "file", "line", "bytes", "count")}
        for e in entries
        if not _is_own_location(e)
    ]


_STATE = pytest.StashKey()
