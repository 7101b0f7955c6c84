"""`tessera train` checkpoints against TensorFlow (issue 5, acceptance 2 and 4):
tf.train.load_checkpoint reads every variable and Adam slot with the right values (slots checked
against tf.GradientTape on the same batch), the object graph lets tf.train.Checkpoint restore
into the loaded SavedModel, --resume continues exactly as an uninterrupted run (same losses),
a crash at each stage of the checkpoint writer leaves the previous checkpoint loadable and
resumable, and so does a loop of random kill -9s."""
import os
import random
import signal
import subprocess

import numpy as np
import pytest

from tessera_testlib import TESSERA
from train_cli_util import have_mnist, make_mlp, mnist_arrays, run_train, stats, train_args, write_perm

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(not have_mnist(), reason="MNIST not found (shared/data/mnist)")

ATTR = "/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_ckpt")
    return {"dir": d, "model": make_mlp(d / "mlp"), "perm": write_perm(d / "perm.npy")}


@pytest.fixture(scope="module")
def reference(setup):
    """The uninterrupted 40-step run every resumed run is compared with."""
    out = setup["dir"] / "ref.json"
    run_train(train_args(setup["model"], setup["perm"], 40, validation=False,
                         extra=["--stats-json", out, "--quiet"]))
    return np.array(stats(out)["losses"])


def _object_graph(reader):
    from tensorflow.core.protobuf import trackable_object_graph_pb2
    g = trackable_object_graph_pb2.TrackableObjectGraph()
    g.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return g


def test_tensorflow_reads_variables_and_slots(setup, tmp_path):
    """One Adam step without dropout (serving_default), shuffle off: the batch is rows perm[0:64].
    m and v must be (1-b1) g and (1-b2) g^2 for TF's gradient g on that batch."""
    ck, export = tmp_path / "ck", tmp_path / "export"
    run_train(train_args(setup["model"], setup["perm"], 1, validation=False, shuffle=0, extra=[
        "--endpoint", "serving_default", "--checkpoint-dir", ck, "--export", export, "--quiet"]))
    prefix = tf.train.latest_checkpoint(str(ck))
    assert prefix and prefix.endswith("ckpt-1")
    r = tf.train.load_checkpoint(prefix)
    shapes = r.get_variable_to_shape_map()
    orig = tf.train.load_checkpoint(str(setup["model"] / "variables/variables"))
    # Every key of the model's own bundle is there, with the export's (trained) values.
    exp = tf.train.load_checkpoint(str(export / "variables/variables"))
    for key in orig.get_variable_to_shape_map():
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        assert key in shapes, key
        np.testing.assert_array_equal(r.get_tensor(key), exp.get_tensor(key), err_msg=key)
    assert int(r.get_tensor("optimizer/iter" + ATTR)) == 1
    assert int(r.get_tensor("tessera/samples_seen" + ATTR)) == 64
    assert list(r.get_tensor("tessera/input_position" + ATTR))[0] == 1

    # The object graph: every slot_variables entry names a node whose key holds that slot.
    g = _object_graph(r)
    root = {c.local_name: c.node_id for c in g.nodes[0].children}
    opt = g.nodes[root["optimizer"]]
    slots = {}
    for sv in opt.slot_variables:
        var_key = g.nodes[sv.original_variable_node_id].attributes[0].checkpoint_key
        slot_key = g.nodes[sv.slot_variable_node_id].attributes[0].checkpoint_key
        assert slot_key == var_key[:-len(ATTR)] + f"/.OPTIMIZER_SLOT/optimizer/{sv.slot_name}" + ATTR
        assert shapes[slot_key] == shapes[var_key]
        slots[(var_key, sv.slot_name)] = r.get_tensor(slot_key)
    assert len(slots) == 2 * 4  # m and v for two kernels and two biases

    # TF's gradient on the same batch, from the original weights.
    x, y = mnist_arrays(setup["perm"], 0, 64)
    model = tf.saved_model.load(str(setup["model"]))
    fn = model.signatures["serving_default"]
    var_by_key = {}
    for var_key, _ in slots:
        value = orig.get_tensor(var_key)
        matches = [v for v in model.variables if v.shape == value.shape and np.array_equal(v.numpy(), value)]
        assert matches, var_key
        var_by_key[var_key] = matches[0]
    with tf.GradientTape() as tape:
        p = list(fn(tf.constant(x)).values())[0]
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, p))
    keys = sorted({k for k, _ in slots})
    grads = tape.gradient(loss, [var_by_key[k] for k in keys])
    for k, g_tf in zip(keys, grads):
        g_tf = g_tf.numpy()
        scale = np.abs(g_tf).max() + 1e-12
        np.testing.assert_allclose(slots[(k, "m")], 0.1 * g_tf, atol=1e-4 * 0.1 * scale, err_msg=k)
        np.testing.assert_allclose(slots[(k, "v")], 0.001 * g_tf ** 2, atol=1e-4 * 0.001 * scale ** 2, err_msg=k)


def test_tf_checkpoint_restores_into_the_saved_model(setup, tmp_path):
    """tf.train.Checkpoint matches our object graph against the SavedModel's own objects."""
    ck, export = tmp_path / "ck", tmp_path / "export"
    run_train(train_args(setup["model"], setup["perm"], 5, validation=False, extra=[
        "--checkpoint-dir", ck, "--export", export, "--quiet"]))
    x, _ = mnist_arrays(setup["perm"], 8000, 8100)
    loaded = tf.saved_model.load(str(setup["model"]))
    before = list(loaded.signatures["serving_default"](tf.constant(x)).values())[0].numpy()
    status = tf.train.Checkpoint(root=loaded).read(tf.train.latest_checkpoint(str(ck)))
    status.expect_partial()
    status.assert_existing_objects_matched()
    restored = list(loaded.signatures["serving_default"](tf.constant(x)).values())[0].numpy()
    trained = tf.saved_model.load(str(export))
    want = list(trained.signatures["serving_default"](tf.constant(x)).values())[0].numpy()
    assert np.abs(before - want).max() > 1e-4
    np.testing.assert_allclose(restored, want, rtol=0, atol=1e-6)


def test_resume_continues_the_same_curve(setup, reference, tmp_path):
    ck = tmp_path / "ck"
    run_train(train_args(setup["model"], setup["perm"], 25, validation=False,
                         extra=["--checkpoint-dir", ck, "--checkpoint-every", 10, "--keep", 2, "--quiet"]))
    listed = (ck / "checkpoint").read_text()
    assert "ckpt-25" in listed and "ckpt-20" in listed and "ckpt-10" not in listed
    assert not (ck / "ckpt-10.index").exists()
    out = tmp_path / "rest.json"
    run_train(train_args(setup["model"], setup["perm"], 40, validation=False,
                         extra=["--checkpoint-dir", ck, "--resume", "--stats-json", out, "--quiet"]))
    s = stats(out)
    assert s["first_step"] == 25 and s["steps"] == 15
    np.testing.assert_array_equal(np.array(s["losses"]), reference[25:])


@pytest.mark.parametrize("stage", range(1, 7))
def test_crash_at_each_checkpoint_stage(setup, reference, tmp_path, stage):
    ck = tmp_path / "ck"
    run_train(train_args(setup["model"], setup["perm"], 10, validation=False,
                         extra=["--checkpoint-dir", ck, "--quiet"]))
    crashed = run_train(train_args(setup["model"], setup["perm"], 20, validation=False,
                                   extra=["--checkpoint-dir", ck, "--resume", "--quiet"]),
                        check=False, env={"TESSERA_CHECKPOINT_FAULT_STAGE": str(stage)})
    assert crashed.returncode == 86, crashed.stderr
    latest = tf.train.latest_checkpoint(str(ck))
    assert latest.endswith("ckpt-20" if stage == 6 else "ckpt-10")
    r = tf.train.load_checkpoint(latest)  # loads: every key readable
    for key in r.get_variable_to_shape_map():
        r.get_tensor(key)
    out = tmp_path / "rest.json"
    run_train(train_args(setup["model"], setup["perm"], 30, validation=False,
                         extra=["--checkpoint-dir", ck, "--resume", "--stats-json", out, "--quiet"]))
    s = stats(out)
    first = s["first_step"]
    assert first == (20 if stage == 6 else 10)
    np.testing.assert_array_equal(np.array(s["losses"]), reference[first:30])


def test_resumed_run_tensorboard_drops_orphaned_steps(setup, tmp_path):
    """A run that dies at its step-20 checkpoint has logged steps 11-20; resumed from step 10
    into the same log directory, the new event file opens with a SessionLog START at step 11
    (TensorFlow's marker for "drop what earlier files logged from here on") and TensorBoard
    (classic and plugin readers) shows each step once, with the resumed run's values."""
    ck, logdir = tmp_path / "ck", tmp_path / "logs"
    run_train(train_args(setup["model"], setup["perm"], 10, validation=False,
                         extra=["--checkpoint-dir", ck, "--quiet"]))
    crashed = run_train(train_args(setup["model"], setup["perm"], 20, validation=False,
                                   extra=["--checkpoint-dir", ck, "--resume", "--logdir", logdir, "--quiet"]),
                        check=False, env={"TESSERA_CHECKPOINT_FAULT_STAGE": "1"})
    assert crashed.returncode == 86, crashed.stderr
    out = tmp_path / "rest.json"
    run_train(train_args(setup["model"], setup["perm"], 25, validation=False,
                         extra=["--checkpoint-dir", ck, "--resume", "--logdir", logdir, "--stats-json", out,
                                "--quiet"]))
    losses = stats(out)["losses"]
    from tensorflow.core.util import event_pb2
    files = sorted(logdir.glob("events.out.tfevents.*"), key=lambda f: f.stat().st_mtime_ns)
    assert len(files) == 2
    logged, starts = [], []
    for f in files:
        steps, start = [], []
        for record in tf.data.TFRecordDataset(str(f)):
            e = event_pb2.Event.FromString(record.numpy())
            if e.HasField("session_log"):
                start.append((e.step, e.session_log.status))
            if any(v.tag == "loss" for v in e.summary.value):
                steps.append(e.step)
        logged.append(steps)
        starts.append(start)
    start = [(11, event_pb2.SessionLog.START)]  # both runs resumed from ckpt-10
    assert logged[0] == list(range(11, 21)) and starts[0] == start  # the orphaned steps exist
    assert logged[1] == list(range(11, 26)) and starts[1] == start
    from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
    classic = event_accumulator.EventAccumulator(str(logdir))
    classic.Reload()
    events = classic.Scalars("loss")
    assert [e.step for e in events] == list(range(11, 26))
    np.testing.assert_allclose([e.value for e in events], losses, rtol=1e-6)
    plugin = plugin_event_accumulator.EventAccumulator(str(logdir))
    plugin.Reload()
    assert [e.step for e in plugin.Tensors("loss")] == list(range(11, 26))


def test_random_kill9_loop(setup, tmp_path):
    """Five kill -9s at random steps of a 300-step run (checkpoints every 7 steps), each followed
    by --resume: the latest checkpoint always loads, and the final run's losses and weights equal
    an uninterrupted run's."""
    steps = 300
    ref_json, ref_export = tmp_path / "ref.json", tmp_path / "ref_export"
    run_train(train_args(setup["model"], setup["perm"], steps, validation=False,
                         extra=["--stats-json", ref_json, "--export", ref_export, "--quiet"]))
    reference = np.array(stats(ref_json)["losses"])
    ck = tmp_path / "ck"
    quiet_args = train_args(setup["model"], setup["perm"], steps, validation=False,
                            extra=["--checkpoint-dir", ck, "--checkpoint-every", 7, "--resume"])
    args = quiet_args + ["--log-every", "1"]
    rng = random.Random(5)
    kill_steps = []
    for _ in range(5):
        proc = subprocess.Popen([str(TESSERA), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first, target = None, None
        for line in proc.stderr:
            if not line.startswith("step "):
                continue
            step = int(line.split()[1].split("/")[0])
            if first is None:
                first, target = step, step + rng.randrange(2, 40)
            if step >= target:
                proc.send_signal(signal.SIGKILL)
                kill_steps.append(step)
                break
        proc.wait()
        proc.stderr.close()
        latest = tf.train.latest_checkpoint(str(ck))
        assert latest, "no checkpoint after a kill"
        r = tf.train.load_checkpoint(latest)
        for key in r.get_variable_to_shape_map():
            r.get_tensor(key)
    assert len(kill_steps) == 5 and kill_steps[-1] < steps
    out, export = tmp_path / "final.json", tmp_path / "export"
    run_train(quiet_args + ["--quiet", "--stats-json", str(out), "--export", str(export)])
    s = stats(out)
    assert s["first_step"] > 0
    np.testing.assert_array_equal(np.array(s["losses"]), reference[s["first_step"]:])
    a = tf.train.load_checkpoint(str(export / "variables/variables"))
    b = tf.train.load_checkpoint(str(ref_export / "variables/variables"))
    for key in b.get_variable_to_shape_map():
        if key != "_CHECKPOINTABLE_OBJECT_GRAPH":
            np.testing.assert_array_equal(a.get_tensor(key), b.get_tensor(key), err_msg=key)


def test_sigterm_checkpoints_then_resume_continues(setup, reference, tmp_path):
    ck = tmp_path / "ck"
    args = train_args(setup["model"], setup["perm"], 40, validation=False,
                      extra=["--checkpoint-dir", ck, "--log-every", 1])
    proc = subprocess.Popen([str(TESSERA), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("step 3/"):
            proc.send_signal(signal.SIGTERM)
            break
    rest_err = proc.stderr.read()
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM, rest_err
    assert "stopping at step" in rest_err
    latest = tf.train.latest_checkpoint(str(ck))
    stopped = int(tf.train.load_checkpoint(latest).get_tensor("optimizer/iter" + ATTR))
    assert 3 <= stopped < 40
    out = tmp_path / "rest.json"
    run_train(train_args(setup["model"], setup["perm"], 40, validation=False,
                         extra=["--checkpoint-dir", ck, "--resume", "--stats-json", out, "--quiet"]))
    s = stats(out)
    assert s["first_step"] == stopped
    np.testing.assert_array_equal(np.array(s["losses"]), reference[stopped:])


def test_tf_keras_model_checkpoint_and_export(setup, tmp_path):
    """A tf_keras SavedModel (compiled: it carries its own optimizer object): tf_keras'
    load_weights restores our checkpoint (weights and iterations), and load_model reads the
    export (keras_metadata.pb kept)."""
    tf_keras = pytest.importorskip("tf_keras")
    tf.random.set_seed(3)
    model = tf_keras.Sequential([tf_keras.layers.InputLayer((784,)), tf_keras.layers.Dense(16, activation="relu"),
                                 tf_keras.layers.Dropout(0.2), tf_keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    src = tmp_path / "tk"
    model.save(str(src), save_format="tf")
    ck, export = tmp_path / "ck", tmp_path / "export"
    run_train(train_args(src, setup["perm"], 6, validation=False,
                         extra=["--checkpoint-dir", ck, "--export", export, "--quiet", "--stats-json", tmp_path / "s.json"]))
    assert "endpoint=tessera_training_forward" in stats(tmp_path / "s.json")["run"]  # dropout on
    x, _ = mnist_arrays(setup["perm"], 8000, 8050)
    want = list(tf.saved_model.load(str(export)).signatures["serving_default"](tf.constant(x)).values())[0].numpy()
    exported = tf_keras.models.load_model(str(export))
    np.testing.assert_array_equal(exported(x).numpy(), want)
    fresh = tf_keras.models.load_model(str(src))
    assert np.abs(fresh(x).numpy() - want).max() > 1e-5
    fresh.load_weights(tf.train.latest_checkpoint(str(ck)))
    np.testing.assert_allclose(fresh(x).numpy(), want, rtol=0, atol=1e-6)
    assert int(fresh.optimizer.iterations) == 6
