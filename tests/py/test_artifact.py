"""The .tsr artifact and the CLI around it: compile/run/inspect/passes, the compile cache,
bad artifacts (corrupt byte in each section, truncations, foreign file, wrong format version,
unknown ISA) each failing with a clear message and exit code 1, and a `tessera bench` smoke
test against the JSON contract the bench harness reads."""
import json
import os
import re
import struct
import subprocess

import numpy as np
import pytest

from tessera_testlib import REPO, SERVING_TESTDATA, TESSERA

HALF_PLUS_TWO = SERVING_TESTDATA / "servables/tensorflow/testdata/saved_model_half_plus_two_cpu/00000123"
COUNTER = SERVING_TESTDATA / "servables/tensorflow/testdata/saved_model_counter/00000123"
SECTIONS = {1: "meta", 2: "graphs", 3: "variables", 4: "packed", 5: "blobs"}


def tessera(*args, env=None, check=True):
    full = dict(os.environ, **(env or {}))
    proc = subprocess.run([str(TESSERA), *map(str, args)], capture_output=True, text=True, env=full, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def good_tsr(tmp_path_factory):
    out = tmp_path_factory.mktemp("tsr") / "hp2.tsr"
    tessera("compile", HALF_PLUS_TWO, "-o", out)
    return out


@pytest.fixture(scope="module")
def mlp_tsr(tmp_path_factory):
    """An artifact with every section filled (the MLP's dense weights are packed)."""
    out = tmp_path_factory.mktemp("tsr") / "mlp.tsr"
    tessera("compile", REPO / "examples/mnist_mlp", "-o", out)
    return out


def run_hp2(tsr, tmp_path, x, extra=()):
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(inp, x=np.asarray(x, np.float32).reshape(-1, 1))
    proc = tessera("run", tsr, "--input", inp, "--output", out, *extra, check=False)
    if proc.returncode:
        return proc, None
    with np.load(out) as z:
        return proc, z["y"]


def sections(data):
    """[(kind name, offset, size)] from the header's section table."""
    count, = struct.unpack_from("<I", data, 12)
    table, = struct.unpack_from("<Q", data, 24)
    out = []
    for i in range(count):
        kind, _, off, size, _ = struct.unpack_from("<IIQQI", data, table + 32 * i)
        out.append((SECTIONS[kind], off, size))
    return out


def crc32c(data, crc=0):
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_crc32c_helper():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value


def test_compile_run_any_batch(good_tsr, tmp_path):
    assert good_tsr.read_bytes()[:4] == b"\x89TSR"
    for batch in (1, 3, 32):
        x = np.arange(batch, dtype=np.float32) - 1.5
        proc, y = run_hp2(good_tsr, tmp_path, x)
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_allclose(y.ravel(), x / 2 + 2, rtol=1e-6)


def test_inspect_shows_what_it_was_built_for(good_tsr):
    out = tessera("inspect", good_tsr).stdout
    assert ".tsr v1 for target cpu" in out and "oneDNN" in out, out
    assert "serving_default" in out and "<- x:0" in out, out


def test_reference_target_and_stateful_signatures(tmp_path):
    tsr = tmp_path / "counter.tsr"
    tessera("compile", COUNTER, "--target", "reference", "-o", tsr)
    out = tmp_path / "o.npz"
    tessera("run", tsr, "--signature", "incr_counter", "--output", out)
    with np.load(out) as z:
        assert float(z["output"]) == 1.0  # each process starts from the saved value 0


def test_passes_lists_default_pipeline():
    out = tessera("passes").stdout
    assert "default pipeline:" in out, out


def test_compile_rejects_unknown_pass_and_tsr_input(good_tsr, tmp_path):
    proc = tessera("compile", HALF_PLUS_TWO, "--passes", "no_such_pass", "-o", tmp_path / "x.tsr", check=False)
    assert proc.returncode == 1 and "unknown pass 'no_such_pass'" in proc.stderr, proc.stderr
    proc = tessera("compile", good_tsr, "-o", tmp_path / "y.tsr", check=False)
    assert proc.returncode == 1 and "already a compiled" in proc.stderr, proc.stderr


def test_dump_ir_after_every_pass(tmp_path):
    tsr = tmp_path / "d.tsr"
    proc = tessera("compile", HALF_PLUS_TWO, "--dump-ir-after", "all", "-o", tsr)
    pipeline = tessera("passes").stdout.split("default pipeline:", 1)[1].split()
    pipeline = [] if pipeline == ["(empty)"] else pipeline
    signatures = re.findall(r"^  (\S+) \(", tessera("inspect", tsr).stdout, re.M)
    assert "serving_default" in signatures
    dumps = re.findall(r"---- IR of signature '(\S+)' after pass (\S+) ----", proc.stdout)
    assert sorted(dumps) == sorted((s, p) for s in signatures for p in pipeline), proc.stdout[:2000]


def expect_bad(path, *needles):
    proc = tessera("run", path, "--input", "x=[[1.0]]", check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "error:" in proc.stderr and str(path) in proc.stderr, proc.stderr
    assert any(n in proc.stderr for n in needles), proc.stderr
    assert "internal error" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("section", list(SECTIONS.values()))
def test_corrupt_byte_in_each_section(mlp_tsr, tmp_path, section):
    data = bytearray(mlp_tsr.read_bytes())
    (off, size), = [(o, s) for name, o, s in sections(data) if name == section]
    assert size > 0, f"section {section} is empty in this artifact"
    data[off + size // 2] ^= 0x10
    bad = tmp_path / "bad.tsr"
    bad.write_bytes(bytes(data))
    expect_bad(bad, f"({section}): checksum mismatch")


def test_corrupt_header(good_tsr, tmp_path):
    data = bytearray(good_tsr.read_bytes())
    data[17] ^= 1  # inside file_size
    bad = tmp_path / "bad.tsr"
    bad.write_bytes(bytes(data))
    expect_bad(bad, "header checksum mismatch")


@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.1, 0.5, 0.9, 0.999])
def test_truncated(good_tsr, tmp_path, fraction):
    data = good_tsr.read_bytes()
    n = max(int(len(data) * fraction), 8 if fraction else 0)
    bad = tmp_path / "cut.tsr"
    bad.write_bytes(data[:n])
    expect_bad(bad, "truncated", "not a Tessera artifact")


def test_foreign_file(tmp_path):
    bad = tmp_path / "model.tsr"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a tessera artifact" * 4)
    expect_bad(bad, "is not a Tessera artifact (.tsr): bad magic number")


def test_wrong_format_version(good_tsr, tmp_path):
    data = bytearray(good_tsr.read_bytes())
    struct.pack_into("<I", data, 8, 99)
    struct.pack_into("<I", data, 36, crc32c(bytes(data[:36])))
    bad = tmp_path / "v99.tsr"
    bad.write_bytes(bytes(data))
    expect_bad(bad, ".tsr format version 99, this Tessera")


def rewrite_meta(data, old, new):
    """Replaces a same-length string in the meta section and fixes every checksum."""
    assert len(old) == len(new)
    data = bytearray(data)
    count, = struct.unpack_from("<I", data, 12)
    table, = struct.unpack_from("<Q", data, 24)
    for i in range(count):
        at = table + 32 * i
        kind, _, off, size, _ = struct.unpack_from("<IIQQI", data, at)
        if SECTIONS[kind] != "meta":
            continue
        meta = bytes(data[off:off + size])
        assert old in meta
        data[off:off + size] = meta.replace(old, new)
        struct.pack_into("<I", data, at + 24, crc32c(bytes(data[off:off + size])))
    struct.pack_into("<I", data, 32, crc32c(bytes(data[table:table + 32 * count])))
    struct.pack_into("<I", data, 36, crc32c(bytes(data[:36])))
    return bytes(data)


def test_unknown_isa_is_a_clear_error(good_tsr, tmp_path):
    data = good_tsr.read_bytes()
    isa = re.search(r"ISA (\w+)", tessera("inspect", good_tsr).stdout).group(1).encode()
    field = b"isa" + struct.pack("<Q", len(isa))  # key, then the value's length and bytes
    bad = tmp_path / "isa.tsr"
    bad.write_bytes(rewrite_meta(data, field + isa, field + b"z" * len(isa)))
    expect_bad(bad, f"was built for ISA '{'z' * len(isa)}', which this Tessera does not know")


def test_other_isa_repacks_and_runs(tmp_path):
    tsr = tmp_path / "scalar.tsr"
    tessera("compile", HALF_PLUS_TWO, "--isa", "scalar", "-o", tsr)
    assert "ISA scalar" in tessera("inspect", tsr).stdout
    proc, y = run_hp2(tsr, tmp_path, [4.0])  # this machine's best ISA: packed weights are redone
    assert proc.returncode == 0, proc.stderr
    assert y.ravel().tolist() == [4.0]


def test_compile_cache(tmp_path):
    env = {"TESSERA_CACHE_DIR": str(tmp_path / "cache")}
    inp = tmp_path / "in.npz"
    np.savez(inp, x=np.ones((2, 1), np.float32))
    tessera("run", HALF_PLUS_TWO, "--input", inp, env=env)
    cached = list((tmp_path / "cache").glob("*.tsr"))
    assert len(cached) == 1
    first = json.loads(bench(HALF_PLUS_TWO, tmp_path, env=env)[0])
    assert first["compile_seconds"] == 0  # a cache hit
    cached[0].write_bytes(cached[0].read_bytes()[:100])  # a damaged entry is rebuilt, with a warning
    proc = tessera("run", HALF_PLUS_TWO, "--input", inp, env=env)
    assert "ignoring compile cache entry" in proc.stderr, proc.stderr
    assert len(cached[0].read_bytes()) > 100


def bench(model, tmp_path, *extra, env=None):
    out = tmp_path / "bench.json"
    proc = tessera("bench", model, "--json", out, *extra, env=env)
    return out.read_text(), proc


@pytest.mark.parametrize("kind", ["saved_model", "tsr"])
def test_bench_smoke(good_tsr, tmp_path, kind):
    model = HALF_PLUS_TWO if kind == "saved_model" else good_tsr
    text, proc = bench(model, tmp_path, "--batch", "1,3", "--iters", "4", "--warmup", "1", "--threads", "1",
                       "--save-outputs", tmp_path / "o.npz", env={"TESSERA_CACHE_DIR": str(tmp_path / "c")})
    j = json.loads(text)
    for key in ("model", "signature", "target", "isa", "threads", "compile_seconds", "load_seconds",
                "peak_rss_bytes", "runs"):
        assert key in j, key
    assert j["signature"] == "serving_default" and j["target"] == "cpu" and j["threads"] == 1
    assert j["load_seconds"] > 0 and j["peak_rss_bytes"] > 0 and j["compile_seconds"] >= 0
    if kind == "tsr":
        assert j["compile_seconds"] == 0
    assert [r["batch"] for r in j["runs"]] == [1, 3]
    for r in j["runs"]:
        assert r["iters"] >= 4
        lat = r["latency_ms"]
        assert set(lat) == {"p50", "p90", "p99", "mean", "min"}
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"]
        assert r["throughput_per_s"] > 0
    assert "p50 ms" in proc.stdout and "iterations" in proc.stderr
    with np.load(tmp_path / "o.npz") as z:
        assert z["y"].shape == (3, 1)  # the last run's outputs (batch 3)


def test_bench_inputs_file_and_errors(good_tsr, tmp_path):
    inp = tmp_path / "in.npz"
    x = np.array([[2.0], [6.0]], np.float32)
    np.savez(inp, x=x)
    bench(good_tsr, tmp_path, "--inputs", inp, "--batch", "2", "--iters", "2", "--warmup", "0",
          "--save-outputs", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as z:
        np.testing.assert_allclose(z["y"], x / 2 + 2)
    proc = tessera("bench", good_tsr, "--inputs", inp, "--batch", "3", check=False)
    assert proc.returncode == 1 and "not batch 3" in proc.stderr, proc.stderr
    proc = tessera("bench", good_tsr, "--signature", "nope", check=False)
    assert proc.returncode == 1 and "nope" in proc.stderr, proc.stderr


def test_bench_profile_reports_op_shares(good_tsr, tmp_path):
    text, proc = bench(good_tsr, tmp_path, "--batch", "1,4", "--iters", "5", "--warmup", "1", "--profile")
    runs = json.loads(text)["runs"]
    assert [r["batch"] for r in runs] == [1, 4]
    for r in runs:
        prof = r["profile"]
        # half_plus_two is y = x / 2 + 2: after fusion one elementwise op does the work
        assert prof and all(p["ms_per_iter"] >= 0 and 0 <= p["share"] <= 1 for p in prof), prof
        assert abs(sum(p["share"] for p in prof) - 1) < 1e-6
        assert [p["ms_per_iter"] for p in prof] == sorted((p["ms_per_iter"] for p in prof), reverse=True)
    assert "batch 1 profile" in proc.stdout
    plain = json.loads(bench(good_tsr, tmp_path, "--iters", "2", "--warmup", "0")[0])
    assert "profile" not in plain["runs"][0]  # timing runs carry no per-op timers
