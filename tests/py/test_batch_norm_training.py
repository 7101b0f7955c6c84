"""Keras 3 BatchNormalization in training mode through the training step
(passes/fuse_batch_norm_training.cc: one TsBatchNormTraining per layer, its gradient one
TsBatchNormTrainingGrad) against TensorFlow: a `tf.function` step with GradientTape and SGD on
the same Keras layer, for the layer's variants (center/scale off, a ReLU folded into the op or
not, channel counts with and without a full 16-lane block, a large input offset). Per step
the loss, and after the steps every variable (gamma, beta, the Dense weights, the moving mean
and variance) match; the step graph holds the fused ops and none of the unfused BatchNorm
arithmetic.
"""
import numpy as np
import pytest

from tessera_testlib import exported_variable_keys, run_cli, tf_train_step

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

BATCH = 16
STEPS = 3
LR = 0.2

CASES = {
    "relu_c5": dict(channels=5, relu=True, bn={}),
    "c20_no_center": dict(channels=20, relu=False, bn=dict(center=False)),
    "relu_c16_no_scale": dict(channels=16, relu=True, bn=dict(scale=False)),
    "relu_c3_offset": dict(channels=3, relu=True, bn=dict(momentum=0.9, epsilon=1e-2), offset=30.0),
}


def _model(case):
    layers = [keras.Input((6, 6, case["channels"])), keras.layers.BatchNormalization(**case["bn"])]
    if case["relu"]:
        layers.append(keras.layers.ReLU())
    layers += [keras.layers.Flatten(), keras.layers.Dense(4)]
    return keras.Sequential(layers)


@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_norm_layer_trains_like_tensorflow(tmp_path, name):
    case = CASES[name]
    keras.utils.set_random_seed(11)
    exported = _model(case)
    rng = np.random.default_rng(5)
    bn = exported.layers[0]
    # Moving statistics away from their initial 0/1, so the updates are visible.
    bn.moving_mean.assign(rng.normal(size=bn.moving_mean.shape).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 2, size=bn.moving_variance.shape).astype(np.float32))
    if bn.gamma is not None:
        bn.gamma.assign(rng.uniform(0.5, 1.5, size=bn.gamma.shape).astype(np.float32))
    weights = [w.copy() for w in exported.get_weights()]
    archive = keras.export.ExportArchive()
    archive.track(exported)
    spec = [tf.TensorSpec([None, 6, 6, case["channels"]], tf.float32)]
    archive.add_endpoint("serving_default", lambda x: exported(x, training=False), input_signature=spec)
    archive.add_endpoint("train_forward", lambda x: exported(x, training=True), input_signature=spec)
    path = tmp_path / "model"
    archive.write_out(str(path), verbose=False)

    x = (rng.normal(size=(BATCH * STEPS, 6, 6, case["channels"])) * 2 + case.get("offset", 0.5)).astype(np.float32)
    y = rng.normal(size=(BATCH * STEPS, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "trace.npz"
    run_cli("train-trace", path, "--x", tmp_path / "x.npy", "--y", tmp_path / "y.npy", "--batch", BATCH,
            "--steps", STEPS, "--loss", "mse", "--optimizer", "sgd", "--lr", LR, "--out", out, "--threads", 2,
            "--dump-graph", tmp_path / "step.ir")
    with np.load(out) as z:
        got = {k: z[k] for k in z.files}

    graph = (tmp_path / "step.ir").read_text()
    nodes = [line.strip().split(" = ", 1) for line in graph.splitlines() if " = " in line]
    ops = [op.split("(", 1)[0] for _, op in nodes]
    assert ops.count("TsBatchNormTraining") == 1, sorted(set(ops))
    assert ops.count("TsBatchNormTrainingGrad") == 1, sorted(set(ops))
    bn_ops = {op.split("(", 1)[0] for name, op in nodes if "batch_normalization" in name}
    for gone in ("SquaredDifference", "Rsqrt", "Relu", "BroadcastTo", "Mean", "Sum", "AddN"):
        assert gone not in bn_ops, gone
    if case["relu"]:
        assert "Relu" not in ops and "ReluGrad" not in ops, "the ReLU is folded into the batch norm"

    model = _model(case)
    model.set_weights(weights)
    step = tf_train_step(model, keras.losses.MeanSquaredError(), keras.optimizers.SGD(LR))
    ref = np.array([float(step(x[s * BATCH:(s + 1) * BATCH], y[s * BATCH:(s + 1) * BATCH])) for s in range(STEPS)])
    np.testing.assert_allclose(got["loss"], ref, rtol=1e-5)
    for key, v, before in zip(exported_variable_keys(path, exported, model), model.variables, weights):
        want, have = v.numpy().astype(np.float64), got[key].astype(np.float64)
        err = np.max(np.abs(want - have))
        assert err <= 1e-4 * np.max(np.abs(want)) + 1e-6, f"{v.path}: max error {err:.3g}"
        assert not np.array_equal(have, before), f"{v.path} did not change"
