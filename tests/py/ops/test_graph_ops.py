"""Graph plumbing ops (identities, checks, no-ops), the stateful forms of functional control
flow (If/While/Case, emitted when a branch or body has a stateful op), TF1-era TensorList ops,
and ResourceGather (Keras Embedding), each against TensorFlow."""
import numpy as np
import pytest
import tensorflow as tf

from tessera_testlib import (assert_numeric_match, compare_graph_with_tf, graph_op_types as _ops,
                             run_cli, run_saved_model)

tf1 = tf.compat.v1
raw = tf.raw_ops
tf1.enable_control_flow_v2()
RNG = np.random.default_rng(0)


def test_identity_family_and_checks():
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        outs = raw.IdentityN(input=[x, x * 2.0])
        y = raw.Snapshot(input=outs[1]) + raw.StopGradient(input=outs[0])
        y = raw.PreventGradient(input=y, message="no")
        y = raw.EnsureShape(input=y, shape=[None, 3])
        y = raw.CheckNumerics(tensor=y, message="bad") + raw.CheckNumericsV2(tensor=x, message="bad2")
        with tf.control_dependencies([raw.NoOp(name="noop")]):
            y = tf.identity(y, name="y")
    assert {"IdentityN", "Snapshot", "StopGradient", "PreventGradient", "EnsureShape", "CheckNumerics",
            "CheckNumericsV2", "NoOp"} <= _ops(g)
    compare_graph_with_tf(g, [y], [{x: RNG.normal(size=(n, 3))} for n in (1, 4)])


def test_check_numerics_and_ensure_shape_fail_with_node_names(tmp_path):
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None], name="x")
        raw.CheckNumerics(tensor=tf.math.log(x), message="log went bad", name="check")
        raw.EnsureShape(input=x, shape=[2], name="ensure")
    path = tmp_path / "g.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    np.save(tmp_path / "x.npy", np.array([-1.0, 1.0], np.float32))
    proc = run_cli("run", path, "--input", f"x={tmp_path / 'x.npy'}", "--fetch", "check:0", check=False)
    assert proc.returncode == 1 and "'check'" in proc.stderr and "log went bad" in proc.stderr, proc.stderr
    np.save(tmp_path / "x.npy", np.array([1.0, 2.0, 3.0], np.float32))
    proc = run_cli("run", path, "--input", f"x={tmp_path / 'x.npy'}", "--fetch", "ensure:0", check=False)
    assert proc.returncode == 1 and "'ensure'" in proc.stderr, proc.stderr


def test_stateful_if_while_case():
    # A stateful op (Empty, zero-initialised) inside each body makes TF emit the stateful
    # If/While/Case forms; it adds zero, so the values stay comparable.
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [4], name="x")
        n = tf1.placeholder(tf.int32, [], name="n")
        noise = lambda: raw.Empty(shape=[4], dtype=tf.float32, init=True)
        c = tf.cond(tf.reduce_sum(x) > 0, lambda: x + 1.0 + noise(), lambda: x - 1.0 + noise())
        w = tf.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, v * 1.5 + noise()), [0, x])[1]
        s = tf.switch_case(n, [lambda: x + noise(), lambda: x * 3.0 + noise(), lambda: -x + noise()])
    assert {"If", "While", "Case"} <= _ops(g), _ops(g)
    compare_graph_with_tf(g, [c, w, s], [{x: RNG.normal(size=4), n: k} for k in (0, 1, 2, 5)])


def test_tensor_list_v1_concat_and_scatter():
    g = tf.Graph()
    with g.as_default():
        t = tf1.placeholder(tf.float32, [5, 2], name="t")
        lst = raw.TensorListScatter(tensor=t, indices=[4, 0, 2, 1, 3], element_shape=[2])
        stacked = raw.TensorListStack(input_handle=lst, element_dtype=tf.float32, element_shape=[2])
        parts = raw.TensorListSplit(tensor=t, element_shape=tf.constant([-1, 2]),
                                    lengths=tf.constant([2, 3], tf.int64))
        concat, lengths = raw.TensorListConcat(input_handle=parts, element_dtype=tf.float32,
                                               element_shape=[None, 2])
    compare_graph_with_tf(g, [stacked, concat, lengths], [{t: RNG.normal(size=(5, 2))}])


def test_resource_gather_embedding(tmp_path):
    class Embed(tf.Module):
        def __init__(self):
            self.table = tf.Variable(RNG.normal(size=(20, 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int32)])
        def __call__(self, ids):
            return {"rows": tf.nn.embedding_lookup(self.table, ids)}

    module = Embed()
    path = tmp_path / "embed"
    tf.saved_model.save(module, str(path), signatures=module.__call__)
    ids = RNG.integers(0, 20, size=(6, 3)).astype(np.int32)
    got = run_saved_model(path, {"ids": ids})
    assert_numeric_match(module(ids)["rows"].numpy(), got["rows"], "rows")
    proc = run_cli("inspect", path)
    assert "ResourceGather" in proc.stdout
    bad = ids.copy()
    bad[0, 0] = 99
    with pytest.raises(AssertionError, match="99"):
        run_saved_model(path, {"ids": bad})
