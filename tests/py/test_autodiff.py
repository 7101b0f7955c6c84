"""Tessera's reverse-mode gradients (passes/autodiff, each op's gradient in src/ops) against
TensorFlow's tf.GradientTape.

Per op: a small graph of raw ops; the loss is sum_k sum(output_k * w_k) with fixed random
weights. TensorFlow differentiates it eagerly under a GradientTape; Tessera gets the same
graph as a GraphDef and differentiates it with `tessera grad`. Whole models: the zoo's MLP
and CNN (Keras 3 and tf_keras exports), loss = MSE to a random target (and, for the CNNs,
the sum of the outputs; the MLPs end in a softmax, whose sum is constant), gradients with
respect to every trainable variable, against a GradientTape over the same loaded SavedModel.

Tolerance: the numeric-match rule (max|a-b| <= 1e-4*max|ref| + 1e-6), per op and per
variable (measured: whole-model gradients agree to ~1e-6 relative).

The gradient ops Tessera adds (Conv2DBackpropFilter, MaxPoolGrad, AvgPoolGrad,
StridedSliceGrad) are also compared with TensorFlow's raw ops directly (op coverage).
"""
import pathlib
import tempfile

import numpy as np
import pytest

from tessera_testlib import (_record_op_coverage, assert_numeric_match, check_ops_with_tf, match_variable_gradients,
                             run_cli)

tf = pytest.importorskip("tensorflow")
raw = tf.raw_ops

GRAD_RTOL = 1e-4
MODEL_RTOL = 1e-4


def _rand(rng, shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def _tessera_grads(build, feeds, weights):
    """Tessera's d loss / d feed for the graph build(**placeholders)."""
    g = tf.Graph()
    with g.as_default():
        phs = {k: tf.compat.v1.placeholder(tf.float32, v.shape, name=k) for k, v in feeds.items()}
        outs = build(**phs)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        loss = tf.add_n([tf.reduce_sum(o * w) for o, w in zip(outs, weights)], name="loss")
    data = g.as_graph_def().SerializeToString()
    _record_op_coverage(data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "g.pb").write_bytes(data)
        args = ["grad", tmp / "g.pb", "--loss-tensor", loss.name, "--output", tmp / "out.npz"]
        for k, v in feeds.items():
            np.save(tmp / f"{k}.npy", v)
            args += ["--input", f"{k}:0={tmp / (k + '.npy')}", "--wrt", f"{k}:0"]
        run_cli(*args)
        with np.load(tmp / "out.npz") as z:
            return {k: z[f"grad/{k}:0"] for k in feeds}


def check_grad(build, feeds, rtol=GRAD_RTOL, seed=0):
    rng = np.random.default_rng(seed)
    xs = {k: tf.constant(v) for k, v in feeds.items()}
    with tf.GradientTape() as tape:
        for x in xs.values():
            tape.watch(x)
        outs = build(**xs)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        weights = [_rand(rng, tuple(o.shape)) for o in outs]
        loss = tf.add_n([tf.reduce_sum(o * w) for o, w in zip(outs, weights)])
    ref = tape.gradient(loss, xs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    got = _tessera_grads(build, feeds, weights)
    for k in feeds:
        assert_numeric_match(ref[k].numpy(), got[k], f"d loss / d {k}", rtol=rtol)


def _ab(rng, sa, sb, lo=-1.0, hi=1.0):
    return dict(a=_rand(rng, sa, lo, hi), b=_rand(rng, sb, lo, hi))


def _x(rng, shape, lo=-1.0, hi=1.0):
    return dict(x=_rand(rng, shape, lo, hi))


R = np.random.default_rng(7)
CONV = dict(strides=[1, 2, 2, 1], padding="SAME")

# name -> (build, feeds)
OP_CASES = {
    "unary": (lambda x: [tf.tanh(x), tf.sigmoid(x), tf.exp(x), tf.nn.relu(x), tf.nn.relu6(x * 8),
                         tf.nn.elu(x), tf.nn.selu(x), tf.nn.softplus(x), tf.math.erf(x), tf.math.erfc(x),
                         tf.square(x), -x, tf.abs(x), tf.nn.softsign(x), tf.nn.leaky_relu(x, 0.3)],
              _x(R, (3, 4))),
    "positive_unary": (lambda x: [tf.math.log(x), tf.sqrt(x), tf.math.rsqrt(x), tf.math.reciprocal(x),
                                  tf.math.log1p(x)], _x(R, (3, 4), 0.5, 2)),
    "gelu_erf": (lambda x: tf.nn.gelu(x, approximate=False), _x(R, (3, 4), -3, 3)),
    "gelu_tanh": (lambda x: tf.nn.gelu(x, approximate=True), _x(R, (3, 4), -3, 3)),
    "keras_gelu_tanh": (lambda x: 0.5 * x * (1.0 + tf.tanh(0.7978845608 * (x + 0.044715 * tf.pow(x, 3.0)))),
                        _x(R, (3, 4), -3, 3)),
    "binary_broadcast": (lambda a, b: [a + b, a - b, a * b, tf.maximum(a, b), tf.minimum(a, b),
                                       tf.math.squared_difference(a, b)], _ab(R, (2, 3), (3,))),
    "div_pow": (lambda a, b: [a / b, tf.pow(a, b)], _ab(R, (2, 1), (1, 3), 0.5, 2)),
    "matmul": (lambda a, b: [tf.matmul(a, b),
                             tf.matmul(tf.transpose(a), tf.transpose(b), transpose_a=True, transpose_b=True)],
               _ab(R, (2, 3), (3, 4))),
    "batch_matmul": (lambda a, b: tf.matmul(a, b, adjoint_b=True), _ab(R, (2, 2, 3), (4, 3))),
    "einsum": (lambda a, b: [tf.einsum("abc,cde->abde", a, b), tf.einsum("abc,cde->abde", a, b * 2)],
               _ab(R, (2, 3, 4), (4, 2, 3))),
    "bias_add": (lambda a, b: tf.nn.bias_add(a, b), _ab(R, (2, 3, 4), (4,))),
    "reductions": (lambda x: [tf.reduce_sum(x, 1), tf.reduce_mean(x, [0, 2], keepdims=True),
                              tf.reduce_max(x, -1), tf.reduce_min(x, 0)], _x(R, (2, 3, 4))),
    "softmax": (lambda x: [tf.nn.softmax(x), tf.nn.log_softmax(x)], _x(R, (3, 5), -2, 2)),
    "shapes": (lambda x: [tf.reshape(x, [4, 6]), tf.transpose(x, [2, 0, 1]), tf.expand_dims(x, 1),
                          tf.squeeze(x[:, :1], 1), tf.tile(x, [1, 2, 1]), tf.reverse(x, [1])],
               _x(R, (2, 3, 4))),
    "slicing": (lambda x: [x[1:, ::2], x[-1], tf.slice(x, [0, 1], [2, 2]), tf.pad(x, [[1, 0], [0, 2]]),
                           tf.gather(x, [2, 0, 2])], _x(R, (3, 4))),
    "joining": (lambda a, b: [tf.concat([a, b], 1), tf.stack([a, a], 2), tf.unstack(b, axis=1)[1],
                              tf.split(a, 3, axis=1)[2]], _ab(R, (2, 3), (2, 2))),
    "select_clip": (lambda a, b: [tf.where(a > 0, a, b), tf.clip_by_value(a, -0.5, 0.5)],
                    _ab(R, (3, 4), (3, 4))),
    "cast": (lambda x: tf.cast(tf.square(tf.cast(x, tf.float64)), tf.float32), _x(R, (3,))),
    "conv2d": (lambda a, b: raw.Conv2D(input=a, filter=b, **CONV), _ab(R, (2, 5, 5, 3), (3, 3, 3, 4))),
    "conv2d_valid_dilated": (lambda a, b: tf.nn.conv2d(a, b, 1, "VALID", dilations=2),
                             _ab(R, (1, 7, 6, 2), (2, 2, 2, 3))),
    "conv2d_transpose": (lambda a, b: raw.Conv2DBackpropInput(input_sizes=[2, 5, 5, 3], filter=b, out_backprop=a,
                                                              **CONV), _ab(R, (2, 3, 3, 4), (3, 3, 3, 4))),
    "depthwise_conv2d": (lambda a, b: tf.nn.depthwise_conv2d(a, b, [1, 2, 2, 1], "SAME"),
                         _ab(R, (2, 5, 6, 3), (3, 3, 3, 2))),
    "cond_true": (lambda a, b: tf.cond(tf.reduce_sum(a) > -100, lambda: a * b, lambda: tf.sin(a)),
                  _ab(R, (2, 3), (2, 3))),
    "cond_false": (lambda a, b: tf.cond(tf.reduce_sum(a) > 100, lambda: a * b, lambda: tf.sin(a)),
                   _ab(R, (2, 3), (2, 3))),
    "pooling": (lambda x: [tf.nn.max_pool2d(x, 2, 2, "VALID"), tf.nn.max_pool2d(x, 3, 2, "SAME"),
                           tf.nn.avg_pool2d(x, 3, 2, "SAME")], _x(R, (2, 5, 6, 3))),
    "batch_norm_training": (lambda x: tf.compat.v1.nn.fused_batch_norm(
        x, tf.constant([1.5, 0.5, 2.0]), tf.constant([0.1, -0.2, 0.3]), epsilon=1e-3, is_training=True)[0],
                            _x(R, (2, 3, 4, 3))),
}


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_op_gradient_matches_gradient_tape(name):
    build, feeds = OP_CASES[name]
    check_grad(build, feeds)


def test_batch_norm_inference_gradient():
    # TensorFlow defines no gradient for the mean and variance inputs (Tessera's, checked by
    # finite differences in the unit tests, is the true derivative): they stay constants here.
    rng = np.random.default_rng(3)
    feeds = dict(x=_rand(rng, (2, 3, 3, 2)), s=_rand(rng, (2,)), o=_rand(rng, (2,)))
    m, v = _rand(rng, (2,)), _rand(rng, (2,), 0.5, 2)
    check_grad(lambda x, s, o: raw.FusedBatchNormV3(x=x, scale=s, offset=o, mean=m, variance=v,
                                                    epsilon=1e-3, is_training=False)[0], feeds)


# ---- the gradient ops Tessera adds, against TensorFlow's raw ops --------------------------------

def test_conv2d_backprop_filter_op():
    rng = np.random.default_rng(11)
    x, x2 = _rand(rng, (2, 6, 5, 3)), _rand(rng, (1, 3, 6, 5))  # x2: NCHW
    cases = [
        (x, (3, 3, 3, 4), dict(strides=[1, 2, 2, 1], padding="SAME")),
        (x, (2, 2, 3, 2), dict(strides=[1, 1, 1, 1], padding="VALID", dilations=[1, 2, 1, 1])),
        (x2, (3, 3, 3, 4), dict(strides=[1, 1, 2, 2], padding="SAME", data_format="NCHW")),
    ]
    for inp, fs, kw in cases:
        fwd = raw.Conv2D(input=inp, filter=np.zeros(fs, np.float32), **kw)
        g = _rand(rng, tuple(fwd.shape))
        check_ops_with_tf(lambda x, g: raw.Conv2DBackpropFilter(input=x, filter_sizes=list(fs), out_backprop=g, **kw),
                          dict(x=inp, g=g))


@pytest.mark.parametrize("kw", [dict(ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="VALID"),
                                dict(ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding="SAME")])
def test_pool_grad_ops(kw):
    rng = np.random.default_rng(12)
    x = _rand(rng, (2, 5, 6, 3))
    y = raw.MaxPool(input=x, **kw)
    g = _rand(rng, tuple(y.shape))
    check_ops_with_tf(lambda x, g: [raw.MaxPoolGrad(orig_input=x, orig_output=raw.MaxPool(input=x, **kw), grad=g, **kw),
                                    raw.AvgPoolGrad(orig_input_shape=tf.shape(x), grad=g, **kw)],
                      dict(x=x, g=g))


def test_strided_slice_grad_op():
    rng = np.random.default_rng(13)
    g1, g2 = _rand(rng, (2, 2)), _rand(rng, (4,))
    check_ops_with_tf(lambda g1, g2: [
        raw.StridedSliceGrad(shape=[4, 5], begin=[1, 4], end=[0, 0], strides=[2, -2], dy=g1, end_mask=1),
        raw.StridedSliceGrad(shape=[3, 4], begin=[1], end=[2], strides=[1], dy=g2, shrink_axis_mask=1)],
        dict(g1=g1, g2=g2))


# ---- whole models -------------------------------------------------------------------------------

ZOO = pathlib.Path.home() / ".cache/tessera/zoo"
MODELS = ["mlp_k3", "cnn_k3", "mlp_tfk", "cnn_tfk"]


def _model_grads(name, loss, target=None):
    model = ZOO / name / "saved_model"
    if not model.exists():
        pytest.skip(f"zoo model {name} not generated")
    with np.load(ZOO / name / "inputs_b8.npz") as z:
        inputs = {k: z[k] for k in z.files}
    loaded = tf.saved_model.load(str(model))
    fn = loaded.signatures["serving_default"]
    with tf.GradientTape() as tape:
        out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        if loss == "sum":
            total = tf.add_n([tf.reduce_sum(v) for v in out.values()])
        else:
            total = tf.add_n([tf.reduce_mean(tf.square(out[k] - target[k])) for k in target])
    variables = tape.watched_variables()
    grads = tape.gradient(total, variables)
    ref = [(v.numpy(), None if g is None else tf.convert_to_tensor(g).numpy()) for v, g in zip(variables, grads)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        np.savez(tmp / "in.npz", **inputs)
        args = ["grad", model, "--input", tmp / "in.npz", "--loss", loss, "--output", tmp / "out.npz"]
        if target is not None:
            np.savez(tmp / "target.npz", **target)
            args += ["--target", tmp / "target.npz"]
        run_cli(*args)
        with np.load(tmp / "out.npz") as z:
            got = {k: z[k] for k in z.files}
    return total.numpy(), ref, got


def _compare_model(name, loss, target=None):
    ref_loss, ref, got = _model_grads(name, loss, target)
    assert_numeric_match(np.float32(ref_loss), got["loss"], "loss")
    scales = match_variable_gradients(ref, got, MODEL_RTOL)
    assert max(scales) > 1e-3, f"degenerate reference gradients (largest {max(scales)})"


# The MLPs end in a softmax, whose sum is constant: only the CNNs have a useful sum loss.
@pytest.mark.parametrize("name", ["cnn_k3", "cnn_tfk"])
def test_model_gradients_sum_loss(name):
    _compare_model(name, "sum")


# Beyond the MLP/CNN: attention (Einsum, layer norm) and depthwise/swish/BatchNorm networks.
MSE_MODELS = MODELS + ["encoder_k3", "encoder_tfk", "efficientnetb0_k3", "efficientnetb0_tfk",
                       "mobilenetv2_k3", "mobilenetv2_tfk"]


@pytest.mark.parametrize("name", MSE_MODELS)
def test_model_gradients_mse_loss(name):
    if not (ZOO / name).exists():
        pytest.skip(f"zoo model {name} not generated")
    with np.load(ZOO / name / "outputs_b8.npz") as z:
        rng = np.random.default_rng(5)
        target = {k: rng.uniform(0, 1, z[k].shape).astype(np.float32) for k in z.files}
    _compare_model(name, "mse", target)
