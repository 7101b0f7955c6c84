"""One benchmark child: loads one model in one peer runtime, times it, writes JSON + outputs.

    python3 bench/child.py --runtime tf|tf_xla|ort|openvino --spec SPEC.json

bench/run.py starts one of these per (runtime, model, trial), each in a fresh process with the
runtime's environment set (TF_ENABLE_ONEDNN_OPTS, OMP_NUM_THREADS) and measures its peak RSS
itself. SPEC holds the model folder, the ONNX file, threads, and per batch: the inputs npz,
warm-up and iteration counts, and where to save the last run's outputs. The result JSON follows
the `tessera bench --json` layout (compile_seconds, load_seconds, runs[...]) plus `config`, the
runtime's settings as actually applied, so the report can print them.

Timed calls take numpy arrays and return numpy arrays (input conversion included, as in
`tessera bench`): each runner's `call(feeds)` is that boundary.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def percentiles(samples_s):
    ms = np.asarray(samples_s) * 1e3
    return dict(p50=float(np.percentile(ms, 50)), p90=float(np.percentile(ms, 90)),
                p99=float(np.percentile(ms, 99)), mean=float(ms.mean()), min=float(ms.min()))


# --- runners: each returns (load_seconds, call, config) ---------------------------------------

def load_tf(spec, xla):
    import tensorflow as tf
    threads = spec['threads']
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    start = time.perf_counter()
    loaded = tf.saved_model.load(spec['model_dir'])
    sig = loaded.signatures[spec['signature']]
    # The signature is already a graph function; wrapping it in tf.function is what a
    # user writes, and with jit_compile=True it makes XLA compile the whole signature.
    fn = tf.function(lambda **kw: sig(**kw), jit_compile=True if xla else None)
    load_s = time.perf_counter() - start

    def call(feeds):
        out = fn(**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in out.items()}

    config = dict(intra_op_threads=threads, inter_op_threads=1, graph_mode='tf.function',
                  jit_compile=bool(xla),
                  onednn_opts=os.environ.get('TF_ENABLE_ONEDNN_OPTS'),
                  tensorflow=tf.__version__)
    call.keep = loaded  # the signature's variables live as long as the loaded object
    return load_s, call, config


def load_ort(spec):
    import onnxruntime as ort
    threads = spec['threads']
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    spin = spec.get('ort_spinning', '1')
    opts.add_session_config_entry('session.intra_op.allow_spinning', spin)
    opts.add_session_config_entry('session.inter_op.allow_spinning', spin)
    start = time.perf_counter()
    sess = ort.InferenceSession(spec['onnx'], opts, providers=['CPUExecutionProvider'])
    load_s = time.perf_counter() - start
    onnx_inputs = [i.name for i in sess.get_inputs()]
    onnx_outputs = [o.name for o in sess.get_outputs()]
    # tf2onnx keeps the signature's names; ':0' suffixes appear for some exporters.
    in_map = {name: _match(name, onnx_inputs) for name in spec['input_names']}
    out_names = [_match(name, onnx_outputs) for name in spec['output_names']]

    def call(feeds):
        res = sess.run(out_names, {in_map[k]: v for k, v in feeds.items()})
        return dict(zip(spec['output_names'], res))

    config = dict(intra_op_threads=threads, inter_op_threads=1,
                  graph_optimization_level='ORT_ENABLE_ALL', execution_mode='sequential',
                  intra_op_allow_spinning=spin, onnxruntime=ort.__version__,
                  provider='CPUExecutionProvider', opset=spec.get('onnx_opset'))
    return load_s, call, config


def _match(name, candidates):
    for c in candidates:
        if c == name or c.split(':')[0] == name:
            return c
    raise KeyError(f'{name} not among ONNX names {candidates}')


def load_openvino(spec, batch):
    import openvino as ov
    threads = spec['threads']
    hint = 'LATENCY' if batch == 1 else 'THROUGHPUT'
    start = time.perf_counter()
    core = ov.Core()
    model = core.read_model(spec['model_dir'])  # the TF frontend reads the SavedModel
    # fp32 like every other runtime here: on CPUs with AVX512_BF16 OpenVINO may default to bf16.
    props = {'PERFORMANCE_HINT': hint, 'INFERENCE_NUM_THREADS': threads,
             'INFERENCE_PRECISION_HINT': 'f32'}
    compiled = core.compile_model(model, 'CPU', props)
    load_s = time.perf_counter() - start
    streams = int(compiled.get_property('NUM_STREAMS'))
    port_names = {}
    for port in compiled.outputs:
        for name in spec['output_names']:
            if name in port.get_names():
                port_names[name] = port
    in_ports = {}
    for port in compiled.inputs:
        for name in spec['input_names']:
            if name in port.get_names() or any(n.split(':')[0] == name for n in port.get_names()):
                in_ports[name] = port
    missing = set(spec['input_names']) - set(in_ports) | set(spec['output_names']) - set(port_names)
    if missing:
        raise KeyError(f'OpenVINO model lacks ports {sorted(missing)}')
    # THROUGHPUT runs several streams: the batch is split across one request per stream and
    # the call returns when all are done (one call per batch, like the other runtimes).
    queue = [compiled.create_infer_request() for _ in range(streams)]

    def call(feeds):
        n = next(iter(feeds.values())).shape[0]
        parts = np.array_split(np.arange(n), min(streams, n))
        for req, idx in zip(queue, parts):
            req.start_async({in_ports[k]: np.ascontiguousarray(v[idx[0]:idx[-1] + 1])
                             for k, v in feeds.items()})
        outs = {k: [] for k in port_names}
        for req, _ in zip(queue, parts):
            req.wait()
            for k, port in port_names.items():
                outs[k].append(np.array(req.get_tensor(port).data))
        return {k: np.concatenate(v) for k, v in outs.items()}

    config = dict(performance_hint=hint, inference_num_threads=threads, num_streams=streams,
                  inference_precision='f32', openvino=ov.__version__,
                  frontend='read_model(SavedModel dir)',
                  split_batch_across_streams=streams > 1)
    return load_s, call, config


# --- timing --------------------------------------------------------------------------------

def time_batch(call, feeds, warmup, iters, max_seconds):
    """Warm-up calls excluded; the first call is reported separately (lazy compilation)."""
    start = time.perf_counter()
    out = call(feeds)
    first_s = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
        out = call(feeds)
    samples = []
    began = time.perf_counter()
    while len(samples) < iters:
        t0 = time.perf_counter()
        out = call(feeds)
        samples.append(time.perf_counter() - t0)
        if len(samples) >= 3 and time.perf_counter() - began > max_seconds:
            break
    return first_s, samples, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runtime', required=True, choices=('tf', 'tf_xla', 'ort', 'openvino'))
    parser.add_argument('--spec', required=True)
    args = parser.parse_args()
    spec = json.load(open(args.spec))
    result = dict(runtime=args.runtime, model=spec['model'], threads=spec['threads'],
                  runs=[], load_seconds=0.0, compile_seconds=0.0, config={})
    loaded = {}
    for run in spec['runs']:
        batch = run['batch']
        # OpenVINO's hint depends on the batch, so it compiles once per batch.
        key = batch if args.runtime == 'openvino' else None
        if key not in loaded:
            if args.runtime in ('tf', 'tf_xla'):
                loaded[key] = load_tf(spec, args.runtime == 'tf_xla')
            elif args.runtime == 'ort':
                loaded[key] = load_ort(spec)
            else:
                loaded[key] = load_openvino(spec, batch)
            result['load_seconds'] += loaded[key][0]
            result['config'][f'batch{batch}' if key else 'all'] = loaded[key][2]
        call = loaded[key][1]
        with np.load(run['inputs']) as data:
            feeds = {k: data[k] for k in data.files}
        first_s, samples, out = time_batch(call, feeds, run['warmup'], run['iters'],
                                           run['max_seconds'])
        result['compile_seconds'] = max(result['compile_seconds'], first_s)
        np.savez(run['save_outputs'], **out)
        lat = percentiles(samples)
        result['runs'].append(dict(batch=batch, iters=len(samples), latency_ms=lat,
                                   first_call_seconds=first_s,
                                   throughput_per_s=batch * 1e3 / lat['mean']))
        print(f'{args.runtime} {spec["model"]} b{batch}: p50 {lat["p50"]:.2f} ms '
              f'({len(samples)} iters)', file=sys.stderr, flush=True)
    json.dump(result, open(spec['out'], 'w'), indent=1)


if __name__ == '__main__':
    main()
