"""Tessera vs TensorFlow / XLA / ONNX Runtime / OpenVINO on the bench tier, side by side.

    python3 bench/run.py [--models mlp,cnn,...] [--batches 1,32] [--trials N] [--smoke]

Steps: build the models once into a cache keyed by the generator's content hash
(bench/models.py); convert them to ONNX once (tf2onnx, in the peers' venv from bench/setup.sh);
write one input file per (model, batch) and identify it by its SHA-256; then, per model, run
every runtime in its own fresh child process, trials interleaved (trial t runs all runtimes
before trial t+1, in an order rotated per trial), each with the same thread count; measure each
child's peak RSS (wait4's ru_maxrss); cross-check every runtime's outputs with TensorFlow's
(numeric-match rule of the shared design notes, mismatches printed loudly); write markdown + raw
JSON (bench/report.py). A runtime that is missing is reported "unavailable", never estimated.
"""
import argparse
import hashlib
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import environment  # noqa: E402
import report  # noqa: E402
import runtimes  # noqa: E402

CACHE = pathlib.Path(os.environ.get('TESSERA_BENCH_CACHE', pathlib.Path.home() / '.cache/tessera/bench'))
ALL_MODELS = ('mlp', 'cnn', 'mobilenetv2', 'resnet50', 'efficientnetb0', 'bert')
REFERENCE = 'tf_eigen'  # TensorFlow's own kernels (oneDNN off) are the numeric oracle


def model_cache_dir():
    """Keyed by the generator code (bench/models.py + the zoo architectures it imports), the
    bundled MLP and the TensorFlow version, so any change regenerates."""
    h = hashlib.sha256()
    for path in (HERE / 'models.py', REPO / 'tests/zoo/models_keras.py',
                 REPO / 'examples/mnist_mlp/saved_model.pb'):
        h.update(path.read_bytes())
    h.update(environment.package_version('tensorflow-cpu').encode())
    return CACHE / 'models' / h.hexdigest()[:16]


def ensure_models(names, cache_dir):
    def usable(n):  # an entry can point at a checkout that is gone (the bundled MLP)
        f = cache_dir / n / 'model.json'
        return f.exists() and pathlib.Path(json.loads(f.read_text())['model_dir']).exists()
    missing = [n for n in names if not usable(n)]
    if missing:
        print(f'[bench] building {",".join(missing)} into {cache_dir}', file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(HERE / 'models.py'), '--out', str(cache_dir),
                        '--models', ','.join(missing)], check=True, env=runtimes.quiet_env())
    return {n: json.loads((cache_dir / n / 'model.json').read_text()) for n in names}


def make_inputs(info, batch, folder):
    """Deterministic per (model, batch); the hash goes into the results."""
    seed = int.from_bytes(hashlib.sha256(f'{info["name"]}/{batch}'.encode()).digest()[:4], 'little')
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in info['inputs']:
        shape = [batch if d == -1 else d for d in spec['shape']]
        lo, hi = spec['range']
        if spec['dtype'].startswith('float'):
            feeds[spec['name']] = rng.uniform(lo, hi, shape).astype(spec['dtype'])
        else:
            feeds[spec['name']] = rng.integers(lo, hi, shape).astype(spec['dtype'])
    path = folder / f'{info["name"]}_b{batch}_inputs.npz'
    np.savez(path, **feeds)
    h = hashlib.sha256()
    for name in sorted(feeds):
        h.update(name.encode())
        h.update(np.ascontiguousarray(feeds[name]).tobytes())
    return path, h.hexdigest()


def iteration_plan(info, batch, smoke):
    """Same warm-up/iteration counts for every runtime, sized from the model's FLOPs so a big
    model does not take minutes per runtime (40 GFLOP/s is a deliberately low guess)."""
    if smoke:
        return dict(warmup=2, iters=10, max_seconds=2.0)
    est_s = info['gflop_per_sample'] * batch / 40.0 + 2e-4
    if batch == 1:
        return dict(warmup=5, iters=int(min(200, max(10, 3.0 / est_s))), max_seconds=6.0)
    return dict(warmup=2, iters=int(min(30, max(3, 8.0 / est_s))), max_seconds=20.0)


def numeric_match(ref, got):
    """Shared rule: floats max|a-b| <= 1e-4*max|ref| + 1e-6; others exactly."""
    checks = {}
    for name, r in ref.items():
        if name not in got:
            checks[name] = dict(ok=False, why='output missing')
            continue
        g = got[name]
        if g.shape != r.shape:
            checks[name] = dict(ok=False, why=f'shape {list(g.shape)} != {list(r.shape)}')
        elif np.issubdtype(r.dtype, np.floating):
            err = float(np.max(np.abs(g.astype(np.float64) - r))) if r.size else 0.0
            bound = 1e-4 * float(np.max(np.abs(r))) + 1e-6
            checks[name] = dict(ok=bool(err <= bound), max_abs_err=err, bound=bound)
        else:
            checks[name] = dict(ok=bool(np.array_equal(g, r)))
    return dict(ok=all(c['ok'] for c in checks.values()), outputs=checks)


def load_outputs(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def run_model(info, args, run_dir, rts, env_info):
    name = info['name']
    batches = args.batches
    inputs = {}
    for b in batches:
        path, digest = make_inputs(info, b, run_dir)
        inputs[b] = dict(path=str(path), sha256=digest, **iteration_plan(info, b, args.smoke))
    entry = dict(name=name, notes=info['notes'], gflop_per_sample=info['gflop_per_sample'],
                 inputs={str(b): {k: v for k, v in inputs[b].items() if k != 'path'}
                         for b in batches},
                 onnx=info.get('onnx'), trials={}, checks={})
    order = [rt for rt in rts if rt.available(info)]
    for rt in rts:
        if not rt.available(info):
            entry['trials'][rt.name] = dict(unavailable=rt.why_unavailable(info))
    for trial in range(args.trials):
        shift = trial % max(len(order), 1)
        for rt in order[shift:] + order[:shift]:
            load = os.getloadavg()[0]
            res = rt.run(info, inputs, run_dir / f'{name}_{rt.name}_t{trial}', args.threads)
            res['load_average_1min_at_start'] = load
            entry['trials'].setdefault(rt.name, dict(results=[]))['results'].append(res)
            status = res.get('error') or ' '.join(
                f'b{r["batch"]} p50 {r["latency_ms"]["p50"]:.2f} ms' for r in res['runs'])
            print(f'[bench] {name} trial {trial} {rt.name}: {status}', file=sys.stderr, flush=True)
    cross_check(entry, batches)
    return entry


def cross_check(entry, batches):
    ref_runs = [r for r in entry['trials'].get(REFERENCE, {}).get('results', []) if 'error' not in r]
    if not ref_runs:
        entry['checks'] = dict(error=f'no {REFERENCE} reference outputs')
        return
    for b in batches:
        ref = load_outputs(ref_runs[0]['outputs'][str(b)])
        stds = {k: float(np.std(v)) for k, v in ref.items() if np.issubdtype(v.dtype, np.floating)}
        entry['checks'][f'reference_std_b{b}'] = stds
        if any(s < 1e-3 for s in stds.values()):
            print(f'[bench] WARNING {entry["name"]} b{b}: reference output nearly constant {stds}',
                  file=sys.stderr)
        for rt, data in entry['trials'].items():
            for i, res in enumerate(data.get('results', [])):
                if 'error' in res:
                    continue
                check = numeric_match(ref, load_outputs(res['outputs'][str(b)]))
                entry['checks'][f'{rt}_b{b}_t{i}'] = check
                if not check['ok']:
                    print(f'[bench] !!! MISMATCH {entry["name"]} {rt} batch {b} trial {i} vs '
                          f'{REFERENCE}: {json.dumps(check["outputs"])}', file=sys.stderr)


def write_results(out, results, started, partial):
    results['environment']['load_average_after'] = os.getloadavg()
    results['wall_seconds'] = round(time.time() - started, 1)
    results['partial'] = partial
    results['summary'] = report.summarize(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'results.json').write_text(json.dumps(results, indent=1) + '\n')
    (out / 'results.md').write_text(report.markdown(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default=None, help=f'comma list of {",".join(ALL_MODELS)}')
    parser.add_argument('--batches', default='1,32')
    parser.add_argument('--trials', type=int, default=None, help='default 3 (1 with --smoke)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--runtimes', default=','.join(runtimes.NAMES))
    parser.add_argument('--smoke', action='store_true',
                        help='CI mode: the seed MLP only, 1 trial, few iterations')
    parser.add_argument('--out', type=pathlib.Path, default=None,
                        help='results folder (default bench/results; with --smoke a cache folder)')
    parser.add_argument('--tessera', type=pathlib.Path, default=None,
                        help='tessera binary (default $TESSERA_BIN or $TESSERA_BUILD_DIR/tessera)')
    parser.add_argument('--rerender', type=pathlib.Path, default=None, metavar='DIR',
                        help='only rewrite DIR/results.md (and the summary) from DIR/results.json')
    args = parser.parse_args()
    if args.rerender:
        results = json.loads((args.rerender / 'results.json').read_text())
        results['summary'] = report.summarize(results)
        (args.rerender / 'results.json').write_text(json.dumps(results, indent=1) + '\n')
        (args.rerender / 'results.md').write_text(report.markdown(results))
        return
    args.models = (args.models or ('mlp' if args.smoke else ','.join(ALL_MODELS))).split(',')
    args.batches = [int(b) for b in args.batches.split(',')]
    args.trials = args.trials or (1 if args.smoke else 3)
    out = args.out or (CACHE / 'smoke-results' if args.smoke else HERE / 'results')
    unknown = set(args.models) - set(ALL_MODELS)
    if unknown:
        parser.error(f'unknown models {sorted(unknown)}')

    started = time.time()
    env_info = environment.describe(args.threads, CACHE)
    env_info['command'] = 'python3 bench/' + ' '.join(shlex.quote(a) for a in
                                                     [pathlib.Path(sys.argv[0]).name] + sys.argv[1:])
    rts = runtimes.make(args.runtimes.split(','), args.tessera, env_info, args.threads)
    cache_dir = model_cache_dir()
    infos = ensure_models(args.models, cache_dir)
    run_dir = CACHE / 'runs' / time.strftime('%Y%m%d-%H%M%S')
    run_dir.mkdir(parents=True, exist_ok=True)
    for info in infos.values():
        runtimes.prepare_onnx(info, cache_dir, env_info, rts)
    entries = []
    results = dict(schema=1, smoke=args.smoke, started_utc=time.strftime(
        '%Y-%m-%d %H:%M:%S', time.gmtime(started)), environment=env_info,
        batches=args.batches, trials=args.trials, threads=args.threads, reference=REFERENCE,
        runtimes={rt.name: rt.describe() for rt in rts}, models=entries,
        model_cache=str(cache_dir), run_dir=str(run_dir))
    for name in args.models:
        entries.append(run_model(infos[name], args, run_dir, rts, env_info))
        if len(entries) < len(args.models):  # a long run keeps what it has measured so far
            write_results(out, results, started, partial=True)
    # Peak again at the end: other jobs on the machine only lower it, so keep the higher one.
    after = environment.measured_peak(args.threads, CACHE)
    env_info['peak_measurements'] = [env_info['peak'], after]
    if (after.get('gflops') or 0) > (env_info['peak'].get('gflops') or 0):
        env_info['peak'] = after
    write_results(out, results, started, partial=False)
    print(f'[bench] wrote {out / "results.md"} and results.json '
          f'({results["wall_seconds"]} s)', file=sys.stderr)
    mismatches = report.mismatches(results)
    if mismatches:
        print('[bench] !!! OUTPUT MISMATCHES vs TensorFlow:\n  ' + '\n  '.join(mismatches),
              file=sys.stderr)


if __name__ == '__main__':
    main()
