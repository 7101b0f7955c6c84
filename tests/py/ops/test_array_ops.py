"""Differential tests of the array op family (shapes, reshapes, slicing, gather/scatter,
concat/split, padding, tiling, one-hot, where, unique, space/batch/depth rearrangements,
matrix band/diagonal ops) against TensorFlow.

Each test builds a small tf.Graph of raw ops on placeholders (several cases per graph to keep
the run short), runs it in a TF session and through `tessera run`, and compares with the
project's numeric-match rule. These ops only move data, so every dtype must match exactly,
float16/bfloat16 included (no looser tolerance anywhere). Strings are compared as bytes.
bfloat16 is fed as float32 and cast inside the graph, since .npy has no bfloat16.
"""
import pathlib

import numpy as np
import pytest

from tessera_testlib import check_op_error as check_error, check_ops_with_tf, feed_dtype, typed

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1
raw = tf.raw_ops

ALL_DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8,
              np.uint16, np.uint32, np.uint64, np.bool_, np.complex64, "bfloat16", "string"]
MAIN_DTYPES = [np.float32, np.int32, np.int64, np.float16, np.bool_, "bfloat16", "string"]


def check(build, feeds, unknown_shape=()):
    """check_ops_with_tf, exactly: these ops only move data."""
    check_ops_with_tf(build, feeds, unknown_shape, tol=(0, 0))


def _rand(rng, shape, dtype=np.float32):
    """Random values of `dtype` ("string" gives bytes; "bfloat16" gives float32 to cast)."""
    if dtype == "string":
        words = [b"", b"a", b"bc", b"tessera", b"\xc3\xa9t\xc3\xa9", b"xyz"]
        picks = rng.integers(0, len(words), size=shape).ravel()
        return np.array([words[i] for i in picks] or [b""], dtype=bytes)[:picks.size].reshape(shape)
    if dtype == "bfloat16":
        return rng.uniform(-4, 4, size=shape).astype(np.float32)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -100), min(info.max, 100) + 1, size=shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.uniform(-2, 2, size=shape) + 1j * rng.uniform(-2, 2, size=shape)).astype(dtype)
    return rng.uniform(-4, 4, size=shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# Shape, ShapeN, Size, Rank, Reshape, ExpandDims, Squeeze

@pytest.mark.parametrize("dtype", MAIN_DTYPES)
def test_shape_size_rank(dtype):
    rng = np.random.default_rng(1)
    x = _rand(rng, (3, 0, 2) if dtype == np.int64 else (3, 4, 2), dtype)
    y = _rand(rng, (5,), dtype)

    def build(x, y):
        x, y = typed(x, dtype), typed(y, dtype)
        outs = [raw.Shape(input=x), raw.Shape(input=x, out_type=tf.int64), raw.Size(input=x),
                raw.Size(input=y, out_type=tf.int64), raw.Rank(input=x)]
        outs += raw.ShapeN(input=[x, y, x], out_type=tf.int64)
        return outs
    check(build, {"x": x, "y": y}, unknown_shape=("x",))
    check(build, {"x": x, "y": y}, unknown_shape="*")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_reshape(dtype):
    rng = np.random.default_rng(2)
    x = _rand(rng, (4, 6), feed_dtype(dtype))
    e = _rand(rng, (0, 3), feed_dtype(dtype))

    def build(x, e):
        x, e = typed(x, dtype), typed(e, dtype)
        return [raw.Reshape(tensor=x, shape=[-1]), raw.Reshape(tensor=x, shape=[2, -1, 3]),
                raw.Reshape(tensor=x, shape=tf.constant([3, 8], tf.int64)),
                raw.Reshape(tensor=x, shape=[1, 24, 1]), raw.Reshape(tensor=x[:1, :1], shape=[]),
                raw.Reshape(tensor=e, shape=[-1, 0]), raw.Reshape(tensor=e, shape=[0, -1]),
                raw.Reshape(tensor=e, shape=[3, 0, 7]), raw.Reshape(tensor=e, shape=[-1, 5]),
                # shape arithmetic on a runtime shape (Shape -> StridedSlice -> Pack)
                raw.Reshape(tensor=x, shape=tf.stack([tf.shape(x)[0] * 2, -1]))]
    check(build, {"x": x, "e": e}, unknown_shape=("x",))


def test_reshape_static_shapes():
    """Keras-style reshapes keep their static shapes through import (checked via outputs)."""
    rng = np.random.default_rng(3)
    x = _rand(rng, (2, 28, 28, 1))
    y = _rand(rng, (2, 7, 7, 4))

    def build(x, y):
        flat = raw.Reshape(tensor=x, shape=[-1, 784])
        back = raw.Reshape(tensor=flat, shape=tf.stack([tf.shape(flat)[0], 28, 28, 1]))
        keras2_flatten = raw.Reshape(tensor=y, shape=tf.stack([tf.shape(y)[0], -1]))
        return [flat, back, keras2_flatten, tf.shape(keras2_flatten)[1:] * 2]
    check(build, {"x": x, "y": y}, unknown_shape=("x", "y"))


@pytest.mark.parametrize("dtype", MAIN_DTYPES)
def test_expand_dims_squeeze(dtype):
    rng = np.random.default_rng(4)
    x = _rand(rng, (1, 3, 1, 2), feed_dtype(dtype))

    def build(x):
        x = typed(x, dtype)
        return [raw.ExpandDims(input=x, axis=0), raw.ExpandDims(input=x, axis=-1),
                raw.ExpandDims(input=x, axis=tf.constant([2], tf.int64)), raw.Squeeze(input=x),
                raw.Squeeze(input=x, axis=[0]), raw.Squeeze(input=x, axis=[-2, 0]),
                raw.Squeeze(input=raw.ExpandDims(input=x[0, 0, 0, 0], axis=0))]
    check(build, {"x": x})


# ---------------------------------------------------------------------------------------------
# StridedSlice, Slice

def _random_slice_specs(rng, shape, count):
    """Random StridedSlice specs (index vectors and masks) that TF accepts for `shape`."""
    specs = []
    probe = tf.zeros(shape)
    while len(specs) < count:
        n = int(rng.integers(1, len(shape) + 3))
        begin = [int(v) for v in rng.integers(-7, 7, size=n)]
        end = [int(v) for v in rng.integers(-7, 7, size=n)]
        strides = [int(v) for v in rng.choice([-3, -2, -1, 1, 1, 2, 3], size=n)]
        masks = {k: int(rng.integers(0, 1 << n)) & int(rng.integers(0, 1 << n))
                 for k in ("begin_mask", "end_mask", "new_axis_mask", "shrink_axis_mask")}
        masks["ellipsis_mask"] = (1 << int(rng.integers(0, n))) if rng.random() < 0.3 else 0
        try:
            raw.StridedSlice(input=probe, begin=begin, end=end, strides=strides, **masks)
        except (tf.errors.InvalidArgumentError, ValueError):
            continue
        specs.append((begin, end, strides, masks))
    return specs


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, "string"])
def test_strided_slice_random(dtype):
    rng = np.random.default_rng(5)
    shape = (4, 5, 3)
    x = _rand(rng, shape, dtype)
    specs = _random_slice_specs(rng, shape, 60)

    def build(x):
        return [raw.StridedSlice(input=x, begin=b, end=e, strides=s, **m) for b, e, s, m in specs]
    check(build, {"x": x})
    check(build, {"x": x}, unknown_shape=("x",))
    check(build, {"x": x}, unknown_shape="*")


def test_strided_slice_runtime_operands():
    """begin/end/strides fed at run time (no static help), incl. negative strides and shrink."""
    rng = np.random.default_rng(6)
    x = _rand(rng, (6, 5))
    cases = [([0, 0], [6, 5], [1, 1], {}), ([-1, 4], [-7, -6], [-1, -2], {}),
             ([5, 1], [0, 0], [-2, 1], {"end_mask": 2}), ([2, 0], [0, 0], [1, 1], {"shrink_axis_mask": 1}),
             ([-2, 3], [0, 0], [1, -1], {"shrink_axis_mask": 1, "end_mask": 2}),
             ([1], [4], [2], {"new_axis_mask": 0, "ellipsis_mask": 0}),
             ([0, 1], [0, 3], [1, 1], {"ellipsis_mask": 1})]
    feeds = {"x": x}
    for i, (b, e, s, _) in enumerate(cases):
        feeds[f"b{i}"], feeds[f"e{i}"], feeds[f"s{i}"] = (np.array(v, np.int32) for v in (b, e, s))

    def build(x, **ops):
        return [raw.StridedSlice(input=x, begin=ops[f"b{i}"], end=ops[f"e{i}"], strides=ops[f"s{i}"], **m)
                for i, (_, _, _, m) in enumerate(cases)]
    check(build, feeds, unknown_shape="*")


def test_strided_slice_of_shapes_folds():
    """tf.shape(x)[1:] etc. on a partially known shape; results feed further shape math."""
    rng = np.random.default_rng(7)
    x = _rand(rng, (3, 4, 5))

    def build(x):
        s = tf.shape(x)
        return [s[1:], s[-1], s[::-1], s[0] * s[2], tf.reshape(x, tf.concat([s[:1], [-1]], 0)),
                tf.reshape(x, [-1, s[1] * s[2]])]
    check(build, {"x": x}, unknown_shape=("x",))


@pytest.mark.parametrize("dtype", MAIN_DTYPES)
def test_slice(dtype):
    rng = np.random.default_rng(8)
    x = _rand(rng, (4, 5, 3), feed_dtype(dtype))

    def build(x):
        x = typed(x, dtype)
        return [raw.Slice(input=x, begin=[1, 0, 2], size=[2, -1, 1]),
                raw.Slice(input=x, begin=tf.constant([0, 5, 0], tf.int64), size=tf.constant([4, 0, -1], tf.int64)),
                raw.Slice(input=x, begin=[3, 4, 2], size=[-1, -1, -1])]
    check(build, {"x": x}, unknown_shape=("x",))


# ---------------------------------------------------------------------------------------------
# Transpose, Tile, Pad, MirrorPad, BroadcastTo, Reverse

@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_transpose_tile_reverse(dtype):
    rng = np.random.default_rng(9)
    x = _rand(rng, (2, 3, 4), feed_dtype(dtype))

    def build(x):
        x = typed(x, dtype)
        outs = [raw.Transpose(x=x, perm=[2, 0, 1]), raw.Transpose(x=x, perm=tf.constant([1, 2, 0], tf.int64)),
                raw.Transpose(x=x[0, 0, 0], perm=tf.zeros([0], tf.int32)),
                raw.ConjugateTranspose(x=x, perm=[0, 2, 1]),
                raw.ReverseV2(tensor=x, axis=[0, -1]), raw.ReverseV2(tensor=x, axis=tf.zeros([0], tf.int64)),
                raw.Reverse(tensor=x, dims=[False, True, True])]
        if dtype != np.uint16:  # TF's CPU Tile lacks uint16
            outs += [raw.Tile(input=x, multiples=[2, 1, 3]), raw.Tile(input=x, multiples=[1, 0, 2])]
        return outs
    check(build, {"x": x}, unknown_shape=("x",))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_pad(dtype):
    rng = np.random.default_rng(10)
    x = _rand(rng, (3, 4), feed_dtype(dtype))

    def build(x):
        x = typed(x, dtype)
        outs = [raw.Pad(input=x, paddings=[[1, 2], [0, 3]]),
                raw.Pad(input=x, paddings=tf.constant([[0, 0], [2, 0]], tf.int64)),
                raw.MirrorPad(input=x, paddings=[[2, 2], [3, 1]], mode="REFLECT"),
                raw.MirrorPad(input=x, paddings=[[3, 1], [4, 4]], mode="SYMMETRIC")]
        outs.append(raw.PadV2(input=x, paddings=[[1, 1], [1, 0]], constant_values=x[2, 3]))
        return outs
    check(build, {"x": x}, unknown_shape=("x",))


@pytest.mark.parametrize("dtype", MAIN_DTYPES)
def test_broadcast_to(dtype):
    rng = np.random.default_rng(11)
    x = _rand(rng, (3, 1), feed_dtype(dtype))

    def build(x):
        x = typed(x, dtype)
        return [raw.BroadcastTo(input=x, shape=[2, 3, 4]), raw.BroadcastTo(input=x, shape=[3, 1]),
                raw.BroadcastTo(input=x, shape=tf.constant([3, 0], tf.int64)),
                raw.BroadcastTo(input=x[0, 0], shape=[2, 2])]
    check(build, {"x": x})


def test_broadcast_args():
    cases = [([2, 1, 3], [3]), ([1], [1]), ([], [2, 3]), ([2, 3], [2, 3]), ([1, 1], [1]), ([5, 1], [1, 7]),
             ([4, 1, 0], [3, 1])]
    feeds = {}
    for i, (a, b) in enumerate(cases):
        feeds[f"a{i}"] = np.array(a, np.int32 if i % 2 else np.int64)
        feeds[f"b{i}"] = np.array(b, feeds[f"a{i}"].dtype)

    def build(**ph):
        outs = []
        for i in range(len(cases)):
            outs.append(raw.BroadcastArgs(s0=ph[f"a{i}"], s1=ph[f"b{i}"]))
            outs += list(raw.BroadcastGradientArgs(s0=ph[f"a{i}"], s1=ph[f"b{i}"]))
        return outs
    check(build, feeds)


# ---------------------------------------------------------------------------------------------
# Gather, GatherV2, GatherNd, ScatterNd, TensorScatter*

@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_gather(dtype):
    rng = np.random.default_rng(12)
    p = _rand(rng, (3, 4, 5), feed_dtype(dtype))
    i = rng.integers(0, 3, size=(3, 2)).astype(np.int64)
    j = rng.integers(0, 4, size=(3, 2)).astype(np.int32)
    k = rng.integers(0, 5, size=(6,)).astype(np.int32)

    def build(p, i, j, k):
        p = typed(p, dtype)
        return [raw.Gather(params=p, indices=i), raw.GatherV2(params=p, indices=j, axis=1),
                raw.GatherV2(params=p, indices=k, axis=tf.constant(-1, tf.int64)),
                raw.GatherV2(params=p, indices=j, axis=1, batch_dims=1),
                raw.GatherV2(params=p, indices=j[:, :1], axis=-2, batch_dims=-1),
                raw.GatherV2(params=p, indices=i[0, 0], axis=0),
                raw.GatherV2(params=p, indices=tf.zeros([0, 2], tf.int32), axis=2)]
    check(build, {"p": p, "i": i, "j": j, "k": k}, unknown_shape=("p",))


@pytest.mark.parametrize("dtype", [np.float32, np.int32, "string", np.bool_])
def test_gather_nd(dtype):
    rng = np.random.default_rng(13)
    p = _rand(rng, (3, 4, 2), dtype)
    i1 = rng.integers(0, 3, size=(5, 1)).astype(np.int32)
    i2 = np.stack([rng.integers(0, 3, size=(2, 3)), rng.integers(0, 4, size=(2, 3))], -1).astype(np.int64)
    i3 = np.array([[2, 3, 1], [0, 0, 0]], np.int32)

    def build(p, i1, i2, i3):
        return [raw.GatherNd(params=p, indices=i1), raw.GatherNd(params=p, indices=i2),
                raw.GatherNd(params=p, indices=i3), raw.GatherNd(params=p, indices=tf.zeros([2, 0], tf.int32))]
    check(build, {"p": p, "i1": i1, "i2": i2, "i3": i3})


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.float16, np.uint8, np.bool_,
                                   np.complex64, "bfloat16", "string"])
def test_scatter(dtype):
    rng = np.random.default_rng(14)
    idx = np.array([[1], [3], [1], [0]], np.int32)  # a duplicate: ScatterNd adds, Update keeps the last
    upd = _rand(rng, (4, 3), feed_dtype(dtype))
    t = _rand(rng, (5, 3), feed_dtype(dtype))
    idx2 = np.array([[0, 2], [4, 1], [0, 2]], np.int64)
    upd2 = _rand(rng, (3,), feed_dtype(dtype))
    numeric = dtype not in ("string", np.bool_)

    def build(idx, upd, t, idx2, upd2):
        upd, t, upd2 = typed(upd, dtype), typed(t, dtype), typed(upd2, dtype)
        outs = [raw.ScatterNd(indices=idx, updates=upd, shape=[5, 3]),
                raw.ScatterNd(indices=idx2, updates=upd2, shape=tf.constant([5, 3], tf.int64)),
                raw.TensorScatterUpdate(tensor=t, indices=idx, updates=upd),
                raw.TensorScatterUpdate(tensor=t, indices=idx2, updates=upd2)]
        if numeric:
            outs += [raw.TensorScatterAdd(tensor=t, indices=idx, updates=upd),
                     raw.TensorScatterSub(tensor=t, indices=idx2, updates=upd2)]
        if numeric and dtype != np.complex64:
            outs += [raw.TensorScatterMax(tensor=t, indices=idx, updates=upd),
                     raw.TensorScatterMin(tensor=t, indices=idx2, updates=upd2)]
        return outs
    check(build, {"idx": idx, "upd": upd, "t": t, "idx2": idx2, "upd2": upd2})


# ---------------------------------------------------------------------------------------------
# Concat, Pack, Unpack, Split, SplitV

@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_concat_pack_split(dtype):
    rng = np.random.default_rng(15)
    a = _rand(rng, (2, 3), feed_dtype(dtype))
    b = _rand(rng, (2, 1), feed_dtype(dtype))
    e = _rand(rng, (2, 0), feed_dtype(dtype))
    x = _rand(rng, (4, 6), feed_dtype(dtype))

    def build(a, b, e, x):
        a, b, e, x = (typed(v, dtype) for v in (a, b, e, x))
        outs = [raw.ConcatV2(values=[a, b, e, a], axis=1), raw.ConcatV2(values=[a, a], axis=tf.constant(-2, tf.int64)),
                raw.Concat(concat_dim=1, values=[b, a]),
                raw.Pack(values=[a, a, a]), raw.Pack(values=[a, a], axis=-1), raw.Pack(values=[a[0, 0], a[1, 1]])]
        outs += raw.Unpack(value=x, num=4) + raw.Unpack(value=x, num=6, axis=-1)
        outs += raw.Split(axis=1, value=x, num_split=3) + raw.Split(axis=0, value=x, num_split=1)
        outs += raw.SplitV(value=x, size_splits=[1, -1, 2], axis=-1, num_split=3)
        outs += raw.SplitV(value=x, size_splits=tf.constant([4, 0], tf.int32), axis=0, num_split=2)
        return outs
    check(build, {"a": a, "b": b, "e": e, "x": x}, unknown_shape=("a", "x"))


# ---------------------------------------------------------------------------------------------
# Fill, Empty, Range, LinSpace, OneHot, Where, InvertPermutation, Unique, Bitcast

@pytest.mark.parametrize("dtype", MAIN_DTYPES)
def test_fill(dtype):
    rng = np.random.default_rng(16)
    v = _rand(rng, (), feed_dtype(dtype))

    def build(v):
        v = typed(v, dtype)
        return [raw.Fill(dims=[2, 3], value=v), raw.Fill(dims=tf.constant([0, 4], tf.int64), value=v),
                raw.Fill(dims=tf.zeros([0], tf.int32), value=v)]
    check(build, {"v": v})


def test_range_linspace():
    cases = [(np.int32, 0, 10, 3), (np.int32, 10, -5, -4), (np.int64, -3, 3, 1), (np.int64, 5, 5, 2),
             (np.float32, 0.1, 100.0, 0.1), (np.float32, 3.0, -2.5, -0.7), (np.float64, 0.1, 10.0, 0.3),
             (np.float16, 0.1, 10.0, 0.3)]
    feeds = {}
    for i, (t, s, l, d) in enumerate(cases):
        feeds[f"s{i}"], feeds[f"l{i}"], feeds[f"d{i}"] = np.array(s, t), np.array(l, t), np.array(d, t)
    lin = [(np.float32, 0.3, 7.7, 13), (np.float64, -1.0, 1.0, 7), (np.float32, 2.0, 5.0, 1)]
    for i, (t, a, b, n) in enumerate(lin):
        feeds[f"a{i}"], feeds[f"z{i}"], feeds[f"n{i}"] = np.array(a, t), np.array(b, t), np.array(n, np.int32)

    def build(**ph):
        outs = [raw.Range(start=ph[f"s{i}"], limit=ph[f"l{i}"], delta=ph[f"d{i}"]) for i in range(len(cases))]
        outs += [raw.LinSpace(start=ph[f"a{i}"], stop=ph[f"z{i}"], num=ph[f"n{i}"]) for i in range(len(lin))]
        outs += [raw.Range(start=2, limit=11, delta=3), raw.LinSpace(start=1.0, stop=2.0, num=5)]
        return outs
    check(build, feeds)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_, "string", np.float16])
def test_one_hot(dtype):
    rng = np.random.default_rng(17)
    i = rng.integers(-1, 5, size=(3, 4)).astype(np.int64)
    j = rng.integers(0, 4, size=(5,)).astype(np.int32)
    on, off = _rand(rng, (), dtype), _rand(rng, (), dtype)

    def build(i, j, on, off):
        return [raw.OneHot(indices=i, depth=4, on_value=on, off_value=off),
                raw.OneHot(indices=i, depth=3, on_value=on, off_value=off, axis=0),
                raw.OneHot(indices=j, depth=5, on_value=on, off_value=off, axis=1),
                raw.OneHot(indices=tf.cast(j, tf.uint8), depth=0, on_value=on, off_value=off),
                raw.OneHot(indices=i[0, 0], depth=4, on_value=on, off_value=off)]
    check(build, {"i": i, "j": j, "on": on, "off": off}, unknown_shape=("i",))


@pytest.mark.parametrize("dtype", [np.bool_, np.float32, np.int32, np.float64, np.complex64, np.uint8])
def test_where(dtype):
    rng = np.random.default_rng(18)
    x = (_rand(rng, (3, 4, 2), dtype) * (rng.random((3, 4, 2)) < 0.4)).astype(dtype)
    if dtype == np.float32:
        x[0, 0, 0], x[1, 1, 1] = -0.0, np.nan

    def build(x):
        return [raw.Where(condition=x), raw.Where(condition=x[1]), raw.Where(condition=x[:, :0])]
    check(build, {"x": x})


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.float16, np.uint8, "string", np.bool_])
def test_unique_invert_permutation(dtype):
    rng = np.random.default_rng(19)
    x = _rand(rng, (20,), dtype)
    if dtype not in ("string", np.bool_):
        x = (x // 8 if np.dtype(dtype).kind in "iu" else np.round(x)).astype(dtype)
    if dtype == np.float32:
        x[:5] = [0.0, -0.0, np.nan, np.nan, 1.0]
    p = rng.permutation(7).astype(np.int32)

    def build(x, p):
        y, idx = raw.Unique(x=x)
        y2, idx2 = raw.Unique(x=x, out_idx=tf.int64)
        y3, idx3, cnt = raw.UniqueWithCounts(x=x)
        return [y, idx, y2, idx2, y3, idx3, cnt, raw.InvertPermutation(x=p),
                raw.InvertPermutation(x=tf.cast(p, tf.int64))]
    check(build, {"x": x, "p": p})


def test_bitcast():
    rng = np.random.default_rng(20)
    f = rng.normal(size=(3, 2)).astype(np.float32)
    b = rng.integers(0, 255, size=(5, 8)).astype(np.uint8)

    def build(f, b):
        return [raw.Bitcast(input=f, type=tf.int32), raw.Bitcast(input=f, type=tf.uint8),
                raw.Bitcast(input=f, type=tf.float16), raw.Bitcast(input=b, type=tf.float64),
                raw.Bitcast(input=b[:, :2], type=tf.int16), raw.Bitcast(input=b, type=tf.uint8)]
    check(build, {"f": f, "b": b})


@pytest.mark.parametrize("dtype", MAIN_DTYPES + [np.complex64])
def test_empty(dtype):
    def build(s):
        e = raw.Empty(shape=s, dtype=tf.as_dtype("bfloat16" if dtype == "bfloat16" else
                                                   (tf.string if dtype == "string" else dtype)), init=True)
        return [tf.shape(e), e]
    check(build, {"s": np.array([2, 0, 3], np.int32)})


# ---------------------------------------------------------------------------------------------
# SpaceToBatchND, BatchToSpaceND, SpaceToDepth, DepthToSpace

@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float16, np.uint8, "bfloat16"])
def test_space_batch_depth(dtype):
    rng = np.random.default_rng(21)
    x = _rand(rng, (2, 5, 6, 3), feed_dtype(dtype))
    z = _rand(rng, (12, 2, 3, 2), feed_dtype(dtype))
    d = _rand(rng, (2, 4, 6, 8), feed_dtype(dtype))

    def build(x, z, d):
        x, z, d = typed(x, dtype), typed(z, dtype), typed(d, dtype)
        return [raw.SpaceToBatchND(input=x, block_shape=[2, 3], paddings=[[1, 0], [0, 0]]),
                raw.SpaceToBatchND(input=x, block_shape=tf.constant([3], tf.int64), paddings=[[0, 1]]),
                raw.SpaceToBatchND(input=x, block_shape=[2, 2], paddings=tf.constant([[2, 1], [1, 1]], tf.int64)),
                raw.BatchToSpaceND(input=z, block_shape=[2, 3], crops=[[0, 1], [2, 1]]),
                raw.BatchToSpaceND(input=z, block_shape=[4], crops=[[1, 2]]),
                raw.BatchToSpaceND(input=z, block_shape=[3, 2], crops=tf.constant([[0, 0], [0, 0]], tf.int64)),
                raw.SpaceToDepth(input=d, block_size=2), raw.DepthToSpace(input=d, block_size=2),
                raw.SpaceToDepth(input=d[:, :3, :6], block_size=3)]
    check(build, {"x": x, "z": z, "d": d}, unknown_shape=("x", "d"))


# ---------------------------------------------------------------------------------------------
# MatrixBandPart, MatrixDiag*, MatrixDiagPart*, MatrixSetDiag*

@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_, np.float16])
def test_matrix_band_diag(dtype):
    rng = np.random.default_rng(22)
    m = _rand(rng, (2, 4, 5), dtype)
    v = _rand(rng, (2, 3), dtype)
    vk = _rand(rng, (2, 3, 4), dtype)
    pad = _rand(rng, (), dtype)

    def build(m, v, vk, pad):
        outs = [raw.MatrixBandPart(input=m, num_lower=1, num_upper=-1),
                raw.MatrixBandPart(input=m, num_lower=tf.constant(-1, tf.int64), num_upper=0),
                raw.MatrixBandPart(input=m, num_lower=0, num_upper=2), raw.MatrixDiag(diagonal=v),
                raw.MatrixDiagPart(input=m), raw.MatrixSetDiag(input=m, diagonal=m[:, 0, :4])]
        for align in ("RIGHT_LEFT", "LEFT_RIGHT", "LEFT_LEFT", "RIGHT_RIGHT"):
            outs += [raw.MatrixDiagV3(diagonal=vk, k=[-1, 1], num_rows=-1, num_cols=-1, padding_value=pad, align=align),
                     raw.MatrixDiagV3(diagonal=vk, k=[0, 2], num_rows=4, num_cols=-1, padding_value=pad, align=align),
                     raw.MatrixDiagV3(diagonal=v, k=1, num_rows=-1, num_cols=5, padding_value=pad, align=align),
                     raw.MatrixDiagPartV3(input=m, k=[-2, 1], padding_value=pad, align=align),
                     raw.MatrixDiagPartV3(input=m, k=3, padding_value=pad, align=align),
                     raw.MatrixSetDiagV3(input=m, diagonal=vk, k=[-1, 1], align=align)]
        outs += [raw.MatrixDiagV2(diagonal=vk, k=[-1, 1], num_rows=-1, num_cols=-1, padding_value=pad),
                 raw.MatrixDiagPartV2(input=m, k=[0, 1], padding_value=pad),
                 raw.MatrixSetDiagV2(input=m, diagonal=vk[:, :2], k=[0, 1])]
        return outs
    check(build, {"m": m, "v": v, "vk": vk, "pad": pad})


# ---------------------------------------------------------------------------------------------
# Errors: Tessera fails naming the node, as TF does

def test_errors():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    i = np.array([[0, 5]], np.int32)
    check_error(lambda x, i: raw.GatherV2(params=x, indices=i, axis=1, name="bad_gather"),
                {"x": x, "i": i}, "bad_gather", "indices[0,1] = 5 is not in [0, 4)")
    check_error(lambda x, i: raw.GatherNd(params=x, indices=i + 2, name="bad_gather_nd"),
                {"x": x, "i": i}, "bad_gather_nd", "does not index into param shape [3,4]")
    check_error(lambda x, i: raw.ScatterNd(indices=i, updates=[1.0], shape=[3, 4], name="bad_scatter"),
                {"x": x, "i": i}, "bad_scatter", "does not index into shape [3,4]")
    check_error(lambda x: raw.Reshape(tensor=x, shape=[5, -1], name="bad_reshape"), {"x": x}, "bad_reshape",
                "requested shape requires a multiple of 5")
    check_error(lambda x: raw.StridedSlice(input=x, begin=[3], end=[4], strides=[1], shrink_axis_mask=1,
                                           name="bad_slice"), {"x": x}, "bad_slice", "out of bounds")
    check_error(lambda x: raw.ConcatV2(values=[x, x[:, :2]], axis=0, name="bad_concat"), {"x": x}, "bad_concat")
    check_error(lambda x: raw.Range(start=x[0, 0], limit=x[0, 1], delta=x[0, 0], name="bad_range"), {"x": x},
                "bad_range", "delta != 0")
    check_error(lambda x: raw.Slice(input=x, begin=[1, 1], size=[3, 1], name="bad_slice2"), {"x": x}, "bad_slice2")
    check_error(lambda x: raw.Split(axis=1, value=x, num_split=3, name="bad_split")[0], {"x": x}, "bad_split")


# ---------------------------------------------------------------------------------------------
# Static shapes: wherever TensorFlow's graph knows a dimension, Tessera's import knows it too

ARRAY_OPS = {"Shape", "ShapeN", "Size", "Rank", "Reshape", "Transpose", "ConjugateTranspose", "ExpandDims",
             "Squeeze", "StridedSlice", "Slice", "Gather", "GatherV2", "GatherNd", "ScatterNd",
             "TensorScatterUpdate", "Concat", "ConcatV2", "Pack", "Unpack", "Split", "SplitV", "Tile", "Pad",
             "PadV2", "MirrorPad", "Fill", "Range", "LinSpace", "OneHot", "Where", "BroadcastTo",
             "BroadcastArgs", "ReverseV2", "Unique", "Bitcast", "SpaceToBatchND", "BatchToSpaceND",
             "SpaceToDepth", "DepthToSpace", "MatrixBandPart", "MatrixDiag", "MatrixDiagV3", "Empty"}


def _tessera_static_shapes(graph_def):
    """{node name: [dims list or None (unknown rank), ...per output]} from `tessera inspect --ir`."""
    import re
    import tempfile
    from tessera_testlib import run_cli
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "graph.pb"
        path.write_bytes(graph_def.SerializeToString())
        text = run_cli("inspect", path, "--ir").stdout
    shapes = {}
    for line in text.splitlines():
        m = re.match(r"\s+(\S+) = \w+\(.*\).* : (.*)$", line)
        if not m:
            continue
        outs = []
        for spec in re.findall(r"\w+(\[[^\]]*\]|<unknown>)", m.group(2)):
            if spec == "<unknown>":
                outs.append(None)
            else:
                outs.append([None if d == "?" else int(d) for d in spec[1:-1].split(",") if d])
        shapes[m.group(1)] = outs
    return shapes


def test_static_shapes_at_least_tf():
    rng = np.random.default_rng(23)
    specs = _random_slice_specs(rng, (4, 7, 7, 4), 40)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 28, 28, 1], name="x")
        y = tf1.placeholder(tf.float32, [None, 7, 7, 4], name="y")
        v = tf1.placeholder(tf.int32, [None], name="v")
        m = tf1.placeholder(tf.float32, [None, 5, 6], name="m")
        flat = raw.Reshape(tensor=x, shape=[-1, 784])
        raw.Reshape(tensor=flat, shape=tf.stack([tf.shape(flat)[0], 28, 28, 1]))
        raw.Reshape(tensor=y, shape=tf.stack([tf.shape(y)[0], -1]))
        raw.Reshape(tensor=y, shape=tf.concat([tf.shape(y)[:1], [49, 4]], 0))
        raw.Transpose(x=y, perm=[0, 3, 1, 2])
        raw.ExpandDims(input=y, axis=-1)
        raw.Squeeze(input=x, axis=[3])
        for b, e, s, msk in specs:
            raw.StridedSlice(input=y, begin=b, end=e, strides=s, **msk)
        raw.Slice(input=y, begin=[0, 1, 2, 0], size=[-1, 3, -1, 2])
        raw.GatherV2(params=y, indices=v, axis=2)
        raw.GatherV2(params=m, indices=tf.zeros([3, 2], tf.int32), axis=-1)
        raw.GatherV2(params=m, indices=tf.zeros([4, 2], tf.int32), axis=2, batch_dims=1)
        raw.GatherNd(params=m, indices=tf.zeros([3, 2], tf.int32))
        raw.ConcatV2(values=[y, y, y], axis=-1)
        raw.ConcatV2(values=[y, y], axis=0)
        raw.Pack(values=[m, m], axis=1)
        raw.Unpack(value=m, num=5, axis=1)
        raw.Split(axis=2, value=m, num_split=3)
        raw.SplitV(value=m, size_splits=[1, -1, 2], axis=2, num_split=3)
        raw.Tile(input=m, multiples=[2, 3, 1])
        raw.Pad(input=m, paddings=[[1, 1], [0, 2], [3, 0]])
        raw.MirrorPad(input=m, paddings=[[0, 0], [2, 2], [1, 1]], mode="REFLECT")
        raw.BroadcastTo(input=m, shape=[2, 4, 5, 6])
        raw.Fill(dims=tf.shape(m), value=1.0)
        raw.Fill(dims=tf.shape(m)[1:], value=1.0)
        raw.OneHot(indices=v, depth=10, on_value=1.0, off_value=0.0)
        raw.Where(condition=m)
        raw.SpaceToBatchND(input=y, block_shape=[7, 1], paddings=[[0, 0], [1, 0]])
        raw.BatchToSpaceND(input=y, block_shape=[1, 2], crops=[[0, 0], [1, 1]])
        raw.SpaceToDepth(input=x, block_size=4)
        raw.DepthToSpace(input=y, block_size=2)
        raw.MatrixBandPart(input=m, num_lower=1, num_upper=1)
        raw.MatrixDiag(diagonal=m)
        raw.Range(start=0, limit=tf.shape(m)[1], delta=1)
        raw.Size(input=m)
        raw.Rank(input=m)
        raw.ShapeN(input=[m, y])
        raw.ScatterNd(indices=tf.zeros([3, 1], tf.int32), updates=tf.zeros([3, 6]), shape=[5, 6])
    expected = {op.name: [o.shape for o in op.outputs] for op in g.get_operations() if op.type in ARRAY_OPS}
    got = _tessera_static_shapes(g.as_graph_def())
    for name, shapes in expected.items():
        assert name in got, f"{name} missing from the imported IR"
        for i, tf_shape in enumerate(shapes):
            mine = got[name][i]
            if tf_shape.rank is None:
                continue
            assert mine is not None and len(mine) == tf_shape.rank, f"{name}:{i}: {mine} vs TF {tf_shape}"
            for d, (a, b) in enumerate(zip(mine, tf_shape.as_list())):
                assert b is None or a == b, f"{name}:{i} dim {d}: {mine} vs TF {tf_shape}"


# ---------------------------------------------------------------------------------------------
# Roll, ReverseSequence, DynamicPartition, DynamicStitch

@pytest.mark.parametrize("dtype", [np.float32, np.int64, "string", np.bool_, np.float16])
def test_roll_reverse_sequence_partition_stitch(dtype):
    rng = np.random.default_rng(24)
    x = _rand(rng, (3, 5, 2), dtype)
    lens = np.array([5, 0, 3], np.int64)
    lens2 = np.array([1, 2], np.int32)
    parts = rng.integers(0, 3, size=(3, 5)).astype(np.int32)
    i0, i1 = np.array([0, 4, 2], np.int32), np.array([[1, 4], [3, 5]], np.int32)
    d0, d1 = _rand(rng, (3, 2), dtype), _rand(rng, (2, 2, 2), dtype)

    def build(x, lens, lens2, parts, i0, i1, d0, d1):
        outs = [raw.Roll(input=x, shift=2, axis=1), raw.Roll(input=x, shift=[-7, 1, 4], axis=[0, -1, 0]),
                raw.Roll(input=x, shift=tf.constant([3], tf.int64), axis=[2]),
                raw.ReverseSequence(input=x, seq_lengths=lens, seq_dim=1),
                raw.ReverseSequence(input=x, seq_lengths=lens2, seq_dim=0, batch_dim=2)]
        outs += raw.DynamicPartition(data=x, partitions=parts, num_partitions=4)
        outs += raw.DynamicPartition(data=x, partitions=parts[:, 0], num_partitions=3)
        outs += [raw.DynamicStitch(indices=[i0, i1], data=[d0, d1]),
                 raw.ParallelDynamicStitch(indices=[i0, i1], data=[d0, d1])]
        return outs
    check(build, {"x": x, "lens": lens, "lens2": lens2, "parts": parts, "i0": i0, "i1": i1, "d0": d0, "d1": d1})
