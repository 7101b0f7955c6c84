#!/usr/bin/env python3
"""Simulated rdu numbers for the bench models, and the ResNet50 compile + simulate benchmark.

    python3 bench/rdu.py                          # every bench model, small + sn40l_like, batches 1 and 32
    python3 bench/rdu.py --models resnet50 --chips sn40l_like --batches 1 --repeats 1

For each model, chip and batch it runs `tessera simulate MODEL --chip C --batch N --json` fused
and `--unfused` and tabulates sections, cycles, samples/s, % of peak, the bottleneck mix (share
of cycles: section switch + sync, and each section's pipeline time by what bounds it), whether
the validator accepted the mapping, and the fused/unfused speed-up. The simulator is
deterministic, so these numbers do not depend on the machine; only the wall times do.

The benchmark: `tessera compile RESNET50 --target rdu --chip sn40l_like --batch 1 --signature
serving_default -o r.tsr`
(import, pass pipeline, mapping, timing, validation, writing the mapping into the .tsr) then
`tessera simulate r.tsr` (loads the stored mapping, re-simulates), wall time of the pair,
median of --repeats runs (target < 30 s).

Writes bench/results/rdu.md and rdu.json (with the command line and the git hash).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("mlp", "cnn", "mobilenetv2", "resnet50", "efficientnetb0", "bert")


def tessera_bin(arg):
    if arg:
        return arg
    if os.environ.get("TESSERA_BIN"):
        return os.environ["TESSERA_BIN"]
    return str(Path(os.environ.get("TESSERA_BUILD_DIR", ROOT / "build")) / "tessera")


def bench_dir():
    """The newest bench-tier model folder ($TESSERA_BENCH_CACHE or ~/.cache/tessera/bench, models/<hash>)."""
    cache = Path(os.environ.get("TESSERA_BENCH_CACHE", Path.home() / ".cache" / "tessera" / "bench")) / "models"
    found = sorted((d for d in cache.glob("*") if (d / "resnet50" / "saved_model").is_dir()), key=lambda d: d.stat().st_mtime)
    return found[-1] if found else None


def find_model(name, models_dir):
    """The model's SavedModel: model.json's model_dir (the MLP is the bundled example)."""
    folder = Path(models_dir) / name
    path = folder / "saved_model"
    if (folder / "model.json").exists():
        path = Path(json.loads((folder / "model.json").read_text())["model_dir"])
    if name == "mlp" and not path.is_dir():
        path = ROOT / "examples" / "mnist_mlp"
    if not path.is_dir():
        sys.exit(f"rdu.py: no bench model at {path}; build the bench tier first (python3 bench/run.py --models {name})")
    return path


def simulate(tessera, name, model, chip, batch, fused, tmp):
    out = Path(tmp) / f"sim_{name}_{chip}_{batch}_{int(fused)}.json"
    cmd = [tessera, "simulate", str(model), "--chip", chip, "--batch", str(batch), "--json", str(out)]
    if not fused:
        cmd.append("--unfused")
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if not out.exists():
        sys.exit(f"rdu.py: {' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    r = json.loads(out.read_text())
    mix = {}
    for s in r["per_section"]:
        mix["switch+sync"] = mix.get("switch+sync", 0) + s["switch_cycles"]
        kind = s["bottleneck_kind"]
        mix[kind] = mix.get(kind, 0) + s["cycles"] - s["switch_cycles"]
    total = r["cycles"] or 1
    return {
        "model": name, "chip": chip, "batch": batch, "fused": fused,
        "sections": r["sections"], "cycles": r["cycles"], "seconds": r["seconds"],
        "samples_per_s": batch / r["seconds"] if r["seconds"] > 0 else 0,
        "percent_of_peak": 100 * r["fraction_of_peak"], "flops": r["flops"],
        "hbm_bytes": r["hbm_bytes"], "ddr_bytes": r["ddr_bytes"], "valid": r["valid"],
        "mapping_seconds": r["compile_seconds"], "wall_seconds": wall,
        "bottleneck_mix": {k: v / total for k, v in sorted(mix.items(), key=lambda kv: -kv[1]) if v > 0},
    }


def mix_text(mix, top=3):
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(mix.items())[:top])


def benchmark(tessera, model, repeats, tmp):
    tsr = Path(tmp) / "resnet50_rdu.tsr"
    runs = []
    for _ in range(repeats):
        t0 = time.monotonic()
        subprocess.run([tessera, "compile", str(model), "--target", "rdu", "--chip", "sn40l_like", "--batch", "1",
                        "--signature", "serving_default", "-o", str(tsr)], check=True, capture_output=True)
        t1 = time.monotonic()
        p = subprocess.run([tessera, "simulate", str(tsr), "--json", str(Path(tmp) / "bm.json")], check=True,
                           capture_output=True, text=True)
        t2 = time.monotonic()
        if "mapping: stored in the artifact" not in p.stdout:
            sys.exit("rdu.py: simulate did not use the mapping stored by compile:\n" + p.stdout)
        runs.append((t2 - t0, t1 - t0, t2 - t1))
        size = tsr.stat().st_size
    sim = json.loads((Path(tmp) / "bm.json").read_text())
    return {
        "what": "tessera compile resnet50 --target rdu --chip sn40l_like --batch 1 --signature serving_default -o r.tsr"
                " && tessera simulate r.tsr",
        "repeats": repeats, "wall_seconds": [r[0] for r in runs],
        "median_wall_seconds": statistics.median(r[0] for r in runs),
        "median_compile_seconds": statistics.median(r[1] for r in runs),
        "median_simulate_seconds": statistics.median(r[2] for r in runs),
        "mapping_seconds": sim["compile_seconds"], "placement_seconds": sim["placement_seconds"],
        "target_seconds": 30, "tsr_bytes": size,
    }


def markdown(rows, bm, header):
    out = [header, "",
           "| model | chip | batch | mapping | sections | cycles | samples/s | % of peak | bottleneck mix (cycles) | valid | fused speed-up |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        speed = ""
        if r["fused"]:
            other = next(o for o in rows if not o["fused"] and (o["model"], o["chip"], o["batch"]) == (r["model"], r["chip"], r["batch"]))
            speed = f"{r['samples_per_s'] / other['samples_per_s']:.2f}×" if other["samples_per_s"] else ""
        out.append(f"| {r['model']} | {r['chip']} | {r['batch']} | {'fused' if r['fused'] else 'unfused'} | {r['sections']} | "
                   f"{r['cycles']:,.0f} | {r['samples_per_s']:,.6g} | {r['percent_of_peak']:.3g} | {mix_text(r['bottleneck_mix'])} | "
                   f"{'yes' if r['valid'] else 'NO'} | {speed} |")
    if bm:
        out += ["", f"ResNet50 compile + simulate on sn40l_like (`{bm['what']}`): median wall "
                f"{bm['median_wall_seconds']:.2f} s over {bm['repeats']} runs ({', '.join(f'{w:.2f}' for w in bm['wall_seconds'])}; "
                f"compile {bm['median_compile_seconds']:.2f} s of which mapping {bm['mapping_seconds']:.2f} s, simulate "
                f"{bm['median_simulate_seconds']:.2f} s; .tsr {bm['tsr_bytes'] / 1e6:.0f} MB); target < {bm['target_seconds']} s."]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--chips", default="small,sn40l_like")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the compile + simulate benchmark (0: skip it)")
    ap.add_argument("--models-dir", default=None, help="the bench tier (default: bench/models.py's cache)")
    ap.add_argument("--tessera", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    tessera = tessera_bin(a.tessera)
    models_dir = a.models_dir or os.environ.get("TESSERA_BENCH_MODELS") or bench_dir()
    if models_dir is None:
        sys.exit("rdu.py: give --models-dir (the bench tier's models folder)")
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows, bm = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            model = find_model(name, models_dir)
            for chip in a.chips.split(","):
                for batch in (int(b) for b in a.batches.split(",")):
                    for fused in (True, False):
                        r = simulate(tessera, name, model, chip, batch, fused, tmp)
                        rows.append(r)
                        print(f"{name:15s} {chip:11s} b{batch:<3d} {'fused' if fused else 'unfused':8s} "
                              f"{r['sections']:4d} sections {r['samples_per_s']:12.6g} samples/s "
                              f"{r['percent_of_peak']:7.3g}% peak  {mix_text(r['bottleneck_mix'])}  valid={r['valid']}",
                              flush=True)
        if a.repeats > 0 and "resnet50" in a.models.split(","):
            bm = benchmark(tessera, find_model("resnet50", models_dir), a.repeats, tmp)
            print(f"resnet50 compile + simulate on sn40l_like: median {bm['median_wall_seconds']:.2f} s", flush=True)
    command = "python3 bench/rdu.py " + " ".join(sys.argv[1:])
    header = (f"# rdu simulation of the bench models\n\n`{command.strip()}` at git {git}; bf16 timing; models from "
              f"`{models_dir}`. Deterministic simulator numbers (only wall times depend on the machine).")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rdu.md").write_text(markdown(rows, bm, header))
    (out / "rdu.json").write_text(json.dumps({"command": command.strip(), "git": git, "rows": rows, "benchmark": bm}, indent=1) + "\n")
    print(f"wrote {out / 'rdu.md'} and {out / 'rdu.json'}")
    bad = [r for r in rows if not r["valid"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
