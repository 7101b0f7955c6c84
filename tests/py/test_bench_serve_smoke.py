"""CI smoke run of the serving benchmark (bench/serve.py --smoke): the seed MLP served by
`tessera serve` (batching on and off, REST through wrk, gRPC through bench/serve_load.cc) and by
the TensorFlow Python gRPC baseline. Structure and correctness only: benchmarks never assert
speed in CI. Plus the summary/target arithmetic on synthetic cells."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tessera_testlib import BUILD, REPO, TESSERA

sys.path.insert(0, str(REPO / 'bench'))
import serve_report  # noqa: E402

pytest.importorskip('grpc')
pytest.importorskip('tensorflow_serving.apis.prediction_service_pb2_grpc')

ZOO = os.environ.get('TESSERA_ZOO_DIR', os.path.expanduser('~/.cache/tessera/zoo'))


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    if not os.path.exists(os.path.join(ZOO, 'mlp_k3', 'entry.json')):
        pytest.skip(f'zoo entry mlp_k3 missing under {ZOO}')
    if shutil.which('wrk') is None or shutil.which('pkg-config') is None:
        pytest.skip('wrk / pkg-config (grpc++) not installed')
    out = tmp_path_factory.mktemp('serve_bench')
    env = dict(os.environ, TESSERA_BUILD_DIR=str(BUILD), TESSERA_BIN=str(TESSERA), TESSERA_ZOO_DIR=ZOO,
               TESSERA_BENCH_CACHE=os.environ.get('TESSERA_BENCH_CACHE', str(tmp_path_factory.mktemp('cache'))))
    proc = subprocess.run([sys.executable, str(REPO / 'bench/serve.py'), '--smoke', '--out', str(out)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / 'serve.json').read_text()), (out / 'serve.md').read_text()


def test_every_cell_ran_without_errors(smoke):
    results, _ = smoke
    assert results['smoke'] is True and results['clients'] == [1, 4]
    cells = results['cells']
    assert not [c for c in cells if 'error' in c], [c['error'] for c in cells if 'error' in c]
    seen = {(c['server'], c['batching'], c['protocol'], c['clients'], c['request_batch']) for c in cells}
    for batching in (False, True):
        for proto in ('grpc', 'rest'):
            for c in (1, 4):
                assert ('tessera', batching, proto, c, 1) in seen
    assert ('tf', False, 'grpc', 4, 1) in seen
    assert ('tessera', False, 'grpc', 1, 32) in seen
    for c in cells:
        assert c['requests'] > 0 and c['errors'] == {}, c
        assert 0 < c['p50_ms'] <= c['p99_ms']
        assert c['samples_per_s'] == pytest.approx(c['requests_per_s'] * c['request_batch'])
        if c['server'] == 'tessera' and c['batching']:
            # read from the server's own batch-size histogram
            assert c['batches'] > 0 and 1 <= c['mean_padded_batch'] <= results['batching_parameters'][
                'max_batch_size'], c


def test_outputs_checked_against_tensorflow(smoke):
    results, md = smoke
    checks = [c for c in results['checks'] if 'outputs' in c]
    assert {(c['server'], c['batching']) for c in checks} == {('tessera', False), ('tessera', True),
                                                              ('tessera_inter2', False), ('tf', False)}
    for c in checks:
        protos = {k.split(':')[0] for k in c['outputs']}
        assert protos == ({'grpc'} if c['server'] == 'tf' else {'grpc', 'rest'})
        assert all(o['ok'] for o in c['outputs'].values()), c
    assert 'Output check: all match' in md


def test_report_names_the_baseline_and_targets(smoke):
    results, md = smoke
    assert 'TF Serving (tensorflow_model_server) itself could not be run here' in md
    assert {t['target'] for t in results['summary']['targets']} == {
        'batching_speedup', 'served_vs_in_process_b32', 'tessera_vs_tf'}
    # b1 and b32 on the server's threads, and one batch of the batching server on its share.
    threads = results['server_threads']
    per_batch = max(1, threads // results['batching_parameters']['num_batch_threads'])
    assert {(r['batch'], r['threads']) for r in results['summary']['in_process']} == {
        (1, threads), (32, threads), (results['batching_parameters']['max_batch_size'], per_batch)}


def _cell(server, batching, proto, clients, rps, p99=10.0, batch=1):
    return dict(model='m', server=server, batching=batching, protocol=proto, clients=clients, request_batch=batch,
                trial=0, requests=int(rps), seconds=1.0, requests_per_s=rps, samples_per_s=rps * batch,
                p50_ms=p99 / 2, p99_ms=p99, errors={}, server_cpu_s=1.0, client_cpu_s=0.1)


def test_targets_arithmetic():
    results = dict(
        models=[dict(name='m')], clients=[1, 64], server_threads=2,
        batching_parameters=dict(max_batch_size=64, batch_timeout_micros=2000, num_batch_threads=2),
        cells=[_cell('tessera', True, 'grpc', 64, 300, p99=30), _cell('tessera', False, 'grpc', 64, 100),
               _cell('tessera', True, 'rest', 64, 150, p99=50), _cell('tessera', False, 'rest', 64, 100),
               # the median of three trials is taken
               _cell('tf', False, 'grpc', 64, 90), _cell('tf', False, 'grpc', 64, 100),
               _cell('tf', False, 'grpc', 64, 500),
               _cell('tessera', False, 'grpc', 1, 10, batch=32), _cell('tessera', False, 'grpc', 2, 12, batch=32)],
        # Two batch threads on 2 threads: one batch runs on 1 thread; that run sets the bound.
        in_process=[dict(model='m', batch=64, threads=1, throughput_per_s=350, p50_ms=60.0),
                    dict(model='m', batch=64, threads=2, throughput_per_s=640, p50_ms=40.0),
                    dict(model='m', batch=32, threads=2, throughput_per_s=400, p50_ms=80.0),
                    dict(model='m', batch=1, threads=2, throughput_per_s=320, p50_ms=3.0)])
    t = {(x['target'], x.get('protocol')): x for x in serve_report.summarise(results)['targets']}
    grpc = t[('batching_speedup', 'grpc')]
    assert grpc['value'] == pytest.approx(3.0) and grpc['p99_bound_ms'] == pytest.approx(64.0) and grpc['met']
    assert grpc['in_process_ceiling'] == pytest.approx(2 * 350 / 320)  # two such batches at once
    rest = t[('batching_speedup', 'rest')]
    assert rest['value'] == pytest.approx(1.5) and not rest['met']  # < 2x
    b32 = t[('served_vs_in_process_b32', None)]
    assert b32['value'] == pytest.approx(12 * 32 / 400) and b32['served_clients'] == 2 and b32['met']
    tf = t[('tessera_vs_tf', None)]
    assert tf['tf_requests_per_s'] == 100 and tf['value'] == pytest.approx(3.0) and tf['met']
    md = serve_report.markdown(dict(results, summary=serve_report.summarise(results), checks=[], seconds=1,
                                    warmup=1, trials=1, full_trials=1,
                                    servers=dict(tessera=dict(flags='f'), tf=dict(how='h', note='n')),
                                    environment=dict(command='c', cpu=dict(model='x', logical_cpus=2),
                                                     load_start=[0.5], load_end=[0.5])))
    assert '| batching_speedup | m | rest: 1.50x' in md and '**no**' in md
