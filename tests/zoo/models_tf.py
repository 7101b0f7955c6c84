"""Plain-TensorFlow models of the zoo: tf.Modules with control flow and
variables, and TF1-style graphs (frozen GraphDef and a v1 SavedModel)."""
from functools import partial

import numpy as np


def _normal(rng, shape, scale):
    return rng.normal(0.0, scale, shape).astype(np.float32)


def _save_module(module, path):
    import tensorflow as tf
    tf.saved_model.save(module, str(path), signatures={'serving_default': module.__call__})


def build_cond_while(folder, seed):
    import tensorflow as tf

    class CondWhile(tf.Module):
        def __init__(self, rng):
            super().__init__()
            self.w = tf.Variable(_normal(rng, (8, 8), 0.5), name='w')

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name='x')])
        def __call__(self, x):
            # Data-dependent predicate: both branches must survive in the graph.
            x = tf.cond(tf.reduce_mean(x) > 0.0, lambda: 2.0 * x, lambda: tf.abs(x) - 1.0)

            # Data-dependent trip count, and a loop body that reads a variable.
            def body(i, h):
                return i + 1, tf.tanh(tf.matmul(h, self.w)) + x

            def cond(i, h):
                return tf.logical_and(i < 10, tf.reduce_max(tf.abs(h)) < 3.0)

            steps, h = tf.while_loop(cond, body, (tf.constant(0), x))
            return {'y': h + tf.cast(steps, tf.float32)}

    _save_module(CondWhile(np.random.default_rng(seed)), folder / 'saved_model')
    return dict(format='saved_model', path='saved_model',
                notes='tf.Module: tf.cond on mean(x) > 0, tf.while_loop with a '
                      'data-dependent trip count (<= 10) reading a tf.Variable')


def build_variables_module(folder, seed):
    import tensorflow as tf

    class VariablesModule(tf.Module):
        def __init__(self, rng):
            super().__init__()
            self.w = tf.Variable(_normal(rng, (16, 16), 0.3), name='w')
            self.b = tf.Variable(_normal(rng, (16,), 0.1), name='b')
            self.k = tf.Variable(3, dtype=tf.int32, name='k')

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name='x'),
                                      tf.TensorSpec([None, 16], tf.int32, name='n')])
        def __call__(self, x, n):
            h = tf.matmul(x, self.w) + self.b
            a = tf.exp(-tf.abs(h)) + tf.math.log1p(tf.abs(x)) + tf.sqrt(tf.abs(h) + 1e-3)
            b = tf.tanh(h) * tf.sin(x)
            m = tf.maximum(a, b)
            # n has negatives: floor division/modulo differ from C's truncation there.
            q = tf.math.floordiv(n, self.k)
            r = tf.math.floormod(n, self.k)
            y = m / tf.reduce_sum(m, axis=1, keepdims=True) + tf.cumsum(b, axis=1)
            return {'y': y + 0.1 * tf.cast(q, tf.float32),
                    'r': r,
                    'idx': tf.argmax(tf.reshape(h, [-1, 4, 4]), axis=-1)}

    _save_module(VariablesModule(np.random.default_rng(seed)), folder / 'saved_model')
    return dict(format='saved_model', path='saved_model', int_range=(-20, 21),
                notes='tf.Module with float/int tf.Variables; matmul, exp, log1p, sqrt, '
                      'tanh, sin, maximum, floordiv/floormod on negative ints, reduce_sum, '
                      'cumsum, argmax (int64 output), cast')


# --- TF1 graphs --------------------------------------------------------------

# One seed (weights and reference inputs) for all TF1 variants, so the frozen,
# text and SavedModel forms of the net have identical reference outputs.
TF1_SEED = 1234


def _tf1_net(rng):
    """Small conv net in the current v1 graph, with VariableV2 (ref) variables.
    Returns the input placeholder and the named outputs."""
    import tensorflow as tf
    v1 = tf.compat.v1

    def var(name, value):
        return v1.get_variable(name, initializer=tf.constant(value), use_resource=False)

    x = v1.placeholder(tf.float32, [None, 28, 28, 1], name='x')
    h = tf.nn.conv2d(x, var('conv/kernel', _normal(rng, (3, 3, 1, 8), 0.5)), 1, 'SAME')
    h = tf.nn.bias_add(h, var('conv/bias', _normal(rng, (8,), 0.1)))
    h, _, _ = v1.nn.fused_batch_norm(
        h, var('bn/gamma', rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        var('bn/beta', _normal(rng, (8,), 0.2)),
        mean=var('bn/mean', _normal(rng, (8,), 0.2)),
        variance=var('bn/var', rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        is_training=False)
    h = tf.nn.max_pool2d(tf.nn.relu(h), 2, 2, 'VALID')
    h = tf.reshape(h, [-1, 14 * 14 * 8])
    logits = tf.identity(
        tf.matmul(h, var('fc/kernel', _normal(rng, (14 * 14 * 8, 10), 0.05)))
        + var('fc/bias', _normal(rng, (10,), 0.1)), name='logits')
    return x, {'logits': logits, 'probs': tf.nn.softmax(logits, name='probs')}


def build_tf1_frozen(folder, seed, as_text):
    del seed  # see TF1_SEED
    import tensorflow as tf
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        x, outputs = _tf1_net(np.random.default_rng(TF1_SEED))
        sess.run(v1.global_variables_initializer())
        frozen = v1.graph_util.convert_variables_to_constants(
            sess, graph.as_graph_def(), list(outputs))
    filename = 'model.pbtxt' if as_text else 'model.pb'
    tf.io.write_graph(frozen, str(folder), filename, as_text=as_text)
    return dict(format='graphdef_text' if as_text else 'graphdef', path=filename, seed=TF1_SEED,
                feeds={x.name: {'dtype': 'float32', 'shape': [None, 28, 28, 1]}},
                fetches=[t.name for t in outputs.values()],
                notes='TF1 graph (tf.compat.v1, VariableV2) frozen with '
                      'convert_variables_to_constants; Conv2D, BiasAdd, FusedBatchNormV3, '
                      'Relu, MaxPool, Reshape, MatMul, Softmax; '
                      + ('text GraphDef (same graph as tf1_frozen)' if as_text else 'binary GraphDef'))


def build_tf1_savedmodel(folder, seed):
    del seed  # see TF1_SEED
    import tensorflow as tf
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        x, outputs = _tf1_net(np.random.default_rng(TF1_SEED))
        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(folder / 'saved_model'))
        signature = v1.saved_model.predict_signature_def(inputs={'x': x}, outputs=outputs)
        builder.add_meta_graph_and_variables(
            sess, [v1.saved_model.tag_constants.SERVING],
            signature_def_map={'serving_default': signature})
        builder.save()
    return dict(format='saved_model', path='saved_model', seed=TF1_SEED,
                notes='TF1 SavedModel via tf.compat.v1.saved_model.Builder; VariableV2 '
                      'variables restored from the checkpoint; same net as tf1_frozen')


def inference_registry():
    return {
        'cond_while_module': build_cond_while,
        'variables_module': build_variables_module,
        'tf1_frozen': partial(build_tf1_frozen, as_text=False),
        'tf1_frozen_text': partial(build_tf1_frozen, as_text=True),
        'tf1_savedmodel': build_tf1_savedmodel,
    }
