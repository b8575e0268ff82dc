#!/bin/bash
# Builds the capture-reader fuzz target and runs it for SECONDS seconds
# (fuzz/README.md). Usage: fuzz/run.sh SECONDS HEAPSCOPE PYTHON
#   HEAPSCOPE  the heapscope CLI that records the seed captures
#   PYTHON     the interpreter the seeds' scripts run under
# Everything it makes goes under .build/fuzz/; findings go to .build/fuzz/findings/
# and make it exit non-zero.
set -euo pipefail
seconds=${1:?seconds}
heapscope=${2:?heapscope CLI}
python=${3:?python}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/.build/fuzz
swiftc=${SWIFTC:-$(command -v swiftc || echo /opt/swift/usr/bin/swiftc)}
mkdir -p "$work/corpus" "$work/seeds" "$work/findings"

# The HeapscopeFormat and HeapscopeWire sources and the entry point, as one
# module, with libFuzzer's coverage and AddressSanitizer.
binary=$work/fuzz-capture
sources=("$root"/Sources/HeapscopeWire/*.swift "$root"/Sources/HeapscopeFormat/*.swift "$root/fuzz/FuzzCapture.swift")
if [ ! -x "$binary" ] || [ -n "$(find "${sources[@]}" -newer "$binary")" ]; then
  echo "fuzz: building $binary"
  # The linker warns about every ASan check symbol: the output goes to a log.
  "$swiftc" -sanitize=fuzzer,address -parse-as-library -O -g -module-name HeapscopeFormat \
    -I "$root/Sources/CZstd" "${sources[@]}" -o "$binary" >"$work/build.log" 2>&1 ||
    { grep -v 'Cannot export local symbol' "$work/build.log" >&2; exit 1; }
fi

# Real captures of the examples: raw and zstd, with and without native stacks.
# The fuzzer reads at most 64 KiB of an input: each seed is the first 64 KiB
# (a capture cut short, which the reader must handle too); fuzz/seeds/ holds
# small complete ones.
max_len=65536
record() {  # name, then heapscope run's arguments
  local name=$1; shift
  [ -s "$work/seeds/$name.hsc" ] && return
  HEAPSCOPE_PYTHON="$python" "$heapscope" run -f -q -o "$work/seed.hsc" "$@" >/dev/null
  head -c $max_len "$work/seed.hsc" >"$work/seeds/$name.hsc"
  rm -f "$work/seed.hsc"
}
record worker_threads      "$root/examples/worker_threads.py"
record worker_threads-raw  --no-compress "$root/examples/worker_threads.py"
record csv_pipeline-native     --native "$root/examples/csv_pipeline.py"
record csv_pipeline-native-raw --native --no-compress "$root/examples/csv_pipeline.py"
record churn-system-raw    --no-trace-python-allocators --no-compress "$root/examples/churn.py"

# -malloc_limit_mb: one allocation beyond it is a finding (a claimed length
# must not become an allocation); -timeout: an input taking longer is a hang.
cd "$work"
"$binary" -max_total_time="$seconds" -max_len=$max_len -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=128 \
  -print_final_stats=1 -artifact_prefix="$work/findings/" \
  corpus seeds "$root/fuzz/seeds" >"$work/last-run.log" 2>&1
status=$?
grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done|stat::|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written|No such file)' "$work/last-run.log" || true
# A run that never reached its end (no final stats) fuzzed nothing.
if [ "$status" = 0 ] && ! grep -q '^stat::number_of_executed_units' "$work/last-run.log"; then
  echo "fuzz: the fuzzer did not run (full log: $work/last-run.log)" >&2
  exit 1
fi
if [ "$status" != 0 ]; then
  echo "fuzz: finding(s) in $work/findings/ (full log: $work/last-run.log)" >&2
  exit 1
fi
