"""The Python half of `heapscope attach` (docs/ATTACH.md).

Runs inside the process being attached to, called from the tracker's
attach.c as a pending call: on the main thread, holding the GIL, between two
bytecodes. start() starts a heapscope.Tracker like any other (so the capture
has the usual metadata and thread names) and stop() ends it; each reports to
the `heapscope attach` that is waiting by rewriting the one-line status file.
With `attach --live*`, start() first connects to the Unix socket heapscope
listens on (options["live_socket"]) and the Tracker streams to it, as the
bootstrap's does to the socket `run --live` hands it.
"""
import atexit
import json
import os

import heapscope

# The Tracker started by the last attach, while it records.
_tracker = None
_status_path = None


def _write_status(line):
    # Whole lines only: the waiting CLI reads a line once it ends in "\n".
    try:
        with open(_status_path, "r+") as status:
            status.write(line + "\n")
            status.truncate()
    except OSError:
        pass


def start(status_path, options_json):
    """Starts tracking; True if it did. Never raises: errors go to the status file."""
    global _tracker, _status_path
    _status_path = status_path
    try:
        options = json.loads(options_json)
        # A heapscope the program imported itself, from another installation,
        # would record with that installation's tracker, not the one attach loaded.
        here = os.path.dirname(os.path.abspath(heapscope.__file__))
        if os.path.realpath(here) != os.path.realpath(options["package_dir"]):
            _write_status("error another heapscope package is imported in this process (%s)" % here)
            return False
        tracker = heapscope._tracker_from_options(options["output"], options)
        tracker._source = "attach"
        tracker._watch_floor = False   # `heapscope attach` watches the floor from outside
        tracker._extra_metadata = {"attach": options.get("attach", {})}
        # For attach's summary; --aggregate: heapscope's own replay has them.
        tracker._count_totals = not options.get("aggregate", False)
        if options.get("live_socket") is not None:
            tracker._live_fd = _connect(options["live_socket"])
        try:
            tracker.start()
        except BaseException:
            # The tracker owns the feed only once it runs.
            if tracker._live_fd >= 0:
                os.close(tracker._live_fd)
            raise
    except FileExistsError as exc:
        _write_status("error output file already exists: %s (use -f to overwrite)" % exc.filename)
        return False
    except BaseException as exc:
        _write_status("error %s" % _one_line(exc))
        return False
    _tracker = tracker
    # The process may end while attached: finish the capture at exit.
    atexit.register(stop, "exit")
    _write_status("running %s" % tracker.path)
    return True


def stop(how="request"):
    """Stops the attached Tracker: on request (detach, attach's --duration is over) or at exit."""
    global _tracker
    atexit.unregister(stop)
    tracker, _tracker = _tracker, None
    if tracker is None:
        return
    try:
        if tracker.active:
            tracker.stop()
    except BaseException as exc:
        _write_status("error stopping failed: %s" % _one_line(exc))
        return
    _write_status("stopped %s %s" % (how, tracker.path))


def _connect(path):
    """A descriptor connected to heapscope's live feed listener."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock.detach()


def _one_line(exc):
    return ("%s: %s" % (type(exc).__name__, exc)).replace("\n", " ")

