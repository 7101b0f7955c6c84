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
    ops = {n.op for n in gd.node}
    for f in gd.library.function:
        ops.update(n.op for n in f.node_def)
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
            r = np.asarray(r)
            if r.dtype == object:
                assert [bytes(x) for x in r.ravel()] == [bytes(x) for x in got[name].ravel()], name
            else:
                assert_numeric_match(r, got[name], name, rtol=rtol, atol=atol)
