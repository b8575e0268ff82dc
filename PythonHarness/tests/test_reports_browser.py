"""The HTML reports, loaded in headless Chromium through selenium.

Each scenario is recorded for real, rendered with `heapscope flamegraph` (or
`table`), loaded in the browser and checked: no JavaScript errors, the expected
function names drawn, the expected functions holding the expected share, and
zoom, search and time-range selection changing what is shown. A screenshot of
every view is kept in test-artifacts/browser/ (HEAPSCOPE_ARTIFACTS overrides).

Needs chromium, chromium-driver and selenium (docs/TEST_DEPS.md); skipped
when they are missing.
"""
import json
import os
import shutil
import struct
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, REPO, Heapscope, comprehension_frame, reported_name

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver are not installed")

ARTIFACTS = Path(os.environ.get("HEAPSCOPE_ARTIFACTS", REPO / "test-artifacts")) / "browser"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="module")
def hsm(workdir):
    return Heapscope(workdir)


_captures = {}


def capture(hs, workdir, script, *options, env=None):
    """Records examples/<script> once per module and option set."""
    key = (script, options)
    if key not in _captures:
        shutil.copy(EXAMPLES / script, workdir / script)
        out = workdir / f"{script[:-3]}-{len(_captures)}.hsc"
        proc = hs("run", "-q", "-f", *options, "-o", str(out), script, env=env)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        _captures[key] = out
    return _captures[key]


def render(hs, capture_path, *options, report="flamegraph"):
    out = capture_path.with_name(capture_path.stem + "-" + report + "-" + "-".join(o.strip("-") for o in options) + ".html")
    proc = hs(report, "-f", "-o", str(out), *options, str(capture_path))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return out


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def load(browser, path):
    browser.get(path.as_uri())
    for _ in range(100):
        if browser.execute_script("return !!(window.heapscope && window.heapscope.ready)"):
            break
        time.sleep(0.05)
    assert_no_js_errors(browser)
    return browser


def assert_no_js_errors(browser):
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe
    assert browser.execute_script("return window.heapscope.errors") == []
    assert browser.execute_script("return window.heapscope.ready") is True


def screenshot(browser, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, max(1000, min(4000, height + 40)))
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    browser.set_window_size(1400, 1000)


def drawn(browser):
    return browser.execute_script("return window.heapscope.drawn.map(function (d) { return d.name; })")


def state(browser):
    return browser.execute_script("return window.heapscope.state()")


def share(browser, function):
    return browser.execute_script(
        "var H = window.heapscope; return H.totalOf(arguments[0]) / H.state().total;", function)


def click_frame(browser, function):
    """Clicks the drawn rectangle of `function` with a real mouse event."""
    rect = browser.execute_script(
        "var name = arguments[0];"
        "return window.heapscope.drawn.filter(function (d) { return d.name === name; })[0] || null;", function)
    assert rect, f"{function} is not drawn"
    canvas = graph_in_view(browser)
    width = canvas.size["width"]
    height = canvas.size["height"]
    # offsets are from the element's centre
    x = rect["x"] + min(rect["w"] / 2, 40) - width / 2
    y = rect["y"] + 9 - height / 2
    ActionChains(browser).move_to_element_with_offset(canvas, int(x), int(y)).click().perform()


def hover_frame(browser, function):
    """Moves the mouse onto the widest drawn rectangle of `function`; returns the tooltip."""
    rect = browser.execute_script(
        "var name = arguments[0];"
        "return window.heapscope.drawn.filter(function (d) { return d.name === name; })"
        ".sort(function (a, b) { return b.w - a.w; })[0];", function)
    canvas = graph_in_view(browser)
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(rect["x"] + 20 - canvas.size["width"] / 2), int(rect["y"] + 9 - canvas.size["height"] / 2)).perform()
    return browser.find_element(By.ID, "tooltip")


def graph_in_view(browser):
    """The graph's canvas scrolled to the top of the window: offsets from its
    centre are from its in-view centre, which is only its centre when it is
    wholly in view."""
    canvas = browser.find_element(By.ID, "graph")
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", canvas)
    return canvas


# ---------------------------------------------------------------- scenarios

def test_two_copies_peak(hsm, workdir, browser):
    page = render(hsm, capture(hsm, workdir, "two_copies.py"))
    html = page.read_text()
    assert "<script src" not in html and "http://" not in html.split("heapscope-data")[0]
    load(browser, page)
    names = drawn(browser)
    for fn in ("main", "build_numbers", "render_strings"):
        assert fn in names, names
    render_share = share(browser, "render_strings")
    build_share = share(browser, "build_numbers")
    assert 0.55 < render_share < 0.68, render_share
    assert 0.32 < build_share < 0.45, build_share
    assert render_share > build_share
    text = browser.find_element(By.TAG_NAME, "body").text
    for needle in ("two_copies", "peak", "bytes", "Python", "pymalloc", "Duration"):
        assert needle in text, needle
    screenshot(browser, "two_copies-peak")

    # zoom with a click, then back
    click_frame(browser, "render_strings")
    assert state(browser)["focus"] == "render_strings"
    names = drawn(browser)
    assert "build_numbers" not in names and comprehension_frame("render_strings") in names, names
    screenshot(browser, "two_copies-peak-zoomed")
    browser.find_element(By.ID, "back").click()
    assert state(browser)["focus"] == "all"
    assert "build_numbers" in drawn(browser)

    # search: highlights and tells the share
    box = browser.find_element(By.ID, "search")
    box.send_keys("build_numbers")
    match = state(browser)["match"]
    assert match and abs(match["share"] - build_share) < 0.01
    info = browser.find_element(By.ID, "match-info").text
    assert "%" in info and "Matched" in info
    screenshot(browser, "two_copies-peak-search")
    box.clear()
    box.send_keys(" ")
    assert state(browser)["match"] is None

    # tooltip with file:line and source
    tooltip = hover_frame(browser, comprehension_frame("render_strings"))
    assert tooltip.is_displayed()
    assert "two_copies.py:14" in tooltip.text
    assert "format(v" in tooltip.text  # the source line
    assert "allocations" in tooltip.text and "%" in tooltip.text
    screenshot(browser, "two_copies-peak-tooltip")
    assert_no_js_errors(browser)


def test_two_copies_inverted_and_internal_toggle(hsm, workdir, browser):
    page = render(hsm, capture(hsm, workdir, "two_copies.py"), "--inverted")
    load(browser, page)
    first_row = browser.execute_script(
        "return window.heapscope.drawn.filter(function (d) { return d.y === 18; }).map(function (d) { return d.name; })")
    assert comprehension_frame("render_strings") in first_row, first_row
    assert "<module>" not in first_row
    screenshot(browser, "two_copies-inverted")
    nodes_before = state(browser)["nodes"]
    browser.find_element(By.ID, "hide-internal").click()
    assert state(browser)["nodes"] <= nodes_before
    assert_no_js_errors(browser)


def test_unbounded_cache_leaks(hsm, workdir, browser):
    page = render(hsm, capture(hsm, workdir, "unbounded_cache.py"), "--leaks")
    load(browser, page)
    assert "fetch_profile" in drawn(browser)
    total = state(browser)["total"]
    fetch = browser.execute_script("return window.heapscope.totalOf('fetch_profile')")
    assert fetch >= 5000 * 10 * 1024, fetch
    assert fetch / total > 0.9
    assert "pymalloc and without Python allocator tracing" not in browser.find_element(By.ID, "warnings").text
    screenshot(browser, "unbounded_cache-leaks")


def test_leaks_warning_without_python_allocator_tracing(hsm, workdir, browser):
    page = render(hsm, capture(hsm, workdir, "unbounded_cache.py", "--no-trace-python-allocators"), "--leaks")
    load(browser, page)
    warning = browser.find_element(By.ID, "warnings")
    assert warning.is_displayed()
    assert "pymalloc" in warning.text and "Python allocators not traced" in warning.text
    assert "heapscope run --leaks" in warning.text
    screenshot(browser, "unbounded_cache-leaks-pymalloc-warning")


def test_churn_temporary_allocations(hsm, workdir, browser):
    cap = capture(hsm, workdir, "churn.py", "--trace-python-allocators")
    page = render(hsm, cap, "--temporary-allocations")
    load(browser, page)
    assert "normalise" in drawn(browser)
    assert share(browser, "normalise") > 0.9
    count = browser.execute_script(
        "var H = window.heapscope; H.zoomTo('normalise'); return H.state().focusTotal > 0 && H.data && "
        "H.state().focus === 'normalise' ? 1 : 0")
    assert count == 1
    screenshot(browser, "churn-temporary")
    # With a threshold of 2 each word's lowered string counts too: millions.
    page = render(hsm, cap, "--temporary-allocation-threshold", "2")
    load(browser, page)
    counts = browser.execute_script(
        "var H = window.heapscope, N = H.data.nodes, L = H.data.labels, c = 0;"
        "for (var i = 0; i < N.parent.length; i++) if (L.fn[N.label[i]] === 'normalise') c += N.count[i];"
        "return c;")
    assert counts > 1_500_000, counts  # 6 words a line, 300,000 lines
    screenshot(browser, "churn-temporary-threshold-2")


def test_csv_pipeline_temporal(hsm, workdir, browser):
    page = render(hsm, capture(hsm, workdir, "csv_pipeline.py"), "--temporal")
    load(browser, page)
    assert "load_rows" in drawn(browser)
    assert share(browser, "load_rows") > 0.6
    screenshot(browser, "csv_pipeline-temporal")
    # drag across the first third of the chart: make_csv's time
    chart = browser.find_element(By.ID, "chart")
    width = chart.size["width"]
    left = -width / 2 + 82
    ActionChains(browser).move_to_element_with_offset(chart, int(left + 5), 0).click_and_hold() \
        .move_by_offset(int((width - 110) * 0.3), 0).release().perform()
    st = state(browser)
    assert st["range"] is not None, st
    names = drawn(browser)
    assert "load_rows" not in names, names
    assert "make_csv" in names, names
    assert "Selected" in browser.find_element(By.ID, "chart-info").text
    screenshot(browser, "csv_pipeline-temporal-range")
    # whole run again
    browser.find_element(By.ID, "clear-range").click()
    assert "load_rows" in drawn(browser)
    assert_no_js_errors(browser)


def test_worker_threads_split(hsm, workdir, browser):
    page = render(hsm, capture(hsm, workdir, "worker_threads.py"), "--split-threads")
    load(browser, page)
    names = drawn(browser)
    workers = [n for n in names if n.startswith("thread ") and "worker-" in n]
    assert len(workers) == 4, names
    total = state(browser)["total"]
    for name in workers:
        part = browser.execute_script("return window.heapscope.totalOf(arguments[0])", name)
        assert 0.15 < part / total < 0.3, (name, part / total)
    screenshot(browser, "worker_threads-split")
    # hiding the machinery: each thread root leads straight to Thread.run
    assert reported_name("Thread._bootstrap") in drawn(browser)
    browser.find_element(By.ID, "hide-internal").click()
    second_row = browser.execute_script(
        "return window.heapscope.drawn.filter(function (d) { return d.y === 36; }).map(function (d) { return d.name; })")
    assert second_row and set(second_row) == {reported_name("Thread.run")}, second_row
    assert reported_name("Thread._bootstrap") not in drawn(browser)
    screenshot(browser, "worker_threads-split-internal-hidden")


def test_table_page(hsm, workdir, browser):
    page = render(hsm, capture(hsm, workdir, "two_copies.py"), report="table")
    load(browser, page)
    rows = browser.find_elements(By.CSS_SELECTOR, "#rows tr")
    assert rows
    first = rows[0].text
    assert comprehension_frame("render_strings") in first and "two_copies.py:14" in first, first  # biggest first
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "two_copies" in text and "peak" in text
    # filter
    box = browser.find_element(By.ID, "filter")
    box.send_keys(comprehension_frame("build_numbers"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#rows tr")
    assert rows and all(comprehension_frame("build_numbers") in r.text for r in rows)
    box.clear()
    box.send_keys(" ")
    # sort by count ascending then descending
    header = browser.find_element(By.CSS_SELECTOR, "th[data-key=count]")
    header.click()
    header.click()
    assert browser.execute_script("return window.heapscope.sortKey") == "count"
    screenshot(browser, "two_copies-table")
    assert_no_js_errors(browser)


# ---------------------------------------------------------------- 100,000 nodes

def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _svarint(value):
    return _varint((value << 1) ^ (value >> 63) if value >= 0 else ((-value) << 1) - 1)


def synthetic_capture(path, fanout=10, depth=5):
    """A capture with fanout**depth distinct stacks (about 111,000 tree nodes):
    docs/FORMAT.md, written by hand."""
    meta = json.dumps({"command_line": ["synthetic.py"], "python_version": "3.11.7",
                       "python_allocator": "pymalloc", "trace_python_allocators": True}).encode()
    out = bytearray(b"\x89HSC\r\n\x1a\n")
    out += struct.pack("<HHIII", 1, 2, 1234, 0, 0) + struct.pack("<Q", 0) + struct.pack("<I", len(meta)) + meta
    strings = {}

    def string(text):
        if text not in strings:
            data = text.encode()
            out.extend(b"\x01" + _varint(len(data)) + data)
            strings[text] = len(strings) + 1
        return strings[text]

    codes = {}

    def code(level, index):
        key = (level, index)
        if key not in codes:
            fn = string(f"level{level}_fn{index}")
            fl = string(f"/synthetic/module{level}.py")
            out.extend(b"\x02" + _varint(fn) + _varint(fn) + _varint(fl) + _varint(10 + index) + _varint(0))
            codes[key] = len(codes) + 1
        return codes[key]

    out.extend(b"\x04" + _varint(1))
    frames = [0]
    previous = [0]
    frame_count = [0]

    def frame(parent, level, index):
        c = code(level, index)
        out.extend(b"\x03" + _varint(parent) + _varint(c) + _varint(0))
        frame_count[0] += 1
        return frame_count[0]

    address = [0x10000]

    def alloc(frame_id, size):
        delta = address[0] - previous[0]
        previous[0] = address[0]
        out.extend(bytes([0x20 + 11]) + _svarint(delta) + _varint(size) + _varint(frame_id))
        address[0] += 64

    def build(parent, level):
        for index in range(fanout):
            f = frame(parent, level, index)
            if level + 1 < depth:
                build(f, level + 1)
            else:
                alloc(f, 32 + (index * 7 + level) % 50)

    build(0, 0)
    out.extend(b"\x06" + _varint(1000) + _varint(50_000_000))
    out.extend(b"\x07" + _varint(2000))
    Path(path).write_bytes(bytes(out))


def test_100k_nodes_interactive(hsm, workdir, browser):
    cap = workdir / "synthetic.hsc"
    synthetic_capture(cap)
    page = render(hsm, cap)
    load(browser, page)
    st = state(browser)
    assert st["nodes"] > 100_000, st
    timings = browser.execute_script("""
        var H = window.heapscope, out = {zoom: [], search: [], back: []};
        for (var r = 0; r < 3; r++) {
          var t = performance.now(); H.zoomTo('level1_fn3'); out.zoom.push(performance.now() - t);
          t = performance.now(); H.back(); out.back.push(performance.now() - t);
          t = performance.now(); H.search('fn7'); out.search.push(performance.now() - t);
          H.search('');
        }
        return out;""")
    for action, values in timings.items():
        assert min(values) < 100, (action, values)
    screenshot(browser, "synthetic-100k")
    assert_no_js_errors(browser)


def test_csv_pipeline_temporal_leaks_and_table(hsm, workdir, browser):
    cap = capture(hsm, workdir, "csv_pipeline.py")
    page = render(hsm, cap, "--temporal", "--leaks")
    load(browser, page)
    whole = state(browser)["total"]
    browser.execute_script("window.heapscope.selectRange(0, window.heapscope.data.duration / 3)")
    st = state(browser)
    assert st["range"] is not None and st["total"] <= whole
    screenshot(browser, "csv_pipeline-temporal-leaks-range")
    assert_no_js_errors(browser)

    page = render(hsm, cap, "--temporal", report="table")
    load(browser, page)
    first = browser.find_elements(By.CSS_SELECTOR, "#rows tr")[0].text
    assert reported_name("DictReader.__next__") in first or "load_rows" in first, first
    chart = browser.find_element(By.ID, "chart")
    width = chart.size["width"]
    ActionChains(browser).move_to_element_with_offset(chart, int(-width / 2 + 87), 0).click_and_hold() \
        .move_by_offset(int((width - 110) * 0.3), 0).release().perform()
    assert browser.execute_script("return window.heapscope.range") is not None
    text = browser.find_element(By.ID, "rows").text
    assert "make_csv" in text and "load_rows" not in text
    screenshot(browser, "csv_pipeline-table-temporal-range")
    assert_no_js_errors(browser)


GROW_SHRINK = '''\
import sys


def grows(n):
    held = [None] * n
    for i in range(n):
        held[i] = bytearray(100_000)
    return held


def shrinks(n):
    held = [None] * n
    for i in range(n):
        held[i] = bytearray(100_000)
    return held


def main():
    return grows(int(sys.argv[1])), shrinks(int(sys.argv[2]))


kept = main()
'''


def canvas_colours(browser):
    """Pixels of the flame graph that are clearly red (growth) and clearly blue (shrinkage)."""
    return browser.execute_script("""
        var c = document.getElementById('graph'), g = c.getContext('2d');
        var d = g.getImageData(0, 0, c.width, c.height).data, red = 0, blue = 0;
        for (var i = 0; i < d.length; i += 4) {
          if (d[i] > d[i + 1] + 60 && d[i] > d[i + 2] + 60) red++;
          if (d[i + 2] > d[i] + 60 && d[i + 2] > d[i + 1] + 20) blue++;
        }
        return {red: red, blue: blue};""")


def test_diff_page(hsm, workdir, browser):
    (workdir / "grow_shrink.py").write_text(GROW_SHRINK)
    captures = []
    for name, args in (("before", ["2", "6"]), ("after", ["8", "1"])):
        out = workdir / f"diff-{name}.hsc"
        proc = hsm("run", "-q", "-f", "-o", str(out), "grow_shrink.py", *args)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        captures.append(out)
    page = workdir / "diff.html"
    proc = hsm("diff", "-f", "-o", str(page), *map(str, captures))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    html = page.read_text()
    assert "<script src" not in html and "http://" not in html.split("heapscope-data")[0]
    load(browser, page)
    names = drawn(browser)
    assert "grows" in names and "shrinks" in names, names
    colours = canvas_colours(browser)
    assert colours["red"] > 500 and colours["blue"] > 500, colours
    obj = 100_000 + 1 + bytearray.__basicsize__
    # Growth and shrinkage both count in the widths.
    assert state(browser)["total"] >= 11 * obj
    assert 1 * obj - 2000 < state(browser)["delta"] < 1 * obj + 2000
    legend = browser.find_element(By.ID, "legend").text
    assert "grew" in legend and "shrank" in legend
    meta = browser.find_element(By.ID, "meta").text
    assert "Base" in meta and "New" in meta
    assert "grow_shrink.py 2 6" in meta and "grow_shrink.py 8 1" in meta
    rows = browser.find_elements(By.CSS_SELECTOR, "#site-rows tr")
    assert "grows" in rows[0].text and "+586.27 KiB" in rows[0].text, rows[0].text  # 6 * 100,057 bytes
    assert "shrinks" in rows[1].text and "-488.56 KiB" in rows[1].text, rows[1].text
    screenshot(browser, "diff-grow-shrink")

    # zoom into the shrinking function: its own change, negative
    click_frame(browser, "shrinks")
    st = state(browser)
    assert st["focus"] == "shrinks" and -5 * obj - 1000 < st["delta"] <= -5 * obj, st
    assert "grows" not in drawn(browser)
    assert canvas_colours(browser)["red"] < 50
    screenshot(browser, "diff-grow-shrink-zoomed")
    browser.find_element(By.ID, "back").click()
    assert state(browser)["focus"] == "all"

    # tooltip: both figures and the change
    tooltip = hover_frame(browser, "grows")
    assert tooltip.is_displayed()
    assert "base 195" in tooltip.text and "new 781" in tooltip.text and "+586.27 KiB" in tooltip.text, tooltip.text
    screenshot(browser, "diff-grow-shrink-tooltip")

    # search highlights in the graph and filters the table
    box = browser.find_element(By.ID, "search")
    box.send_keys("shrinks")
    match = state(browser)["match"]
    assert match and match["frames"] >= 1
    # shrinks' two lines: the bytearrays and the smaller list
    sites = browser.execute_script("return window.heapscope.data.sites.fn.filter(function (f) { return f === 'shrinks'; }).length")
    assert sites == 2 and browser.execute_script("return window.heapscope.siteRows") == sites
    rows = browser.find_elements(By.CSS_SELECTOR, "#site-rows tr")
    assert len(rows) == 2 and all(row.text.startswith("shrinks ") for row in rows)
    screenshot(browser, "diff-grow-shrink-search")
    box.clear()
    box.send_keys(" ")
    assert state(browser)["match"] is None

    nodes_before = state(browser)["nodes"]
    browser.find_element(By.ID, "hide-internal").click()
    assert state(browser)["nodes"] <= nodes_before
    assert "grows" in drawn(browser)
    assert_no_js_errors(browser)

    # a capture against itself: nothing drawn, said so
    proc = hsm("diff", "-f", "-o", str(page), str(captures[0]), str(captures[0]))
    assert proc.returncode == 0
    load(browser, page)
    assert browser.find_element(By.ID, "empty").is_displayed()
    assert "Nothing changed" in browser.find_element(By.ID, "empty").text
    assert browser.find_element(By.ID, "site-info").text == "No site changed."
    screenshot(browser, "diff-self")
    assert_no_js_errors(browser)


PHASES = '''\
import time


def phase_a():
    held = [None] * 2
    for i in range(2):
        held[i] = bytearray(1_000_000)
    return held


def phase_b():
    held = [None] * 3
    for i in range(3):
        held[i] = bytearray(1_000_000)
    return held


a = phase_a()
time.sleep(0.3)
b = phase_b()
time.sleep(0.3)
del a
time.sleep(0.3)
'''


def coloured_pixels(browser, canvas_id):
    return browser.execute_script("""
        var c = document.getElementById(arguments[0]), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;
        for (var i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) n++;
        return n;""", canvas_id)


def test_site_memory_over_time(hsm, workdir, browser):
    (workdir / "phases.py").write_text(PHASES)
    cap = workdir / "phases.hsc"
    proc = hsm("run", "-q", "-f", "--memory-interval-ms", "20", "-o", str(cap), "phases.py")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    a, b = "phase_a (phases.py:7)", "phase_b (phases.py:14)"

    # without --temporal there is no per-site time data: no chart
    load(browser, render(hsm, cap))
    assert not browser.find_element(By.ID, "site-chart-box").is_displayed()

    load(browser, render(hsm, cap, "--temporal"))
    assert browser.find_element(By.ID, "site-chart-box").is_displayed()
    st = browser.execute_script("return window.heapscope.siteChart.state()")
    assert st["top"][:2] == [b, a], st
    assert 3_000_000 <= st["peaks"][0] < 3_010_000 and 2_000_000 <= st["peaks"][1] < 2_010_000, st
    assert st["selected"] is None
    assert coloured_pixels(browser, "site-chart") > 1000
    # zooming into a frame draws its own curve: phase_a's memory, gone at the end
    click_frame(browser, "phase_a")
    assert state(browser)["focus"] == "phase_a"
    st = browser.execute_script("return window.heapscope.siteChart.state()")
    assert st["selected"].startswith("phase_a") and 2_000_000 <= st["selectedPeak"] < 2_010_000 and st["selectedLast"] == 0, st
    screenshot(browser, "phases-flamegraph-site-chart")
    browser.find_element(By.ID, "reset").click()
    assert browser.execute_script("return window.heapscope.siteChart.state().selected") is None
    assert_no_js_errors(browser)

    load(browser, render(hsm, cap, "--temporal", report="table"))
    st = browser.execute_script("return window.heapscope.siteChart.state()")
    assert st["top"][:2] == [b, a], st
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#rows tr") if r.text.startswith("phase_b"))
    # its size histogram reaches up to the 3 buffers of 1,000,001 bytes (the
    # bytearray objects' own blocks land in it on some versions, not on 3.13)
    sizes = row.find_element(By.CSS_SELECTOR, "td.sizes")
    assert sizes.text.startswith("\u2588") and sizes.text.endswith(" to <1.00 MiB"), sizes.text
    title = sizes.get_attribute("title")
    assert "512.00 KiB to <1.00 MiB: 3" in title, title
    row.click()
    st = browser.execute_script("return window.heapscope.siteChart.state()")
    assert st["selected"].startswith("phase_b") and 3_000_000 <= st["selectedLast"] < 3_010_000, st
    assert "selected" in row.get_attribute("class")
    screenshot(browser, "phases-table-site-chart")
    row.click()  # again: deselects
    assert browser.execute_script("return window.heapscope.siteChart.state().selected") is None
    assert_no_js_errors(browser)


def test_pymalloc_page(hsm, workdir, browser):
    cap = capture(hsm, workdir, "pinned_arenas.py")
    page = workdir / "pymalloc.html"
    proc = hsm("pymalloc", "--html", "-o", str(page), str(cap))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    load(browser, page)
    # the charts are drawn: the arenas line, both occupancy histograms, the size classes
    counts = browser.execute_script("""
        return ['chart', 'hist-peak', 'hist-end', 'classes'].map(function (id) {
          return document.getElementById(id).querySelectorAll('path, rect, polyline').length; });""")
    assert all(count > 0 for count in counts), counts
    screenshot(browser, "pinned_arenas-pymalloc")
