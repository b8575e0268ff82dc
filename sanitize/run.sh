#!/bin/bash
# Runs the example scenarios with a tracker built with AddressSanitizer and
# UndefinedBehaviorSanitizer (docs/RELIABILITY.md, "Sanitizer builds").
# Usage: sanitize/run.sh TRACKER HEAPSCOPE PYTHON [EXAMPLES_DIR]
#   TRACKER    the sanitized libHeapscopeTracker.so (make sanitize builds it)
#   HEAPSCOPE  the heapscope CLI (the ordinary build)
#   PYTHON     the interpreter the tracker was built for (with numpy and pytest)
# Everything it makes goes under .build/sanitize/; a scenario that fails, or
# any sanitizer report, makes it exit non-zero. Each scenario's output is in
# .build/sanitize/logs/.
set -uo pipefail
# Absolute (the scenarios run in their own folder), symlinks kept (a venv's python).
tracker=$(realpath -s "${1:?sanitized tracker}")
heapscope=$(realpath -s "${2:?heapscope CLI}")
python=$(realpath -s "${3:?python}")
root=$(cd "$(dirname "$0")/.." && pwd)
examples=$(realpath -s "${4:-$root/examples}")
work=$root/.build/sanitize
swift=${SWIFT:-$(command -v swift || echo /opt/swift/usr/bin/swift)}

# The heapscope package with the sanitized tracker in place of the ordinary
# one: `heapscope run` finds it through HEAPSCOPE_PACKAGE_DIR, the Python API
# and the pytest plugin through PYTHONPATH.
rm -rf "$work/pkg" "$work/logs" "$work/out"
mkdir -p "$work/pkg" "$work/logs" "$work/out"
cp -r "$root/PythonHarness/heapscope" "$work/pkg/heapscope"
rm -f "$work/pkg/heapscope"/_tracker*.so
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
cp "$tracker" "$work/pkg/heapscope/_tracker$suffix"

# The interpreter is not instrumented, so the sanitizer runtime (the Swift
# toolchain's, which also holds UBSan's handlers) is preloaded. Python's own
# allocations at exit are not freed on purpose: no leak check. A report ends
# the process with status 86 (ASan) or aborts it (UBSan: -fno-sanitize-recover).
runtime=$(ls "$(dirname "$(readlink -f "$swift")")"/../lib/clang/*/lib/linux/libclang_rt.asan-x86_64.so | head -1)
[ -f "$runtime" ] || { echo "sanitize: no libclang_rt.asan-x86_64.so in the Swift toolchain" >&2; exit 1; }
# Only the commands prefixed with ${sanitized[@]} get the runtime: heapscope
# and the programs it runs, not the test runner nor the captures' reading.
# HEAPSCOPE_ENTRY_SET names the two variables set here, as the console script
# does, so that the programs do not see them.
sanitized=(env "LD_PRELOAD=$runtime" "ASAN_OPTIONS=detect_leaks=0:exitcode=86:halt_on_error=1"
  "UBSAN_OPTIONS=print_stacktrace=1" "HEAPSCOPE_PACKAGE_DIR=$work/pkg/heapscope" "HEAPSCOPE_PYTHON=$python"
  "HEAPSCOPE_ENTRY_SET=HEAPSCOPE_PYTHON,HEAPSCOPE_PACKAGE_DIR")
report_pattern='ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer'

failed=()
# scenario NAME EXPECTED_STATUS COMMAND...: runs it in $work/out, checks its
# status, that no sanitizer spoke, and that every capture it wrote
# ($name.hsc and its children's; the pytest run writes none) is complete
# (read by the ordinary CLI, without the sanitizer).
scenario() {
  local name=$1 expected=$2; shift 2
  local log=$work/logs/$name.log start=$SECONDS
  (cd "$work/out" && "$@") >"$log" 2>&1
  local status=$? problem=""
  if grep -Eq "$report_pattern" "$log"; then
    problem="sanitizer report"
  elif [ "$status" != "$expected" ]; then
    problem="exit status $status, expected $expected"
  else
    local capture
    [ "$name" = test_budget ] || [ -e "$work/out/$name.hsc" ] || problem="no capture"
    for capture in "$work/out/$name".hsc "$work/out/$name".hsc.[0-9]*; do
      [ -e "$capture" ] || continue
      if ! [[ $("$heapscope" stats --json "$capture" 2>>"$log") == *'"truncated": false'* ]]; then
        problem="capture $(basename "$capture") incomplete or unreadable"
        break
      fi
    done
  fi
  if [ -n "$problem" ]; then
    failed+=("$name")
    echo "sanitize: FAIL $name ($problem; log: $log)"
  else
    echo "sanitize: ok   $name ($((SECONDS - start)) s)"
  fi
}

run() { local name=$1; shift; scenario "$name" 0 "${sanitized[@]}" "$heapscope" run -q -f -o "$work/out/$name.hsc" "$@"; }
run two_copies              "$examples/two_copies.py"
run two_copies-native       --native "$examples/two_copies.py"
run unbounded_cache-leaks   --leaks "$examples/unbounded_cache.py"
run csv_pipeline-native     --native --no-compress "$examples/csv_pipeline.py"
run churn                   "$examples/churn.py"
run churn-system            --no-trace-python-allocators "$examples/churn.py"
run numpy_native            --native "$examples/numpy_native.py"
run worker_threads          "$examples/worker_threads.py"
run worker_threads-native   --native "$examples/worker_threads.py"
run forking                 --follow-fork "$examples/forking.py"
run forking-native          --follow-fork --native "$examples/forking.py"
run pinned_arenas-referrers --referrers "$examples/pinned_arenas.py"
run two_copies-limit        --memory-limit 2GiB "$examples/two_copies.py"
# --memory-limit reached: the capture ends there, status 120.
scenario unbounded_cache-limit 120 "${sanitized[@]}" "$heapscope" run -q -f -o "$work/out/unbounded_cache-limit.hsc" \
  --memory-limit 20MB "$examples/unbounded_cache.py"
# The Python API and the pytest plugin, with the sanitized package first on the path.
scenario tracker_block 0 "${sanitized[@]}" PYTHONPATH="$work/pkg" "$python" "$examples/tracker_block.py"
# test_budget.py has one test over its budget on purpose: pytest exits 1.
scenario test_budget 1 "${sanitized[@]}" PYTHONPATH="$work/pkg" "$python" -m pytest -q -p no:cacheprovider --heapscope \
  "$examples/test_budget.py"
grep -q "test_small_report" "$work/logs/test_budget.log" ||
  { failed+=(test_budget-report); echo "sanitize: FAIL test_budget (no budget report)"; }

# The suite's tests of storms, signals, children and pass-through, with
# every heapscope command they run sanitized (the plain python runs they
# compare with are not). faulthandler_crash is left out: ASan's own SIGSEGV
# handler reports that deliberate crash instead of faulthandler.
tests=(test_storms.py test_signals.py test_children.py test_passthrough.py)
start=$SECONDS
if HEAPSCOPE_TEST_COMMAND="$(printf '%q ' "${sanitized[@]}" "$heapscope")" \
   "$python" -m pytest -q -p no:cacheprovider -k "not faulthandler_crash" \
   "${tests[@]/#/$root/PythonHarness/tests/}" >"$work/logs/pytest.log" 2>&1; then
  echo "sanitize: ok   pytest ${tests[*]} ($((SECONDS - start)) s; $(tail -1 "$work/logs/pytest.log"))"
else
  failed+=(pytest)
  echo "sanitize: FAIL pytest ${tests[*]} (log: $work/logs/pytest.log)"
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "sanitize: ${#failed[@]} scenario(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "sanitize: every scenario clean under AddressSanitizer and UndefinedBehaviorSanitizer"
