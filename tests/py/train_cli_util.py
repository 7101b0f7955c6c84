"""Shared by test_train_cli.py and test_train_checkpoint.py: a small Keras MLP exported per the
README's ExportArchive recipe (serving_default + train_forward), the MNIST permutation split
(train rows perm[:8000], validation perm[8000:]) and a `tessera train` runner."""
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np

from tessera_testlib import TESSERA

MNIST = pathlib.Path(os.environ.get("TESSERA_MNIST_DIR", pathlib.Path(__file__).resolve().parents[3] / "shared/data/mnist"))
if not MNIST.exists():
    MNIST = pathlib.Path("/work/shared/data/mnist")
IMAGES = MNIST / "t10k-images-idx3-ubyte.gz"
LABELS = MNIST / "t10k-labels-idx1-ubyte.gz"


def have_mnist():
    return IMAGES.exists() and LABELS.exists()


def make_mlp(out_dir, hidden=32, dropout=0.3, seed=1):
    """784-hidden(gelu)-dropout-10(softmax), exported with train_forward (training=True)."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,)), keras.layers.Dense(hidden, activation="gelu")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = [tf.TensorSpec([None, 784], tf.float32)]
    archive.add_endpoint("serving_default", lambda x: model(x, training=False), input_signature=spec)
    archive.add_endpoint("train_forward", lambda x: model(x, training=True), input_signature=spec)
    archive.write_out(str(out_dir), verbose=False)
    return out_dir


def write_perm(path, seed=0):
    np.save(path, np.random.RandomState(seed).permutation(10000).astype(np.int64))
    return path


def mnist_arrays(perm, start, end):
    """Rows perm[start:end] of MNIST as float32 [n, 784] / 255 and int64 labels."""
    import gzip
    with gzip.open(IMAGES) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(LABELS) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    idx = np.load(perm)[start:end]
    return x[idx].astype(np.float32) / 255.0, y[idx].astype(np.int64)


def train_args(model, perm, steps, batch=64, extra=(), validation=True, train_rows="0:8000"):
    args = ["train", model, "--data", f"mnist:{IMAGES},{LABELS}", "--take-indices", f"{perm}:{train_rows}",
            "--loss", "sparse_categorical_crossentropy", "--optimizer", "adam", "--lr", "1e-3",
            "--batch", batch, "--steps", steps, "--seed", 1, "--threads", 1, "--shuffle", 1000]
    if validation:
        args += ["--validation-data", f"mnist:{IMAGES},{LABELS}", "--validation-take-indices", f"{perm}:8000:10000"]
    return [str(a) for a in [*args, *extra]]


def run_train(args, check=True, env=None, timeout=600, prefix=()):
    e = dict(os.environ)
    if env:
        e.update(env)
    proc = subprocess.run([*prefix, str(TESSERA), *args], capture_output=True, text=True, env=e, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def stats(path):
    return json.loads(pathlib.Path(path).read_text())


def mpirun_prefix(n):
    """mpirun as root on one machine, traffic on loopback (shared/design/README.md)."""
    mpirun = shutil.which("mpirun")
    if not mpirun:
        return None
    return [mpirun, "-np", str(n), "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader",
            "--mca", "btl_vader_single_copy_mechanism", "none", "--mca", "oob_tcp_if_include", "lo"]
