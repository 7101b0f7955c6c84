"""Issue 5, acceptance 1-2 on real data: the seed example trained by `tessera train` against the
same Keras model trained by TensorFlow.

MNIST's 10k images (../shared/data/mnist), split by one explicit permutation file that both
sides read: the first 8,000 train, the last 2,000 evaluate. The seed MLP 784-512(gelu)-256(gelu)-
10(softmax) with Dropout(0.3), Adam 3e-4, batch 256, 2,000 steps, for seeds 0, 1, 2. TensorFlow's
baseline configuration (fixed here): Keras 3 `model.fit` on a tf.data pipeline
shuffle(8000, seed) -> batch(256, drop_remainder) -> repeat, initial weights from
`keras.utils.set_random_seed(seed)`. Tessera trains a SavedModel exported per recipe (a) (an
ExportArchive with `serving_default` and a `train_forward` endpoint calling the model with
training=True) from a model built the same way, so both start from the same weights.

Asserted: Tessera's mean test accuracy over the 3 seeds is within 1 percentage point of
TensorFlow's and above 94%; TensorFlow loads Tessera's exported SavedModel, its outputs on the
test split match `tessera run` on that export (numeric-match rule), and the accuracy TF computes
from them equals the accuracy Tessera reported.
"""
import gzip
import json
import os
import pathlib

import numpy as np
import pytest

from tessera_testlib import REPO, assert_numeric_match, run_cli, run_saved_model

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

MNIST = REPO.parent / "shared" / "data" / "mnist"
IMAGES = MNIST / "t10k-images-idx3-ubyte.gz"
LABELS = MNIST / "t10k-labels-idx1-ubyte.gz"
SEEDS = (0, 1, 2)
STEPS, BATCH, LR = 2000, 256, 3e-4

pytestmark = pytest.mark.skipif(not IMAGES.exists(), reason="needs ../shared/data/mnist")


def _mnist():
    x = np.frombuffer(gzip.open(IMAGES).read()[16:], np.uint8).reshape(-1, 784)
    y = np.frombuffer(gzip.open(LABELS).read()[8:], np.uint8)
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


def _mlp(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(512, activation="gelu"), keras.layers.Dropout(0.3),
        keras.layers.Dense(256, activation="gelu"), keras.layers.Dropout(0.3),
        keras.layers.Dense(10, activation="softmax")])


def _export(model, path):
    spec = [tf.TensorSpec([None, 784], tf.float32)]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda x: model(x, training=False), input_signature=spec)
    archive.add_endpoint("train_forward", lambda x: model(x, training=True), input_signature=spec)
    archive.write_out(str(path))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mnist")
    perm = np.random.default_rng(20261126).permutation(10000)
    np.save(tmp / "perm.npy", perm)
    return tmp, perm


def _tf_accuracy(seed, x, y, perm):
    model = _mlp(seed)
    model.compile(optimizer=keras.optimizers.Adam(LR), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    train = perm[:8000]
    ds = (tf.data.Dataset.from_tensor_slices((x[train], y[train])).shuffle(8000, seed=seed)
          .batch(BATCH, drop_remainder=True).repeat())
    model.fit(ds, steps_per_epoch=STEPS, epochs=1, verbose=0)
    return model.evaluate(x[perm[8000:]], y[perm[8000:]], verbose=0)[1]


def _tessera_train(tmp, seed, export=None):
    model_dir = tmp / f"mlp_seed{seed}"
    if not model_dir.exists():
        _export(_mlp(seed), model_dir)
    data = f"mnist:{IMAGES},{LABELS}"
    perm = tmp / "perm.npy"
    stats = tmp / f"stats{seed}.json"
    args = ["train", model_dir, "--data", data, "--take-indices", f"{perm}:0:8000",
            "--validation-data", data, "--validation-take-indices", f"{perm}:8000:10000",
            "--loss", "sparse_categorical_crossentropy", "--optimizer", "adam", "--lr", LR,
            "--batch", BATCH, "--steps", STEPS, "--seed", seed, "--quiet", "--stats-json", stats]
    if export:
        args += ["--export", export]
    run_cli(*args, timeout=1800)
    return json.loads(stats.read_text())


def test_seed_mlp_accuracy_matches_tensorflow(split):
    tmp, perm = split
    x, y = _mnist()
    tf_acc = [_tf_accuracy(s, x, y, perm) for s in SEEDS]
    ours = [_tessera_train(tmp, s, export=tmp / f"trained{s}" if s == 0 else None) for s in SEEDS]
    ts_acc = [st["eval_accuracy"] for st in ours]
    print(f"TF accuracy {tf_acc} mean {np.mean(tf_acc):.4f}; Tessera {ts_acc} mean {np.mean(ts_acc):.4f}")
    assert np.mean(ts_acc) > 0.94
    assert abs(np.mean(ts_acc) - np.mean(tf_acc)) <= 0.01

    # The export: TensorFlow loads it, and its outputs match Tessera's and give Tessera's accuracy.
    export = tmp / "trained0"
    xt, yt = x[perm[8000:]], y[perm[8000:]]
    loaded = tf.saved_model.load(str(export))
    fn = loaded.signatures["serving_default"]
    (name, tf_out), = fn(tf.constant(xt)).items()
    ours_out = run_saved_model(export, {list(fn.structured_input_signature[1])[0]: xt})
    assert_numeric_match(tf_out.numpy(), ours_out[name], "exported model output")
    tf_export_acc = float(np.mean(np.argmax(tf_out.numpy(), 1) == yt))
    assert tf_export_acc == pytest.approx(ours[0]["eval_accuracy"], abs=1e-9)
