"""What the results must say about the machine: CPU, versions, load, commit, measured peak."""
import json
import os
import pathlib
import platform
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent


def package_version(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cpu_model():
    try:
        text = pathlib.Path('/proc/cpuinfo').read_text()
    except OSError:
        return platform.processor() or 'unknown'
    names = re.findall(r'^model name\s*:\s*(.*)$', text, re.M)
    flags = re.findall(r'^flags\s*:\s*(.*)$', text, re.M)
    isa = sorted(f for f in (flags[0].split() if flags else [])
                 if f.startswith(('avx', 'amx', 'fma')))
    return dict(model=names[0] if names else 'unknown', logical_cpus=os.cpu_count(), isa=isa)


def git_commit():
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out + ('+dirty' if dirty else '')
    except OSError:
        return None


def measured_peak(threads, cache):
    """fp32 peak from bench/cpp's FMA-loop binary when it is built, else from bench/peak_fma.c
    compiled here; 'unmeasured' if neither works (a spec-sheet number is not a measurement)."""
    build = pathlib.Path(os.environ.get('TESSERA_BUILD_DIR', REPO / 'build'))
    gbench = build / 'bench' / 'cpp' / 'tessera_bench_peak'
    if gbench.exists():
        return gbench_peak(gbench, threads, cache)
    binary = build / 'bench' / 'cpp' / 'peak_flops'
    if not binary.exists():
        return fallback_peak(threads, cache, f'{binary} / {gbench.name} not built')
    try:
        out = subprocess.run([str(binary), '--json', '--threads', str(threads)],
                             capture_output=True, text=True, timeout=300)
        data = json.loads(out.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return dict(gflops=None, source=f'unmeasured ({binary}: {e})')
    return dict(gflops=_find_gflops(data, threads), source=f'{binary} --json', raw=data)


def gbench_peak(binary, threads, cache):
    """bench/cpp's Google Benchmark FMA loop: the best GFLOPS counter at `threads` threads."""
    try:
        out = subprocess.run([str(binary), '--benchmark_format=json',
                              f'--benchmark_filter=threads:{threads}$'],
                             capture_output=True, text=True, timeout=300)
        rows = json.loads(out.stdout)['benchmarks']
        best = max(r['GFLOPS'] for r in rows if 'GFLOPS' in r and not r.get('error_occurred'))
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        return fallback_peak(threads, cache, f'{binary}: {e}')
    return dict(gflops=best / 1.0, source=f'{binary} (best GFLOPS at threads:{threads})',
                raw=[{k: r.get(k) for k in ('name', 'GFLOPS')} for r in rows])


def fallback_peak(threads, cache, why):
    source = HERE / 'peak_fma.c'
    binary = pathlib.Path(cache) / 'peak_fma'
    try:
        if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
            binary.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(['cc', '-O3', '-funroll-loops', '-march=native', '-ffp-contract=fast',
                            '-pthread', str(source), '-o', str(binary)], check=True,
                           capture_output=True, timeout=120)
        # Best of 3 (about 1 s each): other processes on the machine only ever lower it.
        runs = [float(subprocess.run([str(binary), str(threads), '100000000'], capture_output=True, text=True,
                                     check=True, timeout=120).stdout.split()[0]) for _ in range(3)]
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as e:
        return dict(gflops=None, source=f'unmeasured ({why}; bench/peak_fma.c: {e})')
    return dict(gflops=max(runs), source=f'bench/peak_fma.c FMA loop, best of {runs} ({why})')


def _find_gflops(data, threads):
    """The binary's JSON layout is its own; take the fp32 GFLOP/s figure for `threads`
    threads if it gives one per thread count, else its single figure."""
    if isinstance(data, dict):
        for key in (f'gflops_{threads}_threads', 'fp32_gflops', 'peak_gflops', 'gflops'):
            value = data.get(key)
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, dict) and isinstance(value.get(str(threads)), (int, float)):
                return float(value[str(threads)])
        for value in data.values():
            found = _find_gflops(value, threads)
            if found:
                return found
    return None


def describe(threads, cache):
    return dict(cpu=cpu_model(), kernel=platform.release(), python=platform.python_version(),
                memory_gib=round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1),
                load_average_before=os.getloadavg(), git_commit=git_commit(),
                packages={n: package_version(n) for n in ('tensorflow-cpu', 'keras', 'numpy',
                                                         'protobuf')},
                peak=measured_peak(threads, cache))
