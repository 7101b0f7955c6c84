"""Differential tests of the binary op family (broadcasting arithmetic, comparisons, logical
and bitwise ops, BiasAdd, AddN, Select/SelectV2, ClipByValue) against TensorFlow.

Each test builds a small tf.Graph of raw ops on placeholders (many ops per graph to keep the
run short), runs it in a TF session and through `tessera run`, and compares with the
project's numeric-match rule. Tolerances: float32 rtol 1e-4 (the default), float64 1e-9;
float16 rtol 1e-2 and bfloat16 rtol 2e-2, because TF's 16-bit kernels sometimes round
intermediates that Tessera keeps in float. Integer and bool results must match exactly.
bfloat16 is fed as float32 and cast inside the graph, since .npy has no bfloat16.
"""
import numpy as np
import pytest

from tessera_testlib import (
    check_op_error as check_error, check_ops_with_tf as check, feed_dtype, rand_float, rand_int, typed)

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1
raw = tf.raw_ops

FLOATS = [np.float32, np.float64, np.float16, "bfloat16"]
# (x shape, y shape) pairs: same, scalar either side, bias-style, both broadcast, middle
# broadcast, rank-0, and empty dims.
SHAPES = [((3, 4), (3, 4)), ((), (2, 3)), ((2, 3), ()), ((2, 3, 4), (4,)), ((3, 1), (1, 4)),
          ((2, 1, 3), (4, 1)), ((2, 3, 4), (3, 1)), ((), ()), ((0, 3), (3,)), ((2, 0), (1, 1))]


# ---------------------------------------------------------------------------------------------
# helpers

def shape_feeds(make):
    """Feeds x{i}, y{i} for every shape pair in SHAPES, made by make(shape)."""
    feeds = {}
    for i, (sx, sy) in enumerate(SHAPES):
        feeds[f"x{i}"] = make(sx)
        feeds[f"y{i}"] = make(sy)
    return feeds


# ---------------------------------------------------------------------------------------------
# float arithmetic

FLOAT_BINARY = ["Add", "AddV2", "Sub", "Mul", "Div", "RealDiv", "DivNoNan", "MulNoNan",
                "FloorDiv", "FloorMod", "TruncateDiv", "Maximum", "Minimum", "SquaredDifference",
                "Pow", "Xdivy", "Xlogy", "Xlog1py", "Less", "LessEqual", "Greater",
                "GreaterEqual", "Equal", "NotEqual"]


def _float_ops(dtype):
    ops = list(FLOAT_BINARY)
    if dtype in (np.float32, np.float64):
        ops += ["TruncateMod", "Mod"]
    return ops


@pytest.mark.parametrize("dtype", FLOATS)
def test_float_arithmetic_broadcasting(dtype):
    """Every float op over every broadcasting pattern (incl. rank-0 and empty)."""
    rng = np.random.default_rng(20)
    feeds = shape_feeds(lambda s: rand_float(rng, s, dtype, 0.2, 3) * rng.choice([-1, 1], size=s))
    ops = _float_ops(dtype)

    def build(**phs):
        outs = []
        for i in range(len(SHAPES)):
            x, y = typed(phs[f"x{i}"], dtype), typed(phs[f"y{i}"], dtype)
            for op in ops:
                if op == "Pow":  # keep real results: |x| ** y
                    outs.append(raw.Pow(x=raw.Abs(x=x), y=y))
                elif op in ("Xlogy", "Xlog1py"):
                    outs.append(getattr(raw, op)(x=x, y=raw.Abs(x=y)))
                else:
                    outs.append(getattr(raw, op)(x=x, y=y))
            outs.append(raw.Atan2(y=x, x=y))
        return outs
    check(build, feeds, unknown_shape=("x3", "y4", "x6"))


@pytest.mark.parametrize("dtype", FLOATS)
def test_float_special_values(dtype):
    """NaN, infinities, zeros (signed) on both sides of every float op: an outer product."""
    v = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5, -3.0, 0.5], np.float64)
    x = v.reshape(-1, 1).astype(feed_dtype(dtype))
    y = v.reshape(1, -1).astype(feed_dtype(dtype))
    ops = _float_ops(dtype)

    def build(x, y):
        x, y = typed(x, dtype), typed(y, dtype)
        return [getattr(raw, op)(x=x, y=y) for op in ops] + [raw.Atan2(y=x, x=y)]
    check(build, {"x": x, "y": y})


# ---------------------------------------------------------------------------------------------
# integer arithmetic

INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _int_ops(dtype):
    ops = ["AddV2", "Sub", "Mul", "Div", "FloorDiv", "FloorMod", "TruncateDiv", "Maximum",
           "Minimum", "Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual",
           "BitwiseAnd", "BitwiseOr", "BitwiseXor", "LeftShift", "RightShift"]
    if dtype in (np.uint8, np.int8, np.int16, np.int32, np.int64):
        ops.append("Add")
    if dtype in (np.int32, np.int64):
        ops += ["TruncateMod", "Mod", "SquaredDifference"]
    if dtype in (np.int8, np.int16, np.int32, np.int64):
        ops.append("Pow")
    return ops


@pytest.mark.parametrize("dtype", INT_TYPES)
def test_integer_arithmetic(dtype):
    """Wrap-around, floor/trunc division and modulo on negatives, shifts with out-of-range
    amounts, comparisons; divisors are never zero, exponents never negative."""
    rng = np.random.default_rng(21)
    info = np.iinfo(dtype)
    x = rand_int(rng, (4, 6), dtype, -120, 120)
    x.reshape(-1)[:3] = [info.min, info.max, 0]
    y = rand_int(rng, (6,), dtype, -9, 9)
    y[y == 0] = 3
    y[0] = -1 if info.min < 0 else 1
    shift = rand_int(rng, (6,), dtype, -3, 70)
    exp = rand_int(rng, (6,), dtype, 0, 9)
    ops = _int_ops(dtype)

    def build(x, y, shift, exp):
        outs = []
        for op in ops:
            if op in ("LeftShift", "RightShift"):
                outs.append(getattr(raw, op)(x=x, y=shift))
            elif op == "Pow":
                outs.append(raw.Pow(x=x, y=exp))
            else:
                outs.append(getattr(raw, op)(x=x, y=y))
                outs.append(getattr(raw, op)(x=y, y=x[1:2] if op not in ("Div", "FloorDiv", "FloorMod", "TruncateDiv", "TruncateMod", "Mod") else y))
        return outs
    check(build, {"x": x, "y": y, "shift": shift, "exp": exp}, unknown_shape=("x",))


@pytest.mark.parametrize("op", ["Div", "FloorDiv", "FloorMod", "Mod", "TruncateDiv", "TruncateMod"])
def test_integer_division_by_zero_is_an_error(op):
    check_error(lambda x, y: getattr(raw, op)(x=x, y=y, name="int_div"),
                {"x": np.array([4, 5], np.int32), "y": np.array([1, 0], np.int32)},
                "int_div", "Integer division by zero")


def test_integer_negative_power_is_an_error():
    check_error(lambda x, y: raw.Pow(x=x, y=y, name="int_pow"),
                {"x": np.array([2], np.int64), "y": np.array([-1], np.int64)},
                "int_pow", "Integers to negative integer powers are not allowed")


def test_incompatible_shapes_is_an_error():
    check_error(lambda x, y: raw.AddV2(x=x, y=y, name="bad_add"),
                {"x": np.ones((2, 3), np.float32), "y": np.ones((4,), np.float32)},
                "bad_add", "Incompatible shapes")


# ---------------------------------------------------------------------------------------------
# bool, strings, equality

def test_logical_and_bool_equality():
    rng = np.random.default_rng(22)
    a = rng.integers(0, 2, size=(3, 4)).astype(np.bool_)
    b = rng.integers(0, 2, size=(4,)).astype(np.bool_)
    c = rng.integers(0, 2, size=(3, 1)).astype(np.bool_)

    def build(a, b, c):
        return [raw.LogicalAnd(x=a, y=b), raw.LogicalOr(x=a, y=c), raw.LogicalAnd(x=b, y=c),
                raw.Equal(x=a, y=b), raw.NotEqual(x=c, y=a)]
    check(build, {"a": a, "b": b, "c": c}, unknown_shape=("a",))


def test_strings():
    a = np.array([[b"a", b"bc"], [b"", b"\xc3\xa9"]])
    b = np.array([b"x", b"y"])
    s = np.array(b"!")

    def build(a, b, s):
        return [raw.Add(x=a, y=b), raw.Add(x=s, y=a), raw.Equal(x=a, y=b), raw.NotEqual(x=a, y=s),
                raw.Equal(x=a, y=tf.constant([b"a", b"y"]))]
    check(build, {"a": a, "b": b, "s": s})


def test_equal_incompatible_shapes_without_error():
    x = np.array([1, 2], np.int32)
    y = np.array([1, 2, 3], np.int32)
    z = np.array([[1], [2]], np.int32)

    def build(x, y, z):
        return [raw.Equal(x=x, y=y, incompatible_shape_error=False),
                raw.NotEqual(x=x, y=y, incompatible_shape_error=False),
                raw.Equal(x=x, y=z, incompatible_shape_error=False),
                raw.NotEqual(x=z, y=y, incompatible_shape_error=False)]
    check(build, {"x": x, "y": y, "z": z})
    check(build, {"x": x, "y": y, "z": z}, unknown_shape="*")


# ---------------------------------------------------------------------------------------------
# BiasAdd, AddN, Select, SelectV2, ClipByValue

@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bfloat16", np.int32, np.float64])
def test_bias_add(dtype):
    rng = np.random.default_rng(23)
    make = (lambda s: rand_float(rng, s, dtype)) if dtype != np.int32 else (lambda s: rand_int(rng, s, dtype))
    v2, v4, v5 = make((3, 5)), make((2, 4, 3, 5)), make((1, 5, 2, 1, 3))
    b5 = make((5,))

    def build(v2, v4, v5, b5):
        v2, v4, v5, b5 = (typed(t, dtype) for t in (v2, v4, v5, b5))
        return [raw.BiasAdd(value=v2, bias=b5), raw.BiasAdd(value=v4, bias=b5),
                raw.BiasAdd(value=raw.Transpose(x=v4, perm=[0, 3, 1, 2]), bias=b5, data_format="NCHW"),
                raw.BiasAdd(value=v5, bias=b5, data_format="NCHW"), raw.BiasAddV1(value=v4, bias=b5)]
    check(build, {"v2": v2, "v4": v4, "v5": v5, "b5": b5}, unknown_shape=("v4",))


def test_bias_add_errors():
    check_error(lambda v, b: raw.BiasAdd(value=v, bias=b, name="bias_bad"),
                {"v": np.ones((2, 3), np.float32), "b": np.ones((2,), np.float32)},
                "bias_bad", "Must provide as many biases")


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bfloat16", np.int64, np.uint8])
def test_add_n(dtype):
    rng = np.random.default_rng(24)
    make = (lambda s: rand_float(rng, s, dtype)) if dtype not in (np.int64, np.uint8) else \
        (lambda s: rand_int(rng, s, dtype, 0, 100))
    feeds = {f"a{i}": make((3, 4)) for i in range(5)}
    feeds["e"] = make((0, 2))

    def build(e, **a):
        a = [typed(a[f"a{i}"], dtype) for i in range(5)]
        e = typed(e, dtype)
        return [raw.AddN(inputs=a), raw.AddN(inputs=a[:1]), raw.AddN(inputs=[a[0], a[0]]),
                raw.AddN(inputs=[e, e, e])]
    check(build, feeds, unknown_shape=("a1",))


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_, np.float16, np.int8, "string"])
def test_select(dtype):
    rng = np.random.default_rng(25)

    def make(shape):
        if dtype == "string":
            words = np.array([b"a", b"bb", b"", b"ccc"])
            return words[rng.integers(0, 4, size=shape)]
        if dtype == np.bool_:
            return rng.integers(0, 2, size=shape).astype(np.bool_)
        return rng.integers(-50, 50, size=shape).astype(dtype)
    t, e = make((4, 3)), make((4, 3))
    t1, e1 = make((4,)), make((4,))
    cm = rng.integers(0, 2, size=(4, 3)).astype(np.bool_)
    cv = rng.integers(0, 2, size=(4,)).astype(np.bool_)
    cs = np.array(True)
    s = make(())

    def build(t, e, t1, e1, cm, cv, cs, s):
        return [raw.Select(condition=cm, x=t, y=e), raw.Select(condition=cv, x=t, y=e),
                raw.Select(condition=cs, x=t, y=e), raw.Select(condition=cv, x=t1, y=e1),
                raw.SelectV2(condition=cm, t=t, e=e), raw.SelectV2(condition=cv[:3], t=t, e=s),
                raw.SelectV2(condition=tf.reshape(cv, [4, 1]), t=s, e=e),
                raw.SelectV2(condition=cs, t=t1, e=e1)]
    check(build, {"t": t, "e": e, "t1": t1, "e1": e1, "cm": cm, "cv": cv, "cs": cs, "s": s},
          unknown_shape=("t",))


def test_select_errors():
    check_error(lambda c, x, y: raw.Select(condition=c, x=x, y=y, name="sel_bad"),
                {"c": np.array([True, False, True]), "x": np.ones((2, 2), np.float32),
                 "y": np.ones((2, 2), np.float32)},
                "sel_bad", "Number of batches")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16", np.int32,
                                   np.uint8, np.int64])
def test_clip_by_value(dtype):
    rng = np.random.default_rng(26)
    if dtype in (np.int32, np.uint8, np.int64):
        x = rand_int(rng, (3, 5), dtype, 0, 100)
        lo, hi = np.array(20, dtype), np.array(70, dtype)
        lt, ht = rand_int(rng, (3, 5), dtype, 0, 40), rand_int(rng, (3, 5), dtype, 50, 100)
    else:
        x = rand_float(rng, (3, 5), dtype)
        x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
        lo, hi = np.array(-1, feed_dtype(dtype)), np.array(0.5, feed_dtype(dtype))
        lt, ht = rand_float(rng, (3, 5), dtype, -3, 0), rand_float(rng, (3, 5), dtype, 0, 3)

    def build(x, lo, hi, lt, ht):
        x, lo, hi, lt, ht = (typed(t, dtype) for t in (x, lo, hi, lt, ht))
        return [raw.ClipByValue(t=x, clip_value_min=lo, clip_value_max=hi),
                raw.ClipByValue(t=x, clip_value_min=lt, clip_value_max=ht),
                raw.ClipByValue(t=x, clip_value_min=hi, clip_value_max=lo),  # min > max
                raw.ClipByValue(t=x, clip_value_min=lt, clip_value_max=hi)]
    check(build, {"x": x, "lo": lo, "hi": hi, "lt": lt, "ht": ht}, unknown_shape=("x",))
