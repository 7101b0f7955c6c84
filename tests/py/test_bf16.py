"""--precision bf16 on the cpu target (docs/bf16.md): matmul/conv take bf16 inputs and weights
and accumulate in f32. Every inference-tier zoo model must stay within the documented bf16
tolerance of TensorFlow's fp32 outputs, and the classifiers must keep their top-1 class on
(nearly) every zoo input; the .tsr records its precision; a machine (or ISA override) without
AVX-512 BF16 gets a clear error. Skips, with the reason, where this CPU cannot run bf16.

`python3 tests/py/test_bf16.py` prints the measured error table that docs/bf16.md quotes."""
import functools
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import ZOO_DIR, zoo_models  # noqa: E402
from tessera_testlib import REPO, TESSERA, run_saved_model, run_cli  # noqa: E402

# Documented tolerance (docs/bf16.md): max|bf16 - ref| <= BF16_RTOL * max|ref| per float
# output over every zoo batch. Measured: 1.5e-3..4.4e-3 for logits and features, 1.3e-2 for
# tf1_savedmodel's softmax probabilities; 3e-2 is about 15 bf16 unit roundoffs (2^-9).
BF16_RTOL = 3e-2
# Classifier heads: the share of zoo inputs (batches 1, 3, 8, 32: 44 rows) whose top-1 class
# must agree with the fp32 reference.
TOP1_MIN = 0.95
BATCHES = (1, 3, 8, 32)
MLP = REPO / "examples/mnist_mlp"
DIGITS = REPO / "examples/mnist_digits.npz"


@functools.lru_cache(maxsize=None)
def bf16_unavailable():
    """None if this machine runs --precision bf16, else the CLI's reason."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([str(TESSERA), "compile", str(MLP), "--precision", "bf16", "-o",
                               f"{tmp}/probe.tsr"], capture_output=True, text=True, timeout=600)
    if proc.returncode == 0:
        return None
    if "bf16 precision needs AVX-512 BF16" in proc.stderr:
        return proc.stderr.strip().splitlines()[-1]
    raise AssertionError(f"bf16 probe failed for another reason:\n{proc.stderr}")


def need_bf16():
    why = bf16_unavailable()
    if why:
        pytest.skip(f"no bf16 here: {why}")


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# The zoo's classifiers (a [batch, classes] head: logits or probabilities); the others
# (encoder, tf.Module tests) regress values.
CLASSIFIERS = ("cnn_", "efficientnetb0_", "gru_", "lstm_", "mlp_", "mobilenetv2_", "resnet50_", "tf1_")


def is_classifier(model, ref):
    return model["name"].startswith(CLASSIFIERS) and ref.dtype.kind == "f" and ref.ndim == 2 and ref.shape[1] >= 10


def measure(model):
    """{output: dict(max_abs, rel, fp32_rel, top1_agree, top1_rows)} over every zoo batch."""
    folder = ZOO_DIR / model["path"]
    stats = {}
    for batch in BATCHES:
        inputs = _load(folder.parent / f"inputs_b{batch}.npz")
        expected = _load(folder.parent / f"outputs_b{batch}.npz")
        bf16 = run_saved_model(folder, inputs, signature=model["signature"], extra_args=("--precision", "bf16"))
        fp32 = run_saved_model(folder, inputs, signature=model["signature"])
        for name, ref in expected.items():
            if ref.dtype.kind != "f":
                assert np.array_equal(ref, bf16[name]), f"{name}: non-float output changed in bf16"
                continue
            r = ref.astype(np.float64)
            s = stats.setdefault(name, dict(max_abs=0.0, max_ref=0.0, fp32_abs=0.0, agree=0, rows=0))
            s["max_abs"] = max(s["max_abs"], float(np.max(np.abs(bf16[name] - r))))
            s["fp32_abs"] = max(s["fp32_abs"], float(np.max(np.abs(fp32[name] - r))))
            s["max_ref"] = max(s["max_ref"], float(np.max(np.abs(r))))
            if is_classifier(model, ref):
                s["agree"] += int(np.sum(np.argmax(bf16[name], 1) == np.argmax(ref, 1)))
                s["rows"] += ref.shape[0]
    for s in stats.values():
        s["rel"] = s["max_abs"] / max(s["max_ref"], 1e-30)
        s["fp32_rel"] = s["fp32_abs"] / max(s["max_ref"], 1e-30)
    return stats


# Frozen GraphDefs run by tensor name on the reference interpreter only; the zoo's TF1 net is
# covered through its SavedModel twin (tf1_savedmodel).
INFERENCE = [m for m in zoo_models("inference") if m["format"] == "saved_model"]


@pytest.mark.parametrize("model", INFERENCE, ids=[m["name"] for m in INFERENCE])
def test_zoo_model_within_bf16_tolerance(model):
    need_bf16()
    stats = measure(model)
    assert stats, "no float outputs"
    for name, s in stats.items():
        assert s["rel"] <= BF16_RTOL, \
            f"{name}: max|bf16-ref| {s['max_abs']:.3g} > {BF16_RTOL}*max|ref| {s['max_ref']:.3g}"
        if s["rows"]:
            assert s["agree"] / s["rows"] >= TOP1_MIN, f"{name}: top-1 agrees on {s['agree']}/{s['rows']}"


@pytest.fixture(scope="module")
def mlp_bf16_tsr(tmp_path_factory):
    need_bf16()
    out = tmp_path_factory.mktemp("bf16") / "mlp_bf16.tsr"
    run_cli("compile", MLP, "--precision", "bf16", "-o", out)
    return out


def _run(model, tmp, *extra, env=None, check=True):
    out = pathlib.Path(tmp) / "out.npz"
    proc = subprocess.run([str(TESSERA), "run", str(model), "--input", str(DIGITS), "--output", str(out),
                           *map(str, extra)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **(env or {})))
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc, (_load(out) if proc.returncode == 0 else None)


def test_tsr_records_bf16_and_packs_bf16_weights(mlp_bf16_tsr):
    info = run_cli("inspect", mlp_bf16_tsr).stdout
    assert "precision:  bf16" in info, info
    assert "dt=bf16" in info, info  # the packed layouts name their element type


def test_bf16_tsr_runs_close_to_fp32_and_can_be_overridden(mlp_bf16_tsr, tmp_path):
    _, bf16 = _run(mlp_bf16_tsr, tmp_path)
    _, fp32 = _run(MLP, tmp_path, "--no-cache")
    _, back = _run(mlp_bf16_tsr, tmp_path, "--precision", "fp32")  # repacks from the constants
    for k, ref in fp32.items():
        scale = np.max(np.abs(ref))
        err = np.max(np.abs(bf16[k] - ref))
        assert 1e-6 * scale < err <= BF16_RTOL * scale, (k, err, scale)  # bf16 really ran, within tolerance
        assert np.max(np.abs(back[k] - ref)) <= 1e-4 * scale + 1e-6, k


def test_bf16_without_avx512_bf16_is_a_clear_error(mlp_bf16_tsr, tmp_path):
    # TESSERA_ISA=avx2 stands in for a machine without AVX-512 BF16 (oneDNN follows it).
    proc, _ = _run(mlp_bf16_tsr, tmp_path, env={"TESSERA_ISA": "avx2"}, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "bf16 precision needs AVX-512 BF16" in proc.stderr and "--precision fp32" in proc.stderr, proc.stderr
    assert "mlp_bf16.tsr" in proc.stderr, proc.stderr  # names the file
    proc = subprocess.run([str(TESSERA), "compile", str(MLP), "--precision", "bf16", "--isa", "avx2", "-o",
                           str(tmp_path / "x.tsr")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "bf16 precision needs AVX-512 BF16" in proc.stderr, proc.stderr


def test_unknown_precision_flag():
    proc = run_cli("run", MLP, "--precision", "fp16", "--input", "x=[0]", check=False)
    assert proc.returncode != 0 and "unknown precision 'fp16'" in proc.stderr, proc.stderr


def test_compile_cache_keys_on_precision(tmp_path):
    need_bf16()
    env = {"TESSERA_CACHE_DIR": str(tmp_path / "cache")}
    _run(MLP, tmp_path, env=env)
    _run(MLP, tmp_path, "--precision", "bf16", env=env)
    _run(MLP, tmp_path, "--precision", "bf16", env=env)  # a hit: no third entry
    assert len(list((tmp_path / "cache").glob("*.tsr"))) == 2


def main():
    """Prints the per-model error table for docs/bf16.md."""
    why = bf16_unavailable()
    if why:
        sys.exit(f"no bf16 here: {why}")
    print("| model | output | max abs err | max err / max|ref| | fp32 (Tessera) same measure | top-1 agreement |")
    print("|---|---|---|---|---|---|")
    for model in INFERENCE:
        for name, s in measure(model).items():
            top1 = f"{s['agree']}/{s['rows']}" if s["rows"] else "-"
            print(f"| {model['name']} | {name} | {s['max_abs']:.3g} | {s['rel']:.2e} | {s['fp32_rel']:.1e} | {top1} |",
                  flush=True)


if __name__ == "__main__":
    main()
