"""Keras models of the zoo.

Every architecture is written once against a framework module `K` (Keras 3's
`keras` or the legacy `tf_keras`) and exported twice, because the two exporters
lower the same layers to different graphs (e.g. Keras 3 inlines BatchNorm as
Rsqrt/Mul/Add, tf_keras keeps FusedBatchNormV3 and emits CuDNN-selectable RNNs).
TensorFlow and Keras are imported inside functions so that the CLI can list
the registry without paying for (or leaking state from) a TF import.
"""
import contextlib
import re
import time
from functools import partial
from unittest import mock

FRAMEWORKS = ('k3', 'tfk')


def _framework(fw):
    if fw == 'k3':
        import keras
        return keras
    import tf_keras
    return tf_keras


# --- architectures: fn(K) -> keras.Model ------------------------------------

def mlp(K):
    x = K.Input((784,))
    h = K.layers.Dense(512, activation='gelu')(x)
    h = K.layers.Dropout(0.3)(h)
    h = K.layers.Dense(256, activation='gelu')(h)
    h = K.layers.Dropout(0.3)(h)
    return K.Model(x, K.layers.Dense(10, activation='softmax')(h))


def cnn(K):
    x = K.Input((32, 32, 3))
    h = x
    for filters in (16, 32):
        h = K.layers.Conv2D(filters, 3, padding='same')(h)
        h = K.layers.BatchNormalization()(h)
        h = K.layers.ReLU()(h)
        h = K.layers.MaxPooling2D()(h)
    h = K.layers.Flatten()(h)
    return K.Model(x, K.layers.Dense(10)(h))


def application(cls_name, size, K):
    return getattr(K.applications, cls_name)(
        weights=None, classifier_activation=None, input_shape=(size, size, 3))


def encoder(K, seq=128, hidden=768, heads=12):
    """One post-LN BERT-base encoder block."""
    x = K.Input((seq, hidden))
    a = K.layers.MultiHeadAttention(num_heads=heads, key_dim=hidden // heads)(x, x)
    h = K.layers.LayerNormalization(epsilon=1e-12)(K.layers.Add()([x, a]))
    f = K.layers.Dense(4 * hidden, activation='gelu')(h)
    f = K.layers.Dense(hidden)(f)
    return K.Model(x, K.layers.LayerNormalization(epsilon=1e-12)(K.layers.Add()([h, f])))


def rnn(cell, K, seq=16, features=32, units=64):
    layer = getattr(K.layers, cell)
    x = K.Input((seq, features))
    h = layer(units, return_sequences=True)(x)
    h = layer(units)(h)
    return K.Model(x, K.layers.Dense(10)(h))


# name -> (architecture, notes, extra manifest/input options)
ARCHS = {
    'mlp': (mlp, 'seed MLP 784-512-256-10, gelu, dropout 0.3, softmax', {}),
    'cnn': (cnn, '32x32x3, 2x(Conv2D+BatchNorm+ReLU+MaxPool), Dense 10', {}),
    'mobilenetv2': (partial(application, 'MobileNetV2', 96),
                    'keras.applications.MobileNetV2, input 96x96x3', {}),
    'resnet50': (partial(application, 'ResNet50', 64),
                 'keras.applications.ResNet50, input 64x64x3', {}),
    # EfficientNet rescales by 1/255 inside the model, so feed pixel-range inputs.
    'efficientnetb0': (partial(application, 'EfficientNetB0', 96),
                       'keras.applications.EfficientNetB0, input 96x96x3, inputs U[0,255)',
                       {'float_range': (0.0, 255.0)}),
    'encoder': (encoder, 'Transformer encoder block, hidden 768, 12 heads, seq 128, FFN 3072', {}),
    'lstm': (partial(rnn, 'LSTM'), '2x LSTM(64) over seq 16 x 32 features, Dense 10', {}),
    'gru': (partial(rnn, 'GRU'), '2x GRU(64) over seq 16 x 32 features, Dense 10', {}),
}


def randomize_batchnorm(model, K, rng):
    """Fresh BN layers are identities (mean 0, var 1, gamma 1, beta 0); random
    statistics make a wrong BN lowering visible in the outputs."""
    draws = {'gamma': lambda s: rng.uniform(0.5, 1.5, s),
             'beta': lambda s: rng.normal(0.0, 0.2, s),
             'moving_mean': lambda s: rng.normal(0.0, 0.2, s),
             'moving_variance': lambda s: rng.uniform(0.5, 1.5, s)}
    for layer in model.layers:
        if isinstance(layer, K.layers.BatchNormalization):
            for attr, draw in draws.items():
                var = getattr(layer, attr, None)
                if var is not None:
                    var.assign(draw(tuple(var.shape)).astype('float32'))


def export(model, fw, path):
    if fw == 'k3':
        model.export(str(path), verbose=False)
    else:
        import tensorflow as tf
        tf.saved_model.save(model, str(path))


def build_keras(arch, fw, folder, seed):
    import numpy as np
    K = _framework(fw)
    K.utils.set_random_seed(seed)
    fn, notes, options = ARCHS[arch]
    model = fn(K)
    randomize_batchnorm(model, K, np.random.default_rng(seed))
    export(model, fw, folder / 'saved_model')
    exporter = 'Keras 3 model.export' if fw == 'k3' else 'tf_keras + tf.saved_model.save'
    return dict(format='saved_model', path='saved_model',
                notes=f'{notes}; {exporter}; random BN statistics', **options)


def inference_registry():
    return {f'{arch}_{fw}': partial(build_keras, arch, fw) for arch in ARCHS for fw in FRAMEWORKS}


# --- import-only tier: every keras.applications constructor -----------------

def application_names():
    import keras
    return sorted(n for n in dir(keras.applications)
                  if n[:1].isupper() and callable(getattr(keras.applications, n)))


def app_model_name(cls_name):
    return 'app_' + cls_name.lower()


# CPU seconds per import-tier model (cpu_s in the manifest: TF 2.21, Keras
# 3.15, one core of a loaded 2-core machine). Only orders the work queue,
# slowest first, so that parallel jobs finish together, when the zoo folder
# holds no earlier entry to take the cost from; a model missing here goes last.
APP_COST = {
    'EfficientNetV2L': 26, 'EfficientNetB7': 20, 'NASNetLarge': 20, 'EfficientNetV2M': 18,
    'EfficientNetB6': 16, 'InceptionResNetV2': 14, 'NASNetMobile': 14, 'DenseNet169': 13,
    'DenseNet201': 13, 'EfficientNetB5': 13, 'EfficientNetB4': 12, 'EfficientNetV2S': 12,
    'ResNet152': 12, 'ResNet152V2': 12, 'EfficientNetV2B3': 10, 'ResNet101': 10,
    'DenseNet121': 9, 'EfficientNetB1': 9, 'EfficientNetB2': 9, 'EfficientNetB3': 9,
    'EfficientNetV2B2': 9, 'ResNet101V2': 9, 'EfficientNetV2B0': 8, 'EfficientNetV2B1': 8,
    'ConvNeXtXLarge': 7, 'EfficientNetB0': 7, 'ConvNeXtBase': 6, 'ConvNeXtLarge': 6,
    'ConvNeXtSmall': 6, 'InceptionV3': 5, 'MobileNetV2': 4, 'MobileNetV3Large': 4,
    'ResNet50': 4, 'ResNet50V2': 4, 'ConvNeXtTiny': 3, 'MobileNetV3Small': 3, 'Xception': 3,
    'MobileNet': 2, 'VGG16': 1, 'VGG19': 1,
}


def app_cost_by_model_name(name):
    return next((cost for cls, cost in APP_COST.items() if app_model_name(cls) == name), 0.0)


@contextlib.contextmanager
def zero_initialized_variables():
    """Variables whose initializer is random start as zeros instead (random
    draws are most of the construction time of the big models). Those values
    never reach saved_model.pb: the graph reads variables through handles.
    Deterministic initializers (zeros, ones, constants) still run, because a
    layer may bake them into the graph at build time (Normalization's
    variance becomes a Const)."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import core
    from keras.src.initializers.random_initializers import RandomInitializer

    initialize = core.Variable._initialize_with_initializer

    def zeros_if_random(self, initializer):
        if isinstance(initializer, RandomInitializer):
            self._initialize(lambda: tf.zeros(self._shape, dtype=self._dtype))
        else:
            initialize(self, initializer)

    with mock.patch.object(core.Variable, '_initialize_with_initializer', zeros_if_random):
        yield


def export_graph_only(model, path):
    """Writes what `model.export(path)` writes, less variables/ (the checkpoint).

    The steps of keras.src.export.saved_model.export_saved_model (ExportArchive,
    track_and_add_endpoint('serve'), write_out), so the signatures, functions,
    saver and object graph in saved_model.pb are model.export's. Left out is
    only work whose result is discarded, and one needlessly slow step:
      * the checkpoint: TF's own experimental_skip_checkpoint of
        save_and_return_nodes (SaveOptions does not expose it in TF 2.21);
      * the walk of the model's objects looking for lookup tables to track:
        it re-traces the model (and nested models) through
        `_default_save_signature` only to look for TrackableResources, which
        keras.applications models do not own (asserted);
      * a second trace of the model: Keras lists the endpoint's variables
        outside TF's save context, whose variable policy is part of the trace
        cache key, so tf.saved_model.save traced the model again. Listing them
        inside an identical save context makes that trace the exported one;
      * the cost of `==` in TF's _trace_gradient_functions: it finds captures
        with list.index, under the exported (non-function) graph where
        Tensor.__eq__ is identity anyway, but each comparison first checks the
        execution context (tens of microseconds, over lists of every captured
        variable). With tensor equality off (tf.compat.v1.disable_tensor_equality)
        `==` is identity at once. Custom gradients (swish in EfficientNet*)
        are traced there too: compare_export.py checks their graphs are equal.
    Verified against model.export: see compare_export.py in this directory.
    """
    import tensorflow as tf
    from keras.export import ExportArchive
    from keras.src.export import saved_model_export_archive as keras_archive
    from keras.src.export.export_utils import get_input_signature
    from tensorflow.python.saved_model import save as tf_save
    from tensorflow.python.saved_model import save_context

    archive = ExportArchive()
    archive.track_and_add_endpoint('serve', model, get_input_signature(model))
    assert archive._tracked == [model], archive._tracked
    assert not _lookup_resources(model), 'export_graph_only would drop lookup tables'
    archive._tracked = []

    list_variables = keras_archive._list_variables_used_by_fns

    def list_variables_in_save_context(fns):
        # write_out passes options=None: tf.saved_model.save uses SaveOptions()
        with save_context.save_context(tf.saved_model.SaveOptions()):
            return list_variables(fns)

    def save_without_checkpoint(obj, export_dir, signatures=None, options=None):
        tf_save.save_and_return_nodes(obj, export_dir, signatures, options,
                                      experimental_skip_checkpoint=True)

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(
            keras_archive, '_list_variables_used_by_fns', list_variables_in_save_context))
        patches.enter_context(mock.patch.object(tf.saved_model, 'save', save_without_checkpoint))
        patches.enter_context(mock.patch.object(
            tf_save, '_trace_gradient_functions',
            _without_tensor_equality(tf_save._trace_gradient_functions)))
        archive.write_out(str(path), verbose=False)
    assert (path / 'saved_model.pb').is_file() and not (path / 'variables').exists()


def _without_tensor_equality(fn):
    import functools

    from tensorflow.python.framework import tensor

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = tensor.Tensor._USE_EQUALITY
        tensor.Tensor._USE_EQUALITY = False  # tf.compat.v1.disable_tensor_equality()
        try:
            return fn(*args, **kwargs)
        finally:
            tensor.Tensor._USE_EQUALITY = saved
    return wrapper


def _lookup_resources(model):
    """TrackableResources (lookup tables) held by any layer of `model`: what
    model.export's object walk would have tracked."""
    from tensorflow.saved_model.experimental import TrackableResource

    found = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for value in vars(layer).values():
            values = value.values() if isinstance(value, dict) else (
                value if isinstance(value, (list, tuple)) else [value])
            found += [v for v in values if isinstance(v, TrackableResource)]
    return found


def build_application(cls_name, folder, seed):
    """Smallest accepted square input: try 32x32 and follow the constructor's
    "must be at least NxN" error, so the minimum comes from Keras itself.
    Graph only: saved_model.pb without variables/ (see export_graph_only)."""
    import inspect
    import keras
    keras.utils.set_random_seed(seed)
    ctor = getattr(keras.applications, cls_name)
    kwargs = {'weights': None}
    if 'classifier_activation' in inspect.signature(ctor).parameters:
        kwargs['classifier_activation'] = None
    size = 32
    start = time.process_time()
    with zero_initialized_variables():
        while True:
            try:
                model = ctor(input_shape=(size, size, 3), **kwargs)
                break
            except ValueError as e:
                found = re.search(r'at least (\d+)x\d+', str(e))
                if not found or int(found.group(1)) <= size:
                    raise
                size = int(found.group(1))
    built = time.process_time()
    export_graph_only(model, folder / 'saved_model')
    return dict(format='saved_model', path='saved_model', input_size=size, variables=False,
                params=int(model.count_params()),
                phase_cpu_s={'construct': round(built - start, 2),
                             'export': round(time.process_time() - built, 2)},
                notes=f'keras.applications.{cls_name}, minimum input {size}x{size}x3, '
                      'weights=None (zero-initialised), Keras 3 model.export graph without '
                      'the variables checkpoint (import only)')


def import_registry(cls_names):
    return {app_model_name(c): partial(build_application, c) for c in cls_names}
