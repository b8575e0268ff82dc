"""heapscope: a tracing memory profiler for Python and the native code it calls.

Record a whole program from the command line::

    heapscope run -o capture.hsc script.py args...

or one block of a program with the Python API::

    import heapscope

    with heapscope.Tracker("block.hsc"):
        build_index(corpus)

then read the capture with ``heapscope stats``, ``heapscope summary`` or
``heapscope parse``. See docs/PYTHON_API.md.

PYTEST_DONT_REWRITE: `heapscope run -m pytest` imports this package before
pytest loads its plugin; the marker keeps pytest from warning about it.
"""
from __future__ import annotations

import _thread
import errno
import os
import sys

# The names below only annotate (postponed evaluation, above): not importing
# typing at run time keeps `heapscope run`'s start-up short (type checkers
# read this block as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, Literal, Optional, Type, Union

__all__ = ["Tracker", "__version__"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# VERSION is the one place the version is kept: pyproject.toml and
# `heapscope --version` read the same file.
with open(os.path.join(_PACKAGE_DIR, "VERSION"), encoding="ascii") as _f:
    __version__: str = _f.read().strip()
del _f

# The Tracker that is recording in this process (at most one).
_active_tracker: Optional["Tracker"] = None
# `_thread`, not `threading`: the `heapscope` command imports this package
# only to start the CLI, and threading's imports would add 3 ms to each.
_lock = _thread.allocate_lock()


_tracker_mod = None


def _tracker_module():
    """Imports the compiled tracker, turning a missing or foreign build into one clear ImportError.
    Kept once imported: stop runs it while recording, and an import allocates."""
    global _tracker_mod
    if _tracker_mod is None:
        try:
            from heapscope import _tracker
        except ImportError as exc:
            raise ImportError(_explain_import_failure(exc)) from exc
        _tracker_mod = _tracker
    return _tracker_mod


def _explain_import_failure(exc):
    here = "CPython %d.%d (%s)" % (sys.version_info[0], sys.version_info[1], sys.executable)
    if sys.implementation.name != "cpython":
        return "heapscope supports CPython only; this is %s (%s)" % (sys.implementation.name, sys.executable)
    built = sorted(n for n in os.listdir(_PACKAGE_DIR) if n.startswith("_tracker") and n.endswith(".so"))
    if not built:
        return (
            "heapscope's tracker extension is not built (no _tracker*.so in %s); "
            "run `make build` or `pip install ./PythonHarness`" % _PACKAGE_DIR
        )
    versions = []
    for name in built:
        # _tracker.cpython-311-x86_64-linux-gnu.so -> 3.11
        parts = name.split(".")
        if len(parts) >= 3 and parts[1].startswith("cpython-"):
            tag = parts[1].split("-")[1]
            versions.append("%s.%s" % (tag[0], tag[1:]))
    if versions and "%d.%d" % sys.version_info[:2] not in versions:
        return (
            "heapscope's tracker was built for CPython %s, but this is %s; "
            "rebuild it with that interpreter (make build PYTHON=%s)"
            % (", ".join(versions), here, sys.executable)
        )
    message = str(exc)
    if "heapscope" not in message:
        message = "cannot load heapscope's tracker (%s): %s" % (", ".join(built), message)
    return message


def _json_text(value: Any) -> str:
    """json.dumps of plain values (the metadata), without the json package:
    its imports (re, enum) would add ~10 ms to every `heapscope run` and
    leave json and re imported in the program before it starts."""
    import _json

    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_json_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(_json_text(str(k)) + ": " + _json_text(v) for k, v in value.items()) + "}"
    raise TypeError("metadata values are str, int, float, bool, None, lists and dicts, not %s" % type(value).__name__)


def _platform_name():
    try:
        machine = os.uname().machine
    except AttributeError:  # pragma: no cover - not on Linux
        machine = "unknown"
    return "%s-%s" % (sys.platform, machine)


# ---------------------------------------------------------------------------
# Thread names: while a Tracker is active, every thread that starts reports
# its name to the tracker (THREAD_INFO records), and threads already running
# are named when tracking starts.

_original_bootstrap_inner = None
_thread_start_hook = None


def _install_thread_hook():
    """Threads the program starts while recording are named as they start, by
    the tracker's C replacement of Thread._bootstrap_inner (no Python frame
    of heapscope's on their stacks)."""
    global _original_bootstrap_inner, _thread_start_hook
    import threading

    if _original_bootstrap_inner is None:
        _original_bootstrap_inner = threading.Thread._bootstrap_inner
        _thread_start_hook = _tracker_module().thread_start_hook(_original_bootstrap_inner)
        threading.Thread._bootstrap_inner = _thread_start_hook


def _running_threads():
    """(name, native id) of the threads running: listed while nothing is
    recorded (before start, after pause), as heapscope's own work."""
    import threading

    return [(str(t.name), int(t.native_id)) for t in threading.enumerate() if getattr(t, "native_id", None) is not None]


def _remove_thread_hook():
    global _original_bootstrap_inner
    if _original_bootstrap_inner is None:
        return
    import threading

    if threading.Thread.__dict__.get("_bootstrap_inner") is _thread_start_hook:
        threading.Thread._bootstrap_inner = _original_bootstrap_inner
        _original_bootstrap_inner = None
    # Otherwise someone patched over us: leave their patch alone; ours is
    # inert while no Tracker is active.


class _ForkWarningOfTheWriter:
    """The message of a warnings filter: CPython 3.12+ warns at os.fork() when
    the process has more than one OS thread (it counts them in
    /proc/self/stat), and while recording one of them is heapscope's writer.
    This matches the warning only when the writer is the one other thread, so
    a program that is single-threaded itself is not warned because of
    heapscope; one with threads of its own still is, and its own filters
    decide as they would have."""

    def match(self, message):
        if not (message.startswith("This process (pid=") and ") is multi-threaded, use of " in message
                and "() may lead to deadlocks in the child" in message) or not _tracker_module().is_active():
            return None
        try:
            with open("/proc/self/status") as status:
                threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
        except (OSError, StopIteration, ValueError):
            return None
        return threads <= 2 or None


_FORK_WARNING = _ForkWarningOfTheWriter()


def _install_fork_warning_filter():
    import warnings   # here, not at import: it keeps `heapscope run`'s start-up short

    if sys.version_info >= (3, 12) and not any(f[1] is _FORK_WARNING for f in warnings.filters):
        warnings.filters.insert(0, ("ignore", _FORK_WARNING, DeprecationWarning, None, 0))
        warnings._filters_mutated()


# ---------------------------------------------------------------------------


class Tracker:
    """Records every allocation made while it is active into a capture file.

    Use it as a context manager: only the allocations (and frees) made inside
    the ``with`` block are recorded::

        with heapscope.Tracker("out.hsc"):
            work()

    Arguments mirror ``heapscope run``:

    - ``path``: the capture file to write.
    - ``native``: also record native (C/C++/Rust) stacks.
    - ``trace_python_allocators``: hook CPython's PyMem/PyObject allocators
      (default); False records only system allocations (malloc, mmap, ...).
    - ``follow_fork``: forked children write their own capture.
    - ``overwrite``: replace ``path`` if it exists (else FileExistsError).
    - ``memory_interval_ms``: period of the resident-memory snapshots.
    - ``compress``: zstd-compress the capture as it is written.
    - ``memory_limit``: bytes of traced heap; when the heap exceeds it, or
      the memory the process can still get falls under the floor of
      ``heapscope run --memory-limit`` (100 MiB or 2%), the capture ends
      there (complete) and the process exits at once with status 120
      (docs/CLI.md, "--memory-limit"). None: no limit.
    - ``aggregate``: write an aggregated capture (per-stack totals, rewritten
      every second; docs/PYTHON_API.md): the records stream to a ``heapscope
      aggregate`` child process, which writes ``path``; ``stop`` waits for it.

    Only one Tracker can be active in a process at a time (a second one
    raises RuntimeError, also while ``heapscope run`` is tracking the whole
    program).
    """

    def __init__(
        self,
        path: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"],
        *,
        native: bool = False,
        trace_python_allocators: bool = True,
        follow_fork: bool = False,
        overwrite: bool = False,
        memory_interval_ms: int = 10,
        compress: bool = True,
        memory_limit: Optional[int] = None,
        aggregate: bool = False,
    ) -> None:
        raw = os.fspath(path)
        self.path: str = raw if isinstance(raw, str) else os.fsdecode(raw)
        self.native = bool(native)
        self.trace_python_allocators = bool(trace_python_allocators)
        self.follow_fork = bool(follow_fork)
        self.overwrite = bool(overwrite)
        self.memory_interval_ms = int(memory_interval_ms)
        if self.memory_interval_ms <= 0:
            raise ValueError("memory_interval_ms must be a positive number of milliseconds")
        self.compress = bool(compress)
        self.memory_limit = None if memory_limit is None else int(memory_limit)
        if self.memory_limit is not None and self.memory_limit <= 0:
            raise ValueError("memory_limit must be a positive number of bytes")
        self.aggregate = bool(aggregate)
        if self.aggregate and self.follow_fork:
            raise ValueError("aggregate=True does not follow child processes: leave out follow_fork")
        if self.aggregate and self.memory_limit is not None:
            raise ValueError("aggregate=True cannot be used with memory_limit")
        self._aggregator = None   # aggregate=True: the `heapscope aggregate` process writing path
        self._source = "api"
        self._command_line: Optional[list[str]] = None
        self._extra_metadata: Optional[dict[str, Any]] = None
        self._parent_pid = 0   # `run --follow-fork`: an exec'd child's parent
        self._live_fd = -1   # `run --live`: the socket the tracker also streams the records to
        # The tracker watches the memory floor under a memory limit, unless
        # `heapscope run` watches it from outside (its bootstrap clears this).
        self._watch_floor = True
        # run's and attach's exit summary: the capture ends with the tracker's totals (docs/FORMAT.md)
        self._count_totals = False
        self._started = False
        # Recording was paused for stop by its caller (__exit__, run's bootstrap).
        self._paused = False

    def __repr__(self) -> str:
        return "heapscope.Tracker(%r, native=%r, trace_python_allocators=%r, follow_fork=%r)" % (
            self.path,
            self.native,
            self.trace_python_allocators,
            self.follow_fork,
        )

    def metadata(self, allocator_name: Optional[str] = None) -> dict[str, Any]:
        """The metadata object written into the capture header (docs/FORMAT.md)."""
        command_line = self._command_line if self._command_line is not None else list(sys.argv)
        metadata = {
            "command_line": [str(a) for a in command_line],
            "python_version": sys.version.split()[0],
            "python_executable": sys.executable,
            "python_allocator": allocator_name or "unknown",
            "native": self.native,
            "trace_python_allocators": self.trace_python_allocators,
            "follow_fork": self.follow_fork,
            "memory_interval_ms": self.memory_interval_ms,
            "memory_limit": self.memory_limit,
            "platform": _platform_name(),
            "source": self._source,
        }
        # pymalloc's geometry (docs/PYMALLOC.md) and, for `run --leaks`, the
        # leak-hunt settings (docs/FORMAT.md, "Metadata keys").
        try:
            from heapscope._pymalloc import geometry

            metadata["pymalloc"] = geometry(allocator_name)
        except Exception:
            pass
        metadata.update(self._extra_metadata or {})
        return metadata

    def start(self) -> "Tracker":
        """Starts recording (what ``with`` does on entry)."""
        global _active_tracker
        mod = _tracker_module()
        with _lock:
            if self._started:
                raise RuntimeError("this heapscope.Tracker was already used; create a new one")
            if _active_tracker is not None or mod.is_active():
                where = ""
                if _active_tracker is not None:
                    where = " (writing %s)" % _active_tracker.path
                raise RuntimeError(
                    "another heapscope Tracker is already active in this process%s; "
                    "only one can record at a time" % where
                )
            if not self.overwrite and os.path.lexists(self.path):
                raise FileExistsError(
                    errno.EEXIST,
                    "capture file already exists (pass overwrite=True to replace it)",
                    self.path,
                )
            metadata = _json_text(self.metadata(mod.allocator_name()))
            if self.aggregate:
                self._start_aggregator()
            # Everything is ready before recording starts: from mod.start on,
            # nothing of heapscope's runs in Python until stop (so none of its
            # frames is in the capture).
            threads = _running_threads()
            _install_thread_hook()
            _install_fork_warning_filter()
            try:
                mod.start(
                    "/dev/null" if self.aggregate else self.path,
                    native=self.native,
                    trace_python_allocators=self.trace_python_allocators,
                    follow_fork=self.follow_fork,
                    overwrite=self.overwrite or self.aggregate,
                    memory_interval_ms=self.memory_interval_ms,
                    compress=self.compress,
                    metadata=metadata,
                    memory_limit=self.memory_limit or 0,
                    parent_pid=self._parent_pid,
                    live_fd=self._live_fd,
                    count_totals=self._count_totals,
                    watch_floor=self._watch_floor and self.memory_limit is not None,
                    threads=threads,
                )
            except BaseException:
                _remove_thread_hook()
                self._stop_aggregator(close_feed=True)
                raise
            self._started = True
            _active_tracker = self
        return self

    def stop(self) -> None:
        """Stops recording and finishes the capture (its last records, the end of the zstd frame)."""
        global _active_tracker
        mod = _tracker_mod or _tracker_module()
        # Recording ends first, before anything here allocates (even `with`
        # does): none of stop's frames is in the capture.
        recording = _active_tracker is self and (self._paused or mod.is_active())
        if recording and not self._paused:
            mod.pause()
        with _lock:
            if _active_tracker is not self:
                raise RuntimeError("this heapscope.Tracker is not active")
            try:
                if recording:
                    # The threads' names may have changed since they started.
                    for name, native_id in _running_threads():
                        mod.set_thread_name(name, native_id)
                    mod.stop()
                else:
                    # Recording stopped on its own (the capture could not be
                    # written, said on stderr) or this is a fork child that
                    # does not record: end the session, if one is left.
                    try:
                        mod.stop()
                    except RuntimeError:
                        pass
            finally:
                _active_tracker = None
                _remove_thread_hook()
                self._stop_aggregator()

    def _start_aggregator(self) -> None:
        """aggregate=True: the process that writes the aggregated capture, fed by a socket pair."""
        import socket
        import subprocess

        from heapscope.__main__ import binary_path

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Its own session: the terminal's ^C is the program's, and it
            # outlives a program killed before stop, to write what it was sent.
            self._aggregator = subprocess.Popen(
                [binary_path(), "aggregate", "--fd", str(theirs.fileno()), self.path],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self._live_fd = ours.detach()

    def _stop_aggregator(self, close_feed: bool = False) -> None:
        """Waits until the aggregated capture is final: the tracker's stop closed
        the stream (``close_feed``: it never started, so the feed is still ours)."""
        if self._aggregator is None:
            return
        if close_feed and self._live_fd >= 0:
            os.close(self._live_fd)
        self._live_fd = -1
        self._aggregator.wait()
        self._aggregator = None

    @property
    def active(self) -> bool:
        return _active_tracker is self

    def __enter__(self) -> "Tracker":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]:
        # 3.10 allocates a frame object for each Python call: recording ends
        # before the call to stop (these are C calls).
        if _active_tracker is self and _tracker_mod.is_active():
            _tracker_mod.pause()
            self._paused = True
        self.stop()
        return False


def _tracker_from_options(path, options):
    """A Tracker with the settings the CLI passed as JSON (`run`'s bootstrap, `attach`)."""
    return Tracker(
        path,
        native=options.get("native", False),
        trace_python_allocators=options.get("trace_python_allocators", True),
        follow_fork=options.get("follow_fork", False),
        overwrite=options.get("overwrite", False),
        memory_interval_ms=options.get("memory_interval_ms", 10),
        compress=options.get("compress", True),
        memory_limit=options.get("memory_limit"),
    )


def _interpreter_arguments():
    """The interpreter's arguments after its own name, from /proc/self/cmdline:
    under `heapscope run` the program's command line as typed (script, `-m
    module` or `-c code`, then its arguments), however long."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
    except OSError:
        return list(sys.argv)
    if parts and parts[-1] == b"":
        parts.pop()
    return [os.fsdecode(p) for p in parts[1:]]


def _run_bootstrap_tracker(path, options):
    """Builds the Tracker that `heapscope run` starts from its bootstrap."""
    tracker = _tracker_from_options(path, options)
    tracker._source = "run"
    tracker._command_line = _interpreter_arguments()
    if options.get("live_fd") is not None:
        tracker._live_fd = int(options["live_fd"])
    tracker._count_totals = bool(options.get("count_totals"))
    tracker._watch_floor = False
    if options.get("leaks_mode"):
        tracker._extra_metadata = {
            "leaks_mode": True,
            "pythonmalloc_set_by_heapscope": bool(options.get("pythonmalloc_set_by_heapscope")),
        }
        if options.get("user_pythonmalloc") is not None:
            tracker._extra_metadata["user_pythonmalloc"] = str(options.get("user_pythonmalloc"))
    return tracker


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext heapscope`` in IPython / Jupyter: adds the ``%%heapscope_flamegraph`` cell magic (docs/JUPYTER.md)."""
    from heapscope._jupyter import load_ipython_extension as _load

    _load(ipython)
