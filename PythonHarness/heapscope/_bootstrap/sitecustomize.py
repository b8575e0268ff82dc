# heapscope run's bootstrap. `heapscope run` starts the interpreter with this
# directory first on PYTHONPATH, so site.py imports this file before the
# program runs. It starts tracking, arranges for tracking to stop at exit, and
# hides itself: its environment variables and its sys.path entry are removed
# before the program starts, and any other sitecustomize module on sys.path
# still runs.
#
# Settings come from the environment:
#   HEAPSCOPE_RUN_OUTPUT   the capture path ("{pid}" is replaced by this
#                          process's pid when options["pid_in_output"])
#   HEAPSCOPE_RUN_OPTIONS  JSON: native, trace_python_allocators, follow_fork,
#                          compress, overwrite, memory_interval_ms,
#                          module (for -m), ready_fd (a pipe to write one byte to),
#                          live_fd (run --live: the socket for the live stream),
#                          count_totals (the summary trailer's totals: run without -q), package_dir, bootstrap_dir,
#                          pythonpath (the user's PYTHONPATH, or null),
#                          leaks_mode, pythonmalloc_set_by_heapscope,
#                          user_pythonmalloc, referrers (write <capture>.refs)
#
# Keep this file's syntax valid for old interpreters: a wrong interpreter must
# get a clear heapscope error, not a SyntaxError.
import os
import sys


def _heapscope_fail(message, code=2):
    try:
        sys.stderr.write("heapscope: error: %s\n" % message)
        sys.stderr.flush()
    finally:
        os._exit(code)


def _heapscope_tell_ready(fd):
    """Tells heapscope run the bootstrap runs (a byte on its pipe), and closes
    the pipe so the program does not inherit it."""
    if fd is None:
        return
    try:
        os.write(fd, b"1")
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


def _heapscope_json(text):
    """json.loads without the json package, whose imports (re, enum) would add
    ~10 ms to every `heapscope run` and leave json and re imported in the
    program: CPython's own C scanner, driven as json.decoder drives it."""
    if sys.version_info < (3, 10):
        # Python 2's scanner takes other settings. An interpreter this old is
        # only told no, or run untracked: json's cost does not matter there.
        import json
        return json.loads(text)
    import _json

    class Settings:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = float   # NaN, Infinity, -Infinity
        memo = {}

    value, end = _json.make_scanner(Settings())(text, 0)
    if text[end:].strip():
        raise ValueError("extra data after the JSON value")
    return value


def _heapscope_same_dir(a, b):
    try:
        return os.path.realpath(a or ".") == os.path.realpath(b)
    except Exception:
        return False


def _heapscope_bootstrap():
    here = os.path.dirname(os.path.abspath(__file__))
    output = os.environ.pop("HEAPSCOPE_RUN_OUTPUT", None)
    raw_options = os.environ.pop("HEAPSCOPE_RUN_OPTIONS", None)

    options = None
    if output is not None and raw_options is not None:
        try:
            options = _heapscope_json(raw_options)
        except (ValueError, StopIteration):
            _heapscope_fail("bad HEAPSCOPE_RUN_OPTIONS from heapscope run")
        _heapscope_tell_ready(options.get("ready_fd"))
        bootstrap_dir = options.get("bootstrap_dir") or here
        # Restore the user's PYTHONPATH for the program and its subprocesses.
        original = options.get("pythonpath")
        if original is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = original
        # `run --leaks` started us with PYTHONMALLOC=malloc: the interpreter has
        # read it; the program and its subprocesses see the user's environment.
        if options.get("pythonmalloc_set_by_heapscope"):
            os.environ.pop("PYTHONMALLOC", None)
    else:
        bootstrap_dir = here

    # Remove our own directory from sys.path (it came from PYTHONPATH).
    sys.path[:] = [p for p in sys.path if not (_heapscope_same_dir(p, here) or _heapscope_same_dir(p, bootstrap_dir))]

    # The program's own sitecustomize first: from tracker.start() on, nothing
    # of heapscope runs (its frames stay out of the capture).
    _heapscope_chain(here)
    if options is not None:
        _heapscope_start(output, options)


def _heapscope_start(output, options):
    if sys.version_info < (3, 10):
        if options.get("child"):
            return  # a child of a followed program: an interpreter we cannot profile runs untracked
        _heapscope_fail(
            "this interpreter is Python %d.%d (%s); heapscope supports CPython 3.10 to 3.13"
            % (sys.version_info[0], sys.version_info[1], sys.executable)
        )
    if options.get("pid_in_output"):
        output = output.replace("{pid}", str(os.getpid()))

    module = options.get("module")
    if module:
        _heapscope_check_module(module)

    # Everything the bootstrap does is done before tracker.start(), the last
    # step: none of its frames is in the capture.
    import atexit

    tracker = None

    def _heapscope_stop_at_exit():
        if tracker is None:
            return
        heapscope = sys.modules["heapscope"]
        try:
            if heapscope._active_tracker is tracker:
                if options.get("leaks_mode"):
                    # Leak hunt: free unreachable cycles and empty the free
                    # lists (a full collection does both) while still tracking,
                    # so they do not show as leaks.
                    import gc

                    gc.collect()
                # Recording ends before the call to stop: 3.10 allocates a
                # frame object for each Python call (these are C calls).
                heapscope._tracker_mod.pause()
                tracker._paused = True
                tracker.stop()
        except BaseException as exc:
            sys.stderr.write("heapscope: error: stopping the tracker failed: %s: %s\n" % (type(exc).__name__, exc))
            sys.stderr.flush()
            return
        # Who holds the small objects still alive (for `heapscope pymalloc`):
        # walked after tracking stopped, so the walk is not in the capture.
        if options.get("referrers", False):
            try:
                from heapscope import _referrers

                _referrers.write_sidecar(tracker.path)
            except BaseException:
                pass

    # Registered before the program runs, so it runs after the program's own
    # atexit handlers (atexit calls them last-in, first-out).
    atexit.register(_heapscope_stop_at_exit)

    package_dir = options.get("package_dir")
    if options.get("child"):
        tracker = _heapscope_start_child(output, options, package_dir)
        return
    try:
        heapscope = _heapscope_import(package_dir)
        started = heapscope._run_bootstrap_tracker(output, options)
        if options.get("follow_fork"):
            _heapscope_pass_to_children(output, options)
        started.start()
        tracker = started
    except ImportError as exc:
        _heapscope_fail(str(exc))
    except FileExistsError:
        _heapscope_fail("output file already exists: %s (use -f to overwrite)" % output)
    except OSError as exc:
        _heapscope_fail("cannot write %s: %s" % (output, exc.strerror or exc))
    except BaseException as exc:
        _heapscope_fail("cannot start tracking: %s: %s" % (type(exc).__name__, exc))


def _heapscope_start_child(output, options, package_dir):
    """Starts tracking in a Python exec'd by a followed program: into
    `<parent's capture>.<pid>`, or `...<pid>-N` when an earlier image of this
    process (a fork child that then exec'd) wrote that name. A child that
    cannot be tracked says so and runs untracked: the program must not fail."""
    options = dict(options, command_line=list(getattr(sys, "orig_argv", sys.argv))[1:])
    try:
        heapscope = _heapscope_import(package_dir)
        for attempt in range(1, 10):
            path = output if attempt == 1 else "%s-%d" % (output, attempt)
            tracker = heapscope._run_bootstrap_tracker(path, options)
            tracker._parent_pid = os.getppid()
            if options.get("follow_fork"):
                _heapscope_pass_to_children(path, options)   # this attempt's name, before tracking starts
            try:
                tracker.start()
                return tracker
            except FileExistsError:
                continue
        raise FileExistsError("output file already exists: %s" % output)
    except BaseException as exc:
        sys.stderr.write(
            "heapscope: warning: not tracking child process %d: %s: %s\n" % (os.getpid(), type(exc).__name__, exc)
        )
        sys.stderr.flush()
        return None


def _heapscope_pass_to_children(output, options):
    """The environment an exec'd Python inherits: ours, to record as a child.

    os.putenv changes the process environment, not os.environ: the program
    sees the user's environment, and a child started with an environment of
    the program's own making (env=...) is not followed."""
    import json

    child = dict(options, child=True, pid_in_output=True, overwrite=False)
    child.pop("module", None)
    child.pop("ready_fd", None)   # heapscope run's pipe is ours alone: the fd means nothing in a child
    child.pop("live_fd", None)   # likewise the live feed
    child.pop("count_totals", None)   # no summary prints a child's totals
    pythonpath = options.get("bootstrap_dir") or os.path.dirname(os.path.abspath(__file__))
    if options.get("pythonpath"):
        pythonpath += os.pathsep + options["pythonpath"]
    os.putenv("PYTHONPATH", pythonpath)
    os.putenv("HEAPSCOPE_RUN_OUTPUT", output + ".{pid}")
    os.putenv("HEAPSCOPE_RUN_OPTIONS", json.dumps(child))
    if options.get("pythonmalloc_set_by_heapscope"):
        os.putenv("PYTHONMALLOC", "malloc")


def _heapscope_import(package_dir):
    """Imports the heapscope package that launched us (not any other one on sys.path)."""
    parent = os.path.dirname(os.path.abspath(package_dir)) if package_dir else None
    if parent is None:
        import heapscope

        return heapscope
    sys.path.insert(0, parent)
    try:
        import heapscope
    finally:
        try:
            sys.path.remove(parent)
        except ValueError:
            pass
    return heapscope


def _heapscope_check_module(module):
    """A clean error for `run -m` of a module that cannot be found.

    Only the top-level package is looked up: finding a submodule would import
    its parent package (user code) before the program starts.
    """
    import importlib.machinery

    top = module.split(".")[0]
    if top in sys.builtin_module_names or top in sys.modules:
        return
    path = list(sys.path)
    # `python -m` puts the current directory first (unless safe_path).
    if not getattr(sys.flags, "safe_path", False):
        path.insert(0, os.getcwd())
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, path)
    except Exception:
        return  # let the interpreter report it in its own words
    if spec is None:
        for finder in sys.meta_path:
            if finder is importlib.machinery.PathFinder:
                continue
            try:
                if getattr(finder, "find_spec", None) and finder.find_spec(top, None) is not None:
                    return
            except Exception:
                pass
        _heapscope_fail("no module named %r" % module, 1)


def _heapscope_chain(here):
    """Runs the sitecustomize module we are shadowing, if there is one."""
    try:
        import importlib.machinery
    except ImportError:
        return
    this = sys.modules.get(__name__)
    try:
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    except Exception:
        spec = None
    if spec is None or spec.origin is None or _heapscope_same_dir(os.path.dirname(spec.origin), here):
        # (sys.modules keeps this module as "sitecustomize": the import
        # system expects to find it there when this file finishes.)
        return
    # Only now: importlib.util brings contextlib, collections and functools
    # (a few ms of every start), and most programs have no sitecustomize.
    import importlib.util

    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        # site.py reports errors in sitecustomize the same way.
        if this is not None:
            sys.modules["sitecustomize"] = this
        raise


_heapscope_bootstrap()
