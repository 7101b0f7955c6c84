#!/usr/bin/env python3
"""Checks that the import tier's fast export writes model.export's graph.

    python3 tests/zoo/compare_export.py [--jobs N] [--full-reference] [ClassName ...]

For each keras.applications class (default: all), builds the model twice in
fresh processes with the zoo's seed and input size: once through
`model.export` (random initial weights; with --full-reference it also writes
the checkpoint, otherwise TF's skip_checkpoint, which is applied after the
graph is built), once through models_keras.build_application. Then compares
the two saved_model.pb files. Run it after a TensorFlow or Keras upgrade:
export_graph_only patches their internals.

model.export itself is not reproducible run to run: variables are ordered by
object identity in the saver functions and the checkpoint object graph, and
function names, custom-gradient op types and capture names carry process-wide
counters. So those lists are compared as multisets and the counters are
renumbered; everything else (the model function, gradient functions,
signatures, object graph) must match exactly.
"""
import argparse
import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import models_keras  # noqa: E402


# --- builders (run in a subprocess each) ---------------------------------------

def build(kind, cls_name, folder, full):
    import inspect
    import resource
    from unittest import mock

    import generate
    seed = generate.model_seed(models_keras.app_model_name(cls_name))
    generate.seed_everything(seed)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == 'fast':  # as generate.run_worker does
        generate.tune_gc()
        info = models_keras.build_application(cls_name, folder, seed)
        size = info['input_size']
    else:
        import keras
        import tensorflow as tf
        from tensorflow.python.saved_model import save as tf_save
        keras.utils.set_random_seed(seed)
        ctor = getattr(keras.applications, cls_name)
        kwargs = {'weights': None}
        if 'classifier_activation' in inspect.signature(ctor).parameters:
            kwargs['classifier_activation'] = None
        size = int(os.environ['ZOO_COMPARE_SIZE'])
        model = ctor(input_shape=(size, size, 3), **kwargs)

        def save_without_checkpoint(obj, export_dir, signatures=None, options=None):
            tf_save.save_and_return_nodes(obj, export_dir, signatures, options,
                                          experimental_skip_checkpoint=True)
        with (contextlib.nullcontext() if full else
              mock.patch.object(tf.saved_model, 'save', save_without_checkpoint)):
            model.export(str(folder / 'saved_model'), verbose=False)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({'cpu_s': round(usage.ru_utime + usage.ru_stime, 2), 'input_size': size}))


# --- comparison ------------------------------------------------------------------

UID_FUNCTION = re.compile(r'(__inference_\w*?)_\d+\b')
UID_GRADIENT = re.compile(r'CustomGradient-\d+')
UID_CAPTURE = re.compile(r'((?:s|name): ")\d+(:0)?"')  # capture placeholders named by uid
IDENTIFIER = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
INDEX = re.compile(r'_\d+(?=_|\b)')  # per-variable indices in saver node names


def renumber(text):
    text = UID_FUNCTION.sub(r'\1_N', text)
    text = UID_GRADIENT.sub('CustomGradient-N', text)
    return UID_CAPTURE.sub(r'\1N\2"', text)


def unordered_lines(text):
    lines = (INDEX.sub('_K', line) for line in text.splitlines())
    # the long string constant is the serialised checkpoint object graph
    # (compared separately, see checkpoint_keys)
    return collections.Counter('<blob>' if len(line) > 300 else line for line in lines)


def load(folder):
    from tensorflow.core.protobuf import saved_model_pb2
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / 'saved_model.pb').read_bytes())
    assert len(proto.meta_graphs) == 1
    return proto.meta_graphs[0]


def checkpoint_keys(meta):
    from tensorflow.core.protobuf import trackable_object_graph_pb2
    keys = collections.Counter()
    for node in meta.graph_def.node:
        if node.op != 'Const' or node.attr['dtype'].type != 7:  # DT_STRING
            continue
        for blob in node.attr['value'].tensor.string_val:
            if len(blob) < 300:
                continue
            graph = trackable_object_graph_pb2.TrackableObjectGraph()
            graph.ParseFromString(blob)
            keys['nodes', len(graph.nodes)] += 1
            for obj in graph.nodes:
                for attr in obj.attributes:
                    keys[attr.name, re.sub(r'\d+', 'K', attr.full_name),
                         re.sub(r'\d+', 'K', attr.checkpoint_key)] += 1
    return keys


def object_nodes(meta):
    from google.protobuf import text_format
    nodes = collections.Counter()
    for node in meta.object_graph_def.nodes:
        node = node.__deepcopy__()
        for ref in list(node.children) + list(node.dependencies):
            ref.node_id = 0
        nodes[renumber(text_format.MessageToString(node))] += 1
    return nodes


def compare(ref_dir, fast_dir):
    """-> list of differences (empty: equivalent)."""
    from google.protobuf import text_format
    a, b = load(ref_dir), load(fast_dir)

    def functions(meta):
        by_name = collections.defaultdict(list)
        for f in meta.graph_def.library.function:
            # argument names of captures can end in a uid: name them by position
            args = {arg.name: f'arg{i}' for i, arg in enumerate(f.signature.input_arg)}
            body = IDENTIFIER.sub(lambda m: args.get(m.group(0), m.group(0)),
                                  text_format.MessageToString(f))
            by_name[renumber(f.signature.name)].append(renumber(body))
        return by_name

    diffs = []
    fa, fb = functions(a), functions(b)
    if {k: len(v) for k, v in fa.items()} != {k: len(v) for k, v in fb.items()}:
        diffs.append(f'function sets differ: {sorted(fa)} vs {sorted(fb)}')
    for name in sorted(set(fa) & set(fb)):
        if sorted(fa[name]) == sorted(fb[name]):
            continue
        if ('_traced_save' in name or '_traced_restore' in name) and \
                sorted(map(sorted, map(dict.items, map(unordered_lines, fa[name])))) == \
                sorted(map(sorted, map(dict.items, map(unordered_lines, fb[name])))):
            continue  # the saver's variable order follows object identity
        diffs.append(f'function {name} differs')

    def text(message):
        return renumber(text_format.MessageToString(message))

    signatures = [{k: text(v) for k, v in m.signature_def.items()} for m in (a, b)]
    for label, x, y in [
            ('signature_def', *signatures),
            ('saver_def', text(a.saver_def), text(b.saver_def)),
            ('meta_info_def', text(a.meta_info_def), text(b.meta_info_def)),
            ('graph_def nodes', *(unordered_lines(''.join(text(n) for n in m.graph_def.node))
                                  for m in (a, b))),
            ('checkpoint object graph', checkpoint_keys(a), checkpoint_keys(b)),
            ('object graph', object_nodes(a), object_nodes(b))]:
        if x != y:
            diffs.append(f'{label} differs')
    return diffs


# --- driver ------------------------------------------------------------------------

def run_one(cls_name, work, full):
    folder = work / cls_name
    results = {}
    for kind in ('fast', 'reference'):  # fast first: it finds the input size
        env = dict(os.environ)
        if kind == 'reference':
            env['ZOO_COMPARE_SIZE'] = str(results['fast']['input_size'])
        proc = subprocess.run([sys.executable, __file__, '--build', kind, cls_name,
                               str(folder / kind)] + (['--full-reference'] if full else []),
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            return cls_name, None, [f'{kind} build failed: {proc.stderr.strip()[-2000:]}']
        results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    diffs = compare(folder / 'reference' / 'saved_model', folder / 'fast' / 'saved_model')
    return cls_name, results, diffs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('classes', nargs='*')
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--full-reference', action='store_true',
                        help='reference writes the checkpoint too (slow, GiBs)')
    parser.add_argument('--build', nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        kind, cls_name, folder = args.build
        return build(kind, cls_name, Path(folder), args.full_reference)

    classes = args.classes or models_keras.application_names()
    classes.sort(key=lambda c: -models_keras.app_cost_by_model_name(models_keras.app_model_name(c)))
    failed = 0
    with tempfile.TemporaryDirectory(prefix='zoo-compare-') as tmp, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        jobs = [pool.submit(run_one, c, Path(tmp), args.full_reference) for c in classes]
        for job in jobs:
            cls_name, results, diffs = job.result()
            cpu = (f"cpu {results['reference']['cpu_s']}s -> {results['fast']['cpu_s']}s"
                   if results else '')
            print(f"{cls_name}: {'same graph' if not diffs else 'DIFFERENT'} {cpu}"
                  + ''.join(f'\n    {d}' for d in diffs), flush=True)
            failed += bool(diffs)
    print(f'{len(classes) - failed}/{len(classes)} equivalent')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
