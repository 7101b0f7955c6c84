"""`tessera simulate --report`: the HTML page of a zoo model's rdu mapping renders in headless
Chromium to a screenshot that is not blank (many colours, much of the page drawn, coloured
heatmap/chart pixels), and the page is self-contained. A blank page fails the same check."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import ZOO_DIR, zoo_models
from tessera_testlib import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1200, 1600

# (model, chip, batch): a small model on tiny, and the bench models the closing note shows.
CASES = [("cnn_k3", "tiny", 2), ("encoder_k3", "small", 8), ("resnet50_k3", "sn40l_like", 8)]


def screenshot(html, png, tmp_path):
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--screenshot={png}",
                    f"--window-size={WIDTH},{HEIGHT}", html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image
    return Image.open(png).convert("RGB")


def drawn_stats(img):
    """(fraction of pixels not near-white, distinct 5-bit colours, fraction of saturated pixels)."""
    import numpy as np
    px = np.asarray(img, dtype=np.int32).reshape(-1, 3)
    drawn = float((px.min(axis=1) < 235).mean())
    saturated = float((px.max(axis=1) - px.min(axis=1) > 60).mean())
    q = px >> 3
    colours = len(np.unique(q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2]))
    return drawn, colours, saturated


def not_blank(img):
    drawn, colours, saturated = drawn_stats(img)
    return drawn > 0.04 and colours > 100 and saturated > 0.01, (drawn, colours, saturated)


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/bootstrap.sh installs it: apt-get install chromium)")
    return CHROMIUM


@pytest.mark.parametrize("name,chip,batch", CASES, ids=[f"{m}-{c}" for m, c, _ in CASES])
def test_report_renders(name, chip, batch, chromium, tmp_path):
    model = next((m for m in zoo_models("inference") if m["name"] == name), None)
    if model is None:
        pytest.skip("zoo not generated")
    html, js = tmp_path / "report.html", tmp_path / "run.json"
    run_cli("simulate", ZOO_DIR / model["path"], "--signature", model["signature"] or "serving_default",
            "--chip", chip, "--batch", batch, "--report", html, "--json", js, "--sweep", "mesh.vector_link_Bpc=8,32,128",
            timeout=300)
    run = json.loads(js.read_text())
    page = html.read_text()
    # Self-contained: nothing fetched from anywhere.
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script|<link|<img|src=|@import", page)
    # One mesh per section (the page caps this for many sections), a roofline point per
    # section of both mappings, the fused/unfused comparison and the sweep's three points.
    meshes = page.count('<div class="mesh"')
    assert meshes == min(run["sections"], 12) or "slowest of" in page, (meshes, run["sections"])
    drawn = [s for s in run["per_section"] if s["flops"] > 0 and s["cycles"] > 0 and s["hbm_bytes"] + s["ddr_bytes"] > 0]
    assert page.count('class="pt-main"') == len(drawn) > 0
    assert page.count('class="pt-base"') > 0
    assert 'id="speedup"' in page and page.count('class="sweep-pt"') == 3

    img = screenshot(html, tmp_path / "report.png", tmp_path)
    assert img.size == (WIDTH, HEIGHT)
    ok, stats = not_blank(img)
    print(name, chip, "drawn fraction, colours, saturated fraction:", stats)
    assert ok, f"screenshot looks blank: drawn fraction, colours, saturated fraction = {stats}"


def test_blank_page_fails_the_check(chromium, tmp_path):
    """The screenshot check can fail: an empty page (and one with only text) does not pass it."""
    for i, body in enumerate(["", "<h1>rdu report</h1><p>" + "cycles 12345 " * 200 + "</p>"]):
        html = tmp_path / f"blank{i}.html"
        html.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>")
        ok, stats = not_blank(screenshot(html, tmp_path / f"blank{i}.png", tmp_path))
        print("blank page", i, stats)
        assert not ok, stats
