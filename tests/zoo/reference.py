"""Signature introspection and TensorFlow reference outputs for zoo models."""
import numpy as np

BATCHES = (1, 3, 8, 32)  # 3 and 32: the compiled .tsr runs any batch (tests/py/test_compile.py)
MIN_STD = 1e-3


def signature_io(saved_model_dir, key='serving_default'):
    """Input/output names, dtypes and shapes of a SavedModel signature, read from
    saved_model.pb (cheap: no variables are loaded). The names are the keyword
    arguments / result keys of `loaded.signatures[key]`."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(tf.io.gfile.GFile(f'{saved_model_dir}/saved_model.pb', 'rb').read())
    signature = proto.meta_graphs[0].signature_def[key]

    def describe(info):
        shape = info.tensor_shape
        dims = None if shape.unknown_rank else [None if d.size < 0 else d.size for d in shape.dim]
        return {'dtype': tf.dtypes.as_dtype(info.dtype).name, 'shape': dims}

    inputs = {name: describe(info) for name, info in sorted(signature.inputs.items())}
    outputs = [dict(name=name, **describe(info)) for name, info in sorted(signature.outputs.items())]
    return inputs, outputs


def random_inputs(specs, batch, seed, float_range=None, int_range=(-10, 11)):
    """Seeded inputs for `specs` ({name: {dtype, shape}}) with the leading
    (unknown) batch dimension set to `batch`."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, spec in sorted(specs.items()):
        head, *rest = spec['shape']
        assert head is None and None not in rest, f'{name}: want [None, static...], got {spec}'
        shape, dtype = [batch, *rest], np.dtype(spec['dtype'])
        if np.issubdtype(dtype, np.integer):
            arrays[name] = rng.integers(*int_range, size=shape).astype(dtype)
        elif float_range:
            arrays[name] = rng.uniform(*float_range, size=shape).astype(dtype)
        else:
            arrays[name] = rng.standard_normal(shape).astype(dtype)
    return arrays


def saved_model_runner(path, key='serving_default'):
    import tensorflow as tf
    fn = tf.saved_model.load(str(path)).signatures[key]
    expected = set(fn.structured_input_signature[1])

    def run(inputs):
        assert set(inputs) == expected, (sorted(inputs), sorted(expected))
        return {k: v.numpy() for k, v in fn(**inputs).items()}
    return run


def graphdef_runner(path, as_text, fetches):
    """Runs a frozen GraphDef the TF1 way; feeds and fetches are tensor names."""
    import tensorflow as tf
    from google.protobuf import text_format
    v1 = tf.compat.v1
    graph_def = tf.compat.v1.GraphDef()
    data = tf.io.gfile.GFile(str(path), 'rb').read()
    if as_text:
        text_format.Parse(data.decode(), graph_def)
    else:
        graph_def.ParseFromString(data)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name='')
    session = v1.Session(graph=graph)

    def run(inputs):
        return dict(zip(fetches, session.run(fetches, feed_dict=inputs)))
    return run


def write_references(folder, run, specs, seed, float_range=None, int_range=(-10, 11)):
    """Saves inputs_b{N}.npz / outputs_b{N}.npz and returns the smallest output
    std per output name (over both batches); rejects degenerate outputs."""
    stds = {}
    for batch in BATCHES:
        inputs = random_inputs(specs, batch, seed + batch, float_range, int_range)
        outputs = run(inputs)
        np.savez(folder / f'inputs_b{batch}.npz', **inputs)
        np.savez(folder / f'outputs_b{batch}.npz', **outputs)
        for name, value in outputs.items():
            value = np.asarray(value, dtype=np.float64)
            assert np.all(np.isfinite(value)), f'{name} at batch {batch}: non-finite output'
            std = float(value.std())
            assert std > MIN_STD, f'{name} at batch {batch}: degenerate output, std {std:g}'
            stds[name] = min(std, stds.get(name, std))
    return stds
