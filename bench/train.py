"""Training throughput: Tessera against TensorFlow 2.21 on the seed MLP and the small CNN.

    python3 bench/train.py                      # mlp b256,b2048 + cnn b128,b2048, 3 trials, 2 threads
    python3 bench/train.py --models mlp --batches 256 --trials 2
    python3 bench/train.py --smoke              # CI: tiny, 1 trial, results in a cache folder

Writes bench/results/train.{md,json} (never edit them by hand: rerun the script).

What is compared (issue 5, acceptance 5; shared rules in ../shared/design/README.md):
- the zoo's MLP (784-512 gelu, dropout 0.3, 256 gelu, dropout 0.3, 10 softmax; sparse
  categorical cross-entropy on probabilities) and CNN (32x32x3, 2x Conv2D+BatchNorm+ReLU+MaxPool,
  Dense 10 logits; cross-entropy from logits), Adam 3e-4, Keras 3, one seed for the weights;
- TensorFlow: the Keras model (model.keras) trained by a `tf.function` step with GradientTape and
  keras.optimizers.Adam, oneDNN on, and the same step with `jit_compile=True` (XLA);
- Tessera: the same weights exported with Keras' ExportArchive (endpoint `train_forward` =
  model(x, training=True), plus `serving_default`), trained by `tessera train ... --stats-json`
  (field samples_per_second, peak_rss_bytes). Until that command exists the harness falls back to
  `tessera train-trace` (per-step time from two runs of different lengths), and failing that to
  `tessera grad --backend cpu` (forward + backward of an MSE loss, no optimizer: marked
  "grad only" in the tables, a lower bound on a step's cost).

Rules: every runtime in its own fresh child per trial, trials interleaved (runtime order rotated
by one per trial), medians over trials; the same data file for everyone (SHA-256 recorded): a
few batches of deterministic random inputs and labels, cycled; the same intra-op threads
(inter-op 1); peak memory is each child's ru_maxrss from wait4() (VmHWM); samples/s is the
batch over the median step time after warm-up steps. Step FLOPs = forward matmul/conv 2*MACs
x 3 (backward counted as twice the forward), compared with this CPU's measured fp32 peak.
"""
import argparse
import hashlib
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import runtimes  # noqa: E402  (the child-process runner shared with bench/run.py)

SEED = 1234
LR = 3e-4
MODELS = {
    # name: (zoo architecture, input shape, from_logits, default batches, forward MACs/sample)
    'mlp': ('mlp', (784,), False, (256, 2048), 784 * 512 + 512 * 256 + 256 * 10),
    'cnn': ('cnn', (32, 32, 3), True, (128, 2048),
            32 * 32 * 16 * 27 + 16 * 16 * 32 * 144 + 8 * 8 * 32 * 10),
}
RUNTIMES = ('tessera', 'tf', 'tf_xla')
LABELS = {'tessera': 'Tessera', 'tf': 'TF 2.21 tf.function', 'tf_xla': 'TF 2.21 jit_compile'}
CHILD_TIMEOUT_S = 1200


def step_gflop(name, batch):
    return 3 * 2 * MODELS[name][4] * batch / 1e9


# ---------------------------------------------------------------- children (own processes)

def child_build(folder):
    """The Keras models (weights from SEED), saved for TF (model.keras) and Tessera (SavedModel
    with train_forward + serving_default)."""
    import keras
    import tensorflow as tf
    sys.path.insert(0, str(REPO / 'tests' / 'zoo'))
    import models_keras
    folder = pathlib.Path(folder)
    for name, (arch, shape, _, _, _) in MODELS.items():
        keras.utils.set_random_seed(SEED)
        model = getattr(models_keras, arch)(keras)
        out = folder / name
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / 'model.keras')
        archive = keras.export.ExportArchive()
        archive.track(model)
        spec = [tf.TensorSpec((None,) + shape, tf.float32)]
        archive.add_endpoint('serving_default', lambda x: model(x, training=False), input_signature=spec)
        archive.add_endpoint('train_forward', lambda x: model(x, training=True), input_signature=spec)
        archive.write_out(str(out / 'saved_model'), verbose=False)
        # The inference export (no dropout): `tessera grad`'s stand-in runs it while the
        # training endpoint's random ops are not importable.
        model.export(str(out / 'inference'), verbose=False)
        sig = tf.saved_model.load(str(out / 'inference')).signatures['serving_default']
        (out / 'meta.json').write_text(json.dumps(dict(input=list(sig.structured_input_signature[1])[0])))


def child_tf(args):
    """One TF training run: the Keras model, a tf.function step (GradientTape + Adam)."""
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    model = keras.models.load_model(pathlib.Path(args.model) / 'model.keras')
    opt = keras.optimizers.Adam(LR)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=args.from_logits)

    @tf.function(jit_compile=args.jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    with np.load(args.data) as z:
        x, y = z['x'], z['y']
    nb = x.shape[0] // args.batch
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        lo = (i % nb) * args.batch
        t0 = time.perf_counter()
        loss = float(step(tf.constant(x[lo:lo + args.batch]), tf.constant(y[lo:lo + args.batch])))
        dt = time.perf_counter() - t0
        losses.append(loss)
        if i >= args.warmup:
            times.append(dt)
    med = statistics.median(times)
    json.dump(dict(samples_per_second=args.batch / med, step_ms_median=1e3 * med, steps=len(times),
                   first_loss=losses[0], last_loss=losses[-1], vmhwm_bytes=_vmhwm()), open(args.json, 'w'))


def _vmhwm():
    for line in pathlib.Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
    return None


# ---------------------------------------------------------------- parent

def spawn(cmd, env, log_path, timeout=CHILD_TIMEOUT_S):
    """(exit code, peak RSS bytes of the child from wait4, wall seconds); the child's output
    is appended to log_path (one log per model gathers every trial)."""
    return runtimes.spawn(cmd, env, log_path, timeout=timeout, append=True)


def child_env(threads):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1',
               TF_ENABLE_ONEDNN_OPTS='1', OMP_NUM_THREADS=str(threads))
    return env


def tessera_mode(binary):
    """Which Tessera command can train: 'train' (tessera train --stats-json), 'train-trace',
    'grad' (forward+backward only), or None."""
    if not pathlib.Path(binary).exists():
        return None

    def help_text(cmd):
        p = subprocess.run([binary, cmd, '--help'], capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr
    rc, text = help_text('train')
    if rc == 0 and '--stats-json' in text:
        return 'train'
    rc, text = help_text('train-trace')
    if rc == 0 and 'unknown command' not in text:
        return 'train-trace'
    rc, text = help_text('grad')
    if rc == 0 and '--backend' in text:
        return 'grad'
    return None


def model_cache(cache_root):
    h = hashlib.sha256()
    for f in (HERE / 'train.py', REPO / 'tests' / 'zoo' / 'models_keras.py'):
        h.update(f.read_bytes())
    import importlib.metadata as md
    h.update(md.version('tensorflow-cpu').encode())
    folder = pathlib.Path(cache_root) / 'train' / h.hexdigest()[:16]
    if not (folder / 'done').exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rc, _, _ = spawn([sys.executable, __file__, '--child', 'build', '--out', folder],
                         child_env(2), folder / 'build.log')
        if rc != 0:
            sys.exit(f'building the models failed:\n{(folder / "build.log").read_text()[-3000:]}')
        (folder / 'done').write_text('ok')
    return folder


def make_data(folder, name, batch):
    import numpy as np
    shape = MODELS[name][1]
    nb = max(2, min(8, 8192 // batch))
    path = folder / name / f'data_b{batch}.npz'
    if not path.exists():
        rng = np.random.default_rng(SEED + batch)
        x = rng.uniform(0, 1, size=(nb * batch,) + shape).astype(np.float32)
        y = rng.integers(0, 10, size=(nb * batch,)).astype(np.int64)
        np.savez(path, x=x, y=y)
        np.save(folder / name / f'x_b{batch}.npy', x)
        np.save(folder / name / f'y_b{batch}.npy', y)
        np.save(folder / name / f'onehot_b{batch}.npy', np.eye(10, dtype=np.float32)[y[:batch]])
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def step_plan(name, batch, smoke):
    """(warm-up steps, timed steps): about 3 s of work at 50 GFLOP/s, 10..200 steps."""
    if smoke:
        return 2, 5
    steps = int(3 * 50 / max(step_gflop(name, batch), 1e-3))
    return 5, max(10, min(200, steps))


def run_tessera(args, mode, folder, name, batch, warmup, steps, log):
    """One Tessera child (two for train-trace): dict with samples_per_second and peak RSS."""
    binary = args.tessera
    model = folder / name / 'saved_model'
    from_logits = MODELS[name][2]
    env = child_env(args.threads)
    common = ['--loss', 'sparse_categorical_crossentropy', '--optimizer', 'adam', '--lr', str(LR),
              '--batch', str(batch), '--threads', str(args.threads)] + (['--from-logits'] if from_logits else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if mode == 'train':
            stats = tmp / 'stats.json'
            rc, rss, wall = spawn([binary, 'train', model, '--data', f'npz:{folder / name / f"data_b{batch}.npz"}',
                                   '--steps', str(warmup + steps), '--stats-warmup', str(warmup), '--shuffle', '0',
                                   '--quiet', '--stats-json', stats] + common, env, log)
            if rc != 0:
                return dict(status='failed', why=f'exit {rc}')
            s = json.loads(stats.read_text())
            return dict(status='ok', samples_per_second=s['samples_per_second'], peak_rss_bytes=rss,
                        self_reported_peak_rss_bytes=s.get('peak_rss_bytes'), wall_s=wall,
                        input_wait_fraction=s.get('input_wait_fraction'), final_loss=s.get('final_loss'))
        if mode == 'train-trace':
            runs = []
            for n in (warmup, warmup + steps):
                rc, rss, wall = spawn([binary, 'train-trace', model, '--x', folder / name / f'x_b{batch}.npy',
                                       '--y', folder / name / f'y_b{batch}.npy', '--steps', str(n),
                                       '--out', tmp / 'trace.npz'] + common, env, log)
                if rc != 0:
                    return dict(status='failed', why=f'exit {rc}')
                runs.append((wall, rss))
            per_step = max(runs[1][0] - runs[0][0], 1e-9) / steps
            return dict(status='ok', samples_per_second=batch / per_step, peak_rss_bytes=runs[1][1],
                        note='train-trace: per-step time from the wall-time difference of two runs')
        # grad: forward + backward (MSE to one-hot labels), no optimizer
        np_x = folder / name / f'x_b{batch}.npy'
        import numpy as np
        x = np.load(np_x, mmap_mode='r')[:batch]
        np.save(tmp / 'x.npy', np.ascontiguousarray(x))
        key = json.loads((folder / name / 'meta.json').read_text())['input']
        rc, rss, wall = spawn([binary, 'grad', folder / name / 'inference', '--input', f'{key}={tmp / "x.npy"}',
                               '--loss', 'mse', '--target', folder / name / f'onehot_b{batch}.npy',
                               '--backend', 'cpu', '--threads', str(args.threads), '--repeat', str(steps)], env, log)
        text = pathlib.Path(log).read_text(errors='replace')
        found = re.findall(r'step_ms_median: ([0-9.]+)', text)
        if rc != 0 or not found:
            return dict(status='failed', why=f'exit {rc}')
        return dict(status='ok', samples_per_second=batch / (float(found[-1]) / 1e3), peak_rss_bytes=rss,
                    note='grad only: forward + backward, no optimizer update')


def run_tf(args, rt, folder, name, batch, data, warmup, steps, log):
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / 'tf.json'
        cmd = [sys.executable, __file__, '--child', 'tf', '--model', folder / name, '--data', data,
               '--batch', str(batch), '--steps', str(steps), '--warmup', str(warmup),
               '--threads', str(args.threads), '--json', out]
        if rt == 'tf_xla':
            cmd.append('--jit')
        if MODELS[name][2]:
            cmd.append('--from-logits')
        rc, rss, wall = spawn(cmd, child_env(args.threads), log)
        if rc != 0:
            return dict(status='failed', why=f'exit {rc}')
        r = json.loads(out.read_text())
        r.update(status='ok', peak_rss_bytes=rss, wall_s=wall)
        return r


def summarize(entry, peak_gflops):
    rows = {}
    for rt, trials in entry['trials'].items():
        ok = [t for t in trials if t.get('status') == 'ok']
        if not ok:
            rows[rt] = dict(status=trials[0].get('status', 'failed') if trials else 'unavailable',
                            why=trials[0].get('why') if trials else 'not run')
            continue
        sps = statistics.median(t['samples_per_second'] for t in ok)
        gflops = sps / entry['batch'] * entry['step_gflop']
        rows[rt] = dict(status='ok', samples_per_second=sps, trials=len(ok),
                        peak_rss_mib=statistics.median(t['peak_rss_bytes'] for t in ok) / 2**20,
                        achieved_gflops=gflops,
                        fraction_of_peak=gflops / peak_gflops if peak_gflops else None,
                        note=ok[0].get('note'))
        waits = [t['input_wait_fraction'] for t in ok if t.get('input_wait_fraction') is not None]
        if waits:
            rows[rt]['input_wait_fraction'] = statistics.median(waits)
    t = rows.get('tessera', {})
    for rt in ('tf', 'tf_xla'):
        if t.get('status') == 'ok' and rows.get(rt, {}).get('status') == 'ok':
            rows['tessera'][f'speedup_vs_{rt}'] = t['samples_per_second'] / rows[rt]['samples_per_second']
    return rows


def markdown(results):
    env = results['environment']
    peak = env['peak'].get('gflops')
    lines = ['# Training throughput: Tessera vs TensorFlow 2.21', '',
             f'Generated by `{env["command"]}` at {results["started"]} (commit {env.get("git_commit")}).',
             f'CPU: {env["cpu"]["model"]} ({env["cpu"]["logical_cpus"]} logical CPUs), threads {results["threads"]} '
             f'(inter-op 1), measured fp32 peak {peak and round(peak, 1)} GFLOP/s ({env["peak"]["source"]}).',
             f'Load average before {env["load_average_before"]}, after {env.get("load_average_after")}: '
             'figures from a loaded machine are rough; trials are interleaved and medians reported.',
             f'Tessera command: `{results["tessera_mode"]}`' + (
                 ' (stand-in: forward + backward only, no optimizer)' if results['tessera_mode'] == 'grad' else ''),
             '', 'Peers: ' + '; '.join(f'{LABELS[k]}: {v}' for k, v in results['peer_config'].items()), '',
             '| model | batch | runtime | samples/s | step GFLOP | GFLOP/s | % of peak | peak RSS MiB | Tessera speedup |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for e in results['entries']:
        for rt in results['runtimes']:
            r = e['summary'].get(rt, {})
            if r.get('status') != 'ok':
                lines.append(f'| {e["model"]} | {e["batch"]} | {LABELS[rt]} | {r.get("status", "not run")}'
                             f' ({r.get("why")}) | | | | | |')
                continue
            sp = ''
            if rt != 'tessera':
                s = e['summary'].get('tessera', {}).get(f'speedup_vs_{rt}')
                sp = f'{s:.2f}x' if s else ''
            frac = r.get('fraction_of_peak')
            lines.append(f'| {e["model"]} | {e["batch"]} | {LABELS[rt]}{" (grad only)" if r.get("note", "") and "grad only" in r["note"] else ""}'
                         f' | {r["samples_per_second"]:.0f} | {e["step_gflop"]:.3f} | {r["achieved_gflops"]:.1f}'
                         f' | {"" if frac is None else f"{100 * frac:.1f}%"} | {r["peak_rss_mib"]:.0f} | {sp} |')
    lines += ['', '"Tessera speedup" on a peer row = Tessera samples/s / that peer\'s samples/s. '
              'Target (issue 5): >= 2x TF or >= 80% of peak, whichever is lower.', '',
              'Data files (SHA-256): ' + ', '.join(f'{e["model"]} b{e["batch"]} {e["data_sha256"][:12]}'
                                                  for e in results['entries'])]
    return '\n'.join(lines) + '\n'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--child', choices=('build', 'tf'))
    p.add_argument('--models', default='mlp,cnn')
    p.add_argument('--batches', default='', help='comma list for every model (default: per model)')
    p.add_argument('--trials', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runtimes', default=','.join(RUNTIMES))
    p.add_argument('--out', default=None)
    p.add_argument('--smoke', action='store_true')
    p.add_argument('--tessera', default=None)
    # child arguments
    p.add_argument('--model'), p.add_argument('--data'), p.add_argument('--json')
    p.add_argument('--batch', type=int), p.add_argument('--steps', type=int), p.add_argument('--warmup', type=int)
    p.add_argument('--jit', action='store_true'), p.add_argument('--from-logits', action='store_true')
    args = p.parse_args()
    if args.child == 'build':
        return child_build(args.out)
    if args.child == 'tf':
        return child_tf(args)

    import environment
    cache_root = pathlib.Path(os.environ.get('TESSERA_BENCH_CACHE', pathlib.Path.home() / '.cache/tessera/bench'))
    build = pathlib.Path(os.environ.get('TESSERA_BUILD_DIR', REPO / 'build'))
    args.tessera = args.tessera or os.environ.get('TESSERA_BIN') or str(build / 'tessera')
    out = pathlib.Path(args.out) if args.out else (cache_root / 'train-smoke' if args.smoke else HERE / 'results')
    out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.trials = 1
    models = args.models.split(',')
    runtimes = [r for r in args.runtimes.split(',') if r]
    mode = tessera_mode(args.tessera) if 'tessera' in runtimes else None
    started = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())
    env_info = environment.describe(args.threads, cache_root)
    env_info['command'] = 'python3 bench/train.py ' + ' '.join(sys.argv[1:])
    folder = model_cache(cache_root)
    logs = cache_root / 'train-logs'  # children's output; not part of the results
    logs.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in models:
        batches = [int(b) for b in args.batches.split(',')] if args.batches else list(MODELS[name][3])
        if args.smoke:
            batches = [32]
        for batch in batches:
            data, sha = make_data(folder, name, batch)
            warmup, steps = step_plan(name, batch, args.smoke)
            entry = dict(model=name, batch=batch, data_sha256=sha, warmup_steps=warmup, timed_steps=steps,
                         step_gflop=step_gflop(name, batch), trials={rt: [] for rt in runtimes})
            for trial in range(args.trials):
                order = runtimes[trial % len(runtimes):] + runtimes[:trial % len(runtimes)]
                for rt in order:
                    log = logs / f'{name}_b{batch}_{rt}_t{trial}.log'
                    log.unlink(missing_ok=True)
                    if rt == 'tessera':
                        r = (run_tessera(args, mode, folder, name, batch, warmup, steps, log) if mode
                             else dict(status='unavailable', why=f'{args.tessera} has no train/train-trace/grad --backend'))
                    else:
                        r = run_tf(args, rt, folder, name, batch, data, warmup, steps, log)
                    if r.get('status') == 'failed':
                        print(f'{name} b{batch} {rt} failed; log {log}', file=sys.stderr)
                    entry['trials'][rt].append(r)
                    print(f'{name} b{batch} trial {trial} {rt}: {r.get("samples_per_second", r.get("status"))}',
                          file=sys.stderr)
            entry['summary'] = summarize(entry, env_info['peak'].get('gflops'))
            entries.append(entry)
    env_info['load_average_after'] = os.getloadavg()
    results = dict(started=started, smoke=args.smoke, threads=args.threads, trials=args.trials, runtimes=runtimes,
                   tessera_mode=mode, environment=env_info, entries=entries,
                   peer_config=dict(
                       tessera=f'{mode} --optimizer adam --lr {LR} --threads {args.threads} (OMP_NUM_THREADS={args.threads})',
                       tf='keras.models.load_model + tf.function(step: GradientTape, keras Adam) , TF_ENABLE_ONEDNN_OPTS=1, '
                          f'intra-op {args.threads}, inter-op 1',
                       tf_xla='the same with tf.function(jit_compile=True)'))
    (out / 'train.json').write_text(json.dumps(results, indent=1, default=str))
    (out / 'train.md').write_text(markdown(results))
    print((out / 'train.md').read_text())


if __name__ == '__main__':
    main()
