"""Gradients through loops and whole-model gradients for the rest of the inference zoo, against
tf.GradientTape.

Loops: small `tf.while_loop` graphs (a counter loop, a data-dependent trip count, a tf.cond in
the body, a nested loop, an RNN over TensorArrays with maximum_iterations) and TensorArray
scatter/write/gather/stack, differentiated by `tessera grad` from the GraphDef (While +
TensorList ops), against TensorFlow's eager tape.

Models: the zoo's recurrent models (LSTM and GRU, Keras 3 and tf_keras exports: Keras reads
the kernels inside the While body and moves the sequence through TensorLists) and ResNet50,
loss = MSE to a random target, gradients with respect to every trainable variable, against a
GradientTape over the same loaded SavedModel (helpers shared with test_autodiff.py).
ResNet50 at 224x224 (opt-in, TESSERA_SLOW_TESTS=1) is compared with float64 gradients of a
Keras copy instead, since TensorFlow's float32 gradients miss the rule there.
Tolerance: the numeric-match rule per variable. The encoder, EfficientNetB0 and MobileNetV2
are in test_autodiff.py.
"""
import os
import pathlib
import tempfile

import numpy as np
import pytest

from tessera_testlib import assert_numeric_match, match_variable_gradients, run_cli
from test_autodiff import check_grad, _rand

tf = pytest.importorskip("tensorflow")

ZOO = pathlib.Path.home() / ".cache/tessera/zoo"
MODEL_RTOL = 1e-4


# ---- tf.while_loop graphs ------------------------------------------------------------------------

def _counter(x, y):
    return tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * x), (tf.constant(0), y))[1]


def _data_dependent(x, y):
    # while sum(a) < 40: a = a * x + a  (trip count depends on the inputs)
    return tf.while_loop(lambda a: tf.reduce_sum(a) < 40.0, lambda a: (a * x + a,), (y,))[0]


def _cond_in_body(x, y):
    def body(i, a):
        return i + 1, tf.cond(i > 1, lambda: a * x, lambda: tf.sin(a) + x)
    return tf.while_loop(lambda i, a: i < 4, body, (tf.constant(0), y))[1]


def _nested(x, y):
    def inner(a):
        return tf.while_loop(lambda k, b: k < 2, lambda k, b: (k + 1, b * x), (tf.constant(0), a))[1]
    return tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, tf.sin(inner(a))), (tf.constant(0), y))[1]


def _rnn(xs, h0, w, u, b):
    steps = xs.shape[0]
    inputs = tf.TensorArray(tf.float32, size=steps).unstack(xs)
    outputs = tf.TensorArray(tf.float32, size=steps)

    def body(t, h, out):
        h = tf.tanh(tf.matmul(inputs.read(t), w) + tf.matmul(h, u) + b)
        return t + 1, h, out.write(t, h)

    _, h, out = tf.while_loop(lambda t, h, out: t < steps, body, (tf.constant(0), h0, outputs),
                              maximum_iterations=steps)
    return [out.stack(), h]


def _tensor_array(x, y):
    # Scatter into a reserved list, writes, a gather with a repeated index, and a stack.
    ta = tf.TensorArray(tf.float32, size=4).scatter([3, 1], x)
    ta = ta.write(0, y).write(2, y * y)
    return [ta.gather([2, 0, 3, 2]), ta.stack()]


LOOPS = {
    "tensor_array": (_tensor_array, lambda r: dict(x=_rand(r, (2, 3)), y=_rand(r, (3,)))),
    "counter": (_counter, lambda r: dict(x=_rand(r, (3,)), y=_rand(r, (3,)))),
    "data_dependent": (_data_dependent, lambda r: dict(x=_rand(r, (3,), 0.5, 2), y=_rand(r, (3,), 0.5, 2))),
    "cond_in_body": (_cond_in_body, lambda r: dict(x=_rand(r, (3,)), y=_rand(r, (3,)))),
    "nested": (_nested, lambda r: dict(x=_rand(r, (2,), 0.5, 1.5), y=_rand(r, (2,), 0.5, 1.5))),
    "rnn": (_rnn, lambda r: dict(xs=_rand(r, (5, 2, 3)), h0=_rand(r, (2, 4)), w=_rand(r, (3, 4)),
                                 u=_rand(r, (4, 4)), b=_rand(r, (4,)))),
}


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_while_loop_gradient_matches_gradient_tape(name):
    build, feeds = LOOPS[name]
    check_grad(build, feeds(np.random.default_rng(11)))


# ---- whole models ------------------------------------------------------------------------------

def _model_grads(name, batch, target_seed=5):
    """(reference loss, [(variable value, TF gradient)], Tessera's npz) for MSE to a random target."""
    model = ZOO / name / "saved_model"
    if not model.exists():
        pytest.skip(f"zoo model {name} not generated")
    with np.load(ZOO / name / f"inputs_b{batch}.npz") as z:
        inputs = {k: z[k] for k in z.files}
    with np.load(ZOO / name / f"outputs_b{batch}.npz") as z:
        rng = np.random.default_rng(target_seed)
        target = {k: rng.uniform(0, 1, z[k].shape).astype(np.float32) for k in z.files}
    loaded = tf.saved_model.load(str(model))
    fn = loaded.signatures["serving_default"]
    with tf.GradientTape() as tape:
        out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        total = tf.add_n([tf.reduce_mean(tf.square(out[k] - target[k])) for k in target])
    variables = tape.watched_variables()
    grads = tape.gradient(total, variables)
    ref = [(v.numpy(), None if g is None else tf.convert_to_tensor(g).numpy()) for v, g in zip(variables, grads)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        np.savez(tmp / "in.npz", **inputs)
        np.savez(tmp / "target.npz", **target)
        run_cli("grad", model, "--input", tmp / "in.npz", "--loss", "mse", "--target", tmp / "target.npz",
                "--output", tmp / "out.npz")
        with np.load(tmp / "out.npz") as z:
            got = {k: z[k] for k in z.files}
    return total.numpy(), ref, got


def _compare(name, batch):
    ref_loss, ref, got = _model_grads(name, batch)
    assert_numeric_match(np.float32(ref_loss), got["loss"], "loss")
    scales = match_variable_gradients(ref, got, MODEL_RTOL)
    assert len(scales) == len(ref) and len(ref) > 0
    # Every trainable variable gets a gradient that is not degenerate (the recurrent kernels
    # only get theirs through the loop).
    assert min(s for s in scales) > 1e-6, f"a variable's reference gradient is zero: {scales}"


@pytest.mark.parametrize("name", ["lstm_k3", "lstm_tfk", "gru_k3", "gru_tfk"])
def test_recurrent_model_gradients(name):
    _compare(name, 8)


def test_cond_while_module_gradients():
    # tf.cond on the data, then a loop with a data-dependent trip count reading a variable.
    _compare("cond_while_module", 3)


def test_cond_while_module_input_gradients():
    name = "cond_while_module"
    model = ZOO / name / "saved_model"
    if not model.exists():
        pytest.skip(f"zoo model {name} not generated")
    with np.load(ZOO / name / "inputs_b3.npz") as z:
        inputs = {k: z[k] for k in z.files}
    loaded = tf.saved_model.load(str(model))  # keep it alive: the signature uses its variables
    fn = loaded.signatures["serving_default"]
    xs = {k: tf.constant(v) for k, v in inputs.items()}
    with tf.GradientTape() as tape:
        for x in xs.values():
            tape.watch(x)
        total = tf.add_n([tf.reduce_sum(v) for v in fn(**xs).values()])
    ref = tape.gradient(total, xs)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        np.savez(tmp / "in.npz", **inputs)
        run_cli("grad", model, "--input", tmp / "in.npz", "--wrt", "inputs", "--output", tmp / "out.npz")
        with np.load(tmp / "out.npz") as z:
            for k in inputs:
                assert np.max(np.abs(ref[k].numpy())) > 1e-3
                assert_numeric_match(ref[k].numpy(), z[f"grad/{k}"], f"d loss / d {k}", rtol=MODEL_RTOL)


# ResNet50 (the zoo's 64x64 export) on the reference interpreter: batch 1 keeps it within
# seconds; BatchNorm is frozen in the inference export, so the batch size does not change
# which ops run.
@pytest.mark.parametrize("name", ["resnet50_k3", "resnet50_tfk"])
def test_resnet50_gradients(name):
    _compare(name, 1)


# ResNet50 at 224x224 (the zoo's is 64x64): opt-in (TESSERA_SLOW_TESTS=1), about a minute here.
# TensorFlow's own float32 gradients are not the oracle at this size: against a float64
# Keras copy of the same weights, TF float32 was off by up to 17x the numeric-match tolerance
# (a ReLU flipping on a near-zero activation, measured 2026-11), Tessera's by 0.05x. So both
# are compared with the float64 gradients, and only Tessera's must match.
@pytest.mark.skipif(not os.environ.get("TESSERA_SLOW_TESTS"), reason="slow: set TESSERA_SLOW_TESTS=1")
def test_resnet50_224_gradients_against_float64():
    import keras
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model.export(str(tmp / "sm"), verbose=False)
        np.savez(tmp / "in.npz", keras_tensor=x)
        run_cli("grad", tmp / "sm", "--input", tmp / "in.npz", "--output", tmp / "out.npz")
        with np.load(tmp / "out.npz") as z:
            got = {k: z[k] for k in z.files}
    values = [w.numpy() for w in model.trainable_weights]
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    try:
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy("float64")
        m64 = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    m64.set_weights([w.astype(np.float64) for w in model.get_weights()])
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(m64(x.astype(np.float64), training=False))
    truth = [g.numpy() for g in tape.gradient(total, m64.trainable_weights)]
    assert_numeric_match(np.float32(total.numpy()), got["loss"], "loss")
    unused = [k[len("grad/"):] for k in got if k.startswith("grad/")]
    for value, ref in zip(values, truth):
        candidates = [k for k in unused if got[f"value/{k}"].shape == value.shape
                      and np.array_equal(got[f"value/{k}"], value)]
        assert candidates
        best = min(candidates, key=lambda k: np.max(np.abs(ref - got[f"grad/{k}"])))
        unused.remove(best)
        assert_numeric_match(ref.astype(np.float32), got[f"grad/{best}"], f"d loss / d {best}", rtol=MODEL_RTOL)
