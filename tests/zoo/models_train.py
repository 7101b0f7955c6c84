"""Train tier of the zoo: SavedModels that keep a training-mode forward.

Keras 3 (`*_k3`): `keras.export.ExportArchive` with the endpoints `serve`
(training=False) and `train_forward` (training=True), the README's recipe (a).
tf_keras (`*_tfk`): `tf.saved_model.save` of a Keras 2 model, which keeps the
model's call functions traced with training=True (b); Tessera exposes that one
as the synthetic signature `tessera_training_forward`.

Each folder has `train_meta.json` (endpoints, input/label shapes, the trainable
variables' checkpoint keys in the object graph's order, notes) and
`train_ref.npz`, TensorFlow's answers on one fixed batch (`x`, integer labels
`y`): the first training call's output (`train_out`; with dropout, its masks
come from the exported seeds, which Tessera's random ops reproduce), the
gradient of the mean squared error between that output and `target` w.r.t.
every trainable variable (`grad/<key>`, from tf.GradientTape on the loaded
endpoint, i.e. what `tessera grad --loss mse` computes), and every variable's
value before (`before/<key>`: the checkpoint's) and after one call of the
training endpoint (`after/<group>/<j>`, per variable object, grouped under the
first checkpoint key of equal initial value: BatchNorm's moving statistics
move, the rest do not).
"""
import json
from functools import partial

import models_keras

BATCH = 8


def mlp(K, rate):
    x = K.Input((784,))
    h = K.layers.Dense(512, activation='gelu')(x)
    h = K.layers.Dropout(rate)(h)
    h = K.layers.Dense(256, activation='gelu')(h)
    h = K.layers.Dropout(rate)(h)
    return K.Model(x, K.layers.Dense(10, activation='softmax')(h))


def cnn(K):
    x = K.Input((28, 28, 1))
    h = K.layers.Conv2D(16, 3, activation='relu')(x)
    h = K.layers.BatchNormalization()(h)
    h = K.layers.MaxPooling2D()(h)
    h = K.layers.Conv2D(32, 3, activation='relu')(h)
    h = K.layers.BatchNormalization()(h)
    h = K.layers.MaxPooling2D()(h)
    h = K.layers.Flatten()(h)
    return K.Model(x, K.layers.Dense(10, activation='softmax')(h))


# name -> (framework, architecture, input shape, dropout rate, notes)
MODELS = {
    'mlp_train_k3': ('k3', partial(mlp, rate=0.3), (784,), 0.3,
                     'seed MLP 784-512(gelu)-256(gelu)-10(softmax), Dropout(0.3) x2'),
    'mlp_nodrop_train_k3': ('k3', partial(mlp, rate=0.0), (784,), 0.0,
                            'seed MLP with Dropout(0.0): exact loss-curve tests'),
    'cnn_train_k3': ('k3', cnn, (28, 28, 1), 0.0,
                     '28x28x1: Conv2D(16,3,relu)+BN+MaxPool, Conv2D(32,3,relu)+BN+MaxPool, '
                     'Flatten, Dense(10, softmax)'),
    'mlp_train_tfk': ('tfk', partial(mlp, rate=0.3), (784,), 0.3,
                      'seed MLP, Dropout(0.3) x2, tf_keras'),
    'mlp_nodrop_train_tfk': ('tfk', partial(mlp, rate=0.0), (784,), 0.0,
                             'seed MLP with Dropout(0.0), tf_keras'),
    'cnn_train_tfk': ('tfk', cnn, (28, 28, 1), 0.0, 'the small CNN, tf_keras'),
}


def export_k3(model, path, shape):
    import keras
    import tensorflow as tf
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = [tf.TensorSpec([None, *shape], tf.float32, name='x')]
    archive.add_endpoint('serve', lambda x: model(x, training=False), input_signature=spec)
    archive.add_endpoint('train_forward', lambda x: model(x, training=True), input_signature=spec)
    archive.write_out(str(path), verbose=False)


def object_graph_keys(path):
    """Checkpoint key of every variable node of the SavedModel's object graph
    (TF names a node by its shortest child-name path from the root), and the
    node ids the root lists as `trainable_variables`, in order."""
    from tensorflow.core.protobuf import saved_model_pb2
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / 'saved_model.pb').read_bytes())
    nodes = proto.meta_graphs[0].object_graph_def.nodes
    paths, queue = {0: ''}, [0]
    while queue:  # breadth first: the first path found is a shortest one
        node = queue.pop(0)
        for child in nodes[node].children:
            if child.node_id not in paths:
                paths[child.node_id] = (paths[node] + '/' if paths[node] else '') + child.local_name
                queue.append(child.node_id)
    keys = {i: paths[i] + '/.ATTRIBUTES/VARIABLE_VALUE'
            for i, n in enumerate(nodes) if n.WhichOneof('kind') == 'variable' and i in paths}
    listed = next((c.node_id for c in nodes[0].children if c.local_name == 'trainable_variables'),
                  None)
    trainable = []
    if listed is not None:
        children = sorted(nodes[listed].children, key=lambda c: int(c.local_name))
        trainable = [keys[c.node_id] for c in children]
    return keys, trainable


def tf_references(path, endpoint, x, y, target):
    """TF's training forward, loss gradients and variables after one call."""
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures[endpoint] if endpoint in loaded.signatures else None
    if fn is None:  # tf_keras: the model object's own training-mode call
        call = lambda t: loaded(t, training=True)  # noqa: E731
    else:
        call = lambda t: list(fn(tf.constant(t)).values())[0]  # noqa: E731
    reader = tf.train.load_checkpoint(str(path / 'variables' / 'variables'))
    keys = sorted(k for k in reader.get_variable_to_shape_map() if k.endswith('VARIABLE_VALUE'))
    by_value = {}  # variable object -> checkpoint key, through the restored values
    for v in loaded.variables:
        matches = [k for k in keys if reader.get_tensor(k).shape == tuple(v.shape)
                   and np.array_equal(reader.get_tensor(k), v.numpy())]
        by_value[v.ref()] = matches
    refs = {f'before/{k}': reader.get_tensor(k) for k in keys}
    variables = list(loaded.trainable_variables)
    with tf.GradientTape() as tape:
        out = call(tf.constant(x))
        loss = tf.reduce_mean(tf.square(out - target))
    grads = tape.gradient(loss, variables)
    # With dropout these are the first call's: its masks come from the exported seeds (tf_keras:
    # RandomUniform's seed attributes; Keras 3: the seed-generator variable), which Tessera's
    # random ops reproduce.
    refs['train_out'] = out.numpy()
    refs['loss'] = np.float32(loss.numpy())
    for v, g in zip(variables, grads):
        for k in by_value[v.ref()]:
            refs[f'grad/{k}'] = g.numpy()
    # One training call happened above. Variables with equal initial values (Keras 3's
    # ExportArchive saves a second copy of each, which the endpoints do not all use) form a
    # group named by its first key: after/<group>/<j>, one entry per variable object.
    groups = {}
    for v in loaded.variables:
        if not by_value[v.ref()]:
            continue  # not in the checkpoint
        group = sorted(by_value[v.ref()])[0]
        refs[f'after/{group}/{groups.setdefault(group, 0)}'] = v.numpy()
        groups[group] += 1
    return refs


def build_train(name, folder, seed):
    import numpy as np
    fw, arch, shape, rate, notes = MODELS[name]
    K = models_keras._framework(fw)
    K.utils.set_random_seed(seed)
    model = arch(K)
    models_keras.randomize_batchnorm(model, K, np.random.default_rng(seed))
    path = folder / 'saved_model'
    if fw == 'k3':
        export_k3(model, path, shape)
        endpoint, exporter = 'train_forward', 'Keras 3 ExportArchive (serve + train_forward)'
    else:
        import tensorflow as tf
        tf.saved_model.save(model, str(path))
        endpoint, exporter = 'tessera_training_forward', 'tf_keras + tf.saved_model.save'
    keys, trainable = object_graph_keys(path)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (BATCH, *shape)).astype(np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int64)
    target = np.eye(10, dtype=np.float32)[y]
    refs = tf_references(path, endpoint if fw == 'k3' else None, x, y, target)
    np.savez(folder / 'train_ref.npz', x=x, y=y, target=target, **refs)
    meta = {'endpoint': endpoint, 'eval_endpoint': 'serving_default', 'framework': fw,
            'input_shape': [None, *shape], 'label_shape': [None], 'num_classes': 10,
            'dropout': rate, 'batch_norm': 'cnn' in name,
            'trainable_keys': trainable, 'batch': BATCH,
            'references': 'train_ref.npz: x, y, target (one-hot y); train_out, loss and '
                          'grad/<key> (mean squared error of train_out to target) of the '
                          'first training call; before/<key> and after/<group>/<j>: '
                          'variables before and after one training call'}
    (folder / 'train_meta.json').write_text(json.dumps(meta, indent=1))
    return dict(format='saved_model', path='saved_model', train=meta,
                notes=f'{notes}; {exporter}; random BN statistics')


def train_registry():
    return {name: partial(build_train, name) for name in MODELS}
