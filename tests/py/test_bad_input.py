"""Bad input gets a clear error naming the file, node or field — never a crash, a hang or an
allocation the input did not pay for."""
import pathlib
import shutil

import numpy as np
import pytest

from tessera_testlib import SERVING_TESTDATA, run_cli

HALF_PLUS_TWO = SERVING_TESTDATA / "servables/tensorflow/testdata/saved_model_half_plus_two_cpu/00000123"


def _run(model, *extra):
    proc = run_cli("run", model, "--input", "x=[[1.0]]", *extra, check=False, timeout=120)
    # 1 = a reported error; anything else (signal, internal error) is a bug.
    assert proc.returncode in (0, 1), f"rc={proc.returncode}\n{proc.stderr}"
    return proc


@pytest.fixture
def model_copy(tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(HALF_PLUS_TWO, dst)
    return dst


def _graph_with_custom_ops():
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        a = tf.identity(x, name="a")
        b = tf.identity(a, name="b")
        c = tf.math.exp(b, name="c")
        tf.identity(c, name="y")
    gd = g.as_graph_def()
    for n in gd.node:
        if n.name in ("a", "b"):
            n.op = "MyCustomOp"
        if n.name == "c":
            n.op = "OtherCustomOp"
    return gd


def test_unsupported_ops_are_all_listed_with_nodes(tmp_path):
    path = tmp_path / "custom.pb"
    path.write_bytes(_graph_with_custom_ops().SerializeToString())
    proc = run_cli("run", path, "--input", "x=[[1.0, 2.0]]", check=False)
    assert proc.returncode == 1
    assert "MyCustomOp (2 nodes: a, b)" in proc.stderr, proc.stderr
    assert "OtherCustomOp (1 node: c)" in proc.stderr, proc.stderr
    inspect = run_cli("inspect", path, check=False)
    assert inspect.returncode == 1 and "MyCustomOp" in inspect.stdout


def test_truncated_saved_model_pb(model_copy):
    pb = model_copy / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    proc = _run(model_copy)
    assert proc.returncode == 1 and "saved_model.pb" in proc.stderr, proc.stderr


@pytest.mark.parametrize("seed", range(12))
def test_corrupted_saved_model_pb_never_crashes(model_copy, seed):
    pb = model_copy / "saved_model.pb"
    data = bytearray(pb.read_bytes())
    rng = np.random.default_rng(seed)
    for i in rng.integers(0, len(data), size=8):
        data[i] = rng.integers(0, 256)
    pb.write_bytes(bytes(data))
    _run(model_copy)


def test_missing_variables_folder(model_copy):
    shutil.rmtree(model_copy / "variables")
    proc = _run(model_copy)
    assert proc.returncode == 1 and "variables.index" in proc.stderr and "missing" in proc.stderr, proc.stderr


def test_truncated_variables_index(model_copy):
    index = model_copy / "variables/variables.index"
    index.write_bytes(index.read_bytes()[:-20])
    proc = _run(model_copy)
    assert proc.returncode == 1 and "variables.index" in proc.stderr, proc.stderr


def test_corrupted_variables_index(model_copy):
    index = model_copy / "variables/variables.index"
    data = bytearray(index.read_bytes())
    data[len(data) // 3] ^= 0x55
    index.write_bytes(bytes(data))
    proc = _run(model_copy)
    assert proc.returncode == 1 and "variables.index" in proc.stderr, proc.stderr


def test_truncated_data_shard(model_copy):
    shard = next((model_copy / "variables").glob("variables.data-*"))
    shard.write_bytes(shard.read_bytes()[:5])
    proc = _run(model_copy)
    assert proc.returncode == 1 and "variables.data-00000-of-00001" in proc.stderr, proc.stderr


def test_corrupted_data_shard(model_copy):
    shard = next((model_copy / "variables").glob("variables.data-*"))
    data = bytearray(shard.read_bytes())
    data[0] ^= 0x01
    shard.write_bytes(bytes(data))
    proc = _run(model_copy)
    assert proc.returncode == 1, proc.stderr
    assert "variables.data-00000-of-00001" in proc.stderr and "checksum" in proc.stderr.lower(), proc.stderr


def test_missing_data_shard(model_copy):
    next((model_copy / "variables").glob("variables.data-*")).unlink()
    proc = _run(model_copy)
    assert proc.returncode == 1 and "variables.data-00000-of-00001" in proc.stderr, proc.stderr


def test_huge_splat_constant_rejected_before_allocation(tmp_path):
    from tensorflow.core.framework import graph_pb2, types_pb2
    gd = graph_pb2.GraphDef()
    node = gd.node.add(name="huge", op="Const")
    node.attr["dtype"].type = types_pb2.DT_FLOAT
    t = node.attr["value"].tensor
    t.dtype = types_pb2.DT_FLOAT
    t.tensor_shape.dim.add(size=10**12)
    t.float_val.append(1.0)
    path = tmp_path / "huge.pb"
    path.write_bytes(gd.SerializeToString())
    assert path.stat().st_size < 100
    proc = run_cli("run", path, "--fetch", "huge:0", check=False, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "huge" in proc.stderr and "exceeds" in proc.stderr, proc.stderr


def test_tensor_content_size_mismatch(tmp_path):
    from tensorflow.core.framework import graph_pb2, types_pb2
    gd = graph_pb2.GraphDef()
    node = gd.node.add(name="c", op="Const")
    node.attr["dtype"].type = types_pb2.DT_FLOAT
    t = node.attr["value"].tensor
    t.dtype = types_pb2.DT_FLOAT
    t.tensor_shape.dim.add(size=1000)
    t.tensor_content = b"\0" * 12
    path = tmp_path / "c.pb"
    path.write_bytes(gd.SerializeToString())
    proc = run_cli("run", path, "--fetch", "c:0", check=False)
    assert proc.returncode == 1 and "'c'" in proc.stderr and "tensor_content" in proc.stderr, proc.stderr


def test_not_a_model_path(tmp_path):
    proc = run_cli("run", tmp_path / "nope", check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run_cli("run", tmp_path / "empty", check=False)
    assert proc.returncode == 1 and "saved_model.pb" in proc.stderr


def test_wrong_input_dtype_and_shape_name_the_input():
    # TF does not enforce SignatureDef shapes: x:0 (an Identity, declared [?,1]) takes [2] and
    # gives y of shape [2]. A placeholder's own shape does bind: the TF2 export's x is [1].
    proc = run_cli("run", HALF_PLUS_TWO, "--input", "x=[1.0, 2.0]", check=False)
    assert proc.returncode == 0 and "{2.5, 3}" in proc.stdout, proc.stderr
    tf2 = HALF_PLUS_TWO.parent.parent / "saved_model_half_plus_two_tf2_cpu/00000123"
    proc = run_cli("run", tf2, "--input", "x=[1.0, 2.0]", check=False)
    assert proc.returncode == 1 and "input 'x' expects shape [1]" in proc.stderr, proc.stderr
    proc = run_cli("run", HALF_PLUS_TWO, "--input", "y=[[1.0]]", check=False)
    assert proc.returncode == 1 and "no input 'y'" in proc.stderr, proc.stderr
