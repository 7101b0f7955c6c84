"""The zoo (models written by TensorFlow 2.21, see tests/zoo/) through Tessera.

Inference tier: numeric match with TensorFlow's own outputs at batch 1 and 8.
Import-only tier: every keras.applications model imports with every op recognised and every
value's rank inferred."""
import re

import numpy as np
import pytest

from conftest import ZOO_DIR, zoo_models
from tessera_testlib import assert_numeric_match, run_cli, run_graph, run_saved_model

INFERENCE = zoo_models("inference")
IMPORT_ONLY = zoo_models("import")


def test_zoo_was_generated():
    assert INFERENCE, f"no inference-tier models in {ZOO_DIR}/manifest.json"
    assert IMPORT_ONLY, f"no import-tier models in {ZOO_DIR}/manifest.json"


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("model", INFERENCE, ids=[m["name"] for m in INFERENCE])
def test_inference_numeric_match(model, batch):
    folder = ZOO_DIR / model["path"]
    base = folder.parent  # inputs_b*.npz / outputs_b*.npz sit beside the model
    inputs = _load(base / f"inputs_b{batch}.npz")
    expected = _load(base / f"outputs_b{batch}.npz")
    if model["format"] == "saved_model":
        got = run_saved_model(folder, inputs, signature=model["signature"])
    else:
        got = run_graph(folder, inputs, list(expected))
    assert set(got) == set(expected)
    for name, ref in expected.items():
        assert np.std(ref.astype(np.float64)) > 1e-3 or ref.dtype.kind not in "fc", \
            f"{name}: degenerate reference"
        assert_numeric_match(ref, got[name], name)


CHUNKED = [m for m in INFERENCE if m["name"].split("_")[0] in ("mobilenetv2", "efficientnetb0", "resnet50")]


@pytest.mark.parametrize("model", CHUNKED, ids=[m["name"] for m in CHUNKED])
def test_inference_with_row_chunks(model, monkeypatch, tmp_path):
    """The cpu target's row chunks (backend/cpu/row_chunks.h) on real image models: the first
    layers 3 rows at a time (batch 8: chunks of 3, 3 and 2), the rest on the whole batch."""
    monkeypatch.setenv("TESSERA_CPU_CHUNK_ROWS", "3")
    monkeypatch.setenv("TESSERA_CPU_PLAN_STATS", "1")
    folder = ZOO_DIR / model["path"]
    inputs = _load(folder.parent / "inputs_b8.npz")
    expected = _load(folder.parent / "outputs_b8.npz")
    np.savez(tmp_path / "in.npz", **inputs)
    proc = run_cli("run", folder, "--signature", model["signature"], "--input", tmp_path / "in.npz",
                   "--output", tmp_path / "out.npz")
    heads = re.findall(r"cpu row chunks: head of (\d+) nodes.*, 3 rows per chunk", proc.stderr)
    assert heads and int(heads[0]) >= 2, proc.stderr[-2000:]
    got = _load(tmp_path / "out.npz")
    assert set(got) == set(expected)
    for name, ref in expected.items():
        assert_numeric_match(ref, got[name], name)


@pytest.mark.parametrize("model", IMPORT_ONLY, ids=[m["name"] for m in IMPORT_ONLY])
def test_import_only_every_op_and_shape(model):
    proc = run_cli("inspect", "--no-variables", ZOO_DIR / model["path"], check=False)
    assert "unsupported ops: none" in proc.stdout, proc.stdout[-3000:] + proc.stderr
    assert proc.returncode == 0, proc.stderr
    values, unknown = map(int, re.search(r"shapes: +(\d+) values, (\d+) of unknown rank", proc.stdout).groups())
    assert values > 0 and unknown == 0, f"{unknown} of {values} values have unknown rank"
