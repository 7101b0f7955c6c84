#!/usr/bin/env bash
# Installs everything Tessera needs to build and test on a fresh Debian 12 machine.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

apt_packages=(
  build-essential cmake ninja-build pkg-config
  protobuf-compiler libprotobuf-dev zlib1g-dev libsnappy-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  libdnnl-dev rapidjson-dev libxbyak-dev  # xbyak: AVX-512 code for fused elementwise programs
  openmpi-bin libopenmpi-dev  # mpirun -np N tessera train (optional at build time)
  libgrpc++-dev protobuf-compiler-grpc libboost-dev wrk  # tessera serve: gRPC, Beast; wrk loads it
  chromium  # headless screenshot test of the rdu --report HTML
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python is only for tests and benchmarks (TensorFlow writes the zoo and is the oracle).
python3 -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
# tensorflow-serving-api would pull the full tensorflow package; install it without deps.
python3 -m pip install -q --disable-pip-version-check --no-deps -r "$here/requirements-nodeps.txt"
# Benchmark peers (ONNX Runtime, OpenVINO, tf2onnx) in their own venv, so they never move a
# main pin; CI smoke-runs the harness with them (bench/README.md).
"$here/bench/setup.sh"
echo "bootstrap: ok"
