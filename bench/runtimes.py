"""The runtimes bench/run.py compares: how each child is started, and whether it can be.

Every run is a fresh child process; its peak RSS comes from wait4() (ru_maxrss of that child
alone). Python peers run bench/child.py; Tessera runs `tessera bench` (bench_cli contract), once
per batch because its --inputs file fixes the batch.
"""
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
NAMES = ('tessera', 'tf_onednn', 'tf_eigen', 'tf_xla', 'ort', 'openvino')
CHILD_TIMEOUT_S = 1800
ONNX_OPSET = 17


def quiet_env(**extra):
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1')
    env.update({k: str(v) for k, v in extra.items()})
    return env


def spawn(cmd, env, log_path, timeout=CHILD_TIMEOUT_S, append=False):
    """Runs cmd; returns (exit code, peak RSS bytes of this child, wall seconds). The child's
    output goes to log_path (appended to it with `append`)."""
    start = time.perf_counter()
    with open(log_path, 'ab' if append else 'wb') as log:
        proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024, time.perf_counter() - start


def log_tail(path, lines=15):
    text = pathlib.Path(path).read_text(errors='replace').splitlines()
    useful = [line for line in text if not line.startswith(('I0000', 'W0000', 'WARNING: All log'))]
    return '\n'.join(useful[-lines:])


def peers_python():
    venv = pathlib.Path(os.environ.get('TESSERA_BENCH_VENV',
                                       pathlib.Path.home() / '.cache/tessera/bench/venv-peers'))
    python = venv / 'bin' / 'python'
    return str(python) if python.exists() else sys.executable


def importable(python, modules):
    code = ('import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None '
            f'for m in {list(modules)!r}}}))')
    try:
        out = subprocess.run([python, '-c', code], capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {m: False for m in modules}


class PythonPeer:
    """A peer runtime driven by bench/child.py."""

    def __init__(self, name, child_runtime, python, env, module, config_note):
        self.name, self.child_runtime, self.python = name, child_runtime, python
        self.env, self.module, self.config_note = env, module, config_note
        self.missing = None

    def available(self, info):
        return self.missing is None and (self.child_runtime != 'ort' or info.get('onnx', {}).get('path'))

    def why_unavailable(self, info):
        if self.missing:
            return self.missing
        return f'ONNX conversion failed: {info.get("onnx", {}).get("error", "not converted")}'

    def describe(self):
        return dict(kind='python child (bench/child.py)', python=self.python, env=self.env,
                    settings=self.config_note, unavailable=self.missing)

    def run(self, info, inputs, prefix, threads):
        spec = dict(model=info['name'], model_dir=info['model_dir'], signature=info['signature'],
                    input_names=[i['name'] for i in info['inputs']], output_names=info['outputs'],
                    onnx=info.get('onnx', {}).get('path'), onnx_opset=ONNX_OPSET,
                    threads=threads, out=f'{prefix}.json', runs=[])
        for b, inp in inputs.items():
            spec['runs'].append(dict(batch=b, inputs=inp['path'], warmup=inp['warmup'],
                                     iters=inp['iters'], max_seconds=inp['max_seconds'],
                                     save_outputs=f'{prefix}_b{b}_outputs.npz'))
        spec_path = pathlib.Path(f'{prefix}_spec.json')
        spec_path.write_text(json.dumps(spec, indent=1))
        env = quiet_env(OMP_NUM_THREADS=threads, **self.env)
        cmd = [self.python, str(HERE / 'child.py'), '--runtime', self.child_runtime,
               '--spec', str(spec_path)]
        code, rss, wall = spawn(cmd, env, f'{prefix}.log')
        if code != 0 or not os.path.exists(spec['out']):
            return dict(error=f'exit {code}: {log_tail(f"{prefix}.log")}', peak_rss_bytes=rss)
        res = json.loads(open(spec['out']).read())
        res.update(peak_rss_bytes=rss, process_seconds=wall,
                   outputs={str(r['batch']): r['save_outputs'] for r in spec['runs']})
        return res


class Tessera:
    """`tessera bench` (bench_cli.md); unavailable until the CLI has the command.
    `tessera_bf16` (opt-in: --runtimes ...,tessera_bf16) is the same with --precision bf16
    (docs/bf16.md); its outputs are not expected to pass the fp32 cross-check."""
    name = 'tessera'

    def __init__(self, binary, precision='fp32'):
        self.binary = pathlib.Path(binary)
        self.precision = precision
        if precision != 'fp32':
            self.name = f'tessera_{precision}'
        self.missing = self._probe()

    def _probe(self):
        if not self.binary.exists():
            return f'{self.binary} not built'
        try:
            out = subprocess.run([str(self.binary), 'bench', '--help'], capture_output=True,
                                 text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f'{self.binary} bench --help: {e}'
        text = out.stdout + out.stderr
        if 'unknown command' in text:
            return f'{self.binary} has no `bench` command yet'
        return None

    def available(self, info):
        return self.missing is None

    def why_unavailable(self, info):
        return self.missing

    def describe(self):
        return dict(kind='tessera bench CLI', binary=str(self.binary), unavailable=self.missing,
                    settings=dict(target='cpu', precision=self.precision, artifact='tessera compile -> .tsr once per trial, then tessera bench on the .tsr',
                                  threads='--threads (harness value)',
                                  inputs='--inputs npz per batch (same as the peers)'))

    def run(self, info, inputs, prefix, threads):
        res = dict(runtime=self.name, runs=[], outputs={}, peak_rss_bytes=0,
                   compile_seconds=0.0, load_seconds=0.0, process_seconds=0.0, cli_json=[])
        # Deployment as a user would do it: compile once to a .tsr (its wall time is the
        # compile time), then every benchmark process loads the artifact, as the peers load
        # their converted or cached models. Peak RSS is the serving process's, not the compiler's.
        artifact = f'{prefix}.tsr'
        cmd = [str(self.binary), 'compile', info['model_dir'], '--signature', info['signature'],
               '--target', 'cpu', '-o', artifact]
        if self.precision != 'fp32':
            cmd[-2:-2] = ['--precision', self.precision]
        code, _, wall = spawn(cmd, quiet_env(), f'{prefix}_compile.log')
        if code != 0 or not os.path.exists(artifact):
            res['error'] = f'compile: exit {code}: {log_tail(f"{prefix}_compile.log")}'
            return res
        res['compile_seconds'] = wall
        try:
            self._bench(info, inputs, prefix, threads, artifact, res)
        finally:
            os.unlink(artifact)  # hundreds of MiB per model
        return res

    def _bench(self, info, inputs, prefix, threads, artifact, res):
        for b, inp in inputs.items():
            out_json, out_npz = f'{prefix}_b{b}.json', f'{prefix}_b{b}_outputs.npz'
            cmd = [str(self.binary), 'bench', artifact, '--signature', info['signature'],
                   '--target', 'cpu', '--batch', str(b), '--threads', str(threads),
                   '--warmup', str(inp['warmup']), '--iters', str(inp['iters']),
                   '--min-seconds', '0', '--inputs', inp['path'], '--json', out_json,
                   '--save-outputs', out_npz]
            code, rss, wall = spawn(cmd, quiet_env(), f'{prefix}_b{b}.log')
            res['peak_rss_bytes'] = max(res['peak_rss_bytes'], rss)
            res['process_seconds'] += wall
            if code != 0 or not os.path.exists(out_json):
                res['error'] = f'batch {b}: exit {code}: {log_tail(f"{prefix}_b{b}.log")}'
                return
            cli = json.loads(open(out_json).read())
            res['cli_json'].append(cli)
            res['load_seconds'] = max(res['load_seconds'], cli.get('load_seconds', 0.0))
            run = next((r for r in cli.get('runs', []) if r.get('batch') == b), None)
            if run is None:
                res['error'] = f'batch {b}: {out_json} has no run for batch {b}'
                return
            run = dict(run, profile=self._profile(info, inp, prefix, threads, artifact, b))
            res['runs'].append(run)
            res['outputs'][str(b)] = out_npz


    def _profile(self, info, inp, prefix, threads, artifact, b):
        """Per-op shares from a separate `--profile` process, so the timer around every op
        never touches the timed numbers above. None if it fails (the timing still stands)."""
        out_json = f'{prefix}_b{b}_profile.json'
        cmd = [str(self.binary), 'bench', artifact, '--signature', info['signature'],
               '--target', 'cpu', '--batch', str(b), '--threads', str(threads),
               '--warmup', '2', '--iters', str(max(5, inp['iters'] // 4)), '--min-seconds', '0',
               '--inputs', inp['path'], '--json', out_json, '--profile']
        code, _, _ = spawn(cmd, quiet_env(), f'{prefix}_b{b}_profile.log')
        if code != 0 or not os.path.exists(out_json):
            return None
        run = next((r for r in json.loads(open(out_json).read()).get('runs', []) if r.get('batch') == b), {})
        return run.get('profile')


def make(names, tessera_bin, env_info, threads):
    build = pathlib.Path(os.environ.get('TESSERA_BUILD_DIR', REPO / 'build'))
    tessera_bin = tessera_bin or pathlib.Path(os.environ.get('TESSERA_BIN', build / 'tessera'))
    peers = peers_python()
    have = importable(peers, ('tensorflow', 'onnxruntime', 'openvino', 'tf2onnx'))
    env_info['peers_python'] = peers
    env_info['peers_importable'] = have
    env_info['packages'].update(env_info_versions(peers))
    out = []
    for name in names:
        if name in ('tessera', 'tessera_bf16'):
            out.append(Tessera(tessera_bin, 'bf16' if name == 'tessera_bf16' else 'fp32'))
            continue
        if name in ('tf_onednn', 'tf_eigen', 'tf_xla'):
            onednn = '0' if name == 'tf_eigen' else '1'
            rt = PythonPeer(name, 'tf_xla' if name == 'tf_xla' else 'tf', sys.executable,
                            dict(TF_ENABLE_ONEDNN_OPTS=onednn), 'tensorflow',
                            dict(TF_ENABLE_ONEDNN_OPTS=onednn, intra_op=threads, inter_op=1,
                                 jit_compile=name == 'tf_xla',
                                 call='tf.function wrapping the serving_default signature'))
        elif name == 'ort':
            rt = PythonPeer(name, 'ort', peers, {}, 'onnxruntime', dict(
                conversion=f'tf2onnx --saved-model, opset {ONNX_OPSET}',
                graph_optimization_level='ORT_ENABLE_ALL', intra_op=threads, inter_op=1,
                allow_spinning='1 (ORT default, set explicitly)'))
        elif name == 'openvino':
            rt = PythonPeer(name, 'openvino', peers, {}, 'openvino', dict(
                reads='SavedModel directly (Core.read_model)', hint='LATENCY b1 / THROUGHPUT b>1',
                inference_num_threads=threads, inference_precision='f32',
                throughput_calls='batch split across NUM_STREAMS async requests per call'))
        else:
            raise SystemExit(f'unknown runtime {name}; known: {", ".join(NAMES)}, tessera_bf16')
        if not have.get(rt.module):
            rt.missing = f'{rt.module} not importable by {rt.python} (run bench/setup.sh)'
        out.append(rt)
    return out


def env_info_versions(python):
    code = ('import json\nfrom importlib.metadata import version, PackageNotFoundError\nout={}\n'
            'for n in ("onnxruntime","openvino","tf2onnx","onnx"):\n'
            '    try: out[n]=version(n)\n    except PackageNotFoundError: out[n]=None\n'
            'print(json.dumps(out))')
    try:
        return json.loads(subprocess.run([python, '-c', code], capture_output=True, text=True,
                                         timeout=60).stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def prepare_onnx(info, cache_dir, env_info, rts):
    """tf2onnx conversion, once per model and tf2onnx version (cached beside the model)."""
    ort = next((rt for rt in rts if rt.name == 'ort'), None)
    if ort is None or ort.missing:
        return
    if not env_info['peers_importable'].get('tf2onnx'):
        info['onnx'] = dict(error='tf2onnx not importable (run bench/setup.sh)')
        return
    version = env_info['packages'].get('tf2onnx')
    folder = cache_dir / info['name']
    path = folder / f'model.tf2onnx-{version}-opset{ONNX_OPSET}.onnx'
    meta_path = path.with_suffix('.json')
    if path.exists() and meta_path.exists():
        info['onnx'] = json.loads(meta_path.read_text())
        return
    print(f'[bench] converting {info["name"]} to ONNX (tf2onnx {version})', file=sys.stderr, flush=True)
    cmd = [ort.python, '-m', 'tf2onnx.convert', '--saved-model', info['model_dir'],
           '--signature_def', info['signature'], '--opset', str(ONNX_OPSET), '--output', str(path)]
    code, _, wall = spawn(cmd, quiet_env(), str(folder / 'tf2onnx.log'))
    if code != 0 or not path.exists():
        info['onnx'] = dict(error=f'tf2onnx exit {code}: {log_tail(folder / "tf2onnx.log", 5)}')
        return
    fix_log = folder / 'onnx_fixups.log'
    code, _, _ = spawn([ort.python, str(HERE / 'onnx_fixups.py'), str(path)], quiet_env(),
                       str(fix_log))
    if code != 0:
        path.unlink()
        info['onnx'] = dict(error=f'onnx_fixups exit {code}: {log_tail(fix_log, 5)}')
        return
    info['onnx'] = dict(path=str(path), tf2onnx=version, opset=ONNX_OPSET,
                        convert_seconds=round(wall, 1),
                        fixups=pathlib.Path(fix_log).read_text().strip().split(': ', 1)[-1])
    meta_path.write_text(json.dumps(info['onnx']))
