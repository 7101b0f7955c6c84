"""`tessera train` end to end (issue 5): progress output, --stats-json fields, TensorBoard event
files read by the `tensorboard` package, the exported SavedModel loaded by TensorFlow (outputs
and accuracy match ours), the same loss curve for 1 process, --replicas 2 and `mpirun -np 2`,
a corrupt TFRecord reported with file and offset, and flag errors that never crash.

A small MLP (784-32-10, dropout 0.3) on MNIST split by an explicit permutation file keeps
the whole file to about a minute on two cores."""
import glob
import os
import pathlib
import struct

import numpy as np
import pytest

from tessera_testlib import run_cli
from train_cli_util import (IMAGES, LABELS, have_mnist, make_mlp, mnist_arrays, mpirun_prefix, run_train,
                            stats, train_args, write_perm)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(not have_mnist(), reason="MNIST not found (shared/data/mnist)")

STEPS = 60


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_cli")
    return {"dir": d, "model": make_mlp(d / "mlp"), "perm": write_perm(d / "perm.npy")}


@pytest.fixture(scope="module")
def trained(setup):
    """One run with everything on: logs, stats, export, eval every 30 steps."""
    d = setup["dir"]
    out = {"logdir": d / "logs", "stats": d / "stats.json", "export": d / "export"}
    proc = run_train(train_args(setup["model"], setup["perm"], STEPS, extra=[
        "--logdir", out["logdir"], "--stats-json", out["stats"], "--export", out["export"],
        "--eval-every", 30, "--log-every", 20, "--dump-ir", d / "step.ir"]))
    out["proc"] = proc
    out["stats_data"] = stats(out["stats"])
    return out


def test_progress_and_stats(trained, setup):
    err = trained["proc"].stderr
    # Not a terminal: one line every --log-every steps (and the first and last).
    for step in (1, 20, 40, 60):
        assert f"step {step}/{STEPS}" in err, err
    assert "samples/s" in err and "ETA" in err and "input wait" in err
    assert "eval at step 30" in err and "eval at step 60" in err
    s = trained["stats_data"]
    assert s["steps"] == STEPS and len(s["losses"]) == STEPS
    for field in ("final_loss", "final_accuracy", "eval_loss", "eval_accuracy", "samples_per_second",
                  "input_wait_fraction", "peak_rss_bytes"):
        assert s[field] is not None, field
    assert s["eval_samples"] == 2000
    assert s["samples_per_second"] > 0 and 0 <= s["input_wait_fraction"] < 1
    assert s["peak_rss_bytes"] > 10 << 20
    assert np.mean(s["losses"][-10:]) < 0.6 * np.mean(s["losses"][:5])
    assert s["eval_accuracy"] > 0.7
    # --dump-ir: the step graph holds the forward and backward matmuls (2 layers: >= 2 + 3).
    assert (setup["dir"] / "step.ir").read_text().count("MatMul") >= 5


def test_tensorboard_reads_scalars_and_graph(trained):
    from tensorboard.backend.event_processing import event_accumulator
    files = glob.glob(str(trained["logdir"] / "events.out.tfevents.*"))
    assert len(files) == 1
    acc = event_accumulator.EventAccumulator(str(trained["logdir"]))
    acc.Reload()
    tags = acc.Tags()
    for tag in ("loss", "accuracy", "learning_rate", "samples_per_second", "val_loss", "val_accuracy"):
        assert tag in tags["scalars"], tags
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == list(range(1, STEPS + 1))
    np.testing.assert_allclose([e.value for e in loss], trained["stats_data"]["losses"], rtol=1e-6)
    assert [e.step for e in acc.Scalars("val_accuracy")] == [30, 60]
    np.testing.assert_allclose(acc.Scalars("learning_rate")[0].value, 1e-3, rtol=1e-6)
    assert tags["graph"]
    assert len(acc.Graph().node) > 0 or len(acc.Graph().library.function) > 0


def test_tensorflow_loads_the_export(trained, setup):
    export = str(trained["export"])
    x, y = mnist_arrays(setup["perm"], 8000, 10000)
    loaded = tf.saved_model.load(export)
    assert {"serving_default", "train_forward"} <= set(loaded.signatures.keys())
    tf_out = list(loaded.signatures["serving_default"](tf.constant(x)).values())[0].numpy()
    # Ours on the same export.
    ours_dir = setup["dir"] / "ours"
    ours_dir.mkdir(exist_ok=True)
    np.savez(ours_dir / "in.npz", x=x)
    run_cli("run", export, "--input", ours_dir / "in.npz", "--output", ours_dir / "out.npz")
    with np.load(ours_dir / "out.npz") as z:
        ours = z[list(z.keys())[0]]
    assert np.std(ours) > 0.01
    np.testing.assert_allclose(ours, tf_out, atol=1e-4 * np.abs(tf_out).max() + 1e-6)
    # TF reproduces our evaluation accuracy (and it differs from the untrained model's).
    tf_acc = float(np.mean(np.argmax(tf_out, 1) == y))
    assert abs(tf_acc - trained["stats_data"]["eval_accuracy"]) < 1e-3
    untrained = tf.saved_model.load(str(setup["model"]))
    first = list(untrained.signatures["serving_default"](tf.constant(x)).values())[0].numpy()
    assert float(np.mean(np.argmax(first, 1) == y)) < tf_acc - 0.2


def _curve(setup, name, extra=(), prefix=()):
    out = setup["dir"] / f"{name}.json"
    run_train(train_args(setup["model"], setup["perm"], 12, extra=["--stats-json", out, "--quiet", *extra],
                         validation=False), prefix=prefix)
    s = stats(out)
    assert s["processes"] == (2 if prefix else 1)
    return np.array(s["losses"])


def test_replicas_and_mpirun_give_the_same_curve(setup):
    one = _curve(setup, "one")
    two = _curve(setup, "replicas2", ["--replicas", 2])
    np.testing.assert_allclose(two, one, rtol=1e-4)
    prefix = mpirun_prefix(2)
    if prefix is None:
        pytest.skip("mpirun not installed (scripts/bootstrap.sh installs openmpi-bin)")
    ck, export = setup["dir"] / "mpi_ck", setup["dir"] / "mpi_export"
    mpi = _curve(setup, "mpi2", ["--checkpoint-dir", ck, "--export", export], prefix=prefix)
    np.testing.assert_allclose(mpi, one, rtol=1e-4)
    # Rank 0 alone wrote the checkpoint and the export; both load in TensorFlow.
    assert tf.train.latest_checkpoint(str(ck)).endswith("ckpt-12")
    assert int(tf.train.load_checkpoint(str(ck / "ckpt-12")).get_tensor("optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE")) == 12
    assert "serving_default" in tf.saved_model.load(str(export)).signatures


def test_epochs_over_an_npz_source(setup):
    d = setup["dir"]
    x, y = mnist_arrays(setup["perm"], 0, 2000)
    np.savez(d / "train.npz", images=x, labels=y)
    out = d / "epochs.json"
    run_train(["train", str(setup["model"]), "--data", f"npz:{d / 'train.npz'}:x=images,y=labels",
               "--loss", "sparse_categorical_crossentropy", "--batch", "300", "--epochs", "2", "--threads", "1",
               "--stats-json", str(out), "--quiet"])
    s = stats(out)
    assert s["steps"] == 2 * (2000 // 300)
    assert s["losses"][-1] < s["losses"][0]


def _tfrecord(path, x, y):
    with tf.io.TFRecordWriter(str(path)) as w:
        for xi, yi in zip(x, y):
            ex = tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=xi.tolist())),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(yi)]))}))
            w.write(ex.SerializeToString())


def test_corrupt_tfrecord_is_reported_with_file_and_offset(setup):
    d = setup["dir"]
    x, y = mnist_arrays(setup["perm"], 0, 200)
    path = d / "data.tfrecord"
    _tfrecord(path, x, y)
    raw = bytearray(path.read_bytes())
    # Flip a byte inside the 3rd record's payload: records are 8 + 4 + len + 4 bytes.
    off = 0
    for _ in range(2):
        (n,) = struct.unpack_from("<Q", raw, off)
        off += 16 + n
    bad_record_at = off
    raw[off + 12 + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    spec = f"tfrecord:{path}:x:float32:784,y:int64::label=y"
    base = ["train", str(setup["model"]), "--data", spec, "--loss", "sparse_categorical_crossentropy",
            "--batch", "32", "--steps", "5", "--threads", "1", "--shuffle", "0", "--quiet"]
    stop = run_train(base, check=False)
    assert stop.returncode == 1, stop.stderr
    assert str(path) in stop.stderr and f"offset {bad_record_at}" in stop.stderr, stop.stderr
    skip = run_train(base + ["--on-corrupt", "skip", "--stats-json", str(d / "skip.json")], check=False)
    assert skip.returncode == 0, skip.stderr
    assert "skipped a corrupt record" in skip.stderr and str(path) in skip.stderr, skip.stderr
    assert f"offset {bad_record_at}" in skip.stderr, skip.stderr
    assert stats(d / "skip.json")["steps"] == 5


@pytest.mark.parametrize("extra,message", [
    (["--bogus-switch"], "unknown option"),
    (["--data", "parquet:x"], "unknown kind"),
    (["--optimizer", "lamb"], "--optimizer"),
    (["--loss", "hinge"], "--loss"),
    (["--take-indices", "nope.npy:0:10"], "nope.npy"),
    (["--endpoint", "missing_sig"], "missing_sig"),
])
def test_flag_errors_are_messages_not_crashes(setup, extra, message):
    args = train_args(setup["model"], setup["perm"], 2, validation=False)
    # Later flags win for value flags: replace by appending after removing the originals.
    for flag in ("--data", "--optimizer", "--loss", "--take-indices"):
        if flag in extra:
            i = args.index(flag)
            del args[i:i + 2]
    proc = run_train(args + [str(e) for e in extra], check=False)
    assert proc.returncode in (1, 2), proc.stderr
    assert message in proc.stderr, proc.stderr


def test_progress_bar_on_a_terminal(setup):
    """On a TTY the bar rewrites one line (\\r ... erase-to-end) and ends with a newline."""
    import pty
    from tessera_testlib import TESSERA
    import subprocess
    master, slave = pty.openpty()
    args = train_args(setup["model"], setup["perm"], 8, validation=False)
    proc = subprocess.Popen([str(TESSERA), *args], stdout=slave, stderr=slave)
    proc.wait(timeout=300)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.returncode == 0, out
    text = out.decode()
    assert "\rstep 8/8 [====================] loss" in text and "\x1b[K" in text, repr(text)
    assert "step 8/8" in text.splitlines()[-2] or "done: 8 steps" in text


def test_rdu_target_reports_the_simulated_step(setup):
    out = setup["dir"] / "rdu.json"
    proc = run_train(train_args(setup["model"], setup["perm"], 2, validation=False,
                                extra=["--target", "rdu", "--stats-json", out]))
    assert stats(out)["simulated_step_seconds"] > 0
    assert "rdu: simulated step time" in proc.stderr
