"""`tessera simulate --chips K --parallel data|pipeline|tensor` on zoo bench models: one chip
equals the single-chip simulation, every split validates, data parallelism scales at most
linearly, more link bandwidth never slows, and impossible splits fail with a clear message."""
import json

import pytest

from conftest import ZOO_DIR, zoo_models
from tessera_testlib import run_cli

MODELS = {m["name"]: m for m in zoo_models("inference")}


def simulate(name, tmp_path, *flags):
    model = MODELS.get(name)
    if model is None:
        pytest.skip("zoo not generated")
    out = tmp_path / "out.json"
    run_cli("simulate", ZOO_DIR / model["path"], "--signature", model["signature"] or "serving_default",
            "--json", out, *flags)
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", ["encoder_k3", "resnet50_k3"])
def test_splits_on_small(name, tmp_path):
    one = simulate(name, tmp_path, "--chip", "small", "--batch", "8")
    for parallel in ("data", "pipeline", "tensor"):
        r = simulate(name, tmp_path, "--chip", "small", "--batch", "8", "--chips", "1", "--parallel", parallel)["multichip"]
        assert r["step_cycles"] == pytest.approx(one["cycles"], rel=1e-12), parallel
        two = simulate(name, tmp_path, "--chip", "small", "--batch", "8", "--chips", "2", "--parallel", parallel,
                       "--microbatches", "2")["multichip"]
        assert two["valid"] and len(two["per_chip"]) == 2, parallel
        assert two["samples_per_second"] > 0
        if parallel == "data":
            single = 8 / one["seconds"]
            assert single <= two["samples_per_second"] <= 2 * single * (1 + 1e-9)
            assert two["allreduce_bytes"] > 0 and two["allreduce_cycles"] > 0
        else:
            assert two["p2p_bytes"] > 0


def test_link_bandwidth_sweep_never_slows(tmp_path):
    r = simulate("encoder_k3", tmp_path, "--chip", "small", "--batch", "8", "--chips", "2", "--parallel", "tensor",
                 "--sweep", "p2p.bw_Bpc=8,32,128,512")
    rates = [row["report"]["samples_per_second"] for row in r["sweep"]]
    assert len(rates) == 4 and all(b >= a * (1 - 1e-9) for a, b in zip(rates, rates[1:])), rates


def test_impossible_split_is_reported():
    model = MODELS.get("resnet50_k3")
    if model is None:
        pytest.skip("zoo not generated")
    # One section on sn40l_like: nothing to cut into stages.
    proc = run_cli("simulate", ZOO_DIR / model["path"], "--chip", "sn40l_like", "--chips", "2", "--parallel", "pipeline",
                   check=False)
    assert proc.returncode != 0
    assert "needs at least 2 sections" in proc.stderr and "sn40l_like" in proc.stderr
    proc = run_cli("simulate", ZOO_DIR / model["path"], "--chip", "tiny", "--chips", "4", check=False)
    assert proc.returncode != 0 and "p2p.sockets = 2" in proc.stderr
