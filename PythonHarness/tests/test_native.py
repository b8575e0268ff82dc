"""Hybrid stacks end to end: `heapscope run --native` on Python code that calls
into C (built here with -g -O2, its allocation in an inlined helper), then a
report with `--stacks hybrid|python|native`. Skipped without a C compiler.
"""
import shutil
import subprocess

import pytest

from conftest import EXAMPLES, write

C_SOURCE = """\
#include <stdlib.h>
#include <string.h>

static inline __attribute__((always_inline)) void *fill_block(size_t n) {
    void *block = malloc(n);
    if (block) memset(block, 1, n);
    return block;
}

void *hs_e2e_alloc(size_t n) {
    return fill_block(n);
}
"""
MALLOC_LINE = 5   # in the inlined helper
CALL_LINE = 11    # where hs_e2e_alloc calls it
BLOCK = 23_456_789

SCRIPT = f"""\
import ctypes, sys

lib = ctypes.CDLL(sys.argv[1])
lib.hs_e2e_alloc.restype = ctypes.c_void_p
lib.hs_e2e_alloc.argtypes = [ctypes.c_size_t]

def allocate_block():
    return lib.hs_e2e_alloc({BLOCK})

def outer():
    return allocate_block()

block = outer()
"""


@pytest.fixture
def native_capture(hs, tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert compiler, "no C compiler on PATH (the build needs one too)"
    source = write(tmp_path / "e2e.c", C_SOURCE)
    library = tmp_path / "libe2e.so"
    subprocess.run([compiler, "-g", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    script = write(tmp_path / "e2e_script.py", SCRIPT)
    capture = tmp_path / "e2e.hsc"
    proc = hs("run", "--native", "-q", "-o", str(capture), str(script), str(library))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return capture


def tree_lines(hs, capture, *extra):
    proc = hs("tree", "-b", "3", *extra, str(capture))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().splitlines(), proc.stderr.decode()


def first_line(lines, *needles):
    for number, line in enumerate(lines):
        if all(needle in line for needle in needles):
            return number
    raise AssertionError(f"no line with {needles} in:\n" + "\n".join(lines))


def test_hybrid_stack_shows_python_caller_then_c_function(hs, native_capture):
    for extra in ([], ["--stacks", "hybrid"]):  # hybrid is the default for native captures
        lines, errors = tree_lines(hs, native_capture, *extra)
        outer = first_line(lines, "outer")
        caller = first_line(lines, "allocate_block", "e2e_script.py:8")
        callee = first_line(lines, "hs_e2e_alloc", f"e2e.c:{CALL_LINE}")
        inlined = first_line(lines, "fill_block", f"e2e.c:{MALLOC_LINE}")
        assert outer < caller < callee < inlined
        # The biggest site comes first: its path has no eval loop and no
        # interpreter start-up (stacks with no Python frame keep theirs).
        assert not any("_PyEval_EvalFrameDefault" in line for line in lines[:callee])
        assert not any("Py_BytesMain" in line for line in lines[:callee])
        assert "warning" not in errors


def test_python_and_native_stack_modes(hs, native_capture):
    lines, _ = tree_lines(hs, native_capture, "--stacks", "python")
    first_line(lines, "allocate_block")
    assert not any("hs_e2e_alloc" in line for line in lines)

    lines, _ = tree_lines(hs, native_capture, "--stacks", "native")
    assert first_line(lines, "hs_e2e_alloc", f"e2e.c:{CALL_LINE}") < first_line(lines, "fill_block", f"e2e.c:{MALLOC_LINE}")
    first_line(lines, "_PyEval_EvalFrameDefault")
    assert not any("allocate_block" in line for line in lines)


def test_native_stacks_need_a_native_capture(hs, tmp_path):
    script = write(tmp_path / "plain.py", "data = [bytes(1000) for _ in range(100)]\n")
    capture = tmp_path / "plain.hsc"
    assert hs("run", "-q", "-o", str(capture), str(script)).returncode == 0
    proc = hs("tree", "--stacks", "native", str(capture))
    assert proc.returncode != 0
    assert b"no native stacks" in proc.stderr
    proc = hs("tree", "--stacks", "hybrid", str(capture))
    assert proc.returncode == 0
    assert b"no native stacks" in proc.stderr


def test_numpy_example_has_numpy_frames_under_make_matrices(hs, tmp_path):
    # numpy is a test dependency (make test-deps): missing, the test fails.
    import numpy  # noqa: F401
    capture = tmp_path / "numpy.hsc"
    proc = hs("run", "--native", "-q", "-o", str(capture), str(EXAMPLES / "numpy_native.py"))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    lines, _ = tree_lines(hs, capture)
    make = first_line(lines, "make_matrices")
    native = first_line(lines, "_multiarray_umath")
    assert make < native
