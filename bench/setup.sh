#!/usr/bin/env bash
# Creates the peers' venv for bench/run.py: ONNX Runtime, OpenVINO and tf2onnx, pip only.
# The venv inherits the main environment (tensorflow-cpu, numpy, protobuf from
# requirements.txt) via --system-site-packages; the peers go into the venv so they can never
# upgrade or downgrade a main pin. After installing, it checks that the main pins still hold
# inside the venv (a peer that needs another numpy/protobuf would shadow them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${TESSERA_BENCH_VENV:-$HOME/.cache/tessera/bench/venv-peers}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements-peers.txt"
"$venv/bin/python" - "$here/../requirements.txt" <<'PY'
import sys
from importlib.metadata import version
clash = []
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if '==' not in line:
        continue
    name, pin = line.split('==')
    if name in ('numpy', 'protobuf', 'tensorflow-cpu'):
        got = version(name)
        if got != pin:
            clash.append(f'{name}: requirements.txt pins {pin}, peers venv has {got}')
if clash:
    sys.exit('bench/setup.sh: peer packages clash with the main pins:\n  ' + '\n  '.join(clash))
import onnxruntime, openvino, tf2onnx  # noqa: F401,E401  (import check)
print(f'peers venv ready: {sys.prefix} (onnxruntime {version("onnxruntime")}, '
      f'openvino {version("openvino")}, tf2onnx {version("tf2onnx")})')
PY
