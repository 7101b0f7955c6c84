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
