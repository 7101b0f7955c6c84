"""Training I/O against TensorFlow and TensorBoard (issue 5): TFRecords both ways (NONE, GZIP,
ZLIB), corrupt records, tf.train.Example parsing, TensorBoard event files read by the
`tensorboard` package, and checkpoints read by tf.train.load_checkpoint, including after a
crash injected at every stage of the checkpoint writer.

Drives the hidden `tessera data-dump` command (src/tools/cmd_data.cc)."""
import os
import pathlib
import subprocess

import numpy as np
import pytest

from tessera_testlib import TESSERA, run_cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

COMPRESSIONS = ["", "GZIP", "ZLIB"]
RECORDS = [b"", b"a", bytes(range(256)) * 40, b"hello world", b"\x00" * 7]


def read_with_tessera(path, compression="", on_corrupt="stop", check=True):
    args = ["data-dump", "records", path, "--on-corrupt", on_corrupt]
    if compression:
        args += ["--compression", compression]
    proc = run_cli(*args, check=check)
    records = []
    for line in proc.stdout.splitlines():
        length, _, hexdata = line.partition(" ")
        data = bytes.fromhex(hexdata)
        assert len(data) == int(length)
        records.append(data)
    return records, proc


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_reads_records_written_by_tensorflow(tmp_path, compression):
    path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type=compression)) as w:
        for r in RECORDS:
            w.write(r)
    records, _ = read_with_tessera(path, compression)
    assert records == RECORDS


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_tensorflow_reads_records_written_by_tessera(tmp_path, compression):
    path = str(tmp_path / "ours.tfrecord")
    texts = ["first", "second record", "x" * 5000]
    args = ["data-dump", "write-records", path, *texts]
    if compression:
        args += ["--compression", compression]
    run_cli(*args)
    got = [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type=compression)]
    assert got == [t.encode() for t in texts]


def test_corrupt_record_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for r in [b"one", b"two", b"three"]:
            w.write(r)
    data = bytearray(path.read_bytes())
    second = 8 + 4 + 3 + 4  # offset of the second record's header
    data[second + 12] ^= 0xFF  # first byte of "two"
    path.write_bytes(bytes(data))
    # TensorFlow agrees the file is corrupt.
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path)))
    _, proc = read_with_tessera(str(path), check=False)
    assert proc.returncode == 1, proc.stderr
    assert str(path) in proc.stderr and f"offset {second}" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr
    records, proc = read_with_tessera(str(path), on_corrupt="skip")
    assert records == [b"one", b"three"]
    assert f"offset {second}" in proc.stderr


def test_truncated_and_garbage_files_are_errors_not_crashes(tmp_path):
    path = tmp_path / "t.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(b"0123456789")
    full = path.read_bytes()
    for cut in range(1, len(full)):
        path.write_bytes(full[:cut])
        _, proc = read_with_tessera(str(path), check=False)
        assert proc.returncode == 1, (cut, proc.stderr)
        assert "offset 0" in proc.stderr
    gz = tmp_path / "g.tfrecord"
    gz.write_bytes(b"\x1f\x8b" + os.urandom(200))
    _, proc = read_with_tessera(str(gz), "GZIP", check=False)
    assert proc.returncode == 1 and str(gz) in proc.stderr, proc.stderr


def test_examples_parse_like_tensorflow(tmp_path):
    path = str(tmp_path / "ex.tfrecord.gz")
    rng = np.random.default_rng(0)
    serialized = []
    for i in range(6):
        feats = {
            "image": tf.train.Feature(float_list=tf.train.FloatList(value=rng.normal(size=6).tolist())),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i * 3 - 5])),
            "tags": tf.train.Feature(int64_list=tf.train.Int64List(value=list(range(i % 4)))),
            "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"ex{i}".encode()])),
        }
        if i % 2 == 0:
            feats["weight"] = tf.train.Feature(float_list=tf.train.FloatList(value=[0.25 * i]))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    with tf.io.TFRecordWriter(path, options="GZIP") as w:
        for s in serialized:
            w.write(s)
    out = tmp_path / "parsed.npz"
    run_cli("data-dump", "examples", path, "--compression", "GZIP",
            "--feature", "image:float32:2x3", "--feature", "label:int64:",
            "--feature", "tags:int64:var", "--feature", "name:string:",
            "--feature", "weight:float32::-1.5", "--output", out)
    spec = {
        "image": tf.io.FixedLenFeature([2, 3], tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "tags": tf.io.VarLenFeature(tf.int64),
        "name": tf.io.FixedLenFeature([], tf.string),
        "weight": tf.io.FixedLenFeature([], tf.float32, default_value=-1.5),
    }
    want = tf.io.parse_example(tf.constant(serialized), spec)
    with np.load(out) as got:
        np.testing.assert_array_equal(got["image"], want["image"].numpy())
        np.testing.assert_array_equal(got["label"], want["label"].numpy())
        np.testing.assert_array_equal(got["tags"], tf.sparse.to_dense(want["tags"]).numpy())
        assert [bytes(x) for x in got["name"]] == list(want["name"].numpy())
        np.testing.assert_array_equal(got["weight"], want["weight"].numpy())


@pytest.mark.parametrize("form", ["simple", "tensor"])
def test_tensorboard_reads_our_events(tmp_path, form):
    from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator

    graph_path = tmp_path / "graph.pb"

    @tf.function
    def f(x):
        return tf.nn.relu(x) * 2.0

    graph = f.get_concrete_function(tf.TensorSpec([2], tf.float32)).graph.as_graph_def()
    graph_path.write_bytes(graph.SerializeToString())
    logdir = tmp_path / "logs"
    args = ["data-dump", "write-events", logdir, "--graph", graph_path]
    values = {"loss": [(1, 2.5), (2, 1.25), (3, 0.5)], "accuracy": [(1, 0.5), (3, 0.875)]}
    for tag, pts in values.items():
        for step, v in pts:
            args += ["--scalar", f"{tag}={step}:{v}"]
    if form == "tensor":
        args.append("--tensor-form")
    path = pathlib.Path(run_cli(*args).stdout.strip())
    assert path.parent == logdir and path.name.startswith("events.out.tfevents.")

    # The plugin accumulator (what TensorBoard's UI uses) sees both forms as scalar tensors.
    acc = plugin_event_accumulator.EventAccumulator(str(logdir))
    acc.Reload()
    for tag, pts in values.items():
        events = acc.Tensors(tag)
        assert [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events] == pts
        assert acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"
    # The classic accumulator: simple_value scalars land in Scalars(), TF2 tensors in Tensors().
    classic = event_accumulator.EventAccumulator(str(logdir))
    classic.Reload()
    if form == "simple":
        for tag, pts in values.items():
            assert [(e.step, e.value) for e in classic.Scalars(tag)] == pts
    else:
        assert sorted(classic.Tags()["tensors"]) == sorted(values)
    g = classic.Graph()
    assert sorted(n.op for n in g.node) == sorted(n.op for n in graph.node)


def _checkpoint_arrays(scale):
    return {
        "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE": np.arange(12, dtype=np.float32).reshape(3, 4) * scale,
        "model/dense/bias/.ATTRIBUTES/VARIABLE_VALUE": np.array([0.5, -1.0, 2.0, scale], np.float32),
        "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE": np.array(int(scale * 100), np.int64),
        "optimizer/m/.OPTIMIZER_SLOT": np.full((3, 4), 0.125 * scale, np.float64),
        "rng/state": np.array([1, 2, 3], np.int32),
        "flags": np.array([True, False, True]),
        "raw": np.arange(5, dtype=np.uint8),
        "names": np.array([b"", b"a", b"xyz" * 50]),
    }


def _write_checkpoint(tmp_path, name, arrays, *extra, check=True):
    npz = tmp_path / f"{name}.npz"
    np.savez(npz, **arrays)
    return run_cli("data-dump", "write-checkpoint", npz, tmp_path / "ckpt" / name, "--update-state",
                   *extra, check=check)


def _assert_checkpoint(prefix, arrays):
    reader = tf.train.load_checkpoint(str(prefix))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    assert set(shapes) == set(arrays)
    for key, want in arrays.items():
        got = reader.get_tensor(key)
        assert list(shapes[key]) == list(want.shape), key
        if want.dtype.kind == "S":
            assert dtypes[key] == tf.string
            assert list(np.asarray(got).reshape(-1)) == list(want.reshape(-1)), key
        else:
            assert dtypes[key].as_numpy_dtype == want.dtype, key
            np.testing.assert_array_equal(got, want, err_msg=key)


def test_tensorflow_loads_our_checkpoint(tmp_path):
    arrays = _checkpoint_arrays(1.0)
    _write_checkpoint(tmp_path, "ckpt-1", arrays)
    latest = tf.train.latest_checkpoint(str(tmp_path / "ckpt"))
    assert latest == str(tmp_path / "ckpt" / "ckpt-1")
    _assert_checkpoint(latest, arrays)
    # A second save becomes the latest; the first stays listed and loadable.
    arrays2 = _checkpoint_arrays(2.0)
    _write_checkpoint(tmp_path, "ckpt-2", arrays2)
    state = tf.train.get_checkpoint_state(str(tmp_path / "ckpt"))
    assert [pathlib.Path(p).name for p in state.all_model_checkpoint_paths] == ["ckpt-1", "ckpt-2"]
    _assert_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "ckpt")), arrays2)
    _assert_checkpoint(tmp_path / "ckpt" / "ckpt-1", arrays)


@pytest.mark.parametrize("stage", range(1, 7))
def test_crash_at_each_checkpoint_stage_keeps_the_previous_one(tmp_path, stage):
    first, second = _checkpoint_arrays(1.0), _checkpoint_arrays(3.0)
    _write_checkpoint(tmp_path, "ckpt-1", first)
    proc = _write_checkpoint(tmp_path, "ckpt-2", second, "--fault-stage", str(stage), check=False)
    assert proc.returncode == 86, (proc.returncode, proc.stderr)  # died at the injected fault
    latest = tf.train.latest_checkpoint(str(tmp_path / "ckpt"))
    if stage < 6:
        assert latest == str(tmp_path / "ckpt" / "ckpt-1")
        _assert_checkpoint(latest, first)
    else:  # the `checkpoint` file was already replaced: the new one is complete
        assert latest == str(tmp_path / "ckpt" / "ckpt-2")
        _assert_checkpoint(latest, second)
    # Saving again after the crash works and leaves only complete checkpoints.
    _write_checkpoint(tmp_path, "ckpt-3", second)
    _assert_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "ckpt")), second)


def test_savedmodel_with_variables_rewritten_by_us_loads_in_tensorflow(tmp_path):
    """The export path of training: a SavedModel whose variables/ we rewrote (same keys and
    object graph, new values) loads in TensorFlow with the new values and outputs."""
    import shutil

    class M(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
            self.b = tf.Variable(np.array([1.0, -2.0, 0.5], np.float32))
            self.steps = tf.Variable(np.int64(7))

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def __call__(self, x):
            return tf.matmul(x, self.w) + self.b

    src, dst = tmp_path / "orig", tmp_path / "trained"
    tf.saved_model.save(M(), str(src))
    shutil.copytree(src, dst)
    for f in (dst / "variables").iterdir():
        f.unlink()
    run_cli("data-dump", "rewrite-checkpoint", src / "variables" / "variables",
            dst / "variables" / "variables", "--scale", "2")
    loaded = tf.saved_model.load(str(dst))
    np.testing.assert_array_equal(loaded.w.numpy(), np.arange(6, dtype=np.float32).reshape(2, 3) * 2)
    np.testing.assert_array_equal(loaded.b.numpy(), np.array([2.0, -4.0, 1.0], np.float32))
    assert int(loaded.steps.numpy()) == 7
    x = np.array([[1.0, 2.0]], np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), x @ (np.arange(6).reshape(2, 3) * 2) + [2, -4, 1])
