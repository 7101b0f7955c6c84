"""Training-mode forward graphs (issue 5, "What is trained" (a)/(b)): the zoo's train tier
(tests/zoo/models_train.py) against TensorFlow's references in each model's train_ref.npz.

Per model: the training forward on the cpu target matches TF's (with dropout: the first call,
whose masks come from the exported seeds); the
gradient of an MSE loss through it w.r.t. every trainable variable matches tf.GradientTape
(reference interpreter, `tessera grad`); every variable after one training call — BatchNorm's
moving statistics included — matches TF's; the variables the loss trains are exactly the
object graph's `trainable_variables`. Plus the stateless random ops Keras 3's dropout uses,
against TensorFlow, and the synthetic `tessera_training_forward` signature of tf_keras models.
"""
import json

import numpy as np
import pytest

from conftest import ZOO_DIR, zoo_models
from tessera_testlib import assert_numeric_match, run_cli, run_graph

TRAIN = {m["name"]: m for m in zoo_models("train")}
needs_zoo = pytest.mark.skipif(not TRAIN, reason=f"no train tier in the zoo at {ZOO_DIR}")


def load(name):
    folder = ZOO_DIR / name
    meta = json.loads((folder / "train_meta.json").read_text())
    with np.load(folder / "train_ref.npz") as z:
        ref = {k: z[k] for k in z.files}
    return folder, meta, ref


def input_key(name):
    """The training endpoint's input name (Keras 3: the export's `x`; tf_keras: the layer's)."""
    return TRAIN[name]["inputs"] and next(iter(TRAIN[name]["inputs"]))


def write_inputs(tmp_path, name, ref):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, **{input_key(name): ref["x"]})
    target = tmp_path / "target.npy"
    np.save(target, ref["target"])
    return inputs, target


def tessera_grad(tmp_path, name, meta, ref):
    inputs, target = write_inputs(tmp_path, name, ref)
    out = tmp_path / "grad.npz"
    run_cli("grad", ZOO_DIR / name / "saved_model", "--signature", meta["endpoint"], "--input", inputs,
            "--loss", "mse", "--target", target, "--all-variables", "--output", out)
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def checkpoint_keys_of(got, ref):
    """Tessera's variable keys -> the checkpoint keys holding the same initial value (Keras 3's
    ExportArchive saves each variable under two keys)."""
    pairs = {}
    for k in got:
        if not k.startswith("before/"):
            continue
        value = got[k]
        pairs[k[len("before/"):]] = {c[len("before/"):] for c in ref if c.startswith("before/")
                                     and ref[c].shape == value.shape and np.array_equal(ref[c], value)}
    return pairs


@needs_zoo
@pytest.mark.parametrize("name", sorted(TRAIN))
def test_training_forward_matches_tf(tmp_path, name):
    """With dropout too: the graph as exported draws its masks from the exported seeds
    (tf_keras: RandomUniform's seed attributes; Keras 3: StatelessRandomUniformV2 keyed by the
    seed-generator variable), and Tessera's random ops are TensorFlow's, so the first call
    matches TF's first call exactly."""
    _, meta, ref = load(name)
    inputs, _ = write_inputs(tmp_path, name, ref)
    out = tmp_path / "out.npz"
    run_cli("run", ZOO_DIR / name / "saved_model", "--signature", meta["endpoint"], "--input", inputs,
            "--training-signature", "--output", out)
    with np.load(out) as z:
        (got,) = [z[k] for k in z.files]
    assert float(ref["train_out"].std()) > 1e-3
    assert_numeric_match(ref["train_out"], got, f"{name} training forward")


@needs_zoo
@pytest.mark.parametrize("name", sorted(TRAIN))
def test_gradients_and_moving_statistics_match_tf(tmp_path, name):
    _, meta, ref = load(name)
    got = tessera_grad(tmp_path, name, meta, ref)
    assert_numeric_match(ref["loss"], got["loss"], "loss")
    pairs = checkpoint_keys_of(got, ref)
    assert all(pairs.values()), {k: v for k, v in pairs.items() if not v}
    compared = set()
    for key, ckeys in pairs.items():
        if f"grad/{key}" in got:
            with_ref = [c for c in ckeys if f"grad/{c}" in ref]
            if with_ref:  # a trainable variable: TF's tape gradient
                assert_numeric_match(ref[f"grad/{with_ref[0]}"], got[f"grad/{key}"], f"d loss / d {key}")
                compared.update(ckeys)
            else:  # read by the training call but not trained (moving statistics): no gradient
                assert not np.any(got[f"grad/{key}"]), key
    assert compared >= set(meta["trainable_keys"])
    # After one training call every variable equals TF's after the same call. Variables with
    # equal initial values (Keras 3's ExportArchive keeps two copies of each) compare as a group.
    groups = {}
    for key, ckeys in pairs.items():
        groups.setdefault(sorted(ckeys)[0], []).append(got[f"after/{key}"])
    tf_moved = 0
    for group, values in groups.items():
        # TF's loaded object may hold fewer copies than the graph has handles: each of TF's
        # must match one of ours.
        want = [ref[k] for k in sorted(ref) if k.startswith(f"after/{group}/")]
        assert 1 <= len(want) <= len(values), group
        tf_moved += sum(not np.array_equal(w, ref[f"before/{group}"]) and w.dtype.kind == "f" for w in want)
        for w in want:
            errors = [float(np.max(np.abs(w - v))) if v.size else 0.0 for v in values]
            best = int(np.argmin(errors))
            assert_numeric_match(w, values.pop(best), f"{group} after the call")
    moved = [k for k in pairs if not np.array_equal(got[f"before/{k}"], got[f"after/{k}"])
             and got[f"after/{k}"].dtype.kind == "f"]  # float: seed-generator states move too
    if meta["batch_norm"]:
        assert len(moved) == tf_moved == 4, moved  # moving mean and variance of both BatchNorms
        assert all("moving" in k for k in moved), moved
    else:
        assert not moved and not tf_moved, moved


@needs_zoo
@pytest.mark.parametrize("name", sorted(TRAIN))
def test_trainable_variables_are_the_object_graphs(tmp_path, name):
    """Float variables the loss reads, less those the training call itself assigns (moving
    statistics, seed-generator state), are exactly the object graph's trainable_variables."""
    _, meta, ref = load(name)
    got = tessera_grad(tmp_path, name, meta, ref)
    pairs = checkpoint_keys_of(got, ref)
    trained = [k[len("grad/"):] for k in got if k.startswith("grad/")]
    trained = [k for k in trained if np.array_equal(got[f"before/{k}"], got[f"after/{k}"])]
    listed = set(meta["trainable_keys"])
    assert len(trained) == len(listed)
    assert all(pairs[k] & listed for k in trained), {k: pairs[k] for k in trained}


@needs_zoo
@pytest.mark.parametrize("name", sorted(TRAIN))
def test_endpoints(tmp_path, name):
    out = run_cli("inspect", ZOO_DIR / name / "saved_model").stdout
    assert "serving_default" in out
    if name.endswith("_tfk"):
        assert "tessera_training_forward" in out  # synthesised from the training-mode __call__
    else:
        assert "train_forward" in out and "tessera_training_forward" not in out
    # Compiled loads leave the synthetic signature out unless asked (it would be compiled and
    # served); the exported ones are always there.
    exported = 3 if name.endswith("_k3") else 1  # k3: serve, train_forward, serving_default
    for flags, count in (((), exported), (("--training-signature",), exported + name.endswith("_tfk"))):
        proc = run_cli("compile", ZOO_DIR / name / "saved_model", "-o", tmp_path / "m.tsr", *flags)
        assert f"compiled {count} signature(s)" in proc.stdout + proc.stderr, (flags, proc.stdout)


# --- the stateless uniform draws of Keras 3's dropout, against TensorFlow ---------------------

def _stateless_graph(v2, dtype, seed_dtype):
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        seed = tf.compat.v1.placeholder(seed_dtype, [2], name="seed")
        if v2:
            key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed, name="kc")
            tf.raw_ops.StatelessRandomUniformV2(shape=[3, 37], key=key, counter=counter, alg=1,
                                                dtype=dtype, name="u")
        else:
            tf.raw_ops.StatelessRandomUniform(shape=[5, 11], seed=seed, dtype=dtype, name="u")
    return g.as_graph_def()


@pytest.mark.parametrize("v2", [True, False])
@pytest.mark.parametrize("dtype,seed_dtype", [("float32", "int64"), ("float64", "int32"), ("float32", "int32")])
def test_stateless_uniform_matches_tf(v2, dtype, seed_dtype):
    import tensorflow as tf
    gd = _stateless_graph(v2, getattr(tf, dtype), getattr(tf, seed_dtype))
    for seed in ([7, 11], [-3, 123456789]):
        feeds = {"seed:0": np.array(seed, dtype=seed_dtype)}
        fetches = ["u:0"] + (["kc:0", "kc:1"] if v2 else [])
        with tf.compat.v1.Session(graph=tf.Graph()) as s:
            tf.graph_util.import_graph_def(gd, name="")
            want = s.run(fetches, feed_dict=feeds)
        got = run_graph(gd, feeds, fetches)
        for f, w in zip(fetches, want):
            np.testing.assert_array_equal(got[f], w, err_msg=f"{f} seed {seed}")
