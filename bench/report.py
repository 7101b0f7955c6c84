"""Turns bench/run.py's raw results into the summary (kept in the JSON) and the markdown."""
import json
import statistics

LABELS = {'tessera': 'Tessera', 'tf_onednn': 'TF 2.21 (oneDNN on)',
          'tf_eigen': 'TF 2.21 (oneDNN off)', 'tf_xla': 'TF 2.21 XLA (jit_compile)',
          'ort': 'ONNX Runtime', 'openvino': 'OpenVINO'}
TF_GRAPH = ('tf_onednn', 'tf_eigen')


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _run(res, batch):
    return next((r for r in res.get('runs', []) if r['batch'] == batch), None)


def _profile_items(run):
    """[(op, share)] from a run's `tessera bench --profile` list (or an op -> value mapping)."""
    prof = (run or {}).get('profile')
    if not prof:
        return []
    if isinstance(prof, dict):
        items = [(k, v) for k, v in prof.items() if isinstance(v, (int, float))]
    else:
        items = [(p.get('op'), p.get('share', p.get('ms_per_iter', 0))) for p in prof if isinstance(p, dict)]
    total = sum(v for _, v in items) or 1
    return sorted(((op, v / total) for op, v in items), key=lambda kv: -kv[1])


def _top_ops(good, batch, n=3):
    """The batch's largest op shares, from the first trial that has a profile."""
    for res in good:
        items = _profile_items(_run(res, batch))
        if items:
            return items[:n]
    return []


def summarize(results):
    peak = results['environment']['peak'].get('gflops')
    summary = {}
    for entry in results['models']:
        rows = {}
        gflop = entry['gflop_per_sample']
        for rt, data in entry['trials'].items():
            if 'unavailable' in data:
                rows[rt] = dict(status='unavailable', why=data['unavailable'])
                continue
            good = [r for r in data['results'] if 'error' not in r]
            if not good:
                rows[rt] = dict(status='failed', why=data['results'][0]['error'][-400:])
                continue
            row = dict(status='ok', trials=len(good))
            for b in results['batches']:
                runs = [_run(r, b) for r in good if _run(r, b)]
                if not runs:
                    continue
                p50 = _median([r['latency_ms']['p50'] for r in runs])
                tput = _median([r['throughput_per_s'] for r in runs])
                row[f'b{b}'] = dict(p50_ms=p50, p99_ms=_median([r['latency_ms']['p99'] for r in runs]),
                                    throughput_per_s=tput, gflops=gflop * tput,
                                    pct_peak=100 * gflop * tput / peak if peak else None)
            row['peak_rss_mib'] = max(r['peak_rss_bytes'] for r in good) / 2**20
            row['load_s'] = _median([r.get('load_seconds') for r in good])
            row['compile_s'] = _median([r.get('compile_seconds') for r in good])
            checks = [c for k, c in entry['checks'].items()
                      if k.startswith(f'{rt}_b') and isinstance(c, dict) and 'ok' in c]
            errs = [o.get('max_abs_err', 0) for c in checks for o in c['outputs'].values()]
            row['match'] = ('unchecked' if not checks else 'ok' if all(c['ok'] for c in checks)
                            else 'MISMATCH')
            row['max_abs_err'] = max(errs) if errs else None
            if rt == 'tessera':
                row['top_ops'] = {str(b): _top_ops(good, b) for b in results['batches']}
                row['top_op'] = ' / '.join(f'b{b}: {ops[0][0]} ({100 * ops[0][1]:.0f}%)'
                                           for b, ops in row['top_ops'].items() if ops) or None
            if len(good) < len(data['results']):
                row['failed_trials'] = len(data['results']) - len(good)
            rows[rt] = row
        summary[entry['name']] = dict(runtimes=rows, ratios=_ratios(rows, results['batches']))
    return summary


def _ratios(rows, batches):
    """Tessera's speed-up over each peer (>1: Tessera faster) and RSS ratio (<1: smaller)."""
    t = rows.get('tessera', {})
    if t.get('status') != 'ok':
        return {}
    out = {}
    for rt, row in rows.items():
        if rt == 'tessera' or row.get('status') != 'ok':
            continue
        r = {}
        if 'b1' in t and 'b1' in row:
            r['b1_speedup'] = row['b1']['p50_ms'] / t['b1']['p50_ms']
        for b in batches:
            if b != 1 and f'b{b}' in t and f'b{b}' in row:
                r[f'b{b}_speedup'] = t[f'b{b}']['throughput_per_s'] / row[f'b{b}']['throughput_per_s']
        r['rss_ratio'] = t['peak_rss_mib'] / row['peak_rss_mib']
        out[rt] = r
    return out


def mismatches(results):
    out = []
    for name, s in results['summary'].items():
        for rt, row in s['runtimes'].items():
            if row.get('match') == 'MISMATCH':
                out.append(f'{name} / {rt}: max |err| {row["max_abs_err"]:.3g}')
    return out


def _applied_config(results, rt):
    for entry in results['models']:
        for res in entry['trials'].get(rt, {}).get('results', []):
            if 'error' in res:
                continue
            if res.get('config'):
                return res['config']
            if res.get('cli_json'):
                return {k: v for k, v in res['cli_json'][0].items()
                        if k in ('target', 'isa', 'threads', 'signature')}
    return None


def _f(value, fmt='{:.2f}'):
    return '—' if value is None else fmt.format(value)


def markdown(results):
    env = results['environment']
    peak = env['peak']
    big = [b for b in results['batches'] if b != 1]
    lines = [
        '# Tessera benchmark results' + (' (smoke run)' if results['smoke'] else '')
        + (' — PARTIAL (run still going or interrupted)' if results.get('partial') else ''),
        '',
        'Written by `bench/run.py`; do not edit by hand. Raw data: `results.json` beside this file.',
        '',
        f'- Command: `{env["command"]}`',
        f'- Started {results["started_utc"]} UTC, {results["wall_seconds"]} s; git {env["git_commit"]}',
        f'- CPU: {env["cpu"]["model"]}, {env["cpu"]["logical_cpus"]} logical CPUs, '
        f'{env["memory_gib"]} GiB; ISA: {" ".join(env["cpu"]["isa"])}',
        f'- Measured fp32 peak ({results["threads"]} threads): '
        f'{_f(peak.get("gflops"), "{:.1f} GFLOP/s")} — {peak["source"]}',
        f'- Load average before/after: {", ".join(f"{x:.2f}" for x in env["load_average_before"])}'
        f' / {", ".join(f"{x:.2f}" for x in env["load_average_after"])} '
        '(other jobs on the machine distort timings)',
        f'- Threads per runtime: {results["threads"]}; trials: {results["trials"]} (interleaved, '
        'fresh process each); figures are medians over trials',
        f'- Versions: ' + ', '.join(f'{k} {v}' for k, v in env['packages'].items() if v),
        f'- Outputs cross-checked against `{results["reference"]}` (|a-b| <= 1e-4 max|ref| + 1e-6)',
        '',
        '## Runtime configurations',
        '',
        '| runtime | settings | status |',
        '| --- | --- | --- |',
    ]
    for rt, d in results['runtimes'].items():
        settings = '; '.join(f'{k}={v}' for k, v in (d.get('settings') or {}).items())
        lines.append(f'| {LABELS.get(rt, rt)} | {settings} | '
                     f'{"unavailable: " + d["unavailable"] if d.get("unavailable") else "ok"} |')
    lines += ['', 'As applied (reported by each child for the first model it ran):', '']
    for rt in results['runtimes']:
        applied = _applied_config(results, rt)
        if applied:
            lines.append(f'- {LABELS.get(rt, rt)}: `{json.dumps(applied, sort_keys=True)}`')
    lines += ['', '## Summary: batch-1 p50 latency (ms) / batch-'
              + (str(big[0]) if big else '?') + ' throughput (samples/s)', '']
    rts = list(results['runtimes'])
    lines.append('| model | ' + ' | '.join(LABELS.get(r, r) for r in rts) + ' |')
    lines.append('| --- |' + ' --- |' * len(rts))
    for name, s in results['summary'].items():
        cells = []
        for rt in rts:
            row = s['runtimes'].get(rt, {})
            if row.get('status') != 'ok':
                cells.append(row.get('status', '—'))
                continue
            b1 = row.get('b1', {}).get('p50_ms')
            bb = row.get(f'b{big[0]}', {}).get('throughput_per_s') if big else None
            mark = ' ⚠' if row['match'] == 'MISMATCH' else ''
            cells.append(f'{_f(b1)} / {_f(bb, "{:.1f}")}{mark}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += ['', '⚠ = outputs do not match TensorFlow (see the model section).', '']
    for entry in results['models']:
        lines += _model_section(entry, results, big)
    lines += _targets(results, big)
    lines += _slower(results)
    return '\n'.join(lines) + '\n'


def _slower(results):
    """Each model and batch where a peer beats Tessera, with where Tessera's time goes (its
    per-op profile from a separate `tessera bench --profile` run)."""
    lines = ['## Where Tessera is slower', '',
             'Every model and batch where a peer is faster, with the largest shares of Tessera\'s '
             'op time (`tessera bench --profile`, run separately from the timed run).', '']
    found = False
    for name, s in results['summary'].items():
        t = s['runtimes'].get('tessera', {})
        if t.get('status') != 'ok':
            continue
        for b in results['batches']:
            key = f'b{b}'
            if key not in t:
                continue
            lower = b == 1
            metric = 'p50_ms' if lower else 'throughput_per_s'
            ahead = []
            for rt, row in s['runtimes'].items():
                if rt == 'tessera' or row.get('status') != 'ok' or key not in row:
                    continue
                ratio = (row[key][metric] / t[key][metric]) if lower else (t[key][metric] / row[key][metric])
                if ratio < 1:
                    ahead.append(f'{LABELS.get(rt, rt)} ({1 / ratio:.2f}x faster)')
            if not ahead:
                continue
            found = True
            ops = ', '.join(f'{op} {100 * share:.0f}%' for op, share in t.get('top_ops', {}).get(str(b), []))
            lines.append(f'- **{name}, batch {b}**: {", ".join(ahead)}. Tessera\'s time: {ops or "no profile"}.')
    if not found:
        lines.append('- none: Tessera is fastest on every model and batch measured.')
    return lines + ['']


def _best(rows, names, key, batch, lower_is_better):
    vals = [(rows[n][f'b{batch}'][key], n) for n in names
            if rows.get(n, {}).get('status') == 'ok' and f'b{batch}' in rows[n]]
    if not vals:
        return None, None
    return min(vals) if lower_is_better else max(vals)


def _targets(results, big):
    """Issue 3's targets, evaluated (never asserted) when Tessera ran."""
    lines = ['## Targets (issue 3)', '']
    b = big[0] if big else None
    head = ['model', 'b1 vs best TF (>= 1.5x)', f'b{b} vs best TF (>= 1.5x) or % peak (>= 80)',
            'b1 / b' + str(b) + ' vs best of ORT, OpenVINO (>= 1x)', 'RSS vs smallest TF (< 1)']
    lines += ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    wins = counted = 0
    for name, s in results['summary'].items():
        rows = s['runtimes']
        t = rows.get('tessera', {})
        if t.get('status') != 'ok':
            lines.append(f'| {name} | Tessera {t.get("status", "absent")} |' + ' |' * (len(head) - 2))
            continue
        cells = [name]
        tf_b1, tf_name = _best(rows, TF_GRAPH, 'p50_ms', 1, True)
        cells.append(f'{tf_b1 / t["b1"]["p50_ms"]:.2f}x vs {tf_name}' if tf_b1 and 'b1' in t else '—')
        tf_bb, tf_bname = _best(rows, TF_GRAPH, 'throughput_per_s', b, False) if b else (None, None)
        tb = t.get(f'b{b}', {})
        if tf_bb and tb:
            pct = f', {tb["pct_peak"]:.0f}% of peak' if tb.get('pct_peak') is not None else ''
            cells.append(f'{tb["throughput_per_s"] / tf_bb:.2f}x vs {tf_bname}{pct}')
        else:
            cells.append('—')
        pb1, pn1 = _best(rows, ('ort', 'openvino'), 'p50_ms', 1, True)
        pbb, pnb = _best(rows, ('ort', 'openvino'), 'throughput_per_s', b, False) if b else (None, None)
        r1 = pb1 / t['b1']['p50_ms'] if pb1 and 'b1' in t else None
        rb = tb['throughput_per_s'] / pbb if pbb and tb else None
        if r1 is not None or rb is not None:
            counted += 1
            wins += all(r is None or r >= 1 for r in (r1, rb))
        cells.append(f'{_f(r1, "{:.2f}x")} ({pn1 or "—"}) / {_f(rb, "{:.2f}x")} ({pnb or "—"})')
        tf_rss = [rows[n]['peak_rss_mib'] for n in TF_GRAPH if rows.get(n, {}).get('status') == 'ok']
        cells.append(f'{t["peak_rss_mib"] / min(tf_rss):.2f}' if tf_rss else '—')
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', f'At least as fast as the best of ONNX Runtime and OpenVINO (both batches) on '
              f'{wins} of {counted} models with both measured (target: at least half).', '']
    return lines


def _model_section(entry, results, big):
    s = results['summary'][entry['name']]
    gflop = entry['gflop_per_sample']
    lines = [f'## {entry["name"]}', '', f'{entry["notes"]}. Matmul/conv work: {gflop:.4f} GFLOP '
             'per sample (counted from the graph).', '']
    for b, inp in entry['inputs'].items():
        lines.append(f'- batch {b} inputs sha256 `{inp["sha256"][:16]}`, warm-up {inp["warmup"]}, '
                     f'up to {inp["iters"]} timed calls')
    loads = [r['load_average_1min_at_start'] for d in entry['trials'].values()
             for r in d.get('results', []) if 'load_average_1min_at_start' in r]
    if loads:
        lines.append(f'- 1-min load average when children started: {min(loads):.1f} to '
                     f'{max(loads):.1f} (2 CPUs; above ~2 other jobs were competing)')
    onnx = entry.get('onnx') or {}
    if onnx:
        lines.append(f'- ONNX: ' + (f'tf2onnx {onnx["tf2onnx"]} opset {onnx["opset"]}, '
                                   f'converted in {onnx["convert_seconds"]} s' if 'path' in onnx
                                   else f'conversion failed: {onnx.get("error")}'))
    lines.append('')
    head = ['runtime', 'b1 p50 ms', 'b1 p99 ms']
    for b in big:
        head += [f'b{b} samples/s', f'b{b} GFLOP/s (% peak)']
    head += ['peak RSS MiB', 'load s', 'first call / compile s', 'output check',
             'Tessera speed-up b1'] + [f'Tessera speed-up b{b}' for b in big] + \
        ['Tessera/peer RSS', 'Tessera top op']
    lines += ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for rt, row in s['runtimes'].items():
        label = LABELS.get(rt, rt)
        if row['status'] != 'ok':
            lines.append(f'| {label} | {row["status"]}: {row["why"].splitlines()[-1][:160]} |'
                         + ' |' * (len(head) - 2))
            continue
        b1 = row.get('b1', {})
        cells = [label, _f(b1.get('p50_ms')), _f(b1.get('p99_ms'))]
        for b in big:
            rb = row.get(f'b{b}', {})
            pct = f' ({rb["pct_peak"]:.0f}%)' if rb.get('pct_peak') is not None else ''
            cells += [_f(rb.get('throughput_per_s'), '{:.1f}'),
                      _f(rb.get('gflops'), '{:.1f}') + pct]
        match = row['match']
        if match == 'MISMATCH':
            match = f'**MISMATCH** (max err {row["max_abs_err"]:.3g})'
        elif row['max_abs_err'] is not None:
            match += f' ({row["max_abs_err"]:.1e})'
        ratio = s['ratios'].get(rt, {})
        cells += [_f(row['peak_rss_mib'], '{:.0f}'), _f(row['load_s']), _f(row['compile_s']), match,
                  _f(ratio.get('b1_speedup'), '{:.2f}x')]
        cells += [_f(ratio.get(f'b{b}_speedup'), '{:.2f}x') for b in big]
        cells += [_f(ratio.get('rss_ratio')), row.get('top_op') or '—']
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    return lines
