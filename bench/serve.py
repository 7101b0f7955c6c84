"""Serving benchmark (issue 6, acceptance 4): `tessera serve` over REST and gRPC, batching on
and off, at 1/16/64 closed-loop clients sending batch-1 requests, against TensorFlow 2.21
serving the same SavedModel from a threaded Python gRPC server (bench/tf_grpc_server.py; TF
Serving itself cannot be installed here). Plus the batch-32 comparison with in-process
`tessera bench`. Writes bench/results/serve.{md,json}; never edit those by hand.

    python3 bench/serve.py                      # full matrix, 3 trials of the key cells
    python3 bench/serve.py --models mobilenetv2 --trials 1 --seconds 2
    python3 bench/serve.py --smoke              # CI: the MLP, 1 trial, short cells

Each server is one child process per (model, configuration, trial); within a trial the
configurations run in an order rotated by one per trial. Cells run one after another (never
two loads at once). Medians over trials.
"""
import argparse
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import serve_load  # noqa: E402
import serve_report  # noqa: E402

MODELS = {  # bench name -> zoo entry
    'mlp': 'mlp_k3',
    'mobilenetv2': 'mobilenetv2_k3',
    'resnet50': 'resnet50_k3',
}
# The batching configuration served here (text BatchingParameters, TF Serving's format).
# max_batch_size 32 for 64 clients: TF Serving's batching guide suggests about twice
# max_batch_size client threads, so one batch fills while the other runs. num_batch_threads 2:
# TF Serving's default (the CPU count); `tessera serve` gives each of the two batches one of the
# two intra-op threads (intra_op_threads_per_run), so they run side by side without barriers.
# Measured at 64 clients, MobileNetV2 gRPC: 1190-1320 req/s; one batch thread at
# max_batch_size 64 (this file's earlier setting): 970-1100, because a batch of 64 held every
# client, and the 17 ms in which its answers went out and the re-sent requests came back left
# the cores idle; max_batch_size 32 with one batch thread on both cores: 910-940 (the handler
# threads' work preempted one of the two threads and the other waited at each barrier).
# Timeout 20 ms: a batch's clients re-send their requests over 7-11 ms (64 gRPC calls parsed on
# the 2 cores the clients run on); 10 ms gave the same throughput with p99 62-73 ms against a
# bound of 54. The price is at lower concurrency: fewer clients than max_batch_size never fill a
# batch, so each waits the full timeout (the 1- and 16-client rows). allowed_batch_sizes: the
# cpu executable keeps a memory plan per input shape (at most 16, then it starts over), so 32
# distinct batch sizes would re-plan on most calls; padding to 7 sizes keeps every plan warm.
BATCHING = dict(max_batch_size=32, batch_timeout_micros=20000, max_enqueued_batches=100,
                num_batch_threads=2, allowed_batch_sizes=[1, 2, 4, 8, 16, 24, 32])


def threads_per_batch():
    """Intra-op threads each batch runs on in `tessera serve` (intra_op_threads_per_run)."""
    return max(1, SERVER_THREADS // BATCHING['num_batch_threads'])


def batching_text():
    lines = []
    for k, v in BATCHING.items():
        if isinstance(v, list):
            lines += [f'{k}: {x}' for x in v]
        else:
            lines.append(f'{k} {{ value: {v} }}')
    return '\n'.join(lines) + '\n'
SERVER_THREADS = 2  # --tensorflow_intra_op_parallelism (and TF's intra-op): the core count here
TESSERA_ENV = {}  # extra environment of Tessera children (--omp-wait-policy)
METRICS_PATH = '/monitoring/prometheus/metrics'


def batch_histogram(server):
    """(sum, count) of Tessera's batch-size histogram (padded rows per executed batch), or None."""
    if server.kind != 'tessera' or not server.ports.get('rest'):
        return None
    import urllib.request
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{server.ports["rest"]}{METRICS_PATH}', timeout=30) as f:
            text = f.read().decode()
    except OSError:
        return None
    vals = {}
    for line in text.splitlines():
        for name in ('batch_size_sum', 'batch_size_count'):
            if line.startswith(f':tessera:serving:{name}{{'):
                vals[name] = vals.get(name, 0.0) + float(line.rsplit(' ', 1)[1])
    return (vals.get('batch_size_sum', 0.0), vals.get('batch_size_count', 0.0))


def zoo_dir():
    return pathlib.Path(os.environ.get('TESSERA_ZOO_DIR', pathlib.Path.home() / '.cache/tessera/zoo'))


def tessera_bin(arg):
    if arg:
        return pathlib.Path(arg)
    if os.environ.get('TESSERA_BIN'):
        return pathlib.Path(os.environ['TESSERA_BIN'])
    return pathlib.Path(os.environ.get('TESSERA_BUILD_DIR', REPO / 'build')) / 'tessera'


def quiet_env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1')
    env.update({k: str(v) for k, v in extra.items()})
    return env


def sha256_arrays(arrays):
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


# ---- model preparation: version folder, request payloads, reference outputs ----

def prepare_model(name, work):
    entry_dir = zoo_dir() / MODELS[name]
    entry = json.loads((entry_dir / 'entry.json').read_text())
    base = work / 'models' / name
    (base).mkdir(parents=True, exist_ok=True)
    version = base / '1'
    if not version.exists():
        version.symlink_to((entry_dir / 'saved_model').resolve())
    info = dict(name=name, zoo_entry=MODELS[name], saved_model=str((entry_dir / 'saved_model').resolve()),
                base_path=str(base), signature=entry.get('signature', 'serving_default'),
                inputs_spec=entry['inputs'], requests={})
    from tensorflow_serving.apis import predict_pb2  # noqa: import here: it pulls in TensorFlow
    import tensorflow as tf
    for b in (1, 32):
        x = dict(np.load(entry_dir / f'inputs_b{b}.npz'))
        ref = dict(np.load(entry_dir / f'outputs_b{b}.npz'))
        req = predict_pb2.PredictRequest()
        req.model_spec.name = name
        req.model_spec.signature_name = info['signature']
        for k, v in x.items():
            req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
        pb = work / f'{name}_b{b}.pb'
        pb.write_bytes(req.SerializeToString())
        # Row format, as most TF Serving REST clients send it (json.dumps of Python floats).
        rows = [{k: v[i].tolist() for k, v in x.items()} for i in range(b)]
        if len(x) == 1:
            rows = [next(iter(r.values())) for r in rows]
        body = work / f'{name}_b{b}.json'
        body.write_text(json.dumps({'signature_name': info['signature'], 'instances': rows}))
        info['requests'][b] = dict(grpc=str(pb), rest=str(body), grpc_bytes=pb.stat().st_size,
                                   rest_bytes=body.stat().st_size, sha256=sha256_arrays(x),
                                   npz=str(entry_dir / f'inputs_b{b}.npz'))
        info.setdefault('reference', {})[b] = ref
    return info


def numeric_match(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return False, f'shape {got.shape} != {ref.shape}'
    err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    tol = 1e-4 * float(np.max(np.abs(ref))) + 1e-6
    return err <= tol, f'max|err| {err:.3g} (tol {tol:.3g})'


def check_outputs(info, server):
    """One batch-1 request through each protocol the server speaks, compared with the zoo's
    TensorFlow reference, so the benchmark never times wrong answers."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    import tensorflow as tf
    ref = info['reference'][1]
    out = {}
    req = predict_pb2.PredictRequest.FromString(pathlib.Path(info['requests'][1]['grpc']).read_bytes())
    with grpc.insecure_channel(f'127.0.0.1:{server.ports["grpc"]}',
                               options=[('grpc.max_receive_message_length', -1)]) as ch:
        resp = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=120)
    for k, r in ref.items():
        ok, why = numeric_match(tf.make_ndarray(resp.outputs[k]), r)
        out[f'grpc:{k}'] = dict(ok=ok, detail=why)
    if server.ports.get('rest'):
        import urllib.request
        body = pathlib.Path(info['requests'][1]['rest']).read_bytes()
        url = f'http://127.0.0.1:{server.ports["rest"]}/v1/models/{info["name"]}:predict'
        with urllib.request.urlopen(urllib.request.Request(url, body, {'Content-Type': 'application/json'}),
                                    timeout=120) as f:
            pred = json.loads(f.read())['predictions']
        for k, r in ref.items():
            got = pred if len(ref) == 1 else [p[k] for p in pred]
            ok, why = numeric_match(got, r)
            out[f'rest:{k}'] = dict(ok=ok, detail=why)
    return out


# ---- servers ----

class Server:
    def __init__(self, kind, cmd, env, log, work):
        self.kind, self.cmd, self.ports = kind, cmd, {}
        self.port_file = pathlib.Path(tempfile.mkstemp(dir=work, suffix='.ports')[1])
        self.port_file.unlink()
        self.cmd = cmd + ['--port_file', str(self.port_file)]
        self.log_path = log
        self.log = open(log, 'wb')
        self.proc = subprocess.Popen(self.cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=REPO)
        self.started = time.perf_counter()

    def wait_ready(self, timeout=900):
        while time.perf_counter() - self.started < timeout:
            if self.port_file.exists():
                self.ports = json.loads(self.port_file.read_text())
                self.ready_seconds = time.perf_counter() - self.started
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        tail = pathlib.Path(self.log_path).read_text(errors='replace')[-3000:]
        raise RuntimeError(f'{self.kind} server did not start (exit {self.proc.returncode}): {tail}')

    def cpu_seconds(self):
        try:
            f = pathlib.Path(f'/proc/{self.proc.pid}/stat').read_text().rsplit(')', 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
        except (OSError, IndexError, ValueError):
            return None

    def rss_mib(self):
        try:
            for line in pathlib.Path(f'/proc/{self.proc.pid}/status').read_text().splitlines():
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# Server kinds: 'tessera' (intra-op SERVER_THREADS, one run at a time), 'tessera_inter2' (runs
# side by side: intra-op 1, inter-op 2, each run on its own copy of the plan; batching off, the
# served batch-32 cells and batch-1 requests at the most clients), 'tf'.
INTER2 = dict(intra=1, inter=2)


def start_tessera(binary, info, batching, work, tag, intra=SERVER_THREADS, inter=1):
    cmd = [str(binary), 'serve', '--model_name', info['name'], '--model_base_path', info['base_path'],
           '--port', '0', '--rest_api_port', 'auto', '--file_system_poll_wait_seconds', '0',
           '--tensorflow_intra_op_parallelism', str(intra), '--tensorflow_inter_op_parallelism', str(inter),
           '--host', '127.0.0.1']
    monitoring = work / 'monitoring.txt'
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n')
    cmd += ['--monitoring_config_file', str(monitoring)]
    if batching:
        params = work / 'batching.txt'
        params.write_text(batching_text())
        cmd += ['--enable_batching', '--batching_parameters_file', str(params)]
    return Server('tessera', cmd, quiet_env(**TESSERA_ENV), work / f'{tag}.log', work)


def start_tf(info, work, tag):
    cmd = [sys.executable, str(HERE / 'tf_grpc_server.py'), info['saved_model'], '--model_name', info['name'],
           '--intra_op', str(SERVER_THREADS), '--inter_op', '1', '--workers', '64']
    return Server('tf', cmd, quiet_env(TF_ENABLE_ONEDNN_OPTS=1), work / f'{tag}.log', work)


def in_process(binary, info, batch, seconds, work, tag, threads=SERVER_THREADS):
    """`tessera bench` at `batch` in its own process: the in-process throughput the served
    figure is compared with (same inputs file, same thread count)."""
    npz = work / f'{info["name"]}_inproc_b{batch}.npz'
    if not npz.exists():
        src = dict(np.load(info['requests'][32 if batch > 1 else 1]['npz']))
        reps = -(-batch // 32)
        np.savez(npz, **{k: np.concatenate([v] * reps)[:batch] for k, v in src.items()})
    out = work / f'{tag}.json'
    cmd = [str(binary), 'bench', info['base_path'] + '/1', '--signature', info['signature'], '--target', 'cpu',
           '--batch', str(batch), '--threads', str(threads), '--inputs', str(npz), '--warmup', '2',
           '--iters', '3', '--min-seconds', str(seconds), '--json', str(out)]
    # At least 3 timed calls, continued until `seconds` have passed.
    proc = subprocess.run(cmd, env=quiet_env(**TESSERA_ENV), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f'tessera bench exit {proc.returncode}: {proc.stderr[-2000:]}')
    run = next(r for r in json.loads(out.read_text())['runs'] if r['batch'] == batch)
    return dict(batch=batch, threads=threads, throughput_per_s=run['throughput_per_s'], p50_ms=run['latency_ms']['p50'],
                p99_ms=run['latency_ms']['p99'], iters=run['iters'])


# ---- the matrix ----

def cells_for(kind, batching, clients, key_only):
    """(protocol, clients, request batch) cells one server configuration runs."""
    if kind == 'tessera_inter2':  # runs side by side: the most clients, and served batch-32 throughput
        return [('grpc', max(clients), 1), ('grpc', 2, 32), ('grpc', 4, 32)]
    cells = []
    protocols = ('grpc',) if kind == 'tf' else ('grpc', 'rest')
    for proto in protocols:
        for c in clients:
            if key_only and c != max(clients):
                continue
            cells.append((proto, c, 1))
    if kind == 'tessera' and not batching:
        cells += [('grpc', 1, 32), ('grpc', 2, 32)]  # served batch-32 throughput
    return cells


def run_cell(server, info, proto, clients, batch, args):
    load0 = os.getloadavg()[0]
    hist0 = batch_histogram(server)
    cpu0 = server.cpu_seconds()
    if proto == 'grpc':
        r = serve_load.run_grpc(server.ports['grpc'], info['requests'][batch]['grpc'], clients, args.seconds,
                                args.warmup)
    else:
        r = serve_load.run_rest(server.ports['rest'], f'/v1/models/{info["name"]}:predict',
                                info['requests'][batch]['rest'], clients, args.seconds, args.warmup)
    cpu1 = server.cpu_seconds()
    hist1 = batch_histogram(server)
    r['server_cpu_s'] = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    if hist0 and hist1 and hist1[1] > hist0[1]:
        # Warm-up included: batches executed during the whole cell, padded rows per batch.
        r['batches'] = hist1[1] - hist0[1]
        r['mean_padded_batch'] = (hist1[0] - hist0[0]) / r['batches']
    r['requests_per_s'] = r['requests'] / r['seconds']
    r['samples_per_s'] = r['requests_per_s'] * batch
    r['load_before'] = load0
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', default='mlp,mobilenetv2,resnet50')
    ap.add_argument('--clients', default='1,16,64')
    ap.add_argument('--trials', type=int, default=3, help='trials of the key cells (64 clients, batch 32)')
    ap.add_argument('--full-trials', type=int, default=1, help='trials that run every cell')
    ap.add_argument('--seconds', type=float, default=4.0, help='measured seconds per cell')
    ap.add_argument('--warmup', type=float, default=1.0, help='unmeasured seconds before each cell')
    ap.add_argument('--no-tf', action='store_true', help='skip the TensorFlow baseline')
    ap.add_argument('--out', default=None, help='results folder (default bench/results; --smoke: a temp dir)')
    ap.add_argument('--tessera', default=None)
    ap.add_argument('--smoke', action='store_true', help='CI: the MLP, clients 1,4, 1 trial, 1 s cells')
    ap.add_argument('--omp-wait-policy', choices=('passive', 'active'), default=None,
                    help='OMP_WAIT_POLICY for every Tessera child (default: the CLI\'s own short spin); '
                    'passive suits a machine shared with other jobs')
    ap.add_argument('--render', metavar='SERVE_JSON', default=None,
                    help='only rewrite serve.md (and the summary in the JSON) from an earlier run\'s serve.json')
    args = ap.parse_args()
    if args.render:
        path = pathlib.Path(args.render)
        results = json.loads(path.read_text())
        results['summary'] = serve_report.summarise(results)
        path.write_text(json.dumps(results, indent=1, default=float) + '\n')
        path.with_suffix('.md').write_text(serve_report.markdown(results))
        return 0
    if args.omp_wait_policy:
        TESSERA_ENV['OMP_WAIT_POLICY'] = args.omp_wait_policy
    if args.smoke:
        args.models, args.clients, args.trials, args.full_trials = 'mlp', '1,4', 1, 1
        args.seconds, args.warmup = 1.0, 0.5
    models = [m for m in args.models.split(',') if m]
    clients = [int(c) for c in args.clients.split(',')]
    for m in models:
        if m not in MODELS:
            raise SystemExit(f'unknown model {m}; known: {", ".join(MODELS)}')
    binary = tessera_bin(args.tessera)
    if not binary.exists():
        raise SystemExit(f'{binary} not found (build first, or pass --tessera)')
    why = serve_load.available()
    if why:
        raise SystemExit(why)
    out_dir = pathlib.Path(args.out) if args.out else (
        pathlib.Path(tempfile.mkdtemp(prefix='serve_smoke_')) if args.smoke else HERE / 'results')
    out_dir.mkdir(parents=True, exist_ok=True)
    serve_load.grpc_client()  # compile before anything is timed

    import environment
    env_info = dict(cpu=environment.cpu_model(), commit=environment.git_commit(),
                    command='python3 bench/serve.py ' + ' '.join(sys.argv[1:]),
                    load_start=os.getloadavg(), started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    try:
        env_info['wrk'] = subprocess.run(['wrk', '--version'], capture_output=True, text=True).stdout.split('\n')[0]
    except OSError:
        pass
    configs = ([('tessera', False), ('tessera', True), ('tessera_inter2', False)]
               + ([] if args.no_tf else [('tf', False)]))
    results = dict(smoke=args.smoke, models=[], cells=[], in_process=[], checks=[],
                   batching_parameters=BATCHING, server_threads=SERVER_THREADS, clients=clients,
                   seconds=args.seconds, warmup=args.warmup, trials=args.trials, full_trials=args.full_trials,
                   servers={
                       'tessera': dict(binary=str(binary), env=dict(TESSERA_ENV) or 'CLI default (GOMP_SPINCOUNT=3000)',
                                       flags='--tensorflow_intra_op_parallelism '
                                       f'{SERVER_THREADS}; REST/gRPC thread defaults (REST io threads 1 per CPU, plus up to 128 handlers with batching; gRPC quota '
                                       'max(1024, 4 x CPUs)); batching: '
                                       '--enable_batching --batching_parameters_file (see batching_parameters); '
                                       f'the {SERVER_THREADS} intra-op threads are shared by the batches that run at '
                                       f'once: {threads_per_batch()} each'),
                       'tf': dict(how='bench/tf_grpc_server.py: TF 2.21 tf.saved_model.load, signature in '
                                  'tf.function (graph mode), grpc.server(ThreadPoolExecutor(64)), '
                                  f'intra-op {SERVER_THREADS}, inter-op 1, oneDNN on, no batching',
                                  note='TF Serving (tensorflow_model_server) itself could not be run here: '
                                  'it is not installable in this environment (no network, no binary)')},
                   environment=env_info)
    with tempfile.TemporaryDirectory(prefix='serve_bench_') as tmp:
        work = pathlib.Path(tmp)
        infos = {}
        for m in models:
            print(f'[serve] preparing {m}', file=sys.stderr, flush=True)
            infos[m] = prepare_model(m, work)
            results['models'].append({k: v for k, v in infos[m].items() if k != 'reference'})
        for trial in range(args.trials):
            key_only = trial >= args.full_trials
            for m in models:
                info = infos[m]
                # b1 and b32 on every thread; one batch of the batching server on the threads it gets.
                runs = [(1, SERVER_THREADS), (32, SERVER_THREADS), (BATCHING['max_batch_size'], threads_per_batch())]
                for b, threads in dict.fromkeys(runs):
                    tag = f'{m}_inproc_b{b}_x{threads}_t{trial}'
                    try:
                        r = in_process(binary, info, b, max(1.0, args.seconds / 2), work, tag, threads)
                    except (RuntimeError, StopIteration, subprocess.TimeoutExpired) as e:
                        r = dict(batch=b, threads=threads, error=str(e)[-500:])
                    results['in_process'].append(dict(r, model=m, trial=trial))
                rot = trial % len(configs)
                for kind, batching in configs[rot:] + configs[:rot]:
                    tag = f'{m}_{kind}_{"batch" if batching else "nobatch"}_t{trial}'
                    print(f'[serve] trial {trial}: {tag}', file=sys.stderr, flush=True)
                    server = (start_tf(info, work, tag) if kind == 'tf'
                              else start_tessera(binary, info, batching, work, tag, **INTER2) if kind == 'tessera_inter2'
                              else start_tessera(binary, info, batching, work, tag))
                    try:
                        server.wait_ready()
                        # Every trial: also the warm-up call (TF traces its function on the first
                        # call; 64 concurrent first calls took longer than a cell).
                        outputs = check_outputs(info, server)
                        if trial == 0:
                            results['checks'].append(dict(model=m, server=kind, batching=batching,
                                                          ready_seconds=server.ready_seconds,
                                                          outputs=outputs))
                        for proto, c, b in cells_for(kind, batching, clients, key_only):
                            try:
                                r = run_cell(server, info, proto, c, b, args)
                            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                                r = dict(error=str(e)[-1000:])
                            cell = dict(model=m, server=kind, batching=batching, protocol=proto, clients=c,
                                        request_batch=b, trial=trial, **r)
                            results['cells'].append(cell)
                            print(f'[serve]   {proto} c={c} b={b}: '
                                  + (f'{r["requests_per_s"]:.1f} req/s p50 {r["p50_ms"]:.2f} p99 '
                                     f'{r["p99_ms"]:.2f} ms errors {r["errors"]}' if 'error' not in r
                                     else r['error'][-300:]), file=sys.stderr, flush=True)
                        results['checks'].append(dict(model=m, server=kind, batching=batching, trial=trial,
                                                      peak_rss_mib=server.rss_mib()))
                    except RuntimeError as e:
                        results['cells'].append(dict(model=m, server=kind, batching=batching, trial=trial,
                                                     error=str(e)[-1000:]))
                        print(f'[serve]   FAILED: {str(e)[-500:]}', file=sys.stderr, flush=True)
                    finally:
                        server.stop()
    env_info['load_end'] = os.getloadavg()
    env_info['finished'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    # The raw cells first, so a bug in the summary never loses a run (fix it, then --render).
    (out_dir / 'serve.json').write_text(json.dumps(results, indent=1, default=float) + '\n')
    results['summary'] = serve_report.summarise(results)
    (out_dir / 'serve.json').write_text(json.dumps(results, indent=1, default=float) + '\n')
    (out_dir / 'serve.md').write_text(serve_report.markdown(results))
    print(f'[serve] wrote {out_dir / "serve.md"}', file=sys.stderr)
    bad = [c for c in results['checks'] for o in c.get('outputs', {}).values() if not o['ok']]
    if bad:
        print(f'[serve] OUTPUT MISMATCH: {bad}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
