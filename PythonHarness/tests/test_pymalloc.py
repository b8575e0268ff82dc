"""`heapscope pymalloc`: the arena model on real captures."""
import json
import re
import sys
import textwrap

import pytest

from conftest import EXAMPLES, clean_env, comprehension_frame, write


def pymalloc_json(hs, capture, *extra):
    proc = hs("pymalloc", "--json", *extra, str(capture))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    from conftest import Heapscope

    tmp = tmp_path_factory.mktemp("pinned")
    hs = Heapscope(tmp)
    proc = hs("run", "--referrers", "-o", "pinned.hsc", str(EXAMPLES / "pinned_arenas.py"))
    assert proc.returncode == 0, proc.stderr
    return hs, tmp / "pinned.hsc"


def test_geometry_is_recorded_and_cross_checked(pinned):
    hs, capture = pinned
    meta = hs.stats_json(capture)["metadata"]
    geometry = meta["pymalloc"]
    if sys.version_info[:2] >= (3, 10) and sys.maxsize > 2**32:
        assert geometry["arena_size"] == 1 << 20
        assert geometry["pool_size"] == 16 << 10
    assert geometry["alignment"] == 16
    assert geometry["small_request_threshold"] == 512
    assert geometry["pool_header_size"] == 48
    assert {"small_request_threshold", "alignment", "arena_size", "pool_header_size"} <= set(geometry["cross_checked"])
    assert "cross_check_failed" not in geometry, geometry


def geometry_of(hs, capture):
    return hs.stats_json(capture)["metadata"]["pymalloc"]


def test_interpreter_report_is_kept_per_build(hs, tmp_path):
    """The cross-check's report comes from a fresh interpreter once per build
    and allocator, then from the user's cache folder: a doctored copy there is
    what the next start checks against (and its disagreement is reported)."""
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    script = write(tmp_path / "small.py", "x = [str(i) for i in range(1000)]\n")
    proc = hs("run", "-q", "-o", "first.hsc", str(script), env=env)
    assert proc.returncode == 0, proc.stderr
    kept = list((tmp_path / "cache" / "heapscope").glob("debugmallocstats-%d%d-*.txt" % sys.version_info[:2]))
    assert len(kept) == 1, kept
    report = kept[0].read_text()
    assert re.search(r"Small block threshold = 512, in 32 size classes", report), report[:400]
    assert "cross_check_failed" not in geometry_of(hs, tmp_path / "first.hsc")

    kept[0].write_text(report.replace("Small block threshold = 512", "Small block threshold = 256"))
    proc = hs("run", "-q", "-o", "second.hsc", str(script), env=env)
    assert proc.returncode == 0, proc.stderr
    geometry = geometry_of(hs, tmp_path / "second.hsc")
    assert geometry["small_request_threshold"] == 512   # derived, not read
    assert "small_request_threshold" in geometry["cross_check_failed"], geometry


def test_pinned_arenas_name_fill_and_keep_every_hundredth(pinned):
    hs, capture = pinned
    assert capture.with_name(capture.name + ".refs").exists()
    report = pymalloc_json(hs, capture)
    assert report["pymalloc_active"] and report["blocks_traced"]
    end = report["end"]
    # ~250 MB of rows went into arenas; after the big free almost all of them stay held.
    assert end["arenas_held"] >= 200
    assert report["pinned_arenas"] >= 0.9 * end["arenas_held"]
    assert end["fragmentation"] > 0.9
    assert end["free_inside_bytes"] > 200 * 2**20
    assert report["peak"]["arenas_held"] >= end["arenas_held"]
    # Occupancy at the end: nearly every arena under 10%.
    assert end["occupancy_histogram"][0] >= 0.9 * end["arenas_held"]
    # The pinning blocks were allocated in fill (the rows)...
    top = report["pinning_sites"][0]
    functions = [frame["function"] for frame in top["stack"]]
    assert "fill" in functions or comprehension_frame("fill") in functions, functions
    # ...and are kept alive by the list keep_every_hundredth built.
    holder = report["holders"][0]
    assert holder["holder"] == "allocated"
    holder_functions = [frame["function"] for frame in holder["stack"]]
    assert any(f.startswith("keep_every_hundredth") for f in holder_functions), holder_functions
    assert holder["count"] >= 0.9 * report["pinning_blocks"]["count"]


def test_pinned_text_report(pinned):
    hs, capture = pinned
    proc = hs("pymalloc", str(capture))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "Allocator: pymalloc" in text
    assert "Arenas kept alive by a few live blocks" in text
    assert "the pinning blocks were allocated at:" in text
    assert re.search(r"fill.*pinned_arenas.py:\d+", text)
    assert re.search(r"kept alive by.*\n.*keep_every_hundredth", text)
    assert "free inside pymalloc" in text and "fragmentation" in text


def test_pinned_html_report_is_self_contained(pinned, tmp_path):
    hs, capture = pinned
    out = tmp_path / "p.html"
    proc = hs("pymalloc", "--html", "-o", str(out), str(capture))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert "<svg id=\"chart\"" in page
    assert "keep_every_hundredth" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    data = re.search(r'<script type="application/json" id="heapscope-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(data.replace("<\\/", "</"))["end"]["arenas_held"] >= 200


def test_leaks_mode_capture_has_no_arenas(hs, tmp_path):
    write(tmp_path / "small.py", "rows = [(i, str(i)) for i in range(50000)]\n")
    proc = hs("run", "--leaks", "-o", "s.hsc", "small.py")
    assert proc.returncode == 0, proc.stderr
    report = pymalloc_json(hs, tmp_path / "s.hsc")
    assert report["python_allocator"] == "malloc"
    assert not report["pymalloc_active"]
    assert report["end"]["arenas_held"] == 0
    assert any("not active" in note for note in report["notes"])


def test_untraced_capture_models_arenas_only(hs, tmp_path):
    write(tmp_path / "small.py", "rows = [(i, str(i)) for i in range(200000)]\ndel rows\n")
    proc = hs("run", "--no-trace-python-allocators", "-o", "u.hsc", "small.py")
    assert proc.returncode == 0, proc.stderr
    report = pymalloc_json(hs, tmp_path / "u.hsc")
    assert not report["blocks_traced"]
    assert report["arenas_allocated"] >= 5
    assert any("not traced" in note for note in report["notes"])


def test_freed_rows_return_their_arenas(hs, tmp_path):
    """Without survivors, pymalloc returns the arenas: the model follows."""
    write(tmp_path / "free_all.py", textwrap.dedent(
        """
        def fill(n):
            return [("row", i, float(i)) for i in range(n)]

        rows = fill(300000)
        del rows
        """))
    proc = hs("run", "-o", "f.hsc", "free_all.py")
    assert proc.returncode == 0, proc.stderr
    report = pymalloc_json(hs, tmp_path / "f.hsc")
    assert report["peak"]["arenas_held"] >= 30
    assert report["arenas_released"] >= 0.8 * report["arenas_allocated"]
    assert report["end"]["arenas_held"] <= 0.2 * report["peak"]["arenas_held"]
    assert report["anomalies"] == 0
