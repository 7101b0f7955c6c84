"""`tessera rdu-cost` on the shapes-only Llama-3.1-8B IR files (the CLI path of the published-
figure checks in tests/unit/rdu/validation_published_test.cc) and its error handling."""
import json

from tessera_testlib import REPO, run_cli

DATA = REPO / "tests/data/rdu"
LAYER_PARAMS = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336


def cost(path, tmp_path, *extra):
    out = tmp_path / "cost.json"
    run_cli("rdu-cost", path, "--chip", "sn40l_like", "--json", out, *extra)
    return json.loads(out.read_text())


def test_decoder_layer_totals(tmp_path):
    d = cost(DATA / "llama31_8b_decoder_layer.ir", tmp_path)
    assert d["product_flops"] == 2 * LAYER_PARAMS + 4 * 32 * 4096 * 128
    kv = 2 * 8 * 4095 * 128 * 2
    assert d["arg_bytes"] == 2 * (LAYER_PARAMS + 2 * 4096) + kv + 2 * 4096 + 2 * 2 * 128
    assert d["arg_bytes"] <= d["offchip_bytes"] <= 1.01 * d["arg_bytes"]
    assert d["ddr_read"] == 0
    # Per token (32 layers + LM head) against the kernel-looping table: 15.4 binary GB, ~20 GFLOP.
    head = cost(DATA / "llama31_8b_lm_head.ir", tmp_path)
    flops = 32 * d["flops"] + head["flops"]
    offchip = 32 * d["offchip_bytes"] + head["offchip_bytes"]
    assert abs(offchip / (15.4 * 2**30) - 1 + 0.059) < 0.01, offchip
    assert abs(flops / 20e9 - 1 + 0.141) < 0.01, flops
    # The FFN's down projection: one row through 14336 / 6 x 4096 / 32 folds of the 6 x 32 PCU.
    down = next(k for k in d["kernels"] if k["name"] == "down")
    assert (down["m"], down["k"], down["n"]) == (1, 14336, 4096)
    assert down["cycles"] == -(-14336 // 6) * (4096 // 32) * (1 + 6 + 32 - 1)
    # fp32 timing doubles the bytes of every float.
    d32 = cost(DATA / "llama31_8b_decoder_layer.ir", tmp_path, "--precision", "fp32")
    assert d32["arg_bytes"] == 2 * d["arg_bytes"]


def test_rdu_cost_errors(tmp_path):
    missing = run_cli("rdu-cost", tmp_path / "nope.ir", check=False)
    assert missing.returncode == 1 and "cannot open" in missing.stderr and "nope.ir" in missing.stderr
    bad = tmp_path / "bad.ir"
    bad.write_text("graph (x: float32[2]) -> (y: y) {\n  y = Relu(x {T=float32}\n}\n")
    broken = run_cli("rdu-cost", bad, check=False)
    assert broken.returncode == 1 and "bad.ir" in broken.stderr and "line 2" in broken.stderr, broken.stderr
    flag = run_cli("rdu-cost", DATA / "llama31_8b_lm_head.ir", "--pcus", "0", check=False)
    assert flag.returncode == 1 and "--pcus" in flag.stderr
