"""The bench tier: builds each benchmark model once with TensorFlow and counts its FLOPs.

    python3 bench/models.py --out DIR --models mlp,cnn,...   (run by bench/run.py in a child)

Architectures come from the zoo (tests/zoo/models_keras.py) where it has them, at the bench
tier's sizes; the BERT-base-sized encoder is defined here. The cache key (bench/run.py) hashes
this file and the zoo file, so editing either regenerates the models.

Each model folder gets `saved_model/` (absent for the bundled MLP, which is used in place) and
`model.json`: signature inputs (name, dtype, shape with -1 for the batch, value range) and
`gflop_per_sample`, the matmul/conv FLOPs (2 per multiply-add) of one sample, counted from the
signature's graph traced at batch 1 with every call inlined.
"""
import argparse
import json
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'tests' / 'zoo'))

SEED = 1234
BERT = dict(layers=12, hidden=768, heads=12, seq=128, vocab=30522, ffn=3072)


def bert_encoder(K):
    """BERT-base-sized encoder: token + position embeddings, 12 post-LN blocks of Keras
    MultiHeadAttention / LayerNormalization / Dense(gelu), a pooled tanh head."""
    b = BERT
    ids = K.Input((b['seq'],), dtype='int32', name='input_ids')
    h = K.layers.Embedding(b['vocab'], b['hidden'])(ids)
    h = PositionEmbedding(b['seq'], b['hidden'])(h)
    h = K.layers.LayerNormalization(epsilon=1e-12)(h)
    for _ in range(b['layers']):
        a = K.layers.MultiHeadAttention(num_heads=b['heads'], key_dim=b['hidden'] // b['heads'])(h, h)
        h = K.layers.LayerNormalization(epsilon=1e-12)(K.layers.Add()([h, a]))
        f = K.layers.Dense(b['ffn'], activation='gelu')(h)
        f = K.layers.Dense(b['hidden'])(f)
        h = K.layers.LayerNormalization(epsilon=1e-12)(K.layers.Add()([h, f]))
    pooled = K.layers.Dense(b['hidden'], activation='tanh')(h[:, 0, :])
    return K.Model(ids, pooled)


def _position_embedding_class():
    import keras

    class _PositionEmbedding(keras.layers.Layer):
        def __init__(self, seq, hidden, **kw):
            super().__init__(**kw)
            self.table = self.add_weight(shape=(seq, hidden), initializer='random_normal',
                                         name='position_embeddings')

        def call(self, x):
            return x + self.table[None, :, :]

    return _PositionEmbedding


def PositionEmbedding(seq, hidden):
    return _position_embedding_class()(seq, hidden, name='position_embedding')


def _keras_model(arch_fn, seed):
    import keras
    import numpy as np
    import models_keras
    keras.utils.set_random_seed(seed)
    model = arch_fn(keras)
    models_keras.randomize_batchnorm(model, keras, np.random.default_rng(seed))
    return model


def _zoo(name):
    import models_keras
    from functools import partial
    table = {
        'cnn': (models_keras.cnn, 'zoo cnn: 32x32x3, 2x(Conv2D+BN+ReLU+MaxPool), Dense 10', None),
        'mobilenetv2': (partial(models_keras.application, 'MobileNetV2', 224),
                        'keras.applications.MobileNetV2 224x224x3', None),
        'resnet50': (partial(models_keras.application, 'ResNet50', 224),
                     'keras.applications.ResNet50 224x224x3', None),
        # EfficientNet rescales by 1/255 inside the model: feed pixel-range inputs.
        'efficientnetb0': (partial(models_keras.application, 'EfficientNetB0', 224),
                           'keras.applications.EfficientNetB0 224x224x3, inputs U[0,255)',
                           (0.0, 255.0)),
        'bert': (bert_encoder, 'BERT-base-sized encoder: 12 layers, hidden 768, 12 heads, '
                 'seq 128, vocab 30522, int32 token ids', (0, BERT['vocab'])),
    }
    return table[name]


MODELS = ('mlp', 'cnn', 'mobilenetv2', 'resnet50', 'efficientnetb0', 'bert')
SMOKE_MODELS = ('mlp',)


def _signature_inputs(sig, value_range):
    inputs = []
    for name, spec in sorted(sig.structured_input_signature[1].items()):
        dims = [-1 if d is None else int(d) for d in spec.shape.as_list()]
        rng = value_range or ((0.0, 1.0) if spec.dtype.is_floating else (0, 100))
        inputs.append(dict(name=name, dtype=spec.dtype.name, shape=dims, range=list(rng)))
    return inputs


def _einsum_flops(equation, in_shapes):
    lhs = equation.replace(' ', '').split('->')[0].split(',')
    sizes = {}
    for term, shape in zip(lhs, in_shapes):
        for letter, dim in zip(term, shape):
            sizes[letter] = dim
    total = 2
    for dim in sizes.values():
        total *= dim
    return total


def count_gflop_per_sample(sig, inputs):
    """matmul/conv FLOPs at batch 1 (the bench models are linear in the batch)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    specs = {i['name']: tf.TensorSpec([1 if d == -1 else d for d in i['shape']], i['dtype'])
             for i in inputs}
    fn = tf.function(lambda **kw: sig(**kw)).get_concrete_function(**specs)
    graph = convert_variables_to_constants_v2(fn).graph
    flops = 0
    for op in graph.get_operations():
        def shape(t):
            dims = t.shape.as_list()
            if None in dims:
                raise ValueError(f'{op.type} {op.name}: unknown dim in {dims} at batch 1')
            return dims
        if op.type in ('Conv2D', 'DepthwiseConv2dNative'):
            out, kernel = shape(op.outputs[0]), shape(op.inputs[1])
            per_out = kernel[0] * kernel[1] * (kernel[2] if op.type == 'Conv2D' else 1)
            flops += 2 * int(np.prod(out)) * per_out
        elif op.type == 'MatMul':
            a = shape(op.inputs[0])
            k = a[0] if op.get_attr('transpose_a') else a[1]
            flops += 2 * int(np.prod(shape(op.outputs[0]))) * k
        elif op.type in ('BatchMatMulV2', 'BatchMatMulV3'):
            a = shape(op.inputs[0])
            k = a[-2] if op.get_attr('adj_x') else a[-1]
            flops += 2 * int(np.prod(shape(op.outputs[0]))) * k
        elif op.type == 'Einsum':
            flops += _einsum_flops(op.get_attr('equation').decode(),
                                   [shape(t) for t in op.inputs])
        elif op.type in ('Conv3D', 'Conv2DBackpropInput', 'MatrixMultiply'):
            raise ValueError(f'FLOP count: op {op.type} ({op.name}) not counted yet')
    return flops / 1e9


def build(name, folder):
    import tensorflow as tf
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if name == 'mlp':
        model_dir, notes, value_range = REPO / 'examples' / 'mnist_mlp', \
            'seed MLP: bundled examples/mnist_mlp SavedModel', None
    else:
        arch, notes, value_range = _zoo(name)
        model_dir = folder / 'saved_model'
        _keras_model(arch, SEED).export(str(model_dir), verbose=False)
        notes += '; Keras 3 model.export; random weights and BN statistics'
    loaded = tf.saved_model.load(str(model_dir))  # keeps the signature's variables alive
    sig = loaded.signatures['serving_default']
    inputs = _signature_inputs(sig, value_range)
    info = dict(name=name, notes=notes, model_dir=str(model_dir), signature='serving_default',
                inputs=inputs, outputs=sorted(sig.structured_outputs),
                gflop_per_sample=count_gflop_per_sample(sig, inputs),
                build_seconds=round(time.perf_counter() - start, 2))
    (folder / 'model.json').write_text(json.dumps(info, indent=1))
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, type=pathlib.Path)
    parser.add_argument('--models', default=','.join(MODELS))
    args = parser.parse_args()
    for name in args.models.split(','):
        info = build(name, args.out / name)
        print(f'built {name}: {info["gflop_per_sample"]:.3f} GFLOP/sample '
              f'in {info["build_seconds"]} s', flush=True)


if __name__ == '__main__':
    main()
