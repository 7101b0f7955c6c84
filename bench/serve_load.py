"""Load generators for bench/serve.py: `wrk` (Debian) with a Lua script for REST, and the C++
gRPC client bench/serve_load.cc (compiled here with g++ against Debian's grpc++, cached by
source hash). Both are closed-loop: N connections/clients, one request in flight each, fixed
duration, errors counted, p50/p99 from per-request latencies."""
import hashlib
import json
import os
import pathlib
import resource
import shutil
import subprocess
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / 'serve_load.cc'


def cache_dir():
    return pathlib.Path(os.environ.get('TESSERA_BENCH_CACHE',
                                       pathlib.Path.home() / '.cache' / 'tessera' / 'bench'))


def grpc_client():
    """Path of the compiled gRPC load client (built once per source hash)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    binary = cache_dir() / f'serve_load-{digest}'
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'grpc++'], capture_output=True,
                           text=True, check=True).stdout.split()
    tmp = binary.with_suffix('.tmp')
    subprocess.run(['g++', '-O2', '-std=c++17', str(SOURCE), '-o', str(tmp), *flags, '-lpthread'],
                   check=True, capture_output=True)
    os.replace(tmp, binary)
    return binary


def _child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_grpc(port, request_file, clients, seconds, warmup):
    cmd = [str(grpc_client()), f'127.0.0.1:{port}', str(request_file), str(clients), str(seconds),
           str(warmup), str(min(clients, 4))]
    cpu0 = _child_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 120)
    cpu = _child_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f'serve_load exit {proc.returncode}: {proc.stderr[-2000:]}')
    out = json.loads(proc.stdout)
    errors = {f'grpc_{k}': v for k, v in out['errors'].items()}
    return dict(requests=out['requests'], seconds=out['seconds'], p50_ms=out['p50_ms'],
                p90_ms=out['p90_ms'], p99_ms=out['p99_ms'], mean_ms=out['mean_ms'],
                errors=errors, client_cpu_s=cpu, load_generator='bench/serve_load.cc (gRPC generic '
                f'stub, {out["channels"]} channels)')


# wrk's done() hook prints one JSON line; latency percentiles come from wrk's per-request
# latency histogram (microseconds).
LUA = r'''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("%(body)s", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "mean_us": %%.1f, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, ' ..
    '"timeout": %%d}\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.mean, e.connect, e.read, e.write,
    e.status, e.timeout))
end
'''


def _wrk(url, body_file, clients, seconds, lua_dir):
    lua = pathlib.Path(lua_dir) / 'post.lua'
    lua.write_text(LUA % dict(body=str(body_file)))
    threads = min(2, clients)
    cmd = ['wrk', '-t', str(threads), '-c', str(clients), '-d', f'{max(1, round(seconds))}s', '--timeout', '60s',
           '-s', str(lua), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    line = next((l for l in proc.stdout.splitlines() if l.startswith('WRKJSON ')), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f'wrk exit {proc.returncode}: {proc.stdout[-1000:]} {proc.stderr[-1000:]}')
    return json.loads(line[len('WRKJSON '):])


def run_rest(port, url_path, body_file, clients, seconds, warmup):
    url = f'http://127.0.0.1:{port}{url_path}'
    with tempfile.TemporaryDirectory() as d:
        if warmup > 0:
            _wrk(url, body_file, clients, max(1, round(warmup)), d)
        cpu0 = _child_cpu()
        w = _wrk(url, body_file, clients, seconds, d)
        cpu = _child_cpu() - cpu0
    # wrk counts a non-2xx answer as a completed request *and* a status error: count only 2xx.
    errors = {k: w[k] for k in ('connect', 'read', 'write', 'status', 'timeout') if w[k]}
    ok = w['requests'] - w['status']
    return dict(requests=ok, seconds=w['duration_us'] / 1e6, p50_ms=w['p50_us'] / 1e3,
                p90_ms=w['p90_us'] / 1e3, p99_ms=w['p99_us'] / 1e3, mean_ms=w['mean_us'] / 1e3,
                errors={f'http_{k}': v for k, v in errors.items()}, client_cpu_s=cpu,
                load_generator=f'wrk {min(2, clients)} threads, Lua POST')


def available():
    """Why a load generator cannot run here, or None."""
    if shutil.which('wrk') is None:
        return 'wrk not installed (apt-get install wrk)'
    if shutil.which('g++') is None or shutil.which('pkg-config') is None:
        return 'g++/pkg-config missing: cannot build bench/serve_load.cc'
    return None
