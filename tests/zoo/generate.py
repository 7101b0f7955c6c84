#!/usr/bin/env python3
"""Tessera model zoo: TensorFlow-generated models with cached reference outputs.

    python3 tests/zoo/generate.py [--out DIR] [--tier inference|import|train|all]
                                  [--only NAME,...] [--jobs N]

Writes DIR/<name>/ per model and DIR/manifest.json; DIR defaults to
$TESSERA_ZOO_DIR, else ${TESSERA_BUILD_DIR:-<repo>/build}/zoo. Generation is
keyed by a hash of this directory's *.py files and the TF/Keras versions; a
model folder whose entry.json carries the current key is complete and is never
rebuilt. Each model is built in a fresh process (no TF state leaks between
models, memory returns to the OS), forked from a server that has imported
TensorFlow once, inside DIR/.tmp-<name>, renamed when complete. The slowest
models start first, so that parallel jobs finish together.

The inference tier carries variables and reference outputs. The import tier
(every keras.applications model) is graph only: saved_model.pb as Keras 3's
model.export writes it but without variables/ ("variables": false in its
manifest entries), for `tessera inspect --no-variables`. The train tier
(models_train.py) keeps training-mode forwards, with train_meta.json and
TensorFlow's training references in train_ref.npz.
"""
import argparse
import fcntl
import gc
import hashlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import resource
import shutil
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
# Quiet TF's C++ logging here and in the workers (they inherit the environment);
# plain Eigen kernels (no oneDNN rewrites) keep references CPU-independent.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

# These modules import TensorFlow lazily, inside their functions.
import models_keras  # noqa: E402
import models_tf  # noqa: E402
import models_train  # noqa: E402
import reference  # noqa: E402

ENTRY = 'entry.json'  # written last into a model folder, carries the key
TIERS = ('inference', 'import', 'train')


# --- registry -----------------------------------------------------------------

def inference_registry():
    return {**models_keras.inference_registry(), **models_tf.inference_registry()}


def registry(app_classes=()):
    """name -> (tier, builder(folder, seed) -> entry fields)."""
    specs = {name: ('inference', build) for name, build in inference_registry().items()}
    specs.update((name, ('import', build))
                 for name, build in models_keras.import_registry(app_classes).items())
    specs.update((name, ('train', build)) for name, build in models_train.train_registry().items())
    return specs


def default_out():
    """$TESSERA_ZOO_DIR, else the build directory's zoo/."""
    if os.environ.get('TESSERA_ZOO_DIR'):
        return Path(os.environ['TESSERA_ZOO_DIR'])
    return Path(os.environ.get('TESSERA_BUILD_DIR') or REPO / 'build') / 'zoo'


# CPU seconds of the slower inference-tier models (cpu_s in the manifest; the
# rest take about 1 s); models_keras.APP_COST has the import tier's.
INFERENCE_COST = {'efficientnetb0_tfk': 24, 'resnet50_tfk': 16, 'mobilenetv2_tfk': 15,
                  'efficientnetb0_k3': 12, 'resnet50_k3': 11, 'mobilenetv2_k3': 7,
                  'lstm_tfk': 7, 'gru_tfk': 5}


def expected_cost(name, out):
    """CPU seconds the model took last time (an entry of any key), else a
    static estimate; orders the queue only."""
    try:
        return float(json.loads((out / name / ENTRY).read_text())['cpu_s'])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if name.startswith('app_'):
        return models_keras.app_cost_by_model_name(name)
    return INFERENCE_COST.get(name, 1.0)


def model_seed(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


# --- cache key ----------------------------------------------------------------

def versions():
    found = {}
    for dist in ('tensorflow', 'tensorflow-cpu', 'keras', 'tf-keras', 'numpy'):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def tf_version():
    v = versions()
    return v.get('tensorflow-cpu') or v.get('tensorflow')


def cache_key():
    digest = hashlib.sha256(json.dumps(versions(), sort_keys=True).encode())
    for source in sorted(HERE.glob('*.py')):
        digest.update(source.name.encode() + b'\0' + source.read_bytes())
    return digest.hexdigest()[:20]


def read_entry(folder, key):
    """The entry of a complete model folder generated under `key`, else None."""
    try:
        entry = json.loads((folder / ENTRY).read_text())
    except (OSError, ValueError):
        return None
    return entry if entry.get('key') == key else None


# --- worker: one model, in its own process -------------------------------------

def seed_everything(seed):
    import random

    import numpy as np
    import tensorflow as tf
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    tf.config.experimental.enable_op_determinism()


def tune_gc():
    """Tracing and saving a big model allocates millions of objects; with the
    default thresholds Python's cycle collector rescans them over and over
    (~13% of the CPU time of EfficientNetV2L). Collect rarely, and never scan
    what was imported before the model was built. Only timing changes."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def folder_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())


def add_references(entry, info, folder, seed):
    import numpy as np
    artifact = folder / info['path']
    ranges = {k: info[k] for k in ('float_range', 'int_range') if k in info}
    if entry['format'] == 'saved_model':
        run = reference.saved_model_runner(artifact)
    else:
        entry['inputs'] = info['feeds']
        run = reference.graphdef_runner(artifact, entry['format'] == 'graphdef_text',
                                        info['fetches'])
    stds = reference.write_references(folder, run, entry['inputs'], seed, **ranges)
    if entry['format'] != 'saved_model':  # a GraphDef has no signature to read them from
        with np.load(folder / 'outputs_b8.npz') as out:
            entry['outputs'] = [{'name': f, 'dtype': str(out[f].dtype),
                                 'shape': [None, *out[f].shape[1:]]} for f in info['fetches']]
    entry.update(batches=list(reference.BATCHES), ref_std=min(stds.values()),
                 ref_std_by_output=stds, input_ranges=ranges or None)


def run_worker(name, out, key, app_classes):
    tier, build = registry(app_classes)[name]
    seed = model_seed(name)
    start = time.time()
    seed_everything(seed)
    tune_gc()
    tmp = out / f'.tmp-{name}'
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    info = build(tmp, seed)
    built = time.time()
    entry = {'name': name, 'tier': tier, 'format': info['format'],
             'path': f"{name}/{info['path']}", 'signature': None, 'io_names': 'tensor',
             'inputs': {}, 'outputs': [], 'batches': [], 'ref_std': None,
             'notes': info['notes'], 'seed': seed}
    if info['format'] == 'saved_model':
        entry['inputs'], entry['outputs'] = reference.signature_io(tmp / info['path'])
        entry.update(signature='serving_default', io_names='signature')
    if tier == 'inference':
        entry['seed'] = info.get('seed', seed)
        add_references(entry, info, tmp, entry['seed'])
    entry['variables'] = info.get('variables', True)
    entry.update({k: info[k] for k in ('input_size', 'params', 'phase_cpu_s', 'train') if k in info})
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this worker since the fork
    entry.update(build_s=round(built - start, 2), total_s=round(time.time() - start, 2),
                 cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
                 size_bytes=folder_bytes(tmp), key=key)
    (tmp / ENTRY).write_text(json.dumps(entry, indent=1))
    final = out / name
    shutil.rmtree(final, ignore_errors=True)  # stale (other key) or incomplete
    tmp.rename(final)


# --- driver ---------------------------------------------------------------------

def app_classes_for(manifest):
    """keras.applications constructors; reused from a same-key manifest so a
    cache hit never imports TensorFlow."""
    if manifest and manifest.get('app_classes') is not None:
        return manifest['app_classes']
    return models_keras.application_names()


def select(args, manifest):
    wants_apps = args.tier in ('import', 'all') or any(
        n.startswith('app_') for n in args.only or ())
    # None: not enumerated yet (the inference tier alone never imports Keras here).
    apps = app_classes_for(manifest) if wants_apps else (manifest or {}).get('app_classes')
    specs = registry(apps or ())
    if args.only:
        unknown = sorted(set(args.only) - set(specs))
        if unknown:
            sys.exit(f'zoo: unknown model(s) {unknown}; known: {sorted(specs)}')
        names = args.only
    else:
        names = [n for n, (tier, _) in specs.items() if args.tier in ('all', tier)]
    return names, apps


# Imported once by the fork server, not by every worker: importing TensorFlow
# costs ~2.5 s of CPU, a third of what a small model's build costs.
PRELOAD = ['numpy', 'tensorflow', 'keras']
_fork_context = None


def fork_context():
    global _fork_context
    if _fork_context is None:
        _fork_context = multiprocessing.get_context('forkserver')
        _fork_context.set_forkserver_preload(PRELOAD)  # a failed import is skipped
    return _fork_context


def stop_fork_server():
    server = getattr(multiprocessing.forkserver, '_forkserver', None)
    if _fork_context is not None and hasattr(server, '_stop'):
        server._stop()  # reaps it now (its CPU time then counts for this process)


def worker_main(name, out, key, apps, log):
    """Entry of a worker process: output to the model's log, then build."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    run_worker(name, Path(out), key, apps)
    sys.stdout.flush()
    sys.stderr.flush()


def spawn(name, out, key, apps, timeout):
    """Builds one model in a fresh process; returns (name, wall seconds, error or None)."""
    log = out / '.logs' / f'{name}.log'
    start = time.time()
    proc = fork_context().Process(target=worker_main, name=f'zoo-{name}',
                                  args=(name, str(out), key, list(apps or ()), str(log)))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        rc = f'timeout after {timeout}s'
    else:
        rc = proc.exitcode
    error = None
    if rc != 0:
        tail = log.read_text(errors='replace').strip().splitlines()[-3:]
        error = f'rc={rc}: ' + ' | '.join(tail) + f' (log: {log})'
    return name, time.time() - start, error


def generate(names, out, key, apps, jobs, timeout):
    failed = {}
    total = len(names)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(spawn, n, out, key, apps, timeout) for n in names]
        for i, future in enumerate(as_completed(futures), 1):
            name, wall, error = future.result()
            entry = read_entry(out / name, key)
            if error or entry is None:
                failed[name] = error or 'worker exited 0 but left no entry'
                print(f'zoo: [{i}/{total}] {name}: FAILED after {wall:.1f}s: {failed[name]}',
                      flush=True)
            else:
                print(f"zoo: [{i}/{total}] {name}: {wall:.1f}s wall, {entry['cpu_s']}s cpu "
                      f"(build {entry['build_s']}s), {entry['size_bytes'] / 2**20:.1f} MiB"
                      + (f", ref_std {entry['ref_std']:.4g}" if entry['ref_std'] else ''),
                      flush=True)
    return failed


def write_manifest(out, key, apps, failed):
    """Aggregates every complete same-key model folder (so tiers accumulate);
    `failed` lists this run's failures only (a later run retries them)."""
    models = [e for e in (read_entry(d, key) for d in sorted(out.iterdir()) if d.is_dir()) if e]
    models.sort(key=lambda e: (TIERS.index(e['tier']), e['name']))
    manifest = {'key': key, 'tf_version': tf_version(), 'versions': versions(),
                'references': '<model>/inputs_b<batch>.npz and outputs_b<batch>.npz, '
                              'keyed by the names in "inputs" / "outputs"',
                'app_classes': apps, 'models': models,
                'failed': [{'name': n, 'error': e} for n, e in sorted(failed.items())]}
    tmp = out / 'manifest.json.tmp'
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / 'manifest.json')
    return manifest


def load_manifest(out, key):
    try:
        manifest = json.loads((out / 'manifest.json').read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get('key') == key else None


def update(args, out):
    key = cache_key()
    manifest = load_manifest(out, key)
    names, apps = select(args, manifest)
    listed = {m['name'] for m in manifest['models']} if manifest else set()
    todo = [n for n in names if n not in listed or read_entry(out / n, key) is None]
    if not todo:
        print('zoo: cached')
        return 0

    for stale in out.glob('.tmp-*'):  # leftovers of an interrupted run
        shutil.rmtree(stale)
    (out / '.logs').mkdir(exist_ok=True)
    todo.sort(key=lambda n: -expected_cost(n, out))  # longest first: jobs end together
    print(f'zoo: generating {len(todo)} model(s) into {out} with {args.jobs} job(s)', flush=True)
    start = time.time()
    try:
        failed = generate(todo, out, key, apps, max(1, args.jobs), args.timeout)
    finally:
        stop_fork_server()
    manifest = write_manifest(out, key, apps, failed)
    done = [m for m in manifest['models'] if m['name'] in todo]
    size = sum(m['size_bytes'] for m in done)
    cpu = sum(m.get('cpu_s', 0) for m in done)
    print(f'zoo: {len(todo) - len(failed)}/{len(todo)} generated in {time.time() - start:.1f}s '
          f'({cpu:.0f}s cpu), {size / 2**20:.1f} MiB; '
          f'manifest lists {len(manifest["models"])} model(s)')
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=None,
                        help='zoo directory (default: $TESSERA_ZOO_DIR, else '
                             '${TESSERA_BUILD_DIR:-<repo>/build}/zoo)')
    parser.add_argument('--tier', choices=('inference', 'import', 'train', 'all'), default='inference')
    parser.add_argument('--only', type=lambda s: [n for n in s.split(',') if n])
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--timeout', type=int, default=3600, help='seconds per model')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--key', help=argparse.SUPPRESS)
    parser.add_argument('--apps', default='', help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = (args.out or default_out()).resolve()

    if args.worker:
        return run_worker(args.worker, out, args.key, [a for a in args.apps.split(',') if a])

    out.mkdir(parents=True, exist_ok=True)
    with open(out / '.lock', 'w') as lock:
        # Concurrent runs on one DIR (e.g. parallel test sessions) queue here;
        # the later ones then find the cache.
        fcntl.flock(lock, fcntl.LOCK_EX)
        return update(args, out)


if __name__ == '__main__':
    sys.exit(main())
