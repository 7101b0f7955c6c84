"""Seeded random ops reproduce TensorFlow's numbers (same Philox4x32-10 stream); unseeded ones
differ run to run; TruncatedNormal stays within two standard deviations."""
import numpy as np
import pytest
import tensorflow as tf

from tessera_testlib import assert_numeric_match, run_graph


def _graph(build):
    g = tf.Graph()
    with g.as_default():
        outs = build()
    with tf.compat.v1.Session(graph=g) as s:
        ref = s.run(outs)
    return g.as_graph_def(), [o.name for o in outs], ref


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64, tf.float16])
@pytest.mark.parametrize("shape", [[7], [3, 5], [1, 2, 9]])
def test_seeded_uniform_and_normal_match_tf(dtype, shape):
    def build():
        return [tf.raw_ops.RandomUniform(shape=shape, dtype=dtype, seed=7, seed2=11, name="u"),
                tf.raw_ops.RandomStandardNormal(shape=shape, dtype=dtype, seed=3, seed2=5, name="n")]
    gd, names, ref = _graph(build)
    got = run_graph(gd, {}, names)
    tol = 1e-3 if dtype == tf.float16 else 1e-5
    for name, r in zip(names, ref):
        assert_numeric_match(r, got[name], name, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64])
def test_seeded_uniform_int(dtype):
    def build():
        return [tf.raw_ops.RandomUniformInt(shape=[13], minval=tf.constant(-5, dtype),
                                            maxval=tf.constant(17, dtype), seed=1, seed2=2, name="i")]
    gd, names, ref = _graph(build)
    got = run_graph(gd, {}, names)
    assert got[names[0]].min() >= -5 and got[names[0]].max() < 17
    np.testing.assert_array_equal(got[names[0]], ref[0])


def test_truncated_normal_is_bounded_and_unseeded_varies():
    def build():
        return [tf.raw_ops.TruncatedNormal(shape=[2000], dtype=tf.float32, seed=4, seed2=9, name="t"),
                tf.raw_ops.RandomUniform(shape=[64], dtype=tf.float32, name="fresh")]
    gd, names, _ = _graph(build)
    a = run_graph(gd, {}, names)
    b = run_graph(gd, {}, names)
    t = a[names[0]]
    assert np.all(np.abs(t) < 2.0) and abs(t.mean()) < 0.1 and 0.8 < t.std() < 0.9
    np.testing.assert_array_equal(t, b[names[0]])  # seeded: reproducible
    assert not np.array_equal(a[names[1]], b[names[1]])  # seeds 0/0: fresh each run
