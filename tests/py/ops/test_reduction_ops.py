"""Differential tests of the reduction op family (Sum/Mean/Max/Min/Prod/All/Any/EuclideanNorm,
ArgMax/ArgMin, Softmax/LogSoftmax, Cumsum/Cumprod, TopKV2, L2Loss) against TensorFlow.

Each test builds a small tf.Graph of raw ops on placeholders (many ops per graph to keep the
run short), runs it in a TF session and through `tessera run`, and compares with the
project's numeric-match rule. Tolerances: float32 rtol 1e-4 (the default), float64 1e-9;
float16 rtol 1e-2 and bfloat16 rtol 2e-2: TF accumulates 16-bit sums in 16-bit precision
where Tessera accumulates in float/double and rounds once. Integer results match exactly.
bfloat16 is fed as float32 and cast inside the graph, since .npy has no bfloat16.
"""
import numpy as np
import pytest

from tessera_testlib import (
    check_op_error as check_error, check_ops_with_tf as check, feed_dtype, rand_float, rand_int, run_graph,
    typed)

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1
raw = tf.raw_ops

FLOATS = [np.float32, np.float64, np.float16, "bfloat16"]
# Axes for a rank-3 input: none (scalar and vector forms), single, negative, several, all.
AXES = [[], 0, 1, -1, [0, 2], [2, 0], [-3, 1], [0, 1, 2], np.array([1], np.int64)]


# ---------------------------------------------------------------------------------------------
# axis reductions

@pytest.mark.parametrize("dtype", FLOATS)
def test_float_reductions(dtype):
    rng = np.random.default_rng(30)
    x = rand_float(rng, (3, 4, 5), dtype)
    p = rand_float(rng, (3, 4, 5), dtype, 0.7, 1.3)  # products stay in range

    def build(x, p):
        x, p = typed(x, dtype), typed(p, dtype)
        outs = []
        for keep in (False, True):
            for axes in AXES:
                for op in ("Sum", "Mean", "Max", "Min", "EuclideanNorm"):
                    outs.append(getattr(raw, op)(input=x, axis=axes, keep_dims=keep))
                outs.append(raw.Prod(input=p, axis=axes, keep_dims=keep))
        return outs
    check(build, {"x": x, "p": p}, unknown_shape=("x",))


def test_reductions_nan_and_empty():
    """NaN propagates through Max/Min/Sum; empty reductions give TF's identities (0, 1, NaN
    for Mean, -inf/+inf for Max/Min, lowest/highest for integers)."""
    x = np.array([[1.0, np.nan, 3.0], [2.0, 5.0, -1.0], [np.inf, -np.inf, 0.0]], np.float32)
    e = np.zeros((0, 3), np.float32)
    ei = np.zeros((2, 0), np.int32)
    eu = np.zeros((0, 2), np.uint8)

    def build(x, e, ei, eu):
        outs = []
        for op in ("Sum", "Mean", "Max", "Min", "Prod", "EuclideanNorm"):
            outs += [getattr(raw, op)(input=x, axis=1), getattr(raw, op)(input=x, axis=0),
                     getattr(raw, op)(input=e, axis=0), getattr(raw, op)(input=e, axis=1),
                     getattr(raw, op)(input=e, axis=[0, 1], keep_dims=True),
                     getattr(raw, op)(input=ei, axis=1), getattr(raw, op)(input=eu, axis=0)]
        outs += [raw.All(input=tf.cast(e, tf.bool), axis=0), raw.Any(input=tf.cast(e, tf.bool), axis=0)]
        return outs
    check(build, {"x": x, "e": e, "ei": ei, "eu": eu})


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                   np.uint32, np.uint64])
def test_integer_reductions(dtype):
    """Integer Sum/Prod wrap, Mean truncates (accumulating wider), EuclideanNorm truncates."""
    rng = np.random.default_rng(31)
    lo = 0 if np.iinfo(dtype).min == 0 else -100
    x = rand_int(rng, (4, 3, 6), dtype, lo, 120)
    small = rand_int(rng, (4, 3, 6), dtype, 0, 3)

    def build(x, small):
        outs = []
        for axes in ([], 0, -1, [0, 2], [0, 1, 2]):
            for op in ("Sum", "Mean", "Max", "Min"):
                outs.append(getattr(raw, op)(input=x, axis=axes))
            outs.append(raw.Prod(input=x, axis=axes))
            outs.append(raw.EuclideanNorm(input=small, axis=axes, keep_dims=True))
        return outs
    check(build, {"x": x, "small": small}, unknown_shape="*")


def test_all_any():
    rng = np.random.default_rng(32)
    b = rng.random((3, 4, 2)) < 0.7

    def build(b):
        outs = []
        for axes in AXES:
            outs += [raw.All(input=b, axis=axes), raw.Any(input=b, axis=axes, keep_dims=True)]
        return outs
    check(build, {"b": b})


def test_large_reductions():
    """Bigger inputs exercise the row/column loops of the accumulator (NHWC-style means)."""
    rng = np.random.default_rng(33)
    x = rng.standard_normal((4, 17, 19, 32)).astype(np.float32)

    def build(x):
        return [raw.Mean(input=x, axis=[1, 2]), raw.Sum(input=x, axis=[0, 3], keep_dims=True),
                raw.Max(input=x, axis=-1), raw.Min(input=x, axis=[0, 2]),
                raw.Mean(input=x, axis=[0, 1, 2, 3]), raw.EuclideanNorm(input=x, axis=1)]
    check(build, {"x": x}, unknown_shape=("x",))


def test_reduction_errors():
    """Axes fed at run time (TF rejects constant bad axes while building the graph)."""
    x = np.ones((2, 3), np.float32)
    check_error(lambda x, a: raw.Sum(input=x, axis=a, name="dup_axes"),
                {"x": x, "a": np.array([0, -2], np.int32)}, "dup_axes", "duplicate")
    check_error(lambda x, a: raw.Max(input=x, axis=a, name="bad_axis"),
                {"x": x, "a": np.array([2], np.int64)}, "bad_axis", "Invalid reduction dimension")


# ---------------------------------------------------------------------------------------------
# ArgMax / ArgMin

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16", np.int32,
                                   np.uint8, np.int64, np.bool_])
def test_arg_max_min(dtype):
    """Ties pick the first index; NaNs never win (TF's CPU kernel skips them)."""
    rng = np.random.default_rng(34)
    if dtype == np.bool_:
        x = rng.random((4, 5, 3)) < 0.5
    elif dtype in (np.int32, np.uint8, np.int64):
        x = rand_int(rng, (4, 5, 3), dtype, 0, 4)  # many ties
    else:
        x = np.round(rand_float(rng, (4, 5, 3), dtype), 0).astype(feed_dtype(dtype))
        x[0, 1, :] = np.nan
        x[1, :, 0] = np.nan

    def build(x):
        x = typed(x, dtype)
        outs = []
        for axis in (0, 1, 2, -1):
            outs += [raw.ArgMax(input=x, dimension=axis), raw.ArgMin(input=x, dimension=axis),
                     raw.ArgMax(input=x, dimension=axis, output_type=tf.int32),
                     raw.ArgMin(input=x, dimension=tf.constant(axis, tf.int64),
                                output_type=tf.int32)]
        return outs
    check(build, {"x": x}, unknown_shape=("x",))


def test_arg_max_errors():
    check_error(lambda x: raw.ArgMax(input=x, dimension=0, name="argmax_empty"),
                {"x": np.zeros((0, 3), np.float32)}, "argmax_empty", "is empty")


# ---------------------------------------------------------------------------------------------
# Softmax, LogSoftmax, L2Loss

@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax(dtype):
    rng = np.random.default_rng(35)
    x1 = rand_float(rng, (7,), dtype, -5, 5)
    x2 = rand_float(rng, (3, 9), dtype, -30, 30)
    x4 = rand_float(rng, (2, 3, 2, 5), dtype)
    big = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 1.0]], feed_dtype(dtype))
    if dtype == np.float16:
        big[0] = [60000.0, 0.0, -60000.0]

    def build(x1, x2, x4, big):
        outs = []
        for x in (x1, x2, x4, big):
            x = typed(x, dtype)
            outs += [raw.Softmax(logits=x), raw.LogSoftmax(logits=x), raw.L2Loss(t=x)]
        return outs
    check(build, {"x1": x1, "x2": x2, "x4": x4, "big": big}, unknown_shape=("x2",))


# ---------------------------------------------------------------------------------------------
# Cumsum / Cumprod

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16", np.int32,
                                   np.int64, np.int8, np.uint8])
def test_cumulative(dtype):
    rng = np.random.default_rng(36)
    if dtype in (np.int32, np.int64, np.int8, np.uint8):
        x = rand_int(rng, (3, 4, 5), dtype, 0, 90)  # int8 sums wrap
        p = rand_int(rng, (3, 4, 5), dtype, 0, 4)
    else:
        x = rand_float(rng, (3, 4, 5), dtype)
        p = rand_float(rng, (3, 4, 5), dtype, 0.5, 1.5)

    def build(x, p):
        x, p = typed(x, dtype), typed(p, dtype)
        outs = []
        for axis in (0, 1, -1, tf.constant(2, tf.int64)):
            for exclusive in (False, True):
                for reverse in (False, True):
                    outs.append(raw.Cumsum(x=x, axis=axis, exclusive=exclusive, reverse=reverse))
                    outs.append(raw.Cumprod(x=p, axis=axis, exclusive=exclusive, reverse=reverse))
        return outs
    check(build, {"x": x, "p": p}, unknown_shape=("x",))


# ---------------------------------------------------------------------------------------------
# TopKV2

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16", np.int32,
                                   np.uint8, np.int64])
def test_top_k(dtype):
    """Sorted top-k with ties broken by the lower index (values drawn from a small set)."""
    rng = np.random.default_rng(37)
    if dtype in (np.int32, np.uint8, np.int64):
        x = rand_int(rng, (3, 2, 9), dtype, 0, 5)
    else:
        x = (rng.integers(-4, 5, size=(3, 2, 9)) / 2).astype(feed_dtype(dtype))
    v = x[0, 0]

    def build(x, v):
        x, v = typed(x, dtype), typed(v, dtype)
        outs = []
        for k in (0, 1, 4, 9):
            r = raw.TopKV2(input=x, k=k)
            outs += [r.values, r.indices]
        r = raw.TopKV2(input=v, k=tf.constant(3, tf.int64), index_type=tf.int64)
        outs += [r.values, r.indices]
        return outs
    check(build, {"x": x, "v": v}, unknown_shape=("x",))


def test_top_k_unsorted_is_a_permutation():
    """sorted=False: TF leaves the order unspecified; the same set must come back."""
    rng = np.random.default_rng(38)
    x = rng.permutation(40).astype(np.float32).reshape(4, 10)
    g = tf.Graph()
    with g.as_default():
        ph = tf1.placeholder(tf.float32, [4, 10], name="x")
        r = raw.TopKV2(input=ph, k=4, sorted=False)
    with tf1.Session(graph=g) as sess:
        ref_v, ref_i = sess.run([r.values, r.indices], {ph: x})
    got = run_graph(g.as_graph_def(), {"x:0": x}, [r.values.name, r.indices.name])
    np.testing.assert_array_equal(np.sort(ref_v, axis=1), np.sort(got[r.values.name], axis=1))
    np.testing.assert_array_equal(np.sort(ref_i, axis=1), np.sort(got[r.indices.name], axis=1))


def test_top_k_errors():
    check_error(lambda x: raw.TopKV2(input=x, k=5, name="topk_big").values,
                {"x": np.ones((2, 3), np.float32)}, "topk_big", "at least k columns")
