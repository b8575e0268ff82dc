"""The pytest plugin (heapscope.pytest_plugin), tested with pytester.

Each test writes a small test file, runs pytest on it in a subprocess (the
plugin comes from the installed package's pytest11 entry point) and checks
outcomes and messages.
"""
import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLES, comprehension_frame, heapscope_command

pytest_plugins = ["pytester"]

MB = 1000 * 1000


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    # the short test summary keeps whole messages
    monkeypatch.setenv("COLUMNS", "250")


def run(pytester, *args):
    # -p no:randomly etc. are not installed; keep the output plain and wide.
    return pytester.runpytest_subprocess("-p", "no:benchmark", "-p", "no:hypothesispytest", *args, timeout=300)


def output(result):
    return "\n".join(result.outlines + result.errlines)


def peak_in_message(text):
    match = re.search(r"peak memory was [^(]*\(([0-9,]+) bytes", text)
    assert match, text
    return int(match.group(1).replace(",", ""))


# ---------------------------------------------------------------------------
# limit_memory


def test_limit_memory_exceeded_fails_with_limit_peak_and_stacks(pytester):
    pytester.makepyfile(
        test_budget="""
        import pytest

        def make_buffer():
            return bytearray(20_000_000)

        @pytest.mark.limit_memory("1 MB")
        def test_over():
            data = make_buffer()
            assert len(data) == 20_000_000
        """
    )
    result = run(pytester, "--heapscope")
    result.assert_outcomes(failed=1)
    text = output(result)
    # 20 MB of bytearray and the interpreter's own few KiB (more on 3.10: its opcaches)
    assert re.search(r"Test was limited to 1 MB but its peak memory was 20\.0\d MB", text), text
    assert 20 * MB <= peak_in_message(text) < 21 * MB
    # the top allocating location names the function that allocated
    assert re.search(r"20\.00 MB in \d+ allocations: make_buffer at test_budget\.py:4", text), text
    result.stdout.fnmatch_lines(["FAILED test_budget.py::test_over - Test was limited to 1 MB*"])


def test_limit_memory_within_budget_passes(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.limit_memory("50 MB")
        def test_under():
            data = bytearray(5_000_000)
            assert data is not None

        @pytest.mark.limit_memory(30_000_000)
        def test_int_limit():
            data = bytearray(5_000_000)
            assert data is not None
        """
    )
    result = run(pytester, "--heapscope")
    result.assert_outcomes(passed=2)


def test_limit_memory_binary_units(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.limit_memory("2 MiB")
        def test_over():
            data = bytearray(3 * 1024 * 1024)
            assert data is not None

        @pytest.mark.limit_memory("4MiB")
        def test_under():
            data = bytearray(3 * 1024 * 1024)
            assert data is not None
        """
    )
    result = run(pytester, "--heapscope")
    result.assert_outcomes(passed=1, failed=1)
    assert "Test was limited to 2 MiB but its peak memory was 3.00 MiB" in output(result)


def test_limit_memory_on_class_and_module(pytester):
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.limit_memory("1 MB")

        def test_module_level():
            data = bytearray(2_000_000)

        @pytest.mark.limit_memory("10 MB")
        class TestClass:
            def test_in_class(self):
                data = bytearray(2_000_000)
        """
    )
    result = run(pytester, "--heapscope")
    # the closest marker wins: the class's 10 MB over the module's 1 MB
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_module_level - Test was limited to 1 MB*"])


@pytest.mark.parametrize(
    "marker, message",
    [
        ('limit_memory("50 MBs")', "unknown unit 'MBs'"),
        ('limit_memory("fifty MB")', "malformed size 'fifty MB'"),
        ('limit_memory("50")', "malformed size '50'"),
        ('limit_memory("")', "malformed size ''"),
        ("limit_memory(-5)", "a size cannot be negative"),
        ("limit_memory()", "needs a limit"),
        ('limit_memory("1 MB", "2 MB")', "takes one positional argument"),
        ('limit_leaks("1 XB")', "unknown unit 'XB'"),
        ('limit_leaks("1 MB", filter_fn=3)', "filter_fn must be callable"),
    ],
)
def test_malformed_limit_is_a_collection_error(pytester, marker, message):
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.%s
        def test_it():
            pass

        def test_other():
            pass
        """ % marker
    )
    result = run(pytester, "--heapscope")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    text = output(result)
    assert "ERROR collecting test_bad.py" in text
    assert "heapscope: invalid memory limit marker" in text
    assert "test_bad.py::test_it: @pytest.mark." in text
    assert message in text, text


def test_markers_are_inert_without_the_option(pytester):
    pytester.makepyfile(
        """
        import pytest

        LEAKS = []

        @pytest.mark.limit_memory("1 B")
        def test_big():
            data = bytearray(10_000_000)

        @pytest.mark.limit_leaks("1 B")
        def test_leak():
            LEAKS.append(bytearray(1_000_000))

        @pytest.mark.limit_memory("not a size")
        def test_malformed():
            pass
        """
    )
    result = run(pytester, "--strict-markers")
    result.assert_outcomes(passed=3)
    assert "tests that allocated the most" not in output(result)
    assert "limited" not in output(result)


# ---------------------------------------------------------------------------
# limit_leaks


LEAKY = """
import pytest

LEAKED = []

def keep(n):
    LEAKED.append([str(i) * 4 for i in range(n)])

def drop(n):
    data = [str(i) * 4 for i in range(n)]
    return len(data)

@pytest.mark.limit_leaks("1 MB")
def test_leaking():
    keep(200_000)

@pytest.mark.limit_leaks("1 MB")
def test_not_leaking():
    assert drop(200_000) == 200_000

@pytest.mark.limit_leaks("1 MB", filter_fn=lambda location: not location.function.startswith(KEEP))
def test_leaking_filtered_out():
    keep(200_000)

@pytest.mark.limit_leaks("1 MB", filter_fn=lambda location: location.function.startswith(KEEP))
def test_leaking_filter_keeps_it():
    keep(200_000)
"""


def test_limit_leaks(pytester):
    # The leaking location is keep's comprehension: the filters match the name it has on this version.
    pytester.makepyfile(test_leaks="KEEP = %r" % comprehension_frame("keep") + LEAKY)
    result = run(pytester, "--heapscope")
    text = output(result)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_leaks.py::test_leaking - Test was limited to 1 MB of leaked memory per location*",
            "FAILED test_leaks.py::test_leaking_filter_keeps_it - *",
        ]
    )
    site = "(keep|%s)" % re.escape(comprehension_frame("keep"))
    assert re.search(r"1 location leaked more:\n\s+[0-9.]+ MB in [0-9,]+ allocations not freed: %s at test_leaks.py:7" % site, text), text
    result.stdout.no_fnmatch_line("FAILED test_leaks.py::test_not_leaking*")


def test_limit_leaks_nothing_left_passes_a_zero_limit(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.limit_leaks("0 B")
        def test_nothing():
            # A loop, not a comprehension: CPython 3.10 keeps the frame of a
            # code object's first call for reuse, so a comprehension's first
            # run leaves one frame behind there.
            data = []
            for i in range(1000):
                data.append(str(i))
        """
    )
    run(pytester, "--heapscope").assert_outcomes(passed=1)


def test_unittest_cases(pytester):
    pytester.makepyfile(
        """
        import unittest
        import pytest

        class TestCase(unittest.TestCase):
            @pytest.mark.limit_memory("1 MB")
            def test_big(self):
                data = bytearray(3_000_000)

            @pytest.mark.limit_memory("5 MB")
            def test_small(self):
                data = bytearray(3_000_000)
        """
    )
    result = run(pytester, "--heapscope")
    result.assert_outcomes(passed=1, failed=1)
    assert re.search(r"Test was limited to 1 MB but its peak memory was 3\.0\d MB", output(result))


def test_limit_leaks_small_allocations_under_the_limit_pass(pytester):
    pytester.makepyfile(
        """
        import pytest

        CACHE = {}

        @pytest.mark.limit_leaks("100 KB")
        def test_small_cache():
            CACHE["key"] = list(range(100))
        """
    )
    run(pytester, "--heapscope").assert_outcomes(passed=1)


# ---------------------------------------------------------------------------
# summary and options


SIZES = """
import pytest

def test_one_mb():
    data = bytearray(1_000_000)

def test_ten_mb():
    data = bytearray(10_000_000)

def test_five_mb():
    data = bytearray(5_000_000)
"""


def test_summary_lists_the_tests_that_allocated_most(pytester):
    pytester.makepyfile(test_sizes=SIZES)
    result = run(pytester, "--heapscope", "--most-allocations", "2", "--stacks", "1")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= heapscope: tests that allocated the most =*",
            "2 of 3 tests, by memory allocated during the test:",
            "1. test_sizes.py::test_ten_mb",
            "   allocated 9.5* MiB in * allocations; peak memory 9.5* MiB",
            "   locations that allocated the most:",
            "     9.5* MiB in * allocations: test_ten_mb at test_sizes.py:7",
            "2. test_sizes.py::test_five_mb",
            "*",
            "*",
            "     4.7* MiB in * allocations: test_five_mb at test_sizes.py:10",
        ]
    )
    result.stdout.no_fnmatch_line("*test_one_mb*")
    # --stacks 1: one location per test
    assert output(result).count("allocations: test_") == 2

    # the prefixed spellings
    result = run(pytester, "--heapscope", "--heapscope-most-allocations", "1", "--heapscope-stacks", "0")
    result.stdout.fnmatch_lines(["1 of 3 tests, by memory allocated during the test:", "1. test_sizes.py::test_ten_mb"])
    assert "locations that allocated the most" not in output(result)


def test_summary_most_allocations_zero_shows_all_and_hide_hides(pytester):
    pytester.makepyfile(test_sizes=SIZES)
    result = run(pytester, "--heapscope", "--most-allocations", "0")
    result.stdout.fnmatch_lines(["3 of 3 tests, by memory allocated during the test:"])
    result = run(pytester, "--heapscope", "--hide-heapscope-summary")
    result.assert_outcomes(passed=3)
    assert "tests that allocated the most" not in output(result)


def test_settings_from_ini(pytester):
    pytester.makeini(
        """
        [pytest]
        heapscope = true
        heapscope_most_allocations = 1
        heapscope_stacks = 1
        """
    )
    pytester.makepyfile(
        test_ini="""
        import pytest

        def test_small():
            data = bytearray(1_000_000)

        @pytest.mark.limit_memory("2 MB")
        def test_big():
            data = bytearray(3_000_000)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["1 of 2 tests, by memory allocated during the test:", "1. test_ini.py::test_big"])


def test_settings_from_pyproject(pytester):
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        heapscope = true
        hide_heapscope_summary = true
        """
    )
    pytester.makepyfile(
        test_toml="""
        import pytest

        @pytest.mark.limit_memory("2 MB")
        def test_big():
            data = bytearray(3_000_000)
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert "tests that allocated the most" not in output(result)


def test_bin_path_keeps_captures_named_after_test_ids(pytester, hs):
    pytester.makepyfile(
        test_keep="""
        import pytest

        def test_plain():
            data = bytearray(2_000_000)

        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n):
            data = bytearray(n * 1_000_000)

        class TestGroup:
            def test_method(self):
                data = bytearray(3_000_000)
        """
    )
    out = pytester.path / "captures"
    result = run(pytester, "--heapscope", "--heapscope-bin-path", str(out))
    result.assert_outcomes(passed=4)
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "test_keep.py-TestGroup-test_method.hsc",
        "test_keep.py-test_param[1].hsc",
        "test_keep.py-test_param[2].hsc",
        "test_keep.py-test_plain.hsc",
    ]
    stats = hs.stats_json(out / "test_keep.py-TestGroup-test_method.hsc")
    assert stats["flags"]["native"] is False
    assert 3_000_000 <= stats["peak_bytes"] < 3_100_000
    assert ("capture: %s" % (out / "test_keep.py-test_plain.hsc")) in output(result)


def test_native(pytester, hs):
    pytester.makepyfile(
        test_native="""
        import pytest

        @pytest.mark.limit_memory("5 MB")
        def test_big():
            data = bytearray(8_000_000)
        """
    )
    out = pytester.path / "captures"
    result = run(pytester, "--heapscope", "--native", "--heapscope-bin-path", str(out))
    capture = out / "test_native.py-test_big.hsc"
    assert capture.exists()
    proc = hs("stats", "--json", str(capture))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["flags"]["native"] is True
    result.assert_outcomes(failed=1)
    assert "Test was limited to 5 MB but its peak memory was 8.00 MB" in output(result)


def test_no_trace_python_allocators(pytester, hs):
    pytester.makepyfile(
        test_sys="""
        import pytest

        @pytest.mark.limit_memory("5 MB")
        def test_big():
            data = bytearray(8_000_000)
        """
    )
    out = pytester.path / "captures"
    result = run(pytester, "--heapscope", "--no-trace-python-allocators", "--heapscope-bin-path", str(out))
    result.assert_outcomes(failed=1)
    assert "Test was limited to 5 MB but its peak memory was 8.00 MB" in output(result)
    stats = hs.stats_json(out / "test_sys.py-test_big.hsc")
    assert stats["flags"]["python_allocators"] is False


def test_failing_and_erroring_tests_are_reported_normally(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        @pytest.mark.limit_memory("1 MB")
        def test_fails():
            data = bytearray(2_000_000)
            assert 1 == 2

        def test_errors(broken):
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass

        @pytest.mark.limit_memory("1 MB")
        def test_after():
            data = bytearray(2_000_000)
        """
    )
    result = run(pytester, "--heapscope")
    result.assert_outcomes(failed=2, errors=1, xfailed=1, skipped=1)
    text = output(result)
    assert "assert 1 == 2" in text
    assert "fixture broke" in text
    result.stdout.fnmatch_lines(["FAILED *test_after - Test was limited to 1 MB*"])


# ---------------------------------------------------------------------------
# --fail-on-increase


GROWING = """
import os

def test_grows():
    data = bytearray(int(os.environ["GROW_SIZE"]))

def test_steady():
    data = bytearray(1_000_000)
"""


def test_fail_on_increase_uses_the_previous_run(pytester, monkeypatch):
    pytester.makepyfile(test_grow=GROWING)
    args = ("--heapscope", "--fail-on-increase", "--increase-threshold", "10%", "--hide-heapscope-summary")

    monkeypatch.setenv("GROW_SIZE", "2000000")
    run(pytester, *args).assert_outcomes(passed=2)  # first run: the baseline

    monkeypatch.setenv("GROW_SIZE", "2100000")  # +5%: within the threshold, new baseline
    run(pytester, *args).assert_outcomes(passed=2)

    monkeypatch.setenv("GROW_SIZE", "3000000")  # +43%
    result = run(pytester, *args)
    result.assert_outcomes(passed=1, failed=1)
    text = output(result)
    assert re.search(r"Peak memory grew from 2\.0\d MiB in the previous run to 2\.8\d MiB: \+8\d\d\.\d\d KiB \(\+4\d\.\d%\), "
                     r"beyond the allowed increase of 10% \(--fail-on-increase\)", text), text
    result.stdout.fnmatch_lines(["FAILED test_grow.py::test_grows - Peak memory grew*"])

    # a failure does not move the baseline: the next run fails again
    run(pytester, *args).assert_outcomes(passed=1, failed=1)

    # without --fail-on-increase nothing is compared
    run(pytester, "--heapscope").assert_outcomes(passed=2)

    # an absolute threshold: 2.1 MB -> 3 MB is within 1 MB (and becomes the baseline)
    run(pytester, "--heapscope", "--fail-on-increase", "--increase-threshold", "1 MB").assert_outcomes(passed=2)
    monkeypatch.setenv("GROW_SIZE", "3200000")  # +200 KB
    run(pytester, "--heapscope", "--fail-on-increase", "--increase-threshold", "100 KB").assert_outcomes(passed=1, failed=1)
    run(pytester, "--heapscope", "--fail-on-increase", "--increase-threshold", "1 MB").assert_outcomes(passed=2)


SITES = """
import os

def keep(n):
    held = [None] * n
    for i in range(n):
        held[i] = bytearray(100_000)
    return held

def test_sites():
    kept = keep(int(os.environ["KEEP"]))
    other = bytearray(int(os.environ["OTHER"]))
"""


def test_fail_on_increase_names_the_sites_that_grew(pytester, monkeypatch):
    pytester.makepyfile(test_sites=SITES)
    args = ("--heapscope", "--fail-on-increase", "--increase-threshold", "10%", "--hide-heapscope-summary")
    baseline = pytester.path / ".pytest_cache" / "d" / "heapscope-baselines" / "test_sites.py-test_sites.hsc"
    monkeypatch.setenv("KEEP", "3")
    monkeypatch.setenv("OTHER", "1000000")
    run(pytester, *args).assert_outcomes(passed=1)
    assert baseline.is_file()
    first = baseline.read_bytes()

    # keep() grows by 5 bytearrays (5 * (100,001 + object) bytes); the other line shrinks
    monkeypatch.setenv("KEEP", "8")
    monkeypatch.setenv("OTHER", "800000")
    result = run(pytester, *args)
    result.assert_outcomes(failed=1)
    text = output(result)
    assert "Peak memory grew from" in text
    grown = 5 * (100_001 + bytearray.__basicsize__)
    assert "Sites that grew most since the previous run (heapscope diff):" in text
    line = next(l for l in text.splitlines() if "keep at test_sites.py:6" in l)
    assert line.strip().startswith("+%.2f KiB (" % (grown / 1024)), line
    assert "6 -> 16 allocations" in line, line
    assert "test_sites.py:11" not in text  # shrank: not named
    # a failure keeps the old baseline capture
    assert baseline.read_bytes() == first
    assert not list(baseline.parent.glob("*.pending"))

    # a passing run replaces it
    monkeypatch.setenv("KEEP", "3")
    monkeypatch.setenv("OTHER", "1000000")
    run(pytester, *args).assert_outcomes(passed=1)
    assert baseline.is_file() and not list(baseline.parent.glob("*.pending"))


def test_fail_on_increase_from_ini_and_bad_threshold(pytester, monkeypatch):
    pytester.makepyfile(test_grow=GROWING)
    pytester.makeini(
        """
        [pytest]
        heapscope = true
        heapscope_fail_on_increase = true
        heapscope_increase_threshold = 20%
        """
    )
    monkeypatch.setenv("GROW_SIZE", "1000000")
    run(pytester).assert_outcomes(passed=2)
    monkeypatch.setenv("GROW_SIZE", "1500000")
    run(pytester).assert_outcomes(passed=1, failed=1)

    result = run(pytester, "--increase-threshold", "lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "malformed threshold 'lots'" in output(result)


# ---------------------------------------------------------------------------
# xdist, asyncio


def test_xdist_workers(pytester, monkeypatch):
    import xdist  # noqa: F401  (a test dependency: make test-deps)
    pytester.makepyfile(
        test_a="""
        import pytest

        @pytest.mark.limit_memory("1 MB")
        def test_over():
            data = bytearray(4_000_000)

        def test_big():
            data = bytearray(6_000_000)
        """,
        test_b="""
        def test_small():
            data = bytearray(2_000_000)

        def test_smaller():
            data = bytearray(1_000_000)
        """,
    )
    args = ("--heapscope", "-n", "2", "--most-allocations", "2")
    result = run(pytester, *args)
    result.assert_outcomes(passed=3, failed=1)
    text = output(result)
    assert "Test was limited to 1 MB but its peak memory was 4.00 MB" in text
    assert text.count("heapscope: tests that allocated the most") == 1
    result.stdout.fnmatch_lines(
        ["2 of 4 tests, by memory allocated during the test:", "1. test_a.py::test_big", "*", "*", "*", "2. test_a.py::test_over"]
    )

    # --fail-on-increase across workers: the controller keeps the cache
    monkeypatch.setenv("X", "1")
    run(pytester, *args, "--fail-on-increase").assert_outcomes(passed=3, failed=1)
    pytester.makepyfile(
        test_b="""
        def test_small():
            data = bytearray(4_000_000)

        def test_smaller():
            data = bytearray(1_000_000)
        """,
    )
    result = run(pytester, *args, "--fail-on-increase")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["FAILED test_b.py::test_small - Peak memory grew from 1.9* MiB*"])


def test_async_tests(pytester):
    import pytest_asyncio  # noqa: F401  (a test dependency: make test-deps)
    pytester.makepyfile(
        test_async="""
        import asyncio
        import pytest

        async def produce():
            await asyncio.sleep(0)
            return bytearray(30_000_000)

        @pytest.mark.asyncio
        @pytest.mark.limit_memory("10 MB")
        async def test_async_over():
            data = await produce()
            await asyncio.sleep(0.01)
            assert len(data) == 30_000_000

        @pytest.mark.asyncio
        @pytest.mark.limit_memory("10 MB")
        async def test_async_under():
            data = bytearray(1_000_000)
            await asyncio.sleep(0)
        """
    )
    result = run(pytester, "--heapscope", "-p", "asyncio")
    result.assert_outcomes(passed=1, failed=1)
    text = output(result)
    assert 30 * MB <= peak_in_message(text) < 31 * MB
    assert re.search(r"30\.00 MB in \d+ allocations: produce at test_async\.py:6", text), text


# ---------------------------------------------------------------------------
# the example


def test_examples_test_budget(pytester):
    shutil.copy(EXAMPLES / "test_budget.py", pytester.path / "test_budget.py")
    result = run(pytester, "--heapscope", "--stacks", "1")
    result.assert_outcomes(passed=1, failed=1)
    text = output(result)
    result.stdout.fnmatch_lines(["FAILED test_budget.py::test_small_report - Test was limited to 50 MB*"])
    assert "Test was limited to 50 MB but its peak memory was" in text
    assert peak_in_message(text) > 50 * MB
    summary = text.split("heapscope: tests that allocated the most", 1)[1]
    assert "1. test_budget.py::test_large_report" in summary


def test_coexists_with_a_plugin_defining_the_same_generic_options(pytester):
    # A stand-in for pytest-memray (found through its pytest11 entry point on
    # sys.path): it defines --native, --stacks, --most-allocations and
    # --fail-on-increase, so heapscope keeps to its prefixed spellings.
    pytester.makepyfile(
        pytest_memray_standin="""
        def pytest_addoption(parser):
            group = parser.getgroup("memray")
            for name in ("--native", "--stacks", "--most-allocations", "--fail-on-increase"):
                group.addoption(name, action="store_true")
        """
    )
    info = pytester.path / "pytest_memray_standin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-memray-standin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nmemray = pytest_memray_standin\n")
    pytester.makepyfile(
        test_sizes="""
        import pytest

        @pytest.mark.limit_memory("1 MB")
        def test_big():
            data = bytearray(2_000_000)
        """
    )
    result = run(pytester, "--heapscope", "--heapscope-stacks", "1", "--heapscope-native", "--native")
    result.assert_outcomes(failed=1)
    assert "Test was limited to 1 MB" in output(result)


def test_under_heapscope_run_is_a_usage_error(pytester):
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.run(
        *heapscope_command(), "run", "-q", "-o", str(pytester.path / "run.hsc"),
        "-m", "pytest", "-p", "no:benchmark", "-p", "no:hypothesispytest", "--heapscope", timeout=300,
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output(result)
    assert "--heapscope cannot track tests while this process is already tracked" in output(result)


# ---------------------------------------------------------------------------
# size parsing


@pytest.mark.parametrize(
    "text, expected",
    [
        ("50 MB", 50_000_000), ("50MB", 50_000_000), ("1.5 GiB", 1536 * 1024 * 1024), ("512 B", 512),
        ("2 KB", 2000), ("2 KiB", 2048), ("3 MiB", 3 * 1024 * 1024), ("1 GB", 10**9), ("0 B", 0),
        ("10 mb", 10_000_000), (".5 KiB", 512), (1234, 1234), (12.7, 12),
    ],
)
def test_parse_size(text, expected):
    from heapscope.pytest_plugin import parse_size

    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "50", "5O MB", "50 MBs", "50 M", "-1 MB", "1e3 MB", None, True, -1, float("nan")])
def test_parse_size_rejects(text):
    from heapscope.pytest_plugin import parse_size

    with pytest.raises(ValueError):
        parse_size(text)


def test_parse_threshold():
    from heapscope.pytest_plugin import parse_threshold

    assert parse_threshold("10%") == ("percent", 10.0)
    assert parse_threshold(" 2.5 % ") == ("percent", 2.5)
    assert parse_threshold("1 MB") == ("bytes", 1_000_000)
    for bad in ("ten%", "-5%", "lots", "%"):
        with pytest.raises(ValueError):
            parse_threshold(bad)
