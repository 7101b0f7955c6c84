"""CI smoke run of the benchmark harness (bench/run.py --smoke): structure only, no timing
assertions (benchmarks never assert speed in CI). Peers that are not installed here (ONNX
Runtime / OpenVINO live in bench/setup.sh's venv) and a `tessera` without the `bench` command
must show up as "unavailable", never as numbers."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tessera_testlib import BUILD, REPO

sys.path.insert(0, str(REPO / 'bench'))
import run as bench_run  # noqa: E402

RUNTIMES = ('tessera', 'tf_onednn', 'tf_eigen', 'tf_xla', 'ort', 'openvino')


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    env = dict(os.environ, TESSERA_BUILD_DIR=str(BUILD),
               TESSERA_BENCH_CACHE=os.environ.get('TESSERA_BENCH_CACHE',
                                                  str(tmp_path_factory.mktemp('cache'))))
    proc = subprocess.run([sys.executable, str(REPO / 'bench/run.py'), '--smoke', '--out', str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / 'results.json').read_text()), (out / 'results.md').read_text(), proc


def test_smoke_results_structure(smoke):
    results, _, _ = smoke
    assert results['smoke'] is True
    assert results['batches'] == [1, 32] and results['threads'] == 2
    env = results['environment']
    assert env['cpu']['model'] and env['command'].startswith('python3 bench/run.py --smoke')
    assert 'gflops' in env['peak'] and env['peak']['source']
    assert set(results['runtimes']) == set(RUNTIMES)
    [model] = results['models']
    assert model['name'] == 'mlp' and model['gflop_per_sample'] == pytest.approx(
        2 * (784 * 512 + 512 * 256 + 256 * 10) / 1e9)
    assert {len(i['sha256']) for i in model['inputs'].values()} == {64}
    rows = results['summary']['mlp']['runtimes']
    assert set(rows) == set(RUNTIMES)
    for name, row in rows.items():
        assert row['status'] in ('ok', 'unavailable'), (name, row)
        if row['status'] == 'unavailable':
            assert row['why'] and 'b1' not in row  # no numbers for a missing runtime
            continue
        assert row['match'] == 'ok', (name, row)
        for b in ('b1', 'b32'):
            assert row[b]['p50_ms'] > 0 and row[b]['throughput_per_s'] > 0
        assert row['peak_rss_mib'] > 1
    # TensorFlow is always installed: its configurations must have run.
    for name in ('tf_onednn', 'tf_eigen', 'tf_xla'):
        assert rows[name]['status'] == 'ok'


def test_smoke_tessera_column_is_honest(smoke):
    results, markdown, _ = smoke
    tessera = results['summary']['mlp']['runtimes']['tessera']
    probe = subprocess.run([str(BUILD / 'tessera'), 'bench', '--help'], capture_output=True,
                           text=True)
    has_bench = 'unknown command' not in probe.stdout + probe.stderr
    assert tessera['status'] == ('ok' if has_bench else 'unavailable')
    assert '| mlp |' in markdown and 'Tessera' in markdown


def test_numeric_match_flags_a_wrong_output():
    ref = {'y': np.linspace(-2, 2, 50, dtype=np.float32), 'k': np.arange(4)}
    assert bench_run.numeric_match(ref, {k: v.copy() for k, v in ref.items()})['ok']
    off = dict(ref, y=ref['y'] + np.float32(1e-3))
    check = bench_run.numeric_match(ref, off)
    assert not check['ok'] and not check['outputs']['y']['ok'] and check['outputs']['k']['ok']
    assert not bench_run.numeric_match(ref, dict(ref, k=ref['k'] + 1))['ok']
    assert not bench_run.numeric_match(ref, {'y': ref['y']})['ok']  # a missing output fails


# A stand-in for `tessera bench` that follows bench_cli.md (flags, --json layout, --save-outputs)
# but computes with TensorFlow: it exercises the harness's Tessera path (CLI flags, JSON parsing,
# ratios, profile column, cross-check) whatever the real CLI's state. STUB_OFFSET corrupts outputs.
STUB = r'''#!/usr/bin/env python3
import argparse, json, os, sys, time
import numpy as np
if sys.argv[1:2] == ['compile']:  # the "artifact" just names the SavedModel
    c = argparse.ArgumentParser()
    c.add_argument('model'); c.add_argument('--signature'); c.add_argument('--target'); c.add_argument('-o')
    ca = c.parse_args(sys.argv[2:])
    open(ca.o, 'w').write(ca.model); sys.exit(0)
if sys.argv[1:2] != ['bench']:
    sys.exit('stub: only compile and bench')
if '--help' in sys.argv:
    print('usage: tessera bench MODEL ...'); sys.exit(0)
p = argparse.ArgumentParser()
p.add_argument('model')
for flag in ('--signature', '--target', '--batch', '--threads', '--warmup', '--iters',
             '--min-seconds', '--inputs', '--json'):
    p.add_argument(flag, required=True)
p.add_argument('--save-outputs')
p.add_argument('--profile', action='store_true')
a = p.parse_args(sys.argv[2:])
if a.model.endswith('.tsr'):
    a.model = open(a.model).read()
import tensorflow as tf
sig = tf.saved_model.load(a.model).signatures[a.signature]
feeds = dict(np.load(a.inputs))
assert next(iter(feeds.values())).shape[0] == int(a.batch)
times = []
for i in range(int(a.warmup) + int(a.iters)):
    t0 = time.perf_counter()
    out = {k: v.numpy() for k, v in sig(**{k: tf.constant(v) for k, v in feeds.items()}).items()}
    if i >= int(a.warmup):
        times.append((time.perf_counter() - t0) * 1e3)
off = float(os.environ.get('STUB_OFFSET', '0'))
if a.save_outputs:
    np.savez(a.save_outputs, **{k: v + np.float32(off) for k, v in out.items()})
ms = np.array(times)
run = dict(batch=int(a.batch), iters=len(ms), throughput_per_s=int(a.batch) * 1e3 / ms.mean(),
           latency_ms=dict(p50=float(np.median(ms)), p90=float(np.percentile(ms, 90)),
                           p99=float(np.percentile(ms, 99)), mean=float(ms.mean()), min=float(ms.min())))
if a.profile:  # only the separate profiling process reports op shares
    run['profile'] = [dict(op='MatMul', ms_per_iter=0.7, share=0.7),
                      dict(op='Softmax', ms_per_iter=0.3, share=0.3)]
json.dump(dict(model=a.model, signature=a.signature, target=a.target, isa='stub',
               threads=int(a.threads), compile_seconds=0.5, load_seconds=0.01, peak_rss_bytes=1,
               runs=[run]), open(a.json, 'w'))
'''


def _stub_run(tmp_path, offset):
    stub = tmp_path / 'tessera'
    stub.write_text(STUB)
    stub.chmod(0o755)
    out = tmp_path / 'out'
    env = dict(os.environ, STUB_OFFSET=str(offset), TESSERA_BENCH_CACHE=str(tmp_path / 'cache'))
    proc = subprocess.run([sys.executable, str(REPO / 'bench/run.py'), '--smoke', '--runtimes',
                           'tessera,tf_eigen', '--tessera', str(stub), '--out', str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / 'results.json').read_text()), (out / 'results.md').read_text(), proc


def test_tessera_path_with_a_contract_stub(tmp_path):
    results, markdown, _ = _stub_run(tmp_path, 0)
    summary = results['summary']['mlp']
    row = summary['runtimes']['tessera']
    assert row['status'] == 'ok' and row['match'] == 'ok', row
    # compile time is the `tessera compile` process's wall time; load time comes from bench
    assert row['compile_s'] > 0 and row['load_s'] == 0.01
    assert row['top_op'] == 'b1: MatMul (70%) / b32: MatMul (70%)'
    ratios = summary['ratios']['tf_eigen']
    assert ratios['b1_speedup'] > 0 and ratios['b32_speedup'] > 0 and ratios['rss_ratio'] > 0
    [trial] = results['models'][0]['trials']['tessera']['results']
    assert [r['batch'] for r in trial['runs']] == [1, 32]  # one CLI process per batch
    assert '## Targets (issue 3)' in markdown and 'MatMul (70%)' in markdown
    # the profile lines up with "Where Tessera is slower" when TF is faster (the stub is TF
    # plus the harness's overhead, so it may or may not be; check the section exists)
    assert '## Where Tessera is slower' in markdown


def test_wrong_tessera_outputs_are_reported_loudly(tmp_path):
    results, markdown, proc = _stub_run(tmp_path, 0.5)
    assert results['summary']['mlp']['runtimes']['tessera']['match'] == 'MISMATCH'
    assert results['summary']['mlp']['runtimes']['tf_eigen']['match'] == 'ok'
    assert 'MISMATCH' in proc.stderr and '**MISMATCH**' in markdown
