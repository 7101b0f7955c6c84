"""Tessera's binaries link neither libtensorflow nor libpython, and run with Python hidden."""
import os
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np

from tessera_testlib import REPO, TESSERA


def test_binary_links_no_tensorflow_or_python():
    libs = subprocess.run(["ldd", str(TESSERA)], capture_output=True, text=True, check=True).stdout
    for forbidden in ("tensorflow", "python", "libtf"):
        assert forbidden not in libs.lower(), f"tessera links {forbidden}:\n{libs}"


def test_cli_runs_with_python_hidden():
    example = REPO / "examples/mnist_mlp"
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "out.npz"
        # An empty PATH and no Python variables: nothing Python can be found or started.
        env = {"PATH": tmp, "HOME": tmp}
        proc = subprocess.run([str(TESSERA), "run", str(example), "--input",
                               str(REPO / "examples/mnist_digits.npz"), "--output", str(out)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        with np.load(out) as z:
            probs = z["output_0"]
    assert probs.shape == (16, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # The bundled model was trained on MNIST: it must recognise most of the bundled digits.
    labels = [4, 9, 9, 7, 1, 1, 9, 0, 7, 8, 3, 4, 8, 6, 3, 8]
    assert (probs.argmax(axis=1) == labels).mean() >= 0.9


def test_readme_main_job_demo():
    """README's main job (scripts/demo.sh): compile the bundled model to a .tsr, run, bench."""
    proc = subprocess.run(["bash", str(REPO / "scripts/demo.sh")], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, TESSERA_BUILD_DIR=str(TESSERA.parent)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "unsupported ops: none" in proc.stdout
    out = pathlib.Path(proc.stdout.split("outputs written to ", 1)[1].split()[0])
    with np.load(out) as z:
        probs = z["output_0"]
    labels = [4, 9, 9, 7, 1, 1, 9, 0, 7, 8, 3, 4, 8, 6, 3, 8]
    assert (probs.argmax(axis=1) == labels).mean() >= 0.9
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip().startswith(("1 ", "16 "))]
    assert [r[0] for r in rows] == ["1", "16"] and all(float(r[2]) > 0 for r in rows), proc.stdout[-1500:]
    shutil.rmtree(out.parent)
