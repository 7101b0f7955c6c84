"""Training graphs on the cpu backend: the differentiated graph (forward + backward), optimised
by the pass pipeline and run with the cpu kernels (`tessera grad --backend cpu`), against the
reference interpreter on the unoptimised graph and against tf.GradientTape; plus a smoke run
of the training benchmark (bench/train.py --smoke: structure only, no speed assertions).

Tolerance: the numeric-match rule (max|a-b| <= 1e-4*max|ref| + 1e-6) per gradient.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from tessera_testlib import BUILD, REPO, assert_numeric_match, run_cli

tf = pytest.importorskip("tensorflow")

ZOO = pathlib.Path(os.environ.get("TESSERA_ZOO_DIR", pathlib.Path.home() / ".cache/tessera/zoo"))


def _grads(model, inputs, backend, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        np.savez(tmp / "in.npz", **inputs)
        run_cli("grad", model, "--input", tmp / "in.npz", "--backend", backend, "--output", tmp / "out.npz", *extra)
        with np.load(tmp / "out.npz") as z:
            return {k: z[k] for k in z.files}


@pytest.mark.parametrize("name,loss", [("mlp_k3", "mse"), ("cnn_k3", "mse"), ("cnn_k3", "sum"), ("mlp_tfk", "mse")])
def test_zoo_gradients_cpu_match_reference(name, loss):
    model = ZOO / name / "saved_model"
    if not model.exists():
        pytest.skip(f"zoo model {name} not generated")
    with np.load(ZOO / name / "inputs_b32.npz") as z:
        inputs = {k: z[k] for k in z.files}
    extra = ()
    tmp = tempfile.TemporaryDirectory()
    if loss == "mse":
        with np.load(ZOO / name / "outputs_b32.npz") as z:
            rng = np.random.default_rng(3)
            target = {k: rng.uniform(0, 1, z[k].shape).astype(np.float32) for k in z.files}
        np.savez(pathlib.Path(tmp.name) / "t.npz", **target)
        extra = ("--loss", "mse", "--target", pathlib.Path(tmp.name) / "t.npz")
    ref = _grads(model, inputs, "reference", extra)
    got = _grads(model, inputs, "cpu", extra + ("--threads", "2"))
    tmp.cleanup()
    assert set(ref) == set(got)
    grads = [k for k in ref if k.startswith("grad/")]
    assert grads and max(np.max(np.abs(ref[k])) for k in grads) > 1e-4, "degenerate gradients"
    for k in ["loss"] + grads:
        assert_numeric_match(ref[k], got[k], f"{name} {k}")


def test_zoo_gradients_cpu_match_tf():
    """cnn_tfk (FusedBatchNormV3, ReLU, max pool) at batch 32 under a sum loss, against
    tf.GradientTape: here the cpu backend agrees with TF to ~1e-7 while the reference
    interpreter is off by up to 0.6% on the first block's gradients (measured; a reference
    kernel issue, not a cpu one), so this case is checked against TF itself. Variables are
    paired by value (names differ between the runtimes)."""
    name = "cnn_tfk"
    model = ZOO / name / "saved_model"
    if not model.exists():
        pytest.skip(f"zoo model {name} not generated")
    with np.load(ZOO / name / "inputs_b32.npz") as z:
        inputs = {k: z[k] for k in z.files}
    loaded = tf.saved_model.load(str(model))  # kept alive: the signature refers to its variables
    fn = loaded.signatures["serving_default"]
    with tf.GradientTape() as tape:
        out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        total = tf.add_n([tf.reduce_sum(v) for v in out.values()])
    variables = tape.watched_variables()
    grads = tape.gradient(total, variables)
    got = _grads(model, inputs, "cpu", ("--threads", "2"))
    checked = 0
    for var, g in zip(variables, grads):
        if g is None:
            continue
        value = var.numpy()
        keys = [k[len("value/"):] for k in got if k.startswith("value/") and got[k].shape == value.shape
                and np.array_equal(got[k], value)]
        assert keys, f"no Tessera variable has the value of {var.name}"
        ref = tf.convert_to_tensor(g).numpy()
        errs = [np.max(np.abs(got["grad/" + k] - ref)) for k in keys]
        assert min(errs) <= 1e-4 * np.max(np.abs(ref)) + 1e-6, (var.name, min(errs), np.max(np.abs(ref)))
        checked += 1
    assert checked >= 8


def _graph_grads_cpu(build, feeds, weights):
    """Tessera's cpu-backend d loss / d feed for the graph build(**placeholders)."""
    g = tf.Graph()
    with g.as_default():
        phs = {k: tf.compat.v1.placeholder(tf.float32, v.shape, name=k) for k, v in feeds.items()}
        out = build(**phs)
        loss = tf.reduce_sum(out * weights, name="loss")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "g.pb").write_bytes(g.as_graph_def().SerializeToString())
        args = ["grad", tmp / "g.pb", "--loss-tensor", loss.name, "--output", tmp / "out.npz", "--backend", "cpu"]
        for k, v in feeds.items():
            np.save(tmp / f"{k}.npy", v)
            args += ["--input", f"{k}:0={tmp / (k + '.npy')}", "--wrt", f"{k}:0"]
        run_cli(*args)
        with np.load(tmp / "out.npz") as z:
            return {k: z[f"grad/{k}:0"] for k in feeds}


def _check_with_tape(build, feeds, seed=0):
    rng = np.random.default_rng(seed)
    xs = {k: tf.constant(v) for k, v in feeds.items()}
    with tf.GradientTape() as tape:
        for x in xs.values():
            tape.watch(x)
        out = build(**xs)
        weights = rng.uniform(-1, 1, tuple(out.shape)).astype(np.float32)
        loss = tf.reduce_sum(out * weights)
    ref = tape.gradient(loss, xs)
    got = _graph_grads_cpu(build, feeds, weights)
    for k in feeds:
        assert_numeric_match(ref[k].numpy(), got[k], f"d loss / d {k}")


CONVS = [((2, 12, 12, 3), (3, 3, 3, 8), [1, 1, 1, 1], "SAME", [1, 1, 1, 1]),
         ((2, 13, 11, 8), (3, 3, 8, 16), [1, 2, 2, 1], "SAME", [1, 1, 1, 1]),
         ((1, 10, 10, 4), (2, 3, 4, 6), [1, 2, 3, 1], "VALID", [1, 1, 1, 1]),
         ((2, 11, 11, 4), (3, 3, 4, 5), [1, 1, 1, 1], "SAME", [1, 2, 2, 1])]


@pytest.mark.parametrize("xs,fs,strides,padding,dil", CONVS)
def test_conv2d_gradients_on_cpu_match_tf(xs, fs, strides, padding, dil):
    rng = np.random.default_rng(1)
    feeds = dict(x=rng.uniform(-1, 1, xs).astype(np.float32), f=rng.uniform(-1, 1, fs).astype(np.float32))
    _check_with_tape(lambda x, f: tf.nn.conv2d(x, f, strides, padding, dilations=dil), feeds)


@pytest.mark.parametrize("ksize,strides,padding", [(2, 2, "VALID"), (3, 2, "SAME"), (3, 1, "SAME")])
def test_max_pool_gradient_on_cpu_matches_tf(ksize, strides, padding):
    rng = np.random.default_rng(2)
    # Rounded values: equal maxima in a window go to the first one, as in TensorFlow.
    x = np.round(rng.uniform(-3, 3, (2, 9, 9, 20))).astype(np.float32)
    _check_with_tape(lambda x: tf.nn.max_pool2d(x, ksize, strides, padding), dict(x=x))


def test_conv_bn_relu_pool_block_on_cpu_matches_tf():
    """The small CNN's training block (batch statistics, ReLU mask, max pool) in raw ops."""
    rng = np.random.default_rng(4)

    def block(x, f, gamma):
        y = tf.nn.conv2d(x, f, 1, "SAME")
        mean, var = tf.nn.moments(y, axes=[0, 1, 2])
        y = tf.nn.batch_normalization(y, mean, var, 0.1, gamma, 1e-3)
        return tf.nn.max_pool2d(tf.nn.relu(y), 2, 2, "VALID")

    feeds = dict(x=rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32),
                 f=rng.uniform(-1, 1, (3, 3, 3, 16)).astype(np.float32),
                 gamma=rng.uniform(0.5, 1.5, (16,)).astype(np.float32))
    _check_with_tape(block, feeds)


def test_grad_cli_repeat_and_profile():
    model = ZOO / "mlp_k3" / "saved_model"
    if not model.exists():
        pytest.skip("zoo model mlp_k3 not generated")
    with np.load(ZOO / "mlp_k3" / "inputs_b8.npz") as z:
        inputs = {k: z[k] for k in z.files}
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(pathlib.Path(tmp) / "in.npz", **inputs)
        out = run_cli("grad", model, "--input", pathlib.Path(tmp) / "in.npz", "--backend", "cpu", "--repeat", "3",
                      "--profile", "--dump-ir", pathlib.Path(tmp) / "g.ir")
        ir = (pathlib.Path(tmp) / "g.ir").read_text()
    assert "step_ms_median:" in out.stdout and "profile TsFusedMatMul" in out.stdout
    # forward and backward compiled together: fused forward matmuls and backward matmuls
    assert "TsFusedMatMul(" in ir and "transpose_a=true" in ir


def test_bench_train_smoke(tmp_path):
    env = dict(os.environ, TESSERA_BUILD_DIR=str(BUILD),
               TESSERA_BENCH_CACHE=os.environ.get("TESSERA_BENCH_CACHE", str(tmp_path / "cache")))
    proc = subprocess.run([sys.executable, str(REPO / "bench/train.py"), "--smoke", "--models", "mlp",
                           "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "out" / "train.json").read_text())
    md = (tmp_path / "out" / "train.md").read_text()
    assert results["smoke"] is True and results["threads"] == 2
    assert results["environment"]["peak"]["source"]
    [entry] = results["entries"]
    assert entry["model"] == "mlp" and len(entry["data_sha256"]) == 64
    assert entry["step_gflop"] == pytest.approx(3 * 2 * (784 * 512 + 512 * 256 + 2560) * entry["batch"] / 1e9)
    for rt in ("tf", "tf_xla"):
        row = entry["summary"][rt]
        assert row["status"] == "ok" and row["samples_per_second"] > 0 and row["peak_rss_mib"] > 10, row
    t = entry["summary"]["tessera"]
    assert t["status"] in ("ok", "unavailable"), t
    if t["status"] == "ok":
        assert t["samples_per_second"] > 0 and t["speedup_vs_tf"] > 0
    assert "| mlp | 32 |" in md and "TF 2.21 jit_compile" in md
