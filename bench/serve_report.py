"""Summary (medians over trials, the three issue-6 targets) and markdown for bench/serve.py."""
import statistics


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _key(c):
    return (c['model'], c['server'], c['batching'], c['protocol'], c['clients'], c['request_batch'])


def summarise(results):
    groups = {}
    for c in results['cells']:
        if 'protocol' not in c:
            continue
        groups.setdefault(_key(c), []).append(c)
    cells = []
    for key, cs in groups.items():
        ok = [c for c in cs if 'error' not in c]
        errors = {}
        for c in ok:
            for k, v in c['errors'].items():
                errors[k] = errors.get(k, 0) + v
        row = dict(zip(('model', 'server', 'batching', 'protocol', 'clients', 'request_batch'), key),
                   trials=len(ok), failed=[c['error'] for c in cs if 'error' in c], errors=errors)
        for f in ('requests_per_s', 'samples_per_s', 'p50_ms', 'p99_ms', 'server_cpu_s', 'client_cpu_s',
                  'mean_padded_batch'):
            row[f] = _median([c.get(f) for c in ok])
        row['requests'] = sum(c['requests'] for c in ok)
        cells.append(row)
    inproc = {}
    for r in results['in_process']:
        if 'error' not in r:
            inproc.setdefault((r['model'], r['batch'], r.get('threads', results['server_threads'])), []).append(r)
    in_process = [dict(model=m, batch=b, threads=t, trials=len(rs),
                       throughput_per_s=_median([r['throughput_per_s'] for r in rs]),
                       p50_ms=_median([r['p50_ms'] for r in rs])) for (m, b, t), rs in inproc.items()]
    return dict(cells=cells, in_process=in_process, targets=targets(results, cells, in_process))


def _find(cells, **kw):
    # A cell without a single answered request has no rate to compare: treated as missing.
    for c in cells:
        if all(c[k] == v for k, v in kw.items()) and c['requests_per_s']:
            return c
    return None


def targets(results, cells, in_process):
    bp = results['batching_parameters']
    top = max(results['clients'])
    out = []
    models = [m['name'] for m in results['models']]
    ip = {(r['model'], r['batch'], r['threads']): r for r in in_process}
    threads = results['server_threads']
    # The intra-op threads one batch runs on: the server's threads shared by the batch threads.
    per_batch = max(1, threads // bp.get('num_batch_threads', 1))
    for m in models:
        # 1. batching at the most clients: >= 2x, p99 < 2 x timeout + one batch's compute.
        for proto in ('grpc', 'rest'):
            on = _find(cells, model=m, server='tessera', batching=True, protocol=proto, clients=top, request_batch=1)
            off = _find(cells, model=m, server='tessera', batching=False, protocol=proto, clients=top,
                        request_batch=1)
            compute = ip.get((m, bp['max_batch_size'], per_batch))
            side = _find(cells, model=m, server='tessera_inter2', batching=False, protocol=proto, clients=top,
                         request_batch=1)
            if on and off and compute:
                ratio = on['requests_per_s'] / off['requests_per_s']
                bound = 2 * bp['batch_timeout_micros'] / 1e3 + compute['p50_ms']
                b1 = ip.get((m, 1, threads))
                # What batching can gain at most: the backend's own samples/s with the batching
                # server's runs (num_batch_threads batches of max_batch_size at once, each on its
                # threads; assumed to scale perfectly) over batch 1 on every thread, in-process.
                at_once = min(bp.get('num_batch_threads', 1), threads // per_batch)
                ceiling = (at_once * compute['throughput_per_s'] / b1['throughput_per_s']
                           if b1 and b1['throughput_per_s'] else None)
                out.append(dict(target='batching_speedup', model=m, protocol=proto, clients=top,
                                value=ratio, p99_ms=on['p99_ms'], p99_bound_ms=bound,
                                on_requests_per_s=on['requests_per_s'], off_requests_per_s=off['requests_per_s'],
                                in_process_ceiling=ceiling, met=ratio >= 2 and on['p99_ms'] < bound,
                                off_side_by_side_requests_per_s=side['requests_per_s'] if side else None))
        # 2. served batch-32 throughput vs in-process.
        served = [c for c in cells if c['model'] == m and c['server'] in ('tessera', 'tessera_inter2')
                  and not c['batching'] and c['request_batch'] == 32 and c['samples_per_s']]
        ref = ip.get((m, 32, threads))
        if served and ref and ref['throughput_per_s']:
            best = max(served, key=lambda c: c['samples_per_s'])
            out.append(dict(target='served_vs_in_process_b32', model=m, value=best['samples_per_s'] /
                            ref['throughput_per_s'], served_samples_per_s=best['samples_per_s'],
                            served_clients=best['clients'], served_server=best['server'],
                            in_process_samples_per_s=ref['throughput_per_s'],
                            met=best['samples_per_s'] >= 0.8 * ref['throughput_per_s']))
        # 3. Tessera vs the TF baseline at the most clients (gRPC, Tessera's better batching setting).
        tf = _find(cells, model=m, server='tf', protocol='grpc', clients=top, request_batch=1)
        ts = [c for c in cells if c['model'] == m and c['server'] in ('tessera', 'tessera_inter2')
              and c['protocol'] == 'grpc' and c['clients'] == top and c['request_batch'] == 1 and c['requests_per_s']]
        if tf and ts:
            best = max(ts, key=lambda c: c['requests_per_s'])
            out.append(dict(target='tessera_vs_tf', model=m, clients=top, value=best['requests_per_s'] /
                            tf['requests_per_s'], tessera_requests_per_s=best['requests_per_s'],
                            tessera_batching=best['batching'], tessera_server=best['server'],
                            tf_requests_per_s=tf['requests_per_s'],
                            met=best['requests_per_s'] >= 3 * tf['requests_per_s']))
    return out


def _server_label(server):
    return 'intra-op 1, inter-op 2' if server == 'tessera_inter2' else 'intra-op 2'


def _fmt(x, nd=1):
    if x is None:
        return '—'
    if x >= 100:
        return f'{x:.0f}'
    return f'{x:.{nd}f}'


def markdown(results):
    s = results['summary']
    env = results['environment']
    bp = results['batching_parameters']
    threads = results['server_threads']
    lines = ['# Serving benchmark (issue 6, acceptance 4)', '',
             f'Written by `{env["command"]}` at {env.get("finished", "?")} (commit {env.get("commit")}). '
             'Do not edit by hand.', '',
             f'- CPU: {env["cpu"]["model"] if isinstance(env["cpu"], dict) else env["cpu"]}, '
             f'{env["cpu"].get("logical_cpus") if isinstance(env["cpu"], dict) else "?"} logical CPUs; '
             f'load average at start {env["load_start"][0]:.1f}, at end {env.get("load_end", [0])[0]:.1f}'
             + (' — **the machine was shared and noisy: figures are indicative, compare within a row**'
                if max(env['load_start'][0], env.get('load_end', [0])[0]) > 2.5 else ''),
             f'- Cells: closed loop, each client one request in flight, {results["seconds"]} s measured after '
             f'{results["warmup"]} s warm-up; {results["trials"]} trials of the key cells ({max(results["clients"])} '
             f'clients, batch 32, in-process), {results["full_trials"]} of the rest; servers restarted per trial, '
             'configurations in rotated order; medians over trials.',
             '- Load generators: REST `wrk` (Lua POST of a row-format `instances` body); gRPC '
             '`bench/serve_load.cc` (C++ generic stub re-sending one pre-serialized PredictRequest; '
             'up to 4 HTTP/2 connections). p50/p99 from per-request latencies. Errors: non-2xx / non-OK, '
             'socket errors and timeouts.',
             f'- Tessera: `tessera serve`, {results["servers"]["tessera"]["flags"]}; environment: '
             f'{results["servers"]["tessera"].get("env")}. Batching parameters: '
             + ', '.join(f'{k} {v}' for k, v in bp.items()) + ' (why: bench/serve.py, BATCHING).',
             f'- TensorFlow baseline: {results["servers"]["tf"]["how"]}. '
             f'{results["servers"]["tf"]["note"]}.',
             '- Models: the zoo\'s Keras 3 exports (`mlp_k3` 784-512-256-10, `mobilenetv2_k3` 96x96x3, '
             '`resnet50_k3` 64x64x3), batch-1 requests; outputs checked once per server against the '
             'zoo\'s TensorFlow reference before timing.', '']
    bad = [(c['model'], c['server'], k) for c in results['checks'] for k, o in c.get('outputs', {}).items()
           if not o['ok']]
    lines += [f'**Output check: {"all match" if not bad else "MISMATCH " + str(bad)}.**', '']

    lines += ['## Targets', '', '| target | model | measured | goal | met |', '| --- | --- | --- | --- | --- |']
    for t in s['targets']:
        if t['target'] == 'batching_speedup':
            meas = (f'{t["protocol"]}: {t["value"]:.2f}x ({t["on_requests_per_s"]:.0f} vs '
                    f'{t["off_requests_per_s"]:.0f} req/s); p99 {t["p99_ms"]:.1f} ms vs bound '
                    f'{t["p99_bound_ms"]:.1f} ms; in-process ceiling {_fmt(t["in_process_ceiling"], 2)}x'
                    + (f'; unbatched with runs side by side: {t["off_side_by_side_requests_per_s"]:.0f} req/s'
                       if t.get('off_side_by_side_requests_per_s') else ''))
            goal = ('>= 2x, p99 < 2 x timeout + one batch (in-process p50 at max_batch_size on the '
                    'intra-op threads one batch gets)')
        elif t['target'] == 'served_vs_in_process_b32':
            meas = (f'{t["value"]:.2f} ({t["served_samples_per_s"]:.0f} vs {t["in_process_samples_per_s"]:.0f} '
                    f'samples/s; {t["served_clients"]} client(s), {_server_label(t.get("served_server", "tessera"))})')
            goal = '>= 0.80'
        else:
            meas = (f'{t["value"]:.2f}x ({t["tessera_requests_per_s"]:.0f} vs {t["tf_requests_per_s"]:.0f} '
                    f'req/s; Tessera batching {"on" if t["tessera_batching"] else "off"}'
                    + (', runs side by side' if t.get('tessera_server') == 'tessera_inter2' else '') + ')')
            goal = '>= 3x'
        lines.append(f'| {t["target"]} | {t["model"]} | {meas} | {goal} | {"yes" if t["met"] else "**no**"} |')
    lines += ['', 'batching_speedup: batching on / off at the most clients, batch-1 requests; "in-process '
              'ceiling" = num_batch_threads x `tessera bench` samples/s at max_batch_size on the threads one '
              'batch gets, over batch 1 on every thread (the most that merging requests can gain when the '
              'unbatched server already runs batch 1 at in-process speed; perfect scaling of the batches '
              'that run at once assumed).',
              '', 'served_vs_in_process_b32: gRPC clients each sending batch-32 PredictRequests to a server '
              'with batching off, samples/s, the best of: intra-op 2 with 1 or 2 closed-loop clients, and '
              'intra-op 1 / inter-op 2 (two runs side by side, each on its own copy of the plan) with 2 or 4 '
              'clients; against `tessera bench --batch 32 --threads 2` (one run at a time) in its own process '
              'on the same inputs.', '']

    cells = s['cells']
    clients = results['clients']
    for m in [x['name'] for x in results['models']]:
        lines += [f'## {m}: requests/s (p50 / p99 ms), batch-1 requests', '',
                  '| server | batching | API | ' + ' | '.join(f'{c} clients' for c in clients) + ' | errors |',
                  '| --- | --- | --- | ' + ' | '.join('---' for _ in clients) + ' | --- |']
        for server, batching, proto in [('tessera', False, 'grpc'), ('tessera', True, 'grpc'),
                                        ('tessera_inter2', False, 'grpc'),
                                        ('tessera', False, 'rest'), ('tessera', True, 'rest'),
                                        ('tf', False, 'grpc')]:
            row, errs, any_cell = [], {}, False
            for c in clients:
                x = _find(cells, model=m, server=server, batching=batching, protocol=proto, clients=c,
                          request_batch=1)
                if x is None:
                    fails = [y for y in cells if y['model'] == m and y['server'] == server and
                             y['batching'] == batching and y['protocol'] == proto and y['clients'] == c]
                    row.append('failed' if fails else '—')
                    continue
                any_cell = True
                for k, v in x['errors'].items():
                    errs[k] = errs.get(k, 0) + v
                row.append(f'{_fmt(x["requests_per_s"])} ({_fmt(x["p50_ms"], 2)} / {_fmt(x["p99_ms"], 2)})'
                           + (f' [{x["trials"]}]' if x['trials'] > 1 else '')
                           + (f' b≈{x["mean_padded_batch"]:.0f}' if x.get('mean_padded_batch') else ''))
            if not any_cell and (server == 'tessera_inter2' or (server == 'tf' and proto != 'grpc')):
                continue
            name = ('TF 2.21 (Python gRPC)' if server == 'tf' else 'Tessera, runs side by side (intra-op 1, inter-op 2)'
                    if server == 'tessera_inter2' else 'Tessera')
            lines.append(f'| {name} | {"on" if batching else "off"} | {proto.upper() if proto == "rest" else "gRPC"} | '
                         + ' | '.join(row) + f' | {sum(errs.values()) if errs else 0} |')
        b32 = [c for c in cells if c['model'] == m and c['request_batch'] == 32]
        ip = [r for r in s['in_process'] if r['model'] == m]
        if b32 or ip:
            lines += ['', 'Batch 32: ' + '; '.join(
                f'served gRPC ({_server_label(c["server"])}), {c["clients"]} client(s): {_fmt(c["samples_per_s"])} '
                f'samples/s (p50 {_fmt(c["p50_ms"], 2)} ms)' for c in sorted(b32, key=lambda c: (c['server'], c['clients'])))
                + ('; ' if b32 and ip else '') + '; '.join(
                f'in-process b{r["batch"]}' + (f' on {r["threads"]} thread(s)' if r['threads'] != threads else '')
                + f': {_fmt(r["throughput_per_s"])} samples/s (p50 {_fmt(r["p50_ms"], 2)} ms)'
                for r in sorted(ip, key=lambda r: (r['batch'], -r['threads'])))]
        lines.append('')
    lines += ['`b≈N`: mean rows per executed batch, after padding to allowed_batch_sizes (Tessera\'s '
              'batch-size histogram over the cell, warm-up included). `[n]`: median of n trials. Raw per-trial cells, server/client CPU seconds per cell, peak RSS and '
              'the output checks are in serve.json.', '']
    return '\n'.join(lines)
