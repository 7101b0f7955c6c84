"""TensorBundle checkpoints written by TensorFlow, read back by Tessera's reader.

TensorFlow writes checkpoints (tf.raw_ops.SaveV2, tf.train.Checkpoint, tf.saved_model.save,
sharded saves merged with MergeV2Checkpoints); the test-only `tessera_bundle_dump` tool reads
them with Tessera and writes every tensor to an .npz with Tessera's npy writer; the values
must match TensorFlow's exactly. The same tool round-trips NumPy-written .npy/.npz files
through Tessera's npy reader.

Tool location: $TESSERA_BUNDLE_DUMP, else <build>/tessera_bundle_dump.
"""
import os
import pathlib
import shutil
import struct
import subprocess

import numpy as np
import pytest

from tessera_testlib import BUILD

tf = pytest.importorskip("tensorflow")

TOOL = pathlib.Path(os.environ.get("TESSERA_BUNDLE_DUMP", BUILD / "tessera_bundle_dump"))
if not TOOL.exists():
    pytest.skip(f"{TOOL} not built (target tessera_bundle_dump)", allow_module_level=True)


def run_tool(*args, check=True):
    proc = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera_bundle_dump {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_bundle(prefix, tmp_path, *extra):
    """Returns ({key: (dtype_name, shape_str)}, {key: ndarray}) as Tessera reads them."""
    out = tmp_path / "dump.npz"
    proc = run_tool(prefix, out, *extra)
    listing = {}
    for line in proc.stdout.splitlines():
        key, dtype, shape = line.split("\t")
        listing[key] = (dtype, shape)
    with np.load(out, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return listing, arrays


def shape_str(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def expected_numpy(t):
    """TF tensor -> the array Tessera's dump should produce (bfloat16 widened to float32,
    strings as NumPy bytes, which drop trailing NULs)."""
    if t.dtype == tf.bfloat16:
        return tf.cast(t, tf.float32).numpy()
    if t.dtype == tf.string:
        arr = t.numpy()
        return np.array(arr, dtype=object)
    return t.numpy()


def assert_same(key, actual, t):
    expected = expected_numpy(t)
    assert actual.shape == expected.shape, key
    if t.dtype == tf.string:
        flat_e = [bytes(s).rstrip(b"\0") for s in expected.reshape(-1)]
        flat_a = [bytes(s) for s in actual.reshape(-1)]
        assert flat_a == flat_e, key
        return
    assert actual.dtype == expected.dtype, key
    # Bitwise equality (covers NaN payloads, -0.0).
    assert actual.tobytes() == expected.tobytes(), key


def index_data_blocks(index_path):
    """Counts data blocks of a LevelDB table = entries of its index block (restart interval 1)."""
    data = pathlib.Path(index_path).read_bytes()
    footer = data[-48:]
    assert struct.unpack("<Q", footer[40:])[0] == 0xDB4775248B80FB57

    def varint(buf, pos):
        result, shift = 0, 0
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result, pos

    pos = 0
    for _ in range(2):  # skip the metaindex handle
        _, pos = varint(footer, pos)
    offset, pos = varint(footer, pos)
    size, pos = varint(footer, pos)
    block = data[offset:offset + size]
    return struct.unpack("<I", block[-4:])[0]


def rng_tensors(seed=0):
    rng = np.random.default_rng(seed)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40], np.float32)
    t = {
        "f32": tf.constant(np.concatenate([rng.standard_normal(58).astype(np.float32), specials])
                           .reshape(8, 8)),
        "f64": tf.constant(rng.standard_normal((3, 4, 5))),
        "f16": tf.constant(rng.standard_normal(17).astype(np.float16)),
        "bf16": tf.cast(tf.constant(rng.standard_normal((2, 9)).astype(np.float32)), tf.bfloat16),
        "i8": tf.constant(rng.integers(-128, 128, 33, dtype=np.int8)),
        "i16": tf.constant(rng.integers(-2**15, 2**15, 7, dtype=np.int16)),
        "i32": tf.constant(rng.integers(-2**31, 2**31, (4, 4), dtype=np.int32)),
        "i64": tf.constant(np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max])),
        "u8": tf.constant(rng.integers(0, 256, 300, dtype=np.uint8)),
        "u16": tf.constant(rng.integers(0, 2**16, 5, dtype=np.uint16)),
        "u32": tf.constant(np.array([0, 1, 2**32 - 1], np.uint32)),
        "u64": tf.constant(np.array([0, 2**64 - 1], np.uint64)),
        "bool": tf.constant(rng.integers(0, 2, (3, 5)).astype(bool)),
        "c64": tf.constant((rng.standard_normal(4) + 1j * rng.standard_normal(4)).astype(np.complex64)),
        "c128": tf.constant(rng.standard_normal(3) + 1j * rng.standard_normal(3)),
        "scalar_f": tf.constant(3.5),
        "scalar_i": tf.constant(np.int64(-7)),
        "scalar_s": tf.constant(b"hello"),
        "empty_f": tf.zeros([0], tf.float32),
        "empty_2d": tf.zeros([3, 0], tf.int32),
        "empty_s": tf.constant([], tf.string),
        "strings": tf.constant([[b"", b"a", b"x" * 127, b"y" * 128],
                                [b"mid\0dle", "h\u00e9llo \u4e16\u754c".encode(), bytes(range(1, 256)), b"z" * 70000]]),
        "one_long_string": tf.constant([b"q" * (1 << 20)]),
        "nested/name/with.dots": tf.constant([1.0, 2.0]),
    }
    return t


def save_v2(prefix, tensors):
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tensors[n] for n in names])


def test_save_v2_every_dtype(tmp_path):
    tensors = rng_tensors()
    prefix = tmp_path / "ckpt"
    save_v2(prefix, tensors)
    listing, arrays = read_bundle(prefix, tmp_path)
    assert sorted(listing) == sorted(tensors)
    for key, t in tensors.items():
        assert listing[key] == (t.dtype.name if t.dtype != tf.float32 else "float32",
                                shape_str(t.shape)), key
        assert_same(key, arrays[key], t)


def test_many_keys_span_several_index_blocks(tmp_path):
    # Long names that differ early (defeating prefix compression) and many entries make TF's
    # index table spill into several data blocks.
    tensors = {f"{(i * 7919) % 4001:04d}/layer/" + "sub/" * 40 + f"kernel_{i}":
               tf.fill([i % 5 + 1], float(i)) for i in range(4000)}
    prefix = tmp_path / "many"
    save_v2(prefix, tensors)
    assert index_data_blocks(str(prefix) + ".index") >= 3
    listing, arrays = read_bundle(prefix, tmp_path)
    assert len(listing) == len(tensors)
    for key in list(tensors)[::97]:
        assert_same(key, arrays[key], tensors[key])


def test_large_tensors(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {"big_f32": tf.constant(rng.standard_normal((1024, 4096)).astype(np.float32)),  # 16 MiB
               "big_i64": tf.constant(rng.integers(0, 1 << 62, 1 << 20)),  # 8 MiB
               "small": tf.constant([1, 2, 3])}
    prefix = tmp_path / "large"
    save_v2(prefix, tensors)
    _, arrays = read_bundle(prefix, tmp_path)
    for key, t in tensors.items():
        assert_same(key, arrays[key], t)


def test_object_based_checkpoint(tmp_path):
    class Net(tf.Module):
        def __init__(self):
            self.dense = tf.Variable(tf.random.stateless_normal([4, 3], seed=[1, 2]), name="kernel")
            self.bias = tf.Variable(tf.zeros([3], tf.float64))
            self.steps = tf.Variable(tf.constant(5, tf.int64))
            self.vocab = tf.Variable(tf.constant([b"a", b"bb", b""]))
            self.table = [tf.Variable(tf.ones([2, 2], tf.bfloat16)), tf.Variable(tf.constant([True]))]

    net = Net()
    ckpt = tf.train.Checkpoint(net=net)
    path = ckpt.write(str(tmp_path / "obj" / "ckpt"))
    listing, arrays = read_bundle(path, tmp_path)
    reader = tf.train.load_checkpoint(path)
    tf_shapes = reader.get_variable_to_shape_map()
    assert set(listing) == set(tf_shapes)
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in listing
    for key in tf_shapes:
        t = tf.constant(reader.get_tensor(key))
        if reader.get_variable_to_dtype_map()[key] == tf.bfloat16:
            t = tf.cast(tf.constant(reader.get_tensor(key)), tf.bfloat16)
        assert_same(key, arrays[key], t)


def test_saved_model_variables(tmp_path):
    class M(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.reshape(tf.range(12, dtype=tf.float32), [3, 4]))
            self.b = tf.Variable(tf.constant([0.5, -0.5, 1.5, 2.5]))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x):
            return tf.matmul(x, self.w) + self.b

    m = M()
    tf.saved_model.save(m, str(tmp_path / "sm"))
    prefix = tmp_path / "sm" / "variables" / "variables"
    listing, arrays = read_bundle(prefix, tmp_path)
    reader = tf.train.load_checkpoint(str(prefix))
    assert set(listing) == set(reader.get_variable_to_shape_map())
    for key in listing:
        assert_same(key, arrays[key], tf.constant(reader.get_tensor(key)))


def test_sharded_checkpoint(tmp_path):
    tensors = rng_tensors(seed=3)
    names = sorted(tensors)
    prefix = tmp_path / "sharded"
    shard_prefixes = []
    for i, part in enumerate([names[0::3], names[1::3], names[2::3]]):
        p = tf.raw_ops.ShardedFilename(basename=str(prefix) + "_temp/part", shard=i, num_shards=3)
        tf.raw_ops.SaveV2(prefix=p, tensor_names=part, shape_and_slices=[""] * len(part),
                          tensors=[tensors[n] for n in part])
        shard_prefixes.append(p)
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=tf.stack(shard_prefixes),
                                  destination_prefix=str(prefix))
    assert (tmp_path / "sharded.data-00002-of-00003").exists()
    _, arrays = read_bundle(prefix, tmp_path)
    for key, t in tensors.items():
        assert_same(key, arrays[key], t)


@pytest.fixture
def small_checkpoint(tmp_path):
    prefix = tmp_path / "c" / "ckpt"
    prefix.parent.mkdir()
    save_v2(prefix, {"alpha": tf.range(1000, dtype=tf.float32), "beta": tf.constant([b"xyz", b"w"])})
    return prefix


def test_corrupted_shard_is_data_loss_naming_file_and_key(small_checkpoint, tmp_path):
    shard = pathlib.Path(str(small_checkpoint) + ".data-00000-of-00001")
    data = bytearray(shard.read_bytes())
    data[100] ^= 0x01  # inside "alpha"
    shard.write_bytes(bytes(data))
    proc = run_tool(small_checkpoint, tmp_path / "o.npz", check=False)
    assert proc.returncode == 1
    assert "data_loss" in proc.stderr.lower().replace(" ", "_") or "DATA_LOSS" in proc.stderr
    assert "'alpha'" in proc.stderr and str(shard) in proc.stderr and "checksum mismatch" in proc.stderr


def test_truncated_and_missing_files(small_checkpoint, tmp_path):
    shard = pathlib.Path(str(small_checkpoint) + ".data-00000-of-00001")
    index = pathlib.Path(str(small_checkpoint) + ".index")
    original = shard.read_bytes()
    shard.write_bytes(original[:2000])
    proc = run_tool(small_checkpoint, tmp_path / "o.npz", check=False)
    assert proc.returncode == 1 and "is truncated" in proc.stderr and str(shard) in proc.stderr
    shard.unlink()
    proc = run_tool(small_checkpoint, tmp_path / "o.npz", check=False)
    assert proc.returncode == 1 and str(shard) in proc.stderr
    shard.write_bytes(original)
    idx = index.read_bytes()
    index.write_bytes(idx[:-10])
    proc = run_tool(small_checkpoint, check=False)
    assert proc.returncode == 1 and str(index) in proc.stderr
    index.write_bytes(idx[: len(idx) // 2] + bytes([idx[len(idx) // 2] ^ 0xFF]) + idx[len(idx) // 2 + 1:])
    proc = run_tool(small_checkpoint, tmp_path / "o.npz", check=False)
    assert proc.returncode == 1 and str(index) in proc.stderr
    index.unlink()
    proc = run_tool(small_checkpoint, check=False)
    assert proc.returncode == 1 and str(index) in proc.stderr


# ----------------------------------------------------------------------------------------------
# .npy / .npz written by NumPy, read by Tessera, written back by Tessera, read by NumPy.

def numpy_arrays():
    rng = np.random.default_rng(5)
    return {
        "f2": rng.standard_normal(5).astype(np.float16),
        "f4": rng.standard_normal((3, 4)).astype(np.float32),
        "f8": np.array([np.nan, -0.0, np.inf]),
        "i1": np.array([-128, 127], np.int8),
        "i2": np.array([[1, -2]], np.int16),
        "i4": np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        "i8": np.array(-5, np.int64),
        "u1": np.arange(256, dtype=np.uint8),
        "u2": np.array([65535], np.uint16),
        "u4": np.array([2**32 - 1], np.uint32),
        "u8": np.array([2**64 - 1], np.uint64),
        "b1": np.array([True, False, True]),
        "c8": np.array([1 + 2j], np.complex64),
        "c16": np.array([[3 - 4j]], np.complex128),
        "empty": np.zeros((0, 3), np.float32),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        "fortran3": np.asfortranarray(np.arange(24, dtype=np.int16).reshape(2, 3, 4)),
        "bytes": np.array([b"", b"ab", b"a\0b"]),
        "unicode": np.array(["", "h\u00e9llo", "\U0001F600x"]),
    }


def expected_after_roundtrip(a):
    if a.dtype.kind == "U":  # Tessera stores UTF-8 bytes
        return np.array([s.encode() for s in a.reshape(-1)], dtype=bytes).reshape(a.shape)
    return np.array(a, order="C")


@pytest.mark.parametrize("compressed_in", [False, True])
@pytest.mark.parametrize("compressed_out", [False, True])
def test_npz_roundtrip_through_tessera(tmp_path, compressed_in, compressed_out):
    arrays = numpy_arrays()
    src = tmp_path / "in.npz"
    (np.savez_compressed if compressed_in else np.savez)(src, **arrays)
    dst = tmp_path / "out.npz"
    run_tool("--convert", src, dst, *(["--compress"] if compressed_out else []))
    with np.load(dst, allow_pickle=False) as z:
        assert list(z.files) == list(arrays)
        for k, a in arrays.items():
            e = expected_after_roundtrip(a)
            got = z[k]
            assert got.shape == e.shape, k
            if e.dtype.kind == "S":
                assert got.tolist() == e.tolist(), k
            else:
                assert got.dtype == e.dtype and got.tobytes() == e.tobytes(), k


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_versions(tmp_path, version):
    a = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    src = tmp_path / "a.npy"
    with open(src, "wb") as f:
        np.lib.format.write_array(f, a, version=version)
    run_tool("--convert", src, tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_array_equal(z["arr_0"], a)


def test_npy_rejections(tmp_path):
    np.save(tmp_path / "be.npy", np.arange(3, dtype=">f4"))
    proc = run_tool("--convert", tmp_path / "be.npy", tmp_path / "o.npz", check=False)
    assert proc.returncode == 1 and "big-endian" in proc.stderr and "be.npy" in proc.stderr
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    proc = run_tool("--convert", tmp_path / "obj.npy", tmp_path / "o.npz", check=False)
    assert proc.returncode == 1 and "pickle" in proc.stderr
    np.savez(tmp_path / "z.npz", a=np.arange(100))
    data = bytearray((tmp_path / "z.npz").read_bytes())
    data[200] ^= 1
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    proc = run_tool("--convert", tmp_path / "bad.npz", tmp_path / "o.npz", check=False)
    assert proc.returncode == 1 and "bad.npz" in proc.stderr
