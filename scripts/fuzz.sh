#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan + UBSan and runs each for a bounded time from
# the committed corpus (fuzz/corpus/<target>), printing coverage. Crashers are saved under
# build-fuzz/crashes and fail the run; add each as a regression test.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TESSERA_FUZZ_BUILD_DIR:-$here/build-fuzz}"
seconds="${TESSERA_FUZZ_SECONDS:-30}"
# A fixed seed keeps CI reproducible (the same inputs every run); long local campaigns pass
# TESSERA_FUZZ_SEED=0 for a fresh random seed each time.
seed="${TESSERA_FUZZ_SEED:-1}"
CC=clang CXX=clang++ cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTESSERA_FUZZ=ON >/dev/null
targets=$(cd "$here/fuzz" && ls *_fuzzer.cc | sed 's/\.cc$//')
ninja -C "$build" -j "$(nproc)" $targets
mkdir -p "$build/crashes"
# Third-party findings we cannot fix (each one says why) are suppressed; ours still print.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}suppressions=$here/fuzz/ubsan.supp"
for t in $targets; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  cp -n "$here/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null || true
  echo "-- $t (${seconds}s)"
  rc=0
  "$build/$t" -max_total_time="$seconds" -seed="$seed" -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
    -rss_limit_mb=4096 -timeout=20 "$corpus" >"$build/$t.log" 2>&1 || rc=$?
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|ERROR|SUMMARY" "$build/$t.log" | tail -4 || true
  if [ "$rc" -ne 0 ]; then tail -40 "$build/$t.log"; echo "fuzzer $t failed (rc $rc)"; exit 1; fi
done
