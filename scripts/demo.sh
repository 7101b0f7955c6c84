#!/usr/bin/env bash
# The main job on the bundled default: inspect and run the bundled MNIST MLP SavedModel
# (written by TensorFlow, trained on MNIST) on bundled digits, with no network.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/build.sh" >/dev/null
tessera="${TESSERA_BUILD_DIR:-$here/build}/tessera"
model="$here/examples/mnist_mlp"
"$tessera" inspect "$model"
echo
out="$(mktemp -d)/predictions.npz"
"$tessera" run "$model" --input "$model/../mnist_digits.npz" --output "$out"
echo "outputs written to $out"
