"""The rdu target end to end: every inference-tier zoo model maps onto `tiny` (the small ones)
or `small` and `sn40l_like` (the bench models), the mapping validates, no section beats its
roofline, the sectioned schedule's outputs match the cpu target, and fused beats unfused."""
import json

import pytest

from conftest import ZOO_DIR, zoo_models
from tessera_testlib import run_cli

MODELS = zoo_models("inference")
BENCH = {"resnet50_k3", "resnet50_tfk", "mobilenetv2_k3", "mobilenetv2_tfk", "efficientnetb0_k3",
         "efficientnetb0_tfk", "encoder_k3", "encoder_tfk"}
SMALL = [m for m in MODELS if m["name"] not in BENCH]
BENCH_MODELS = [m for m in MODELS if m["name"] in BENCH]


def simulate(model, chip, batch, tmp_path, *flags):
    out = tmp_path / f"{model['name']}_{chip}_{batch}_{len(flags)}.json"
    run_cli("simulate", ZOO_DIR / model["path"], "--signature", model["signature"] or "serving_default", "--chip", chip,
            "--batch", batch, "--json", out, *flags)
    return json.loads(out.read_text())


def check_roofline(r):
    assert r["valid"]
    assert 0 < r["fraction_of_peak"] <= 1
    for i, s in enumerate(r["per_section"]):
        if s["pipeline_cycles"] == 0:
            continue
        assert s["flops"] / s["pipeline_cycles"] <= s["pcus"] * r["pcu_peak_flop_per_cycle"] * (1 + 1e-9), i
        assert s["hbm_bytes"] / s["pipeline_cycles"] <= r["hbm_Bpc"] * (1 + 1e-9), i
        assert s["max_link_util"] <= 1 + 1e-9, i


@pytest.mark.parametrize("model", SMALL, ids=[m["name"] for m in SMALL])
def test_small_models_on_tiny(model, tmp_path):
    r = simulate(model, "tiny", 2, tmp_path, "--check")
    assert r["check_ok"] == 1, r
    check_roofline(r)
    again = simulate(model, "tiny", 2, tmp_path)
    assert again["cycles"] == r["cycles"]  # deterministic


@pytest.mark.parametrize("chip", ["small", "sn40l_like"])
@pytest.mark.parametrize("model", BENCH_MODELS, ids=[m["name"] for m in BENCH_MODELS])
def test_bench_models(model, chip, tmp_path):
    fused = simulate(model, chip, 1, tmp_path, "--check")
    assert fused["check_ok"] == 1, fused
    check_roofline(fused)
    unfused = simulate(model, chip, 1, tmp_path, "--unfused")
    check_roofline(unfused)
    assert unfused["flops"] == pytest.approx(fused["flops"], rel=1e-12)
    assert fused["cycles"] < unfused["cycles"], (fused["cycles"], unfused["cycles"])
    if chip == "small":
        assert fused["sections"] > 1  # the bench models need several sections on `small`


@pytest.mark.parametrize("chip", ["small", "sn40l_like"])
@pytest.mark.parametrize("model", BENCH_MODELS, ids=[m["name"] for m in BENCH_MODELS])
def test_bench_models_fused_not_slower_at_batch_32(model, chip, tmp_path):
    """The partitioner cuts sections by estimated time, so fusion never loses to the
    one-op-per-section baseline, also where compute dominates the switches (batch 32)."""
    fused = simulate(model, chip, 32, tmp_path)
    unfused = simulate(model, chip, 32, tmp_path, "--unfused")
    assert fused["valid"] and unfused["valid"]
    assert fused["cycles"] <= unfused["cycles"], (fused["cycles"], unfused["cycles"])


def test_bad_chip_is_reported(tmp_path):
    bad = tmp_path / "chip.json"
    bad.write_text('{"clock_ghz": 1}')
    model = MODELS[0] if MODELS else None
    if model is None:
        pytest.skip("zoo not generated")
    proc = run_cli("simulate", ZOO_DIR / model["path"], "--signature", model["signature"] or "serving_default",
                   "--chip", bad, check=False)
    assert proc.returncode != 0
    assert "pcu" in proc.stderr and str(bad) in proc.stderr


@pytest.mark.parametrize("name", ["mlp_k3", "cnn_tfk"])
def test_run_target_rdu_matches_tensorflow(name, tmp_path):
    """`tessera run --target rdu` runs the sectioned schedule; its outputs match TF's."""
    import numpy as np
    from tessera_testlib import assert_numeric_match
    model = next((m for m in MODELS if m["name"] == name), None)
    if model is None:
        pytest.skip("zoo not generated")
    out = tmp_path / "out.npz"
    run_cli("run", ZOO_DIR / model["path"], "--input", ZOO_DIR / name / "inputs_b8.npz", "--target", "rdu",
            "--output", out)
    got, ref = np.load(out), np.load(ZOO_DIR / name / "outputs_b8.npz")
    assert set(ref.keys()) <= set(got.keys())
    for key in ref.keys():
        assert_numeric_match(ref[key], got[key], name=key)


@pytest.mark.parametrize("param,values", [("pcu.count", "4,8,16,32"), ("hbm.bw_Bpc", "32,64,128,256,512"),
                                          ("mesh.vector_link_Bpc", "8,16,32,64")])
def test_sweep_more_resources_never_slower(param, values, tmp_path):
    model = next((m for m in MODELS if m["name"] == "resnet50_k3"), None)
    if model is None:
        pytest.skip("zoo not generated")
    r = simulate(model, "small", 4, tmp_path, "--sweep", f"{param}={values}")
    assert r["sweep_param"] == param
    rows = r["sweep"]
    assert [row["value"] for row in rows] == [float(v) for v in values.split(",")]
    for row in rows:
        assert row["valid"] and 0 < row["fraction_of_peak"] <= 1
    for a, b in zip(rows, rows[1:]):
        assert b["cycles"] <= a["cycles"] * (1 + 1e-3), (a, b)


def test_compile_rdu_artifact_runs(tmp_path):
    """`tessera compile --target rdu` writes a .tsr that run and simulate load."""
    import numpy as np
    from tessera_testlib import assert_numeric_match
    model = next((m for m in MODELS if m["name"] == "cnn_k3"), None)
    if model is None:
        pytest.skip("zoo not generated")
    tsr, out = tmp_path / "m.tsr", tmp_path / "out.npz"
    run_cli("compile", ZOO_DIR / model["path"], "--target", "rdu", "-o", tsr)
    run_cli("run", tsr, "--input", ZOO_DIR / "cnn_k3" / "inputs_b8.npz", "--output", out)
    ref = np.load(ZOO_DIR / "cnn_k3" / "outputs_b8.npz")
    got = np.load(out)
    for key in ref.keys():
        assert_numeric_match(ref[key], got[key], name=key)
    r = simulate({"name": "cnn_rdu", "path": tsr, "signature": "serving_default"}, "tiny", 8, tmp_path, "--check")
    assert r["check_ok"] == 1 and r["valid"]
