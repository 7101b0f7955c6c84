#!/usr/bin/env bash
# The main job on the bundled default: inspect the bundled MNIST MLP SavedModel (written by
# TensorFlow, trained on MNIST), compile it to a .tsr for this CPU, run it on bundled digits
# and time it, with no network.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/build.sh" >/dev/null
tessera="${TESSERA_BUILD_DIR:-$here/build}/tessera"
model="$here/examples/mnist_mlp"
"$tessera" inspect "$model"
echo
work="$(mktemp -d)"
"$tessera" compile "$model" --target cpu -o "$work/mnist_mlp.tsr"
"$tessera" run "$work/mnist_mlp.tsr" --input "$model/../mnist_digits.npz" --output "$work/predictions.npz"
echo "outputs written to $work/predictions.npz"
echo
"$tessera" bench "$work/mnist_mlp.tsr" --batch 1,16 --iters 200 2>/dev/null
