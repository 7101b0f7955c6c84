"""Shared test helpers: run Tessera's CLI on models/graphs and compare with TensorFlow.

Tessera never loads TensorFlow or Python at run time; tests drive the `tessera` binary through
files (.pb/.npz) so they exercise exactly what a user runs.
"""
import os
import pathlib
import subprocess
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TESSERA_BUILD_DIR", REPO / "build"))
TESSERA = pathlib.Path(os.environ.get("TESSERA_BIN", BUILD / "tessera"))


def run_cli(*args, check=True, timeout=600):
    """Runs `tessera ARGS...`; returns the CompletedProcess (stdout/stderr as text)."""
    proc = subprocess.run([str(TESSERA), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def _save_npz(path, arrays):
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})


def run_graph(graph_def, feeds, fetches, extra_args=()):
    """Runs a GraphDef (a tf.compat.v1.GraphDef, serialized bytes, or a path) through
    `tessera run` feeding `feeds` ({"x:0": array}) and fetching `fetches` (["y:0", ...]).
    Returns {fetch: array}."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if isinstance(graph_def, (str, os.PathLike)):
            model = pathlib.Path(graph_def)
        else:
            model = tmp / "graph.pb"
            data = graph_def if isinstance(graph_def, bytes) else graph_def.SerializeToString()
            model.write_bytes(data)
            _record_op_coverage(data)
        args = ["run", model]
        for i, (name, value) in enumerate(feeds.items()):
            path = tmp / f"in{i}.npy"
            np.save(path, np.asarray(value))
            args += ["--input", f"{name}={path}"]
        for name in fetches:
            args += ["--fetch", name]
        out = tmp / "out.npz"
        args += ["--output", out, *extra_args]
        run_cli(*args)
        with np.load(out, allow_pickle=False) as z:
            return {name: z[name] for name in fetches}


COVERAGE_DIR = BUILD / "op_coverage"


def _record_op_coverage(serialized_graph_def):
    """Notes which op types a differential test ran (checked by check_op_coverage.py)."""
    from tensorflow.core.framework import graph_pb2
    gd = graph_pb2.GraphDef()
    gd.ParseFromString(serialized_graph_def)
    ops = _op_types(gd)
    COVERAGE_DIR.mkdir(parents=True, exist_ok=True)
    with open(COVERAGE_DIR / f"{os.getpid()}.txt", "a") as out:
        out.write("\n".join(sorted(ops)) + "\n")


def run_saved_model(model_dir, inputs, signature="serving_default", extra_args=()):
    """Runs a SavedModel signature via `tessera run`; returns {output_name: array}."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        inp = tmp / "in.npz"
        _save_npz(inp, inputs)
        out = tmp / "out.npz"
        run_cli("run", model_dir, "--signature", signature, "--input", inp, "--output", out,
                *extra_args)
        with np.load(out, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def assert_numeric_match(ref, got, name="output", rtol=1e-4, atol=1e-6):
    """The project's numeric-match definition: float outputs within rtol*max|ref| + atol,
    integer and bool outputs exactly equal; shapes and dtypes equal."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != reference {ref.shape}"
    assert got.dtype == ref.dtype, f"{name}: dtype {got.dtype} != reference {ref.dtype}"
    if ref.dtype.kind in "fc":
        r = ref.astype(np.float64)
        g = got.astype(np.float64)
        assert np.array_equal(np.isnan(r), np.isnan(g)), f"{name}: NaN positions differ"
        finite = ~np.isnan(r)
        assert np.array_equal(r[~np.isfinite(r) & finite], g[~np.isfinite(r) & finite]), \
            f"{name}: infinities differ"
        ok = np.isfinite(r)
        if ok.any():
            scale = np.max(np.abs(r[ok])) if ok.any() else 0.0
            err = np.max(np.abs(r[ok] - g[ok]))
            assert err <= rtol * scale + atol, \
                f"{name}: max abs error {err:.3g} > {rtol}*{scale:.3g} + {atol}"
    else:
        assert np.array_equal(ref, got), f"{name}: values differ\nref={ref}\ngot={got}"


SHARED = pathlib.Path(os.environ.get("TESSERA_SHARED_DIR", REPO.parent / "shared"))
SERVING_TESTDATA = SHARED / "testdata/tf/serving/tensorflow_serving"


def assert_output_match(ref, got, name="output", rtol=1e-4, atol=1e-6):
    """assert_numeric_match, plus strings: TF returns them as bytes objects, Tessera as an
    "S" array; shapes and every byte must be equal."""
    ref = np.asarray(ref)
    if ref.dtype == object:
        got = np.asarray(got)
        assert got.shape == ref.shape, f"{name}: shape {got.shape} != reference {ref.shape}"
        assert got.dtype.kind == "S", f"{name}: dtype {got.dtype} is not bytes"
        assert [bytes(x) for x in ref.ravel()] == [bytes(x) for x in got.ravel()], \
            f"{name}: strings differ\nref={ref}\ngot={got}"
        return
    assert_numeric_match(ref, got, name, rtol=rtol, atol=atol)


def graph_op_types(graph):
    """Op types in a tf.Graph and in its function library."""
    return _op_types(graph.as_graph_def())


def _op_types(gd):
    ops = {n.op for n in gd.node}
    for f in gd.library.function:
        ops.update(n.op for n in f.node_def)
    return ops


def compare_graph_with_tf(graph, fetches, feed_cases=({},), rtol=1e-4, atol=1e-6):
    """Runs `fetches` (tf.Tensors of the tf.Graph `graph`) for each feed dict
    ({placeholder: value}) in a TF session and through `tessera run`, and asserts a numeric
    match (strings compared exactly)."""
    import tensorflow as tf
    gd = graph.as_graph_def()
    names = [t.name for t in fetches]
    for feeds in feed_cases:
        feeds = {p: np.asarray(v, dtype=bytes if p.dtype == tf.string else p.dtype.as_numpy_dtype)
                 for p, v in feeds.items()}
        with tf.compat.v1.Session(graph=graph) as sess:
            ref = sess.run(fetches, feed_dict=feeds)
        got = run_graph(gd, {p.name: v for p, v in feeds.items()}, names)
        for name, r in zip(names, ref):
            assert_output_match(r, got[name],
                                f"{name} (feeds {[np.asarray(v).tolist() for v in feeds.values()]})",
                                rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# Op tests: build a small tf.Graph of raw ops on placeholders named after numpy feeds, run it in
# a TF session and through `tessera run`, compare.

# Tolerance (rtol, atol) per output dtype name; float32 and anything else: (1e-4, 1e-6).
# float16 1e-2 and bfloat16 2e-2 because TF's 16-bit kernels round intermediates (and
# accumulate sums) in 16-bit precision where Tessera keeps float; float64 1e-9.
DTYPE_TOL = {"float16": (1e-2, 1e-3), "bfloat16": (2e-2, 1e-2), "float64": (1e-9, 1e-12)}


def dtype_tolerance(dtype):
    """(rtol, atol) for an output of tf.DType `dtype` (see DTYPE_TOL)."""
    return DTYPE_TOL.get(dtype.name, (1e-4, 1e-6))


def feed_dtype(dtype):
    """The numpy dtype to feed a test dtype as ("bfloat16" is fed as float32)."""
    return np.float32 if dtype == "bfloat16" else dtype


def typed(x, dtype):
    """The placeholder as the test dtype (bfloat16 placeholders are float32, cast here)."""
    import tensorflow as tf
    return tf.cast(x, tf.bfloat16) if dtype == "bfloat16" else x


def rand_float(rng, shape, dtype, lo=-4, hi=4):
    return rng.uniform(lo, hi, size=shape).astype(feed_dtype(dtype))


def rand_int(rng, shape, dtype, lo=-50, hi=50):
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, lo), min(info.max, hi) + 1, size=shape).astype(dtype)


def _placeholder_dtype(arr):
    import tensorflow as tf
    return tf.string if arr.dtype.kind == "S" else tf.as_dtype(arr.dtype)


def check_ops_with_tf(build, feeds, unknown_shape=(), tol=dtype_tolerance):
    """Builds `build(**placeholders)` -> tensors, runs TF and Tessera and compares them.

    Placeholders named in `unknown_shape` get an unknown first dim ("*": unknown rank).
    `tol` is (rtol, atol), or a function of each output's tf.DType giving it (taken before
    bfloat16 outputs are cast to float32 for the comparison)."""
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        phs = {}
        for name, arr in feeds.items():
            shape = list(arr.shape)
            if name in unknown_shape and shape:
                shape[0] = None
            if unknown_shape == "*":
                shape = None
            phs[name] = tf.compat.v1.placeholder(_placeholder_dtype(arr), shape, name=name)
        outs = build(**phs)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        tols = [tol(o.dtype) if callable(tol) else tol for o in outs]
        outs = [tf.cast(o, tf.float32) if o.dtype == tf.bfloat16 else o for o in outs]
    with tf.compat.v1.Session(graph=g) as sess:
        ref = sess.run(list(outs), {phs[k]: v for k, v in feeds.items()})
    fetches = [o.name for o in outs]
    got = run_graph(g.as_graph_def(), {f"{k}:0": v for k, v in feeds.items()}, fetches)
    for name, r, (rtol, atol) in zip(fetches, ref, tols):
        assert_output_match(r, got[name], name, rtol=rtol, atol=atol)


def check_op_error(build, feeds, node_name, message=None):
    """Tessera must fail with an error naming `node_name` (and containing `message`) on the
    graph `build(**placeholders)` (placeholders of unknown dims)."""
    import pytest
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        phs = {n: tf.compat.v1.placeholder(_placeholder_dtype(a), [None] * a.ndim, name=n)
               for n, a in feeds.items()}
        out = build(**phs)
    with pytest.raises(AssertionError) as err:
        run_graph(g.as_graph_def(), {f"{k}:0": v for k, v in feeds.items()}, [out.name])
    text = str(err.value)
    assert node_name in text, text
    if message:
        assert message in text, text


def match_variable_gradients(ref, got, rtol=1e-4):
    """Pairs TensorFlow's variable gradients with Tessera's `tessera grad` output and checks
    each pair by the numeric-match rule; returns each reference gradient's max |value|.

    `ref` is [(variable value, its gradient or None)], `got` the npz dict ("value/<key>",
    "grad/<key>"). Names differ between the runtimes and Tessera may differentiate more float
    variables (BatchNorm statistics), so variables pair by value; variables with identical
    values (zero biases, a fresh BatchNorm's ones) may pair either way, so a gradient may match
    any of them."""
    unused = [k[len("grad/"):] for k in got if k.startswith("grad/")]
    scales = []
    for value, ref_grad in ref:
        r = ref_grad if ref_grad is not None else np.zeros_like(value)
        candidates = [k for k in unused if got[f"value/{k}"].shape == value.shape
                      and np.array_equal(got[f"value/{k}"], value)]
        assert candidates, f"no Tessera variable has the value of a TensorFlow variable {value.shape}"
        scale = np.max(np.abs(r)) if r.size else 0.0
        ok = [k for k in candidates
              if np.max(np.abs(r - got[f"grad/{k}"]), initial=0.0) <= rtol * scale + 1e-6]
        if not ok:
            assert_numeric_match(r, got[f"grad/{candidates[0]}"], f"d loss / d {candidates[0]}", rtol=rtol)
        unused.remove(ok[0])
        scales.append(scale)
    return scales


def exported_variable_keys(path, exported, model):
    """Trace key (train-trace's `var/<store key>`) of each of `model.variables`, where `model`
    is a fresh copy of the Keras model `exported` wrote to the SavedModel at `path`: the bundle
    key _all_variables/N names the variable the SavedModel lists there, found by the layer's
    position and the attribute name."""
    import tensorflow as tf
    loaded = tf.saved_model.load(str(path))
    layer_names = [layer.name for layer in exported.layers]
    where = {}
    for i, v in enumerate(loaded._all_variables):
        layer, attr = v.name.split(":")[0].split("/")[-2:]
        where[(layer_names.index(layer), attr)] = f"var/_all_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE"
    out = []
    for v in model.variables:
        layer = next(i for i, layer in enumerate(model.layers) if any(w is v for w in layer.variables))
        out.append(where[(layer, v.path.split("/")[-1])])
    return out


def tf_train_step(model, loss_fn, optimizer):
    """TensorFlow's training step (GradientTape + the Keras optimizer) as a tf.function: the
    reference Tessera's compiled steps are compared with."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            value = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return value
    return step
