"""IPython / Jupyter integration: ``%load_ext heapscope``, then ``%%heapscope_flamegraph``.

The cell magic runs the cell (in the notebook's namespace, as a normal cell)
under a ``heapscope.Tracker``, then writes the flame graph with the bundled
CLI (``heapscope flamegraph CAPTURE -o FILE.html``) and shows it inline: the
self-contained page is embedded in the cell's output (an iframe ``srcdoc``),
so the notebook keeps it when saved. See docs/JUPYTER.md.
"""
from __future__ import annotations

import html
import os
import shlex
import shutil
import subprocess
import tempfile
import time

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import HTML, display

__all__ = ["HeapscopeMagics", "load_ipython_extension"]


def _binary():
    from heapscope.__main__ import binary_path

    return binary_path()


def _cli_help(binary, command):
    proc = subprocess.run([binary, command, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.stdout.decode("utf-8", "replace")


def _has_subcommand(binary, command):
    # An unknown subcommand makes the CLI print its top-level help.
    return ("USAGE: heapscope %s" % command) in _cli_help(binary, command)


@magics_class
class HeapscopeMagics(Magics):
    """The heapscope magics (loaded by ``%load_ext heapscope``)."""

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--leaks", action="store_true",
                              help="Show what the cell allocated and did not free (exact while Python "
                                   "allocators are traced, the default).")
    @magic_arguments.argument("--temporary-allocations", action="store_true",
                              help="Show allocations freed soon after they were made "
                                   "(before N other allocations on the same thread).")
    @magic_arguments.argument("--temporary-allocation-threshold", type=int, metavar="N", default=None,
                              help="With temporary allocations: at most N other allocations between an "
                                   "allocation and its free (default 1). Implies --temporary-allocations.")
    @magic_arguments.argument("--native", action="store_true",
                              help="Record native (C, C++, Rust) stacks as well.")
    @magic_arguments.argument("--no-trace-python-allocators", action="store_true",
                              help="Record system allocations only, not CPython's PyMem/PyObject allocators.")
    @magic_arguments.argument("--trace-python-allocators", action="store_true",
                              help="Trace CPython's allocators (the default).")
    @magic_arguments.argument("--split-threads", action="store_true", help="One root per thread.")
    @magic_arguments.argument("--inverted", action="store_true",
                              help="Allocating functions at the root, their callers above them.")
    @magic_arguments.argument("--temporal", action="store_true",
                              help="Add a time-range selection on the memory chart.")
    @magic_arguments.argument("--output-dir", "-o", metavar="DIR", default=None,
                              help="Keep the capture and the HTML page in DIR (default: a temporary "
                                   "directory, removed once the graph is shown).")
    @magic_arguments.argument("--height", type=int, default=600, metavar="PIXELS",
                              help="Height of the inline graph (default 600).")
    @cell_magic
    def heapscope_flamegraph(self, line, cell):
        """Profile the cell's allocations with heapscope and show its flame graph."""
        args = magic_arguments.parse_argstring(self.heapscope_flamegraph, line)
        temporary = args.temporary_allocations or args.temporary_allocation_threshold is not None
        if args.leaks and temporary:
            raise UsageError("--leaks and --temporary-allocations show different things: choose one")
        if args.temporary_allocation_threshold is not None and args.temporary_allocation_threshold < 0:
            raise UsageError("--temporary-allocation-threshold must be 0 or more")
        if args.no_trace_python_allocators and args.trace_python_allocators:
            raise UsageError("--trace-python-allocators and --no-trace-python-allocators contradict each other")
        if args.temporal and temporary:
            raise UsageError("--temporal works with the peak and --leaks views, not with temporary allocations")
        if args.height <= 0:
            raise UsageError("--height must be a positive number of pixels")

        import heapscope

        binary = _binary()
        if not os.path.isfile(binary):
            raise UsageError("the heapscope binary is missing (%s); reinstall heapscope" % binary)

        if args.output_dir:
            directory = os.path.abspath(os.path.expanduser(args.output_dir))
            os.makedirs(directory, exist_ok=True)
            stem = "cell-%s-%d" % (time.strftime("%Y%m%d-%H%M%S"), os.getpid())
            keep = True
        else:
            directory = tempfile.mkdtemp(prefix="heapscope-jupyter-")
            stem = "cell"
            keep = False
        capture = os.path.join(directory, stem + ".hsc")
        page = os.path.join(directory, stem + ".html")

        tracker = heapscope.Tracker(
            capture,
            native=args.native,
            trace_python_allocators=not args.no_trace_python_allocators,
            overwrite=True,
        )
        try:
            try:
                tracker.start()
            except (RuntimeError, ImportError, OSError) as exc:
                raise UsageError("heapscope cannot track this cell: %s" % exc) from None
            try:
                result = self.shell.run_cell(cell)
            finally:
                tracker.stop()

            notes = []
            if args.leaks and args.no_trace_python_allocators:
                notes.append(
                    "Note: Python allocators were not traced: objects freed into pymalloc's arenas look "
                    "leaked. Drop --no-trace-python-allocators for exact leaks.")
            if result is not None and not result.success:
                notes.append("Note: the cell raised an exception; the graph shows what it allocated until then.")

            view = []
            if args.leaks:
                view.append("--leaks")
            if args.temporary_allocations:
                view.append("--temporary-allocations")
            if args.temporary_allocation_threshold is not None:
                view += ["--temporary-allocation-threshold", str(args.temporary_allocation_threshold)]
            for flag in ("split_threads", "inverted", "temporal"):
                if getattr(args, flag):
                    view.append("--" + flag.replace("_", "-"))

            if not _has_subcommand(binary, "flamegraph"):
                self._show_fallback(binary, capture, view, notes, keep)
                return None
            cmd = [binary, "flamegraph", "-f", "-o", page] + view + [capture]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if proc.returncode != 0:
                raise UsageError("`heapscope %s` failed: %s" % (
                    " ".join(shlex.quote(c) for c in cmd[1:]), proc.stderr.decode("utf-8", "replace").strip()))
            with open(page, encoding="utf-8") as f:
                document = f.read()
            for note in notes:
                print(note)
            if keep:
                print("heapscope: capture %s, flame graph %s" % (capture, page))
            # Published as a raw mime bundle: IPython's HTML() warns about any
            # markup that is an iframe ("Consider using IPython.display.IFrame"),
            # and IFrame() can only point at a URL, not embed the page.
            display({"text/html": (
                '<iframe class="heapscope-flamegraph" title="heapscope flame graph" '
                'style="width: 100%%; height: %dpx; border: none;" srcdoc="%s"></iframe>'
                % (args.height, html.escape(document, quote=True))
            )}, raw=True)
        finally:
            if not keep:
                shutil.rmtree(directory, ignore_errors=True)
        return None

    @staticmethod
    def _show_fallback(binary, capture, view, notes, keep):
        """Without a `flamegraph` command in this CLI: the figures of `heapscope stats`."""
        stats_view = [v for v in view if v in ("--leaks", "--temporary-allocations")]
        if stats_view and "--leaks" not in _cli_help(binary, "stats"):
            stats_view = []
        proc = subprocess.run([binary, "stats"] + stats_view + [capture],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for note in notes:
            print(note)
        print("heapscope: this heapscope CLI has no `flamegraph` command; showing `heapscope stats`.")
        if keep:
            print("heapscope: capture %s" % capture)
        text = proc.stdout.decode("utf-8", "replace") or proc.stderr.decode("utf-8", "replace")
        display(HTML('<pre class="heapscope-stats">%s</pre>' % html.escape(text)))


def load_ipython_extension(ipython):
    """``%load_ext heapscope``: registers ``%%heapscope_flamegraph``."""
    ipython.register_magics(HeapscopeMagics)
