"""The Jupyter magic (%load_ext heapscope, %%heapscope_flamegraph), tested by
executing notebooks with nbclient in a real ipykernel and reading the outputs."""
import html
import re
import subprocess

import pytest

from conftest import heapscope_command

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def execute(tmp_path, *cells, allow_errors=False):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return nb


def outputs_text(cell):
    """Everything a cell showed, as text: streams, results, HTML, errors."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("display_data", "execute_result"):
            parts.append(out.data.get("text/html", "") or out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append("%s: %s" % (out.ename, out.evalue))
    return "\n".join(parts)


def html_outputs(cell):
    return [out.data["text/html"] for out in cell.outputs
            if out.output_type == "display_data" and "text/html" in out.data]


def has_flamegraph_command():
    proc = subprocess.run(heapscope_command() + ["flamegraph", "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return b"USAGE: heapscope flamegraph" in proc.stdout


needs_flamegraph = pytest.mark.skipif(not has_flamegraph_command(), reason="this heapscope CLI has no flamegraph command")


def embedded_page(cell):
    pages = [h for h in html_outputs(cell) if 'class="heapscope-flamegraph"' in h]
    assert len(pages) == 1, outputs_text(cell)
    match = re.search(r'srcdoc="([^"]*)"', pages[0])
    assert match, pages[0][:500]
    return html.unescape(match.group(1))


CELL = """%%heapscope_flamegraph {options}
def build_table(rows):
    return [bytearray(100_000) for _ in range(rows)]

table = build_table(200)
len(table)
"""


@needs_flamegraph
def test_flamegraph_cell_magic_shows_the_graph_inline(tmp_path):
    nb = execute(tmp_path, "%load_ext heapscope", CELL.format(options=""), "len(table), sum(map(len, table))")
    cell = nb.cells[1]
    assert not [o for o in cell.outputs if o.output_type == "error"], outputs_text(cell)
    page = embedded_page(cell)
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "build_table" in page  # the allocating function of the cell is in the graph
    # published without IPython's "Consider using IPython.display.IFrame instead"
    streams = "".join(o.text for o in cell.outputs if o.output_type == "stream")
    assert "Warning" not in streams and "IFrame" not in streams, streams
    # the cell ran as a normal cell: its last value is shown and its names stay defined
    assert any(o.output_type == "execute_result" and o.data["text/plain"] == "200" for o in cell.outputs)
    assert nb.cells[2].outputs[0].data["text/plain"] == "(200, 20000000)"
    # nothing left behind in the notebook's directory
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@needs_flamegraph
@pytest.mark.parametrize(
    "options",
    ["--leaks", "--temporary-allocations", "--temporary-allocation-threshold 3",
     "--no-trace-python-allocators", "--inverted --split-threads", "--leaks --temporal", "--native"],
)
def test_flamegraph_options(tmp_path, options):
    nb = execute(tmp_path, "%load_ext heapscope", CELL.format(options=options))
    page = embedded_page(nb.cells[1])
    assert "build_table" in page


@needs_flamegraph
def test_output_dir_keeps_capture_and_page(tmp_path, hs):
    nb = execute(tmp_path, "%load_ext heapscope", CELL.format(options="--output-dir kept --leaks"))
    cell = nb.cells[1]
    embedded_page(cell)
    files = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert len(files) == 2 and files[0].endswith(".hsc") and files[1].endswith(".html"), files
    assert "heapscope: capture " in outputs_text(cell)
    stats = hs.stats_json(tmp_path / "kept" / files[0])
    assert stats["total_bytes"] >= 200 * 100_000


@needs_flamegraph
def test_cell_raising_still_shows_the_graph(tmp_path):
    nb = execute(
        tmp_path,
        "%load_ext heapscope",
        "%%heapscope_flamegraph\nkept = [bytearray(1_000_000) for _ in range(5)]\nraise ValueError('boom')\n",
        "len(kept)",
        allow_errors=True,
    )
    cell = nb.cells[1]
    text = outputs_text(cell)
    assert "ValueError" in text and "boom" in text
    assert "the cell raised an exception" in text
    embedded_page(cell)
    assert nb.cells[2].outputs[0].data["text/plain"] == "5"


@pytest.mark.parametrize(
    "options, message",
    [
        ("--leaks --temporary-allocations", "choose one"),
        ("--temporary-allocation-threshold -1", "must be 0 or more"),
        ("--bogus", "unrecognized arguments: --bogus"),
        ("--temporal --temporary-allocations", "--temporal works with"),
    ],
)
def test_bad_options_are_usage_errors_and_the_cell_does_not_run(tmp_path, options, message):
    nb = execute(
        tmp_path,
        "%load_ext heapscope",
        "%%heapscope_flamegraph " + options + "\nran = True\n",
        "'ran' in globals()",
        allow_errors=True,
    )
    text = outputs_text(nb.cells[1])
    assert "UsageError" in text and message in text, text
    assert nb.cells[2].outputs[0].data["text/plain"] == "False"


def test_magic_needs_load_ext(tmp_path):
    nb = execute(tmp_path, "%%heapscope_flamegraph\nx = 1\n", allow_errors=True)
    assert "heapscope_flamegraph" in outputs_text(nb.cells[0])  # UsageError: Cell magic ... not found


def test_another_tracker_active(tmp_path):
    nb = execute(
        tmp_path,
        "%load_ext heapscope",
        "import heapscope\nouter = heapscope.Tracker('outer.hsc')\nouter.start()",
        "%%heapscope_flamegraph\nran = True\n",
        "outer.stop()\n'ran' in globals()",
        allow_errors=True,
    )
    text = outputs_text(nb.cells[2])
    assert "UsageError" in text and "another heapscope Tracker is already active" in text, text
    assert nb.cells[3].outputs[0].data["text/plain"] == "False"
