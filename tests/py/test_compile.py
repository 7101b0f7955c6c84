"""Every inference-tier zoo model compiled once per ISA to a .tsr (full default pipeline), then
run from that one file at batch 1, 3 and 32: numeric match with TensorFlow's outputs.

Needs a zoo generated with reference batches 3 and 32 (tests/zoo/reference.py BATCHES)."""
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

from conftest import ZOO_DIR, zoo_models
from tessera_testlib import TESSERA, assert_numeric_match

MODELS = zoo_models("inference")
BATCHES = (1, 3, 32)


def supported_isas():
    try:
        flags = set(re.search(r"^flags\s*:(.*)$", pathlib.Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
    except (OSError, AttributeError):
        return ["scalar"]
    isas = []
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        isas.append("avx512")
    if {"avx2", "fma"} <= flags:
        isas.append("avx2")
    return isas + ["scalar"]


ISAS = supported_isas()


def tessera(*args, isa=None, check=True):
    env = dict(os.environ)
    if isa:
        env["TESSERA_ISA"] = isa
    proc = subprocess.run([str(TESSERA), *map(str, args)], capture_output=True, text=True, env=env, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def signature_bindings(tsr):
    """{graph tensor name: signature key} for inputs and outputs, from `tessera inspect`."""
    out = tessera("inspect", tsr).stdout
    section = out.split("serving_default", 1)[1]
    return dict((t, k) for k, t in re.findall(r"^\s+(\S+)\s+\S+\s+\S+\s+<- (\S+)$", section, re.M))


_compiled = {}


@pytest.fixture(scope="module")
def tsr_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tsr")


def compiled(model, isa, tsr_dir):
    """One .tsr per (model, ISA), reused across batches."""
    key = (model["name"], isa)
    if key not in _compiled:
        out = tsr_dir / f"{model['name']}.{isa}.tsr"
        proc = tessera("compile", ZOO_DIR / model["path"], "--target", "cpu", "-o", out, isa=isa, check=False)
        _compiled[key] = (out, proc) if proc.returncode == 0 else (None, proc)
    out, proc = _compiled[key]
    assert out is not None, f"compile failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return out


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_zoo_has_compile_batches():
    assert MODELS, f"no inference-tier models in {ZOO_DIR}/manifest.json"
    missing = [m["name"] for m in MODELS if not set(BATCHES) <= set(m.get("batches", ()))]
    assert not missing, f"zoo at {ZOO_DIR} lacks reference batches {BATCHES} for {missing}: regenerate it"


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("model", MODELS, ids=[m["name"] for m in MODELS])
def test_tsr_numeric_match(model, isa, batch, tsr_dir, tmp_path):
    if batch not in model.get("batches", ()):
        pytest.skip(f"zoo has no reference batch {batch} (regenerate the zoo)")
    tsr = compiled(model, isa, tsr_dir)
    base = (ZOO_DIR / model["path"]).parent
    inputs = _load(base / f"inputs_b{batch}.npz")
    expected = _load(base / f"outputs_b{batch}.npz")
    if model["format"] == "saved_model":
        feeds, names = inputs, {k: k for k in expected}
    else:  # GraphDef references are keyed by tensor name; the signature by its own keys
        bind = signature_bindings(tsr)
        feeds = {bind[t]: v for t, v in inputs.items()}
        names = {t: bind[t] for t in expected if t in bind}
        assert names, f"no reference output is a signature output: {sorted(expected)} vs {bind}"
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(inp, **feeds)
    tessera("run", tsr, "--signature", "serving_default", "--input", inp, "--output", out, isa=isa)
    got = _load(out)
    for ref_name, key in names.items():
        ref = expected[ref_name]
        if ref.dtype.kind in "fc":
            assert np.std(ref.astype(np.float64)) > 1e-3, f"{ref_name}: degenerate reference"
        assert_numeric_match(ref, got[key], f"{model['name']}/{isa}/b{batch}/{ref_name}")


CROSS = [m for m in MODELS if m["name"] in ("cnn_tfk", "mlp_k3")]


@pytest.mark.parametrize("run_isa", ISAS)
@pytest.mark.parametrize("model", CROSS, ids=[m["name"] for m in CROSS])
def test_tsr_packed_for_another_isa_repacks(model, run_isa, tsr_dir, tmp_path):
    """A .tsr whose weights were packed for ISA A, loaded where B is in force: the packed
    weights are redone from the original constants, results still match TensorFlow."""
    built_isa = ISAS[-1] if run_isa == ISAS[0] else ISAS[0]
    tsr = compiled(model, built_isa, tsr_dir)
    base = (ZOO_DIR / model["path"]).parent
    inp, out = base / "inputs_b3.npz", tmp_path / "out.npz"
    tessera("run", tsr, "--input", inp, "--output", out, isa=run_isa)
    got, expected = _load(out), _load(base / "outputs_b3.npz")
    for name, ref in expected.items():
        assert_numeric_match(ref, got[name], f"{model['name']}: built {built_isa}, run {run_isa}")
