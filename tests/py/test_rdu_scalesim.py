"""Outside validation of the rdu systolic cost model against SCALE-Sim 3.0.0 (pip `scalesim`).

One sn40l_like PCU used as a systolic array is a weight-stationary array of `stages` rows x
`lanes` columns (6 x 32; the `small` preset's PCU, 6 x 16, is checked on the cnn too). For the distinct GEMM and convolution layers of zoo models (cnn,
ResNet50, the BERT-like encoder) at batch 1, the layer geometry comes from Tessera's own
lowering (`tessera rdu-cost MODEL`), the layer is given to SCALE-Sim in its own form (a conv
topology row with the ifmap/filter/channels/stride, or an M,N,K GEMM row) and SCALE-Sim's WS
compute model produces the cycle-by-cycle demand schedule; its length is SCALE-Sim's compute
cycle count (memory stalls excluded: with SCALE-Sim's estimated-bandwidth mode there are none,
and its memory model does not run under numpy 2, see docs/rdu.md).

SCALE-Sim charges every fold (stages x lanes block of the weights) T + 2R + C - 2 cycles
(R rows to load the weights, 2R + C - 2 of skewed fill and drain around T streamed rows);
Tessera charges T + R + C - 1 (the weights of the next fold load behind the current one). The
test asserts that exact relation per layer, that both see the same folds and rows (im2col
geometry), and the percentage bound documented in docs/rdu.md.
"""
import json
import math

import pytest

from conftest import ZOO_DIR
from tessera_testlib import REPO, run_cli

scalesim = pytest.importorskip("scalesim")

# (chip, models): the sn40l_like PCU (6 x 32) on all three models, and the `small` preset's
# Plasticine-sized PCU (6 x 16) on the cnn, to show the relation does not hang on one shape.
CASES = [("sn40l_like", ("cnn_k3", "resnet50_k3", "encoder_k3")), ("small", ("cnn_k3",))]
# Folds SCALE-Sim has to build matrices for, at most per layer (its compute model is numpy
# per fold): keeps the test near 30 s on a loaded 2-core machine (all 27 layers: ~50 s);
# larger layers are skipped and counted.
MAX_FOLDS = 6000
# |ours - scalesim| / scalesim per layer: the weight-load cycles (R - 1 per fold) that Tessera
# hides, largest at T = 1 row: (R - 1) / (1 + 2R + C - 2) = 5 / 43 = 11.6% on 6 x 32 (and
# 5 / 27 = 18.5% on 6 x 16).
BOUND = {"sn40l_like": 0.12, "small": 0.19}

CONFIG = """[general]
run_name = tessera_pcu

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = {kb}
FilterSramSzkB = {kb}
OfmapSramSzkB = {kb}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = ws
Bandwidth = 10
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""


def tessera_layers(tmp_path, chip, models):
    """Distinct conv and single-group GEMM kernels of the zoo models at batch 1, with
    Tessera's cycles for each on one PCU."""
    layers = {}
    for name in models:
        out = tmp_path / f"{name}.json"
        run_cli("rdu-cost", ZOO_DIR / name / "saved_model", "--chip", chip, "--batch", 1, "--json", out)
        for k in json.loads(out.read_text())["kernels"]:
            if k["family"] == "conv":
                fh, fw, cin, cout = k["w_shape"]
                _, oh, ow, _ = k["out_shape"]
                s = k["strides"][1]
                assert k["strides"][2] == s, k["name"]
                # SCALE-Sim does not pad: give it the padded ifmap that yields the same ofmap.
                row = ("conv", (oh - 1) * s + fh, (ow - 1) * s + fw, fh, fw, cin, cout, s)
            elif k["family"] == "gemm" and k["groups"] == 1:
                row = ("gemm", k["m"], k["n"], k["k"])
            else:
                continue
            layers.setdefault(row, (f"{name}/{k['name']}", k))
    return layers


def scalesim_compute(tmp_path, arch, kind, rows):
    """SCALE-Sim's WS compute cycles (length of its output demand schedule), rows and folds."""
    from scalesim.layout_utils import layouts
    from scalesim.scale_config import scale_config
    from scalesim.single_layer_sim import single_layer_sim
    from scalesim.topology_utils import topologies

    cfg_path, topo_path, layout_path = tmp_path / "pcu.cfg", tmp_path / f"{kind}.csv", tmp_path / "layout.csv"
    # SRAM sizes: one PMU per operand (they do not change compute cycles).
    cfg_path.write_text(CONFIG.format(rows=arch["pcu"]["stages"], cols=arch["pcu"]["lanes"],
                                      kb=arch["pmu"]["capacity_bytes"] // 1024))
    layout_path.write_text("Layer name,\n")
    if kind == "conv":
        text = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
        text += "".join(f"l{i}, {h}, {w}, {fh}, {fw}, {c}, {n}, {s},\n" for i, (_, h, w, fh, fw, c, n, s) in enumerate(rows))
    else:
        text = "Layer, M, N, K,\n" + "".join(f"l{i}, {m}, {n}, {k},\n" for i, (_, m, n, k) in enumerate(rows))
    topo_path.write_text(text)
    cfg = scale_config()
    cfg.read_conf_file(str(cfg_path))
    topo = topologies()
    topo.load_arrays(topofile=str(topo_path), mnk_inputs=kind == "gemm")
    lay = layouts()
    lay.load_arrays(layoutfile=str(layout_path))
    results = []
    for lid in range(topo.get_num_layers()):
        sim = single_layer_sim()
        sim.set_params(layer_id=lid, config_obj=cfg, topology_obj=topo, layout_obj=lay, verbose=False)
        _, ifmap = sim.op_mat_obj.get_ifmap_matrix()
        _, filt = sim.op_mat_obj.get_filter_matrix()
        _, ofmap = sim.op_mat_obj.get_ofmap_matrix()
        cs = sim.compute_system
        cs.set_params(config_obj=cfg, ifmap_op_mat=ifmap, filter_op_mat=filt, ofmap_op_mat=ofmap)
        _, _, ofmap_demand = cs.get_demand_matrices()
        results.append({"cycles": ofmap_demand.shape[0], "T": cs.T, "Sr": cs.Sr, "Sc": cs.Sc,
                        "folds": cs.row_fold * cs.col_fold})
    return results


@pytest.mark.parametrize("chip,models", CASES, ids=[c for c, _ in CASES])
def test_systolic_cycles_match_scalesim(tmp_path, capsys, chip, models):
    arch = json.loads((REPO / f"configs/rdu/{chip}.json").read_text())
    rows, cols = arch["pcu"]["stages"], arch["pcu"]["lanes"]
    layers = tessera_layers(tmp_path, chip, models)
    chosen, skipped = {"conv": [], "gemm": []}, []
    for row, (name, k) in layers.items():
        folds = math.ceil(k["k"] / rows) * math.ceil(k["n"] / cols)
        (skipped if folds > MAX_FOLDS else chosen[row[0]]).append((row, name, k))
    assert len(chosen["conv"]) >= min(10, 2 * len(models)) and len(chosen["gemm"]) >= 1, (chosen, skipped)

    table, worst = [], 0.0
    for kind, items in chosen.items():
        sims = scalesim_compute(tmp_path, arch, kind, [row for row, _, _ in items])
        for (row, name, k), ss in zip(items, sims):
            # Same layer: SCALE-Sim's im2col/GEMM view has our rows, contraction and outputs.
            assert (ss["T"], ss["Sr"], ss["Sc"]) == (k["m"], k["k"], k["n"]), (name, ss, k)
            folds = ss["folds"]
            assert ss["cycles"] == folds * (k["m"] + 2 * rows + cols - 2), (name, ss)
            assert k["cycles"] == folds * (k["m"] + rows + cols - 1), (name, k)
            diff = (k["cycles"] - ss["cycles"]) / ss["cycles"]
            worst = max(worst, abs(diff))
            table.append((name, kind, k["m"], k["k"], k["n"], folds, k["cycles"], ss["cycles"], diff))
    with capsys.disabled():
        print(f"\nSCALE-Sim 3.0.0 WS {rows}x{cols} vs Tessera (one {chip} PCU), batch 1; "
              f"{len(skipped)} layers over {MAX_FOLDS} folds skipped")
        print(f"{'layer':58} {'kind':4} {'m':>5} {'k':>5} {'n':>5} {'folds':>6} {'tessera':>9} {'scalesim':>9} {'diff':>7}")
        for name, kind, m, kk, n, folds, ours, theirs, diff in table:
            print(f"{name[-58:]:58} {kind:4} {m:5} {kk:5} {n:5} {folds:6} {ours:9.0f} {theirs:9} {100 * diff:6.2f}%")
    assert worst <= BOUND[chip], worst
