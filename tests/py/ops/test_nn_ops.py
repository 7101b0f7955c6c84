"""Differential tests of the nn op family (MatMul/BatchMatMul/Einsum, convolutions, pooling,
FusedBatchNorm, LRN, image resizing) against TensorFlow.

Each test builds a small tf.Graph of raw ops on placeholders, runs it in a TF session and
through `tessera run`, and compares with the project's numeric-match rule. float16/bfloat16
results get a looser tolerance (rtol 1e-2): TF's CPU kernels round intermediate sums to the
16-bit type in places where Tessera accumulates in float32. bfloat16 is fed as float32 and
cast inside the graph, since .npy has no bfloat16.
"""
import numpy as np
import pytest

from tessera_testlib import check_op_error as check_error, check_ops_with_tf

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1
raw = tf.raw_ops

LOW_PRECISION = {np.float16: 1e-2, "bfloat16": 2e-2}


def _rand(rng, shape, dtype=np.float32, lo=-1.0, hi=1.0):
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def check(build, feeds, rtol=1e-4, atol=1e-6, unknown_batch=False):
    """check_ops_with_tf at one tolerance; `unknown_batch`: every first dim unknown."""
    check_ops_with_tf(build, feeds, tuple(feeds) if unknown_batch else (), tol=(rtol, atol))


def via_bf16(fn):
    """Wraps an op builder so it runs in bfloat16 on float32 placeholders."""
    def build(**phs):
        outs = fn(**{k: tf.cast(v, tf.bfloat16) if v.dtype == tf.float32 else v for k, v in phs.items()})
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return [tf.cast(o, tf.float32) if o.dtype == tf.bfloat16 else o for o in outs]
    return build


# ---------------------------------------------------------------------------------------------
# MatMul / BatchMatMul / Einsum

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int64, "bfloat16"])
def test_matmul(dtype):
    rng = np.random.default_rng(1)
    feed_t = np.float32 if dtype == "bfloat16" else dtype
    a = _rand(rng, (5, 7), feed_t, -5, 5)
    b = _rand(rng, (7, 3), feed_t, -5, 5)
    at, bt = a.T.copy(), b.T.copy()

    def build(a, b, at, bt):
        return [raw.MatMul(a=a, b=b), raw.MatMul(a=at, b=b, transpose_a=True),
                raw.MatMul(a=a, b=bt, transpose_b=True),
                raw.MatMul(a=at, b=bt, transpose_a=True, transpose_b=True)]
    rtol = LOW_PRECISION.get(dtype, 1e-4)
    check(via_bf16(build) if dtype == "bfloat16" else build, dict(a=a, b=b, at=at, bt=bt), rtol=rtol)


def test_matmul_large_and_unknown_batch():
    rng = np.random.default_rng(2)
    a = _rand(rng, (67, 300))
    b = _rand(rng, (300, 129))
    check(lambda a, b: raw.MatMul(a=a, b=b), dict(a=a, b=b), unknown_batch=True)


def test_matmul_incompatible_shapes_error():
    a = np.zeros((2, 3), np.float32)
    b = np.zeros((4, 2), np.float32)
    check_error(lambda a, b: raw.MatMul(a=a, b=b, name="bad_matmul"), dict(a=a, b=b), "bad_matmul")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_batch_matmul(dtype):
    rng = np.random.default_rng(3)
    x = _rand(rng, (2, 3, 4, 5), dtype, -4, 4)
    y = _rand(rng, (2, 3, 5, 6), dtype, -4, 4)
    xb = _rand(rng, (2, 1, 4, 5), dtype, -4, 4)  # broadcasts against y's batch
    y2 = _rand(rng, (5, 6), dtype, -4, 4)
    ya = _rand(rng, (3, 6, 5), dtype, -4, 4)

    def build(x, y, xb, y2, ya):
        xa = tf.transpose(x, [0, 1, 3, 2])
        return [raw.BatchMatMul(x=x, y=y), raw.BatchMatMul(x=xa, y=y, adj_x=True),
                raw.BatchMatMulV2(x=xb, y=y), raw.BatchMatMulV2(x=x, y=y2),
                raw.BatchMatMulV2(x=xb, y=ya, adj_y=True),
                raw.BatchMatMulV3(x=x, y=y, Tout=tf.as_dtype(dtype))]
    check(build, dict(x=x, y=y, xb=xb, y2=y2, ya=ya))


def test_batch_matmul_v3_mixed_int8():
    rng = np.random.default_rng(4)
    x = _rand(rng, (2, 3, 4), np.int8, -100, 100)
    y = _rand(rng, (2, 4, 5), np.uint8, 0, 255)
    check(lambda x, y: raw.BatchMatMulV3(x=x, y=y, Tout=tf.int32), dict(x=x, y=y))


def test_batch_matmul_float16_and_bfloat16():
    rng = np.random.default_rng(5)
    x = _rand(rng, (3, 4, 8), np.float16)
    y = _rand(rng, (8, 2), np.float16)
    check(lambda x, y: raw.BatchMatMulV2(x=x, y=y), dict(x=x, y=y), rtol=1e-2)
    check(via_bf16(lambda x, y: raw.BatchMatMulV2(x=x, y=y)),
          dict(x=x.astype(np.float32), y=y.astype(np.float32)), rtol=2e-2)


EINSUM_CASES = [
    ("abc,cde->abde", [(2, 3, 4), (4, 5, 6)]),     # MultiHeadAttention projections
    ("aecd,abcd->acbe", [(2, 3, 4, 5), (2, 6, 4, 5)]),  # attention scores
    ("acbe,aecd->abcd", [(2, 4, 6, 3), (2, 3, 4, 5)]),  # attention-weighted values
    ("abcd,cde->abe", [(2, 3, 4, 5), (4, 5, 6)]),   # output projection
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("i,i->", [(7,), (7,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ii->i", [(4, 4)]),
    ("ij->ji", [(3, 5)]),
    ("ijk->", [(2, 3, 4)]),
    ("iij,jk->ik", [(3, 3, 2), (2, 5)]),
    ("bij,jk->bk", [(2, 3, 4), (4, 5)]),            # private label summed before the product
    ("ab...,b->a...", [(2, 3, 4, 5), (3,)]),
    ("BiJ,BJk->Bik", [(2, 3, 4), (2, 4, 5)]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_einsum(dtype):
    rng = np.random.default_rng(6)
    feeds, eqs = {}, []
    for i, (eq, shapes) in enumerate(EINSUM_CASES):
        names = [f"e{i}_{j}" for j in range(len(shapes))]
        for n, s in zip(names, shapes):
            feeds[n] = _rand(rng, s, dtype)
        eqs.append((eq, names))

    def build(**phs):
        return [raw.Einsum(inputs=[phs[n] for n in names], equation=eq) for eq, names in eqs]
    check(build, feeds)


def test_einsum_int_and_half():
    rng = np.random.default_rng(7)
    a = _rand(rng, (2, 3, 4), np.int32, -5, 5)
    b = _rand(rng, (4, 5), np.int32, -5, 5)
    check(lambda a, b: raw.Einsum(inputs=[a, b], equation="abc,cd->abd"), dict(a=a, b=b))
    check(lambda a, b: raw.Einsum(inputs=[a, b], equation="abc,cd->abd"),
          dict(a=a.astype(np.float16) / 4, b=b.astype(np.float16) / 4), rtol=1e-2)


def test_einsum_unknown_batch():
    rng = np.random.default_rng(8)
    a = _rand(rng, (3, 4, 8))
    w = _rand(rng, (8, 2, 5))
    check(lambda a, w: raw.Einsum(inputs=[a, w], equation="abc,cde->abde"), dict(a=a, w=w),
          unknown_batch=True)
    # Broadcast ellipsis dims whose sizes are unknown at import time.
    x = _rand(rng, (3, 1, 4, 8))
    y = _rand(rng, (5, 8, 2))
    check(lambda x, y: raw.Einsum(inputs=[x, y], equation="...ij,...jk->...ik"), dict(x=x, y=y),
          unknown_batch=True)


# ---------------------------------------------------------------------------------------------
# Convolutions

CONV2D_CASES = [
    # x shape (NHWC), filter shape, strides, padding, dilations, explicit paddings
    ((2, 7, 6, 3), (3, 3, 3, 4), (1, 1), "SAME", (1, 1), None),
    ((1, 9, 8, 4), (3, 2, 4, 5), (2, 3), "SAME", (1, 1), None),
    ((1, 8, 8, 2), (2, 2, 2, 3), (2, 2), "SAME", (1, 1), None),
    ((1, 9, 9, 2), (3, 3, 2, 3), (1, 1), "VALID", (2, 2), None),
    ((2, 9, 7, 3), (3, 3, 3, 2), (2, 2), "VALID", (1, 1), None),
    ((1, 5, 6, 2), (2, 3, 2, 4), (2, 1), "EXPLICIT", (1, 1), (1, 2, 3, 0)),
    ((2, 4, 4, 6), (1, 1, 6, 5), (1, 1), "VALID", (1, 1), None),
    ((1, 6, 6, 4), (3, 3, 2, 6), (1, 1), "SAME", (1, 1), None),   # 2 groups
    ((1, 10, 10, 3), (3, 3, 3, 4), (2, 2), "SAME", (2, 2), None),
]


def _conv2d_build(case, data_format="NHWC"):
    _, _, strides, padding, dil, explicit = case

    def build(x, f):
        def full(v):
            return [1, 1, v[0], v[1]] if data_format == "NCHW" else [1, v[0], v[1], 1]
        kw = {}
        if explicit:
            pads = [0, 0, 0, 0, explicit[0], explicit[1], explicit[2], explicit[3]] if data_format == "NCHW" \
                else [0, 0, explicit[0], explicit[1], explicit[2], explicit[3], 0, 0]
            kw["explicit_paddings"] = pads
        return raw.Conv2D(input=x, filter=f, strides=full(strides), padding=padding,
                          dilations=full(dil), data_format=data_format, **kw)
    return build


@pytest.mark.parametrize("case", CONV2D_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[3]}")
def test_conv2d(case):
    rng = np.random.default_rng(10)
    x = _rand(rng, case[0])
    f = _rand(rng, case[1])
    check(_conv2d_build(case), dict(x=x, f=f), unknown_batch=True)


def test_conv2d_nchw():
    rng = np.random.default_rng(11)
    for case in (CONV2D_CASES[1], CONV2D_CASES[5]):
        x = _rand(rng, case[0]).transpose(0, 3, 1, 2).copy()
        f = _rand(rng, case[1])
        check(_conv2d_build(case, "NCHW"), dict(x=x, f=f))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, "bfloat16"])
def test_conv2d_dtypes(dtype):
    rng = np.random.default_rng(12)
    feed_t = np.float32 if dtype == "bfloat16" else dtype
    x = _rand(rng, (1, 6, 5, 3), feed_t, -4, 4)
    f = _rand(rng, (3, 3, 3, 2), feed_t, -4, 4)
    build = _conv2d_build(CONV2D_CASES[0])
    check(via_bf16(build) if dtype == "bfloat16" else build, dict(x=x, f=f),
          rtol=LOW_PRECISION.get(dtype, 1e-4))


def test_conv2d_bad_depth_error():
    x = np.zeros((1, 4, 4, 3), np.float32)
    f = np.zeros((3, 3, 2, 4), np.float32)
    check_error(lambda x, f: raw.Conv2D(input=x, filter=f, strides=[1, 1, 1, 1], padding="SAME",
                                        name="bad_conv"), dict(x=x, f=f), "bad_conv")


@pytest.mark.parametrize("data_format", ["NDHWC", "NCDHW"])
def test_conv3d(data_format):
    rng = np.random.default_rng(13)
    x = _rand(rng, (2, 5, 6, 4, 3))
    f = _rand(rng, (2, 3, 2, 3, 4))
    if data_format == "NCDHW":
        x = x.transpose(0, 4, 1, 2, 3).copy()

    def full(v):
        return [1, 1, *v] if data_format == "NCDHW" else [1, *v, 1]

    def build(x, f):
        return [raw.Conv3D(input=x, filter=f, strides=full([1, 2, 1]), padding="SAME", data_format=data_format),
                raw.Conv3D(input=x, filter=f, strides=full([1, 1, 1]), padding="VALID",
                           dilations=full([2, 1, 1]), data_format=data_format)]
    check(build, dict(x=x, f=f))


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_depthwise_conv(data_format):
    rng = np.random.default_rng(14)
    x = _rand(rng, (2, 7, 6, 3))
    f1 = _rand(rng, (3, 3, 3, 1))
    f2 = _rand(rng, (2, 3, 3, 2))
    if data_format == "NCHW":
        x = x.transpose(0, 3, 1, 2).copy()

    def full(h, w):
        return [1, 1, h, w] if data_format == "NCHW" else [1, h, w, 1]

    def build(x, f1, f2):
        pads = [0, 0, 0, 0, 1, 0, 2, 1] if data_format == "NCHW" else [0, 0, 1, 0, 2, 1, 0, 0]
        return [raw.DepthwiseConv2dNative(input=x, filter=f1, strides=full(1, 1), padding="SAME", data_format=data_format),
                raw.DepthwiseConv2dNative(input=x, filter=f2, strides=full(2, 2), padding="VALID", data_format=data_format),
                raw.DepthwiseConv2dNative(input=x, filter=f1, strides=full(1, 1), padding="SAME",
                                          dilations=full(2, 2), data_format=data_format),
                raw.DepthwiseConv2dNative(input=x, filter=f2, strides=full(1, 2), padding="EXPLICIT",
                                          explicit_paddings=pads, data_format=data_format)]
    check(build, dict(x=x, f1=f1, f2=f2))


def test_depthwise_float16():
    rng = np.random.default_rng(15)
    x = _rand(rng, (1, 5, 5, 4), np.float16)
    f = _rand(rng, (3, 3, 4, 2), np.float16)
    check(lambda x, f: raw.DepthwiseConv2dNative(input=x, filter=f, strides=[1, 1, 1, 1], padding="SAME"),
          dict(x=x, f=f), rtol=1e-2)


BACKPROP_CASES = [
    # input NHWC, filter, strides, padding, dilations
    ((2, 8, 8, 3), (3, 3, 3, 4), (2, 2), "SAME", (1, 1)),   # Conv2DTranspose, stride 2
    ((1, 7, 9, 2), (3, 3, 2, 5), (2, 2), "SAME", (1, 1)),   # odd sizes
    ((1, 7, 7, 3), (2, 2, 3, 4), (3, 2), "VALID", (1, 1)),
    ((1, 6, 6, 3), (3, 3, 3, 2), (1, 1), "SAME", (2, 2)),
    ((1, 6, 5, 2), (4, 4, 2, 3), (2, 2), "SAME", (1, 1)),
]


@pytest.mark.parametrize("case", BACKPROP_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[3]}")
def test_conv2d_backprop_input(case):
    in_shape, f_shape, strides, padding, dil = case
    rng = np.random.default_rng(16)
    f = _rand(rng, f_shape)
    # The out_backprop shape is the forward convolution's output shape.
    fwd = tf.raw_ops.Conv2D(input=np.zeros(in_shape, np.float32), filter=f, strides=[1, *strides, 1],
                            padding=padding, dilations=[1, *dil, 1])
    dy = _rand(rng, tuple(fwd.shape))

    def build(f, dy):
        return raw.Conv2DBackpropInput(input_sizes=tf.constant(in_shape, tf.int32), filter=f, out_backprop=dy,
                                       strides=[1, *strides, 1], padding=padding, dilations=[1, *dil, 1])
    check(build, dict(f=f, dy=dy))


def test_conv2d_backprop_input_variants():
    rng = np.random.default_rng(17)
    f = _rand(rng, (3, 3, 3, 4))
    dy = _rand(rng, (1, 4, 3, 3))  # NCHW
    dy2 = _rand(rng, (1, 3, 3, 4))

    def build(f, dy, dy2):
        return [raw.Conv2DBackpropInput(input_sizes=tf.constant([1, 3, 6, 6]), filter=f, out_backprop=dy,
                                        strides=[1, 1, 2, 2], padding="SAME", data_format="NCHW"),
                raw.Conv2DBackpropInput(input_sizes=tf.constant([6, 6]), filter=f, out_backprop=dy2,
                                        strides=[1, 2, 2, 1], padding="SAME"),
                raw.Conv2DBackpropInput(input_sizes=tf.constant([1, 6, 6, 3]), filter=f, out_backprop=dy2,
                                        strides=[1, 2, 2, 1], padding="EXPLICIT",
                                        explicit_paddings=[0, 0, 1, 1, 1, 0, 0, 0])]
    check(build, dict(f=f, dy=dy, dy2=dy2))


# ---------------------------------------------------------------------------------------------
# Pooling

def _pool_ops(ksize, strides, padding, data_format="NHWC"):
    def full(v):
        return [1, 1, *v] if data_format == "NCHW" else [1, *v, 1]

    def build(x):
        return [raw.MaxPool(input=x, ksize=full(ksize), strides=full(strides), padding=padding, data_format=data_format),
                raw.AvgPool(value=x, ksize=full(ksize), strides=full(strides), padding=padding, data_format=data_format)]
    return build


@pytest.mark.parametrize("ksize,strides,padding", [
    ((2, 2), (2, 2), "SAME"), ((3, 3), (2, 2), "SAME"), ((3, 3), (2, 2), "VALID"),
    ((3, 2), (1, 2), "SAME"), ((1, 1), (1, 1), "VALID"), ((7, 7), (1, 1), "VALID")])
def test_pool2d(ksize, strides, padding):
    rng = np.random.default_rng(20)
    x = _rand(rng, (2, 7, 8, 3))
    check(_pool_ops(ksize, strides, padding), dict(x=x), unknown_batch=True)


def test_pool2d_nchw():
    rng = np.random.default_rng(21)
    x = _rand(rng, (2, 3, 7, 8))
    check(_pool_ops((3, 3), (2, 2), "SAME", "NCHW"), dict(x=x))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, "bfloat16"])
def test_pool2d_float_dtypes(dtype):
    rng = np.random.default_rng(22)
    feed_t = np.float32 if dtype == "bfloat16" else dtype
    x = _rand(rng, (1, 6, 6, 2), feed_t)
    build = _pool_ops((3, 3), (2, 2), "SAME")
    check(via_bf16(build) if dtype == "bfloat16" else build, dict(x=x), rtol=LOW_PRECISION.get(dtype, 1e-4))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.int8, np.int16])
def test_maxpool_int(dtype):
    rng = np.random.default_rng(23)
    lo = 0 if dtype == np.uint8 else -100
    x = _rand(rng, (1, 5, 6, 2), dtype, lo, 100)
    check(lambda x: raw.MaxPool(input=x, ksize=[1, 2, 3, 1], strides=[1, 2, 2, 1], padding="SAME"), dict(x=x))


def test_maxpool_nan_inf_and_explicit():
    x = np.array([np.nan, -np.inf, 3.0, np.nan, -np.inf, -np.inf, np.nan, np.nan, 1, 2, 5, np.inf],
                 np.float32).reshape(1, 3, 4, 1)

    def build(x):
        return [raw.MaxPool(input=x, ksize=[1, 2, 2, 1], strides=[1, 1, 1, 1], padding="VALID"),
                raw.MaxPool(input=x, ksize=[1, 2, 2, 1], strides=[1, 1, 2, 1], padding="EXPLICIT",
                            explicit_paddings=[0, 0, 1, 0, 1, 1, 0, 0])]
    check(build, dict(x=x))


def test_maxpool_v2():
    rng = np.random.default_rng(24)
    x = _rand(rng, (2, 6, 7, 3))
    check(lambda x: raw.MaxPoolV2(input=x, ksize=tf.constant([1, 3, 2, 1]), strides=tf.constant([1, 2, 2, 1]),
                                  padding="SAME"), dict(x=x))


@pytest.mark.parametrize("data_format", ["NDHWC", "NCDHW"])
def test_pool3d(data_format):
    rng = np.random.default_rng(25)
    x = _rand(rng, (2, 5, 6, 4, 3))
    if data_format == "NCDHW":
        x = x.transpose(0, 4, 1, 2, 3).copy()

    def full(v):
        return [1, 1, *v] if data_format == "NCDHW" else [1, *v, 1]

    def build(x):
        out = []
        for pad in ("SAME", "VALID"):
            out.append(raw.MaxPool3D(input=x, ksize=full([2, 3, 2]), strides=full([2, 2, 1]), padding=pad, data_format=data_format))
            out.append(raw.AvgPool3D(input=x, ksize=full([2, 3, 2]), strides=full([2, 2, 1]), padding=pad, data_format=data_format))
        return out
    check(build, dict(x=x))


# ---------------------------------------------------------------------------------------------
# FusedBatchNorm, LRN

@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("training,factor", [(False, 1.0), (True, 1.0), (True, 0.3)])
def test_fused_batch_norm(version, training, factor):
    rng = np.random.default_rng(30)
    x = _rand(rng, (3, 5, 4, 6), np.float32, -3, 3)
    c = x.shape[-1]
    feeds = dict(x=x, scale=_rand(rng, (c,)), offset=_rand(rng, (c,)), mean=_rand(rng, (c,)),
                 var=_rand(rng, (c,), np.float32, 0.5, 2.0))
    op = {1: raw.FusedBatchNorm, 2: raw.FusedBatchNormV2, 3: raw.FusedBatchNormV3}[version]

    def build(x, scale, offset, mean, var):
        outs = op(x=x, scale=scale, offset=offset, mean=mean, variance=var, epsilon=0.001,
                  exponential_avg_factor=factor, is_training=training)
        return list(outs[:5])  # reserve_space_3 (V3) is an empty placeholder tensor
    check(build, feeds)


@pytest.mark.parametrize("data_format", ["NCHW", "NDHWC"])
def test_fused_batch_norm_layouts(data_format):
    rng = np.random.default_rng(31)
    shape = (2, 3, 4, 5) if data_format == "NCHW" else (2, 3, 4, 2, 3)
    c = shape[1] if data_format == "NCHW" else shape[-1]
    feeds = dict(x=_rand(rng, shape), scale=_rand(rng, (c,)), offset=_rand(rng, (c,)),
                 mean=_rand(rng, (c,)), var=_rand(rng, (c,), np.float32, 0.5, 2.0))

    def build(x, scale, offset, mean, var):
        out = []
        for training in (False, True):
            out += list(raw.FusedBatchNormV3(x=x, scale=scale, offset=offset, mean=mean, variance=var,
                                             is_training=training, data_format=data_format)[:3])
        return out
    check(build, feeds)


def test_fused_batch_norm_half():
    rng = np.random.default_rng(32)
    x = _rand(rng, (2, 4, 4, 3), np.float16)
    feeds = dict(x=x, scale=_rand(rng, (3,)), offset=_rand(rng, (3,)), mean=_rand(rng, (3,)),
                 var=_rand(rng, (3,), np.float32, 0.5, 2.0))

    def build(x, scale, offset, mean, var):
        out = []
        for training in (False, True):
            out += list(raw.FusedBatchNormV3(x=x, scale=scale, offset=offset, mean=mean, variance=var,
                                             is_training=training)[:3])
        return out
    check(build, feeds, rtol=1e-2)


def test_lrn():
    rng = np.random.default_rng(33)
    x = _rand(rng, (2, 3, 4, 9), np.float32, -2, 2)

    def build(x):
        return [raw.LRN(input=x), raw.LRN(input=x, depth_radius=2, bias=2.0, alpha=1e-2, beta=0.75),
                raw.LRN(input=x, depth_radius=0, bias=0.5, alpha=0.3, beta=1.5)]
    check(build, dict(x=x))
    check(lambda x: raw.LRN(input=x, depth_radius=2, alpha=0.1), dict(x=x.astype(np.float16)), rtol=1e-2)


# ---------------------------------------------------------------------------------------------
# Resize

RESIZE_SIZES = [(5, 7), (2, 3), (8, 4), (1, 1), (4, 6)]


@pytest.mark.parametrize("op_name", ["ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.float16, np.int32])
def test_resize(op_name, dtype):
    rng = np.random.default_rng(40)
    x = _rand(rng, (2, 4, 6, 3), dtype, 0, 200) if dtype != np.float16 else _rand(rng, (2, 4, 6, 3), dtype)
    op = getattr(raw, op_name)

    def build(x):
        out = []
        for size in RESIZE_SIZES:
            for align, half in ((False, False), (True, False), (False, True)):
                out.append(op(images=x, size=tf.constant(size, tf.int32), align_corners=align,
                              half_pixel_centers=half))
        return out
    # Nearest neighbour is a gather (exact); the interpolating ops compute in float32.
    check(build, dict(x=x), rtol=1e-2 if dtype == np.float16 and op_name == "ResizeNearestNeighbor" else 1e-4)


def test_resize_bad_attrs_error():
    x = np.zeros((1, 2, 2, 1), np.float32)
    check_error(lambda x: raw.ResizeBilinear(images=x, size=tf.constant([3, 3]), align_corners=True,
                                             half_pixel_centers=True, name="bad_resize"),
                dict(x=x), "bad_resize")


@pytest.mark.parametrize("data_format", ["NDHWC", "NCDHW"])
def test_conv3d_backprop_input(data_format):
    rng = np.random.default_rng(18)
    in_shape = (2, 4, 5, 6, 3)
    f = _rand(rng, (2, 3, 3, 3, 4))
    fwd = tf.raw_ops.Conv3D(input=np.zeros(in_shape, np.float32), filter=f, strides=[1, 2, 2, 1, 1],
                            padding="SAME")
    dy = _rand(rng, tuple(fwd.shape))
    sizes, strides = list(in_shape), [1, 2, 2, 1, 1]
    if data_format == "NCDHW":
        dy = dy.transpose(0, 4, 1, 2, 3).copy()
        sizes = [in_shape[0], in_shape[4], *in_shape[1:4]]
        strides = [1, 1, 2, 2, 1]

    def build(f, dy):
        return raw.Conv3DBackpropInputV2(input_sizes=tf.constant(sizes, tf.int32), filter=f, out_backprop=dy,
                                         strides=strides, padding="SAME", data_format=data_format)
    check(build, dict(f=f, dy=dy))
