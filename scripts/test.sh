#!/usr/bin/env bash
# The whole test suite: build, C++ unit tests, Python tests against TensorFlow (the zoo is
# generated once and cached by content hash, see TESSERA_ZOO_DIR), and bounded fuzzing runs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TESSERA_BUILD_DIR:-$here/build}"
export TESSERA_BUILD_DIR="$build"
# Content-hashed cache of TensorFlow-written models; regenerated when the generator changes.
export TESSERA_ZOO_DIR="${TESSERA_ZOO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/zoo}"
# Tests run many processes at once on few cores: OpenMP threads must not spin at barriers
# (the CLI's own default, a short spin, is for a machine it has to itself).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
start=$(date +%s)

echo "== build"
"$here/scripts/build.sh"

# Before the C++ tests: the pass and cpu-backend zoo tests read these models.
echo "== zoo (TensorFlow-written models, cached in $TESSERA_ZOO_DIR)"
python3 "$here/tests/zoo/generate.py" --out "$TESSERA_ZOO_DIR" --tier all --jobs "$(nproc)"

echo "== C++ unit tests"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"

echo "== Python tests (TensorFlow as the oracle)"
rm -rf "$build/op_coverage"
TESSERA_SKIP_ZOO_GENERATION=1 python3 -m pytest -q -n "$(nproc)" "$here/tests/py"
python3 "$here/tests/py/check_op_coverage.py"

echo "== fuzzing (bounded)"
"$here/scripts/fuzz.sh"

echo "== all tests passed in $(( ($(date +%s) - start) / 60 )) min"
