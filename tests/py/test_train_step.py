"""The compiled training step (`Trainer`, through the hidden `tessera train-trace`) against
TensorFlow: the same Keras 3 model (its initial weights are in the SavedModel), the same
batches in the same order, a `tf.function` step with GradientTape and the same Keras optimizer.

Data: MNIST's 10k test set, training rows = the first 8,000 through an explicit permutation
file (perm.npy, fixed numpy seed) that both sides read. Sizes are small so the file runs in
about two minutes on two cores.
"""
import gzip
import os
import pathlib

import numpy as np
import pytest

from tessera_testlib import exported_variable_keys, run_cli, tf_train_step

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

MNIST = pathlib.Path(os.environ.get("TESSERA_MNIST_DIR", "/work/shared/data/mnist"))
BATCH = 64
LOSS_RTOL = 1e-3  # the acceptance tolerance on each step's loss


def _idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    images = MNIST / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.skip(f"MNIST not found at {MNIST}")
    tmp = tmp_path_factory.mktemp("train_step")
    x_all = _idx(images).reshape(-1, 784).astype(np.float32) / 255.0
    y_all = _idx(MNIST / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    np.save(tmp / "perm.npy", np.random.default_rng(20261126).permutation(8000))
    perm = np.load(tmp / "perm.npy")
    # 100 steps of 64 = 6,400 rows: the permuted prefix of the training split.
    rows = perm[:100 * BATCH]
    data = {
        "x": x_all[rows], "y": y_all[rows],
        "y_onehot": np.eye(10, dtype=np.float32)[y_all[rows]],
        "y_binary": (y_all[rows] < 5).astype(np.float32).reshape(-1, 1),
        "eval_x": x_all[8000:], "eval_y": y_all[8000:],
    }
    for k, v in data.items():
        np.save(tmp / f"{k}.npy", v)
    models = {}
    for name, (hidden, out, act) in {"softmax": (64, 10, "softmax"), "logits": (32, 10, None),
                                     "sigmoid": (32, 1, "sigmoid"), "linear1": (32, 1, None)}.items():
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(hidden, activation="gelu"),
                                  keras.layers.Dense(out, activation=act)])
        path = tmp / f"mlp_{name}"
        model.export(str(path), verbose=False)
        models[name] = (path, [w.copy() for w in model.get_weights()], (hidden, out, act))
    np.save(tmp / "x_img.npy", data["x"].reshape(-1, 28, 28, 1))
    # A small CNN with BatchNorm, exported with a training-mode endpoint (the README's
    # ExportArchive recipe): its forward updates the moving statistics.
    keras.utils.set_random_seed(3)
    cnn = _cnn()
    archive = keras.export.ExportArchive()
    archive.track(cnn)
    spec = [tf.TensorSpec([None, 28, 28, 1], tf.float32)]
    archive.add_endpoint("serving_default", lambda x: cnn(x, training=False), input_signature=spec)
    archive.add_endpoint("train_forward", lambda x: cnn(x, training=True), input_signature=spec)
    archive.write_out(str(tmp / "cnn"), verbose=False)
    models["cnn"] = (tmp / "cnn", [w.copy() for w in cnn.get_weights()], cnn)
    keras.utils.set_random_seed(5)
    drop = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="gelu"), keras.layers.Dropout(0.3),
                             keras.layers.Dense(10, activation="softmax")])
    archive = keras.export.ExportArchive()
    archive.track(drop)
    spec = [tf.TensorSpec([None, 784], tf.float32)]
    archive.add_endpoint("serving_default", lambda x: drop(x, training=False), input_signature=spec)
    archive.add_endpoint("train_forward", lambda x: drop(x, training=True), input_signature=spec)
    archive.write_out(str(tmp / "dropout"), verbose=False)
    models["dropout"] = (tmp / "dropout", None, None)
    keras.utils.set_random_seed(9)
    frozen = keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="gelu"),
                               keras.layers.Dense(10, activation="softmax")])
    frozen.layers[0].trainable = False
    frozen.export(str(tmp / "frozen"), verbose=False)
    models["frozen"] = (tmp / "frozen", [w.copy() for w in frozen.get_weights()], (32, 10, "softmax"))
    return tmp, data, models


def _cnn():
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(),
                             keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])


def _keras_model(spec, weights):
    hidden, out, act = spec
    m = keras.Sequential([keras.Input((784,)), keras.layers.Dense(hidden, activation="gelu"),
                          keras.layers.Dense(out, activation=act)])
    m.set_weights(weights)
    return m


KERAS_LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "mse": lambda from_logits=False: keras.losses.MeanSquaredError(),
    "mae": lambda from_logits=False: keras.losses.MeanAbsoluteError(),
}


def _schedule(lr, sched):
    if not sched:
        return lr
    kind = sched["name"]
    if kind == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(lr, sched["decay_steps"], sched["decay_rate"],
                                                           staircase=sched.get("staircase", False))
    if sched.get("warmup_steps"):
        return keras.optimizers.schedules.CosineDecay(0.0, sched["decay_steps"], alpha=sched.get("alpha", 0.0),
                                                      warmup_target=lr, warmup_steps=sched["warmup_steps"])
    return keras.optimizers.schedules.CosineDecay(lr, sched["decay_steps"], alpha=sched.get("alpha", 0.0))


def _keras_optimizer(opt, lr, sched, **kw):
    rate = _schedule(lr, sched)
    if opt == "adam":
        return keras.optimizers.Adam(rate, **kw)
    if opt == "adamw":
        return keras.optimizers.AdamW(rate, **kw)
    if opt == "sgd":
        return keras.optimizers.SGD(rate, **kw)
    return keras.optimizers.RMSprop(rate, **kw)


def _labels(data, loss):
    return {"sparse_categorical_crossentropy": "y", "categorical_crossentropy": "y_onehot",
            "binary_crossentropy": "y_binary", "mse": "y_onehot", "mae": "y_onehot"}[loss]


def tf_trace(data, model_spec, weights, steps, loss, from_logits, opt, lr, sched=None, **kw):
    model = _keras_model(model_spec, weights)
    loss_fn = KERAS_LOSSES[loss](from_logits=from_logits)
    optimizer = _keras_optimizer(opt, lr, sched, **kw)
    x, y = data["x"], data[_labels(data, loss)]
    step = tf_train_step(model, loss_fn, optimizer)
    losses = []
    for s in range(steps):
        rows = slice(s * BATCH, (s + 1) * BATCH)
        losses.append(float(step(tf.constant(x[rows]), tf.constant(y[rows]))))
    return np.array(losses), model, optimizer


def tessera_trace(tmp, path, steps, loss, from_logits, opt, lr, sched=None, extra=(), name="t", x="x.npy"):
    out = tmp / f"{name}.npz"
    args = ["train-trace", path, "--x", tmp / x, "--y", tmp / f"{_labels(None, loss)}.npy",
            "--batch", BATCH, "--steps", steps, "--loss", loss, "--optimizer", opt, "--lr", lr,
            "--out", out, "--threads", 2, *extra]
    if from_logits:
        args.append("--from-logits")
    for k, v in (sched or {}).items():
        if k == "staircase":
            if v:
                args.append("--staircase")
            continue
        args += ["--schedule" if k == "name" else "--" + k.replace("_", "-"), v]
    run_cli(*args)
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def _pair_variables(got, model):
    """Tessera store key for each Keras trainable variable, paired by shape (Dense kernels
    and biases have distinct shapes in these MLPs)."""
    keys = [k[len("trainable/"):] for k in got if k.startswith("trainable/")]
    out = []
    for v in model.trainable_variables:
        cand = [k for k in keys if got["var/" + k].shape == tuple(v.shape)]
        assert len(cand) == 1, f"cannot pair {v.path} {v.shape} with {cand}"
        out.append(cand[0])
    return out


def _close(ref, got, what, rtol):
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    assert ref.shape == got.shape, f"{what}: shape {got.shape} vs {ref.shape}"
    err = np.max(np.abs(ref - got), initial=0.0)
    scale = np.max(np.abs(ref), initial=0.0)
    assert err <= rtol * scale + 1e-6, f"{what}: max error {err:.3g}, reference scale {scale:.3g}"


def _check_losses(ref, got, what="loss"):
    rel = np.abs(got - ref) / np.abs(ref)
    worst = int(np.argmax(rel))
    assert rel[worst] <= LOSS_RTOL, f"{what}: step {worst} Tessera {got[worst]:.7g} TF {ref[worst]:.7g} " \
                                    f"(relative {rel[worst]:.2g}); curves {got[:5]} vs {ref[:5]}"


def _slots(opt_name, optimizer):
    if opt_name in ("adam", "adamw"):
        return {"m": optimizer._momentums, "v": optimizer._velocities}
    if opt_name == "sgd":
        return {"momentum": optimizer.momentums} if optimizer.momentum else {}
    out = {"velocity": optimizer._velocities}
    if optimizer.momentum > 0:
        out["momentum"] = optimizer._momentums
    return out


def test_adam_first_100_steps_match_tensorflow(work):
    """The acceptance point: sparse CE on a softmax MLP, Adam 1e-3, loss within 1e-3 relative
    at each of the first 100 steps; final variables, slots and accuracy."""
    tmp, data, models = work
    path, weights, spec = models["softmax"]
    ref, model, optimizer = tf_trace(data, spec, weights, 100, "sparse_categorical_crossentropy", False, "adam", 1e-3)
    got = tessera_trace(tmp, path, 100, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="adam100")
    _check_losses(ref, got["loss"])
    assert got["loss"][-1] < 0.6 * got["loss"][0], "the loss should fall"
    keys = _pair_variables(got, model)
    for key, v in zip(keys, model.trainable_variables):
        _close(v.numpy(), got["var/" + key], f"variable {key}", 2e-3)
    for slot, refs in _slots("adam", optimizer).items():
        for key, r in zip(keys, refs):
            _close(r.numpy(), got[f"slot/{slot}/{key}"], f"slot {slot} of {key}", 2e-3)
    assert 0.4 < got["metric/accuracy"][-1] <= 1.0


CASES = {
    # id: (model, loss, from_logits, optimizer, lr, keras kwargs, train-trace flags, schedule)
    "sgd_nesterov": ("softmax", "sparse_categorical_crossentropy", False, "sgd", 0.05,
                     {"momentum": 0.9, "nesterov": True}, ["--momentum", 0.9, "--nesterov"], None),
    "sgd_plain": ("softmax", "sparse_categorical_crossentropy", False, "sgd", 0.1, {}, [], None),
    "adamw": ("softmax", "sparse_categorical_crossentropy", False, "adamw", 2e-3, {"weight_decay": 0.05},
              ["--weight-decay", 0.05], None),
    "rmsprop_momentum": ("softmax", "sparse_categorical_crossentropy", False, "rmsprop", 1e-3,
                         {"momentum": 0.5}, ["--momentum", 0.5], None),
    "sparse_from_logits": ("logits", "sparse_categorical_crossentropy", True, "adam", 1e-3, {}, [], None),
    "categorical": ("softmax", "categorical_crossentropy", False, "adam", 1e-3, {}, [], None),
    "categorical_from_logits": ("logits", "categorical_crossentropy", True, "adam", 1e-3, {}, [], None),
    "binary": ("sigmoid", "binary_crossentropy", False, "adam", 1e-3, {}, [], None),
    "mse_sgd": ("logits", "mse", False, "sgd", 0.05, {}, [], None),
    "mae": ("softmax", "mae", False, "rmsprop", 1e-3, {}, [], None),
    "binary_from_logits": ("linear1", "binary_crossentropy", True, "sgd", 0.05, {}, [], None),
    "softmax_output_with_from_logits": ("softmax", "sparse_categorical_crossentropy", True, "adam", 1e-3, {}, [],
                                        None),
    "cosine": ("softmax", "sparse_categorical_crossentropy", False, "sgd", 0.2, {}, [],
               {"name": "cosine", "decay_steps": 12, "alpha": 0.2}),
    "exponential_smooth": ("softmax", "sparse_categorical_crossentropy", False, "rmsprop", 2e-3, {}, [],
                           {"name": "exponential", "decay_steps": 4, "decay_rate": 0.7}),
    "clipnorm": ("softmax", "sparse_categorical_crossentropy", False, "sgd", 0.1, {"clipnorm": 0.5},
                 ["--clipnorm", 0.5], None),
    "global_clipnorm": ("softmax", "sparse_categorical_crossentropy", False, "adam", 1e-3, {"global_clipnorm": 0.3},
                        ["--global-clipnorm", 0.3], None),
    "exponential": ("softmax", "sparse_categorical_crossentropy", False, "sgd", 0.2, {}, [],
                    {"name": "exponential", "decay_steps": 5, "decay_rate": 0.5, "staircase": True}),
    "cosine_warmup": ("softmax", "sparse_categorical_crossentropy", False, "adam", 3e-3, {}, [],
                      {"name": "cosine", "decay_steps": 10, "alpha": 0.1, "warmup_steps": 5}),
}


@pytest.mark.filterwarnings("ignore:.*received `from_logits=True`")
@pytest.mark.parametrize("case", sorted(CASES))
def test_20_steps_match_tensorflow(work, case):
    tmp, data, models = work
    mname, loss, logits, opt, lr, kw, flags, sched = CASES[case]
    path, weights, spec = models[mname]
    ref, model, optimizer = tf_trace(data, spec, weights, 20, loss, logits, opt, lr, sched, **kw)
    got = tessera_trace(tmp, path, 20, loss, logits, opt, lr, sched, flags, name=case)
    _check_losses(ref, got["loss"])
    if sched:
        lrs = [float(optimizer.learning_rate.numpy())]  # after the run: the rate of step 20
        expect = _schedule(lr, sched)(20).numpy()
        np.testing.assert_allclose(lrs[0], expect, rtol=1e-6)
        ref_lrs = np.array([float(_schedule(lr, sched)(s)) for s in range(20)])
        np.testing.assert_allclose(got["lr"], ref_lrs, rtol=1e-5, atol=1e-9)
    keys = _pair_variables(got, model)
    for key, v in zip(keys, model.trainable_variables):
        _close(v.numpy(), got["var/" + key], f"variable {key}", 2e-3)
    for slot, refs in _slots(opt, optimizer).items():
        for key, r in zip(keys, refs):
            _close(r.numpy(), got[f"slot/{slot}/{key}"], f"slot {slot} of {key}", 2e-3)


def test_partial_last_batch_matches_tensorflow(work):
    """The trainer compiles the step for --batch with static shapes; a step of another size (an
    epoch's partial last batch: 8 rows after 64-row steps) runs a program compiled for its own
    size. Every step matches TensorFlow's on the same rows."""
    tmp, data, models = work
    path, weights, spec = models["softmax"]
    got = tessera_trace(tmp, path, 4, "sparse_categorical_crossentropy", False, "adam", 1e-3,
                        extra=["--last-batch", 8], name="partial")
    model = _keras_model(spec, weights)
    step = tf_train_step(model, KERAS_LOSSES["sparse_categorical_crossentropy"](from_logits=False),
                    _keras_optimizer("adam", 1e-3, None))
    ref = [float(step(tf.constant(data["x"][s * BATCH:s * BATCH + n]), tf.constant(data["y"][s * BATCH:s * BATCH + n])))
           for s, n in enumerate([BATCH, BATCH, BATCH, 8])]
    _check_losses(np.array(ref), got["loss"])
    keys = _pair_variables(got, model)
    for key, v in zip(keys, model.trainable_variables):
        _close(v.numpy(), got["var/" + key], f"variable {key}", 2e-3)


def test_replicas_and_targets_give_the_same_curve(work):
    """1, 2 and 4 replicas (gradient programs on slices, fixed-order sum, update program),
    2 and 3 "processes" (trainers on threads joined by an in-process Communicator, the path
    MPI takes; 3 does not divide the batch) and the reference target all follow the cpu
    target's single-graph curve."""
    tmp, data, models = work
    path, _, _ = models["softmax"]
    base = tessera_trace(tmp, path, 20, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="r1")
    for extra, name in [(["--replicas", 2], "r2"), (["--replicas", 4], "r4"), (["--target", "reference"], "ref"),
                        (["--processes", 2], "p2"), (["--processes", 3, "--replicas", 2], "p3r2")]:
        got = tessera_trace(tmp, path, 20, "sparse_categorical_crossentropy", False, "adam", 1e-3, extra=extra,
                            name=name)
        np.testing.assert_allclose(got["loss"], base["loss"], rtol=2e-5, err_msg=name)
        np.testing.assert_allclose(got["metric/accuracy"], base["metric/accuracy"], atol=1e-6, err_msg=name)
        for k in base:
            if k.startswith("var/"):
                _close(base[k], got[k], f"{name} {k}", 1e-3)


def test_evaluate_uses_the_trained_variables(work):
    tmp, data, models = work
    path, weights, spec = models["softmax"]
    got = tessera_trace(tmp, path, 30, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="eval",
                        extra=["--eval-x", tmp / "eval_x.npy", "--eval-y", tmp / "eval_y.npy"])
    model = _keras_model(spec, weights)
    keys = _pair_variables(got, model)
    model.set_weights([got["var/" + k] for k in keys])
    probs = model(data["eval_x"], training=False).numpy()
    acc = np.mean(np.argmax(probs, -1) == data["eval_y"])
    ce = float(keras.losses.SparseCategoricalCrossentropy()(data["eval_y"], probs))
    np.testing.assert_allclose(got["eval/accuracy"][0], acc, atol=1e-6)
    np.testing.assert_allclose(got["eval/loss"][0], ce, rtol=1e-4)


def test_bad_options_are_reported(work):
    tmp, _, models = work
    path, _, _ = models["softmax"]
    for flags, msg in [(["--optimizer", "adagrad"], "unknown optimizer"), (["--loss", "hinge"], "unknown loss"),
                       (["--schedule", "cosine"], "decay_steps")]:
        proc = run_cli("train-trace", path, "--x", tmp / "x.npy", "--y", tmp / "y.npy", "--batch", 8, "--steps", 1,
                       "--out", tmp / "bad.npz", *flags, check=False)
        assert proc.returncode != 0 and msg in proc.stderr, proc.stderr
    bad = np.load(tmp / "y.npy")
    bad[5] = 10
    np.save(tmp / "y_bad.npy", bad)
    proc = run_cli("train-trace", path, "--x", tmp / "x.npy", "--y", tmp / "y_bad.npy", "--batch", 8, "--steps", 1,
                   "--out", tmp / "bad.npz", check=False)
    assert proc.returncode != 0 and "label 10 (sample 5 of the batch) is outside the valid range [0, 10)" in proc.stderr


def test_features_of_another_dtype_are_converted(work):
    tmp, _, models = work
    path, _, _ = models["softmax"]
    np.save(tmp / "x64.npy", np.load(tmp / "x.npy").astype(np.float64))
    a = tessera_trace(tmp, path, 2, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="f32")
    b = tessera_trace(tmp, path, 2, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="f64", x="x64.npy")
    np.testing.assert_array_equal(a["loss"], b["loss"])


def test_cnn_with_batchnorm_training_endpoint_matches_tensorflow(work):
    """train_forward (training=True): batch statistics, moving statistics assigned by the
    forward and left out of the trainables; 20 Adam steps against TF."""
    tmp, data, models = work
    path, weights, exported = models["cnn"]
    init = tessera_trace(tmp, path, 1, "sparse_categorical_crossentropy", False, "sgd", 0.0, name="cnn0",
                         x="x_img.npy")
    model = _cnn()
    model.set_weights(weights)
    keys = exported_variable_keys(path, exported, model)
    for key, w in zip(keys, weights):
        assert init[key].shape == w.shape, key
    step = tf_train_step(model, keras.losses.SparseCategoricalCrossentropy(), keras.optimizers.Adam(1e-3))

    x = data["x"].reshape(-1, 28, 28, 1)
    ref = np.array([float(step(x[s * BATCH:(s + 1) * BATCH], data["y"][s * BATCH:(s + 1) * BATCH]))
                    for s in range(20)])
    got = tessera_trace(tmp, path, 20, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="cnn",
                        x="x_img.npy")
    _check_losses(ref, got["loss"])
    trainable = {k[len("trainable/"):] for k in got if k.startswith("trainable/")}
    assert len(trainable) == 6, trainable  # conv, BN gamma/beta, dense: not the moving statistics
    for key, v in zip(keys, model.variables):
        if "moving" in v.path:
            assert key[len("var/"):] not in trainable
            _close(v.numpy(), got[key], v.path, 1e-4)
            assert not np.array_equal(got[key], init[key]), f"{v.path} was not updated"


def test_cnn_replicas_use_per_replica_statistics(work):
    """2 replicas: each normalises with its own half's statistics; the loss is the mean of the
    halves' losses, the gradient their mean, the moving statistics the mean of the replicas'
    updates (MirroredStrategy's defaults)."""
    tmp, data, models = work
    path, weights, exported = models["cnn"]
    got = tessera_trace(tmp, path, 1, "sparse_categorical_crossentropy", False, "sgd", 0.1, name="cnn_r2",
                        x="x_img.npy", extra=["--replicas", 2])
    x = data["x"][:BATCH].reshape(-1, 28, 28, 1)
    y = data["y"][:BATCH]
    halves = [slice(0, BATCH // 2), slice(BATCH // 2, BATCH)]
    model = _cnn()
    model.set_weights(weights)
    keys = exported_variable_keys(path, exported, model)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        loss = tf.add_n([loss_fn(y[h], model(x[h], training=True)) for h in halves]) / 2
    grads = tape.gradient(loss, model.trainable_variables)
    np.testing.assert_allclose(got["loss"][0], float(loss), rtol=1e-5)
    moving = []
    for h in halves:
        m = _cnn()
        m.set_weights(weights)
        m(x[h], training=True)
        moving.append([v.numpy() for v in m.variables])
    trainable_paths = {v.path: g for v, g in zip(model.trainable_variables, grads)}
    for i, (key, v, w0) in enumerate(zip(keys, model.variables, weights)):
        if "moving" in v.path:
            _close((moving[0][i] + moving[1][i]) / 2, got[key], v.path, 1e-5)
        else:
            _close(w0 - 0.1 * trainable_paths[v.path].numpy(), got[key], v.path, 1e-3)


def test_dropout_masks_do_not_depend_on_the_split(work):
    """rewrite_dropout's counter-based masks are keyed on (seed, layer, global sample index):
    1, 2 and 4 replicas and the reference target give the same curve; another seed does not."""
    tmp, _, models = work
    path, _, _ = models["dropout"]
    run = lambda name, *extra: tessera_trace(tmp, path, 10, "sparse_categorical_crossentropy", False, "adam", 1e-3,
                                             name=name, extra=["--seed", 3, *extra])["loss"]
    base = run("d1")
    for name, extra in [("d2", ["--replicas", 2]), ("d4", ["--replicas", 4]), ("dref", ["--target", "reference"])]:
        np.testing.assert_allclose(run(name, *extra), base, rtol=2e-5, err_msg=name)
    other = tessera_trace(tmp, path, 10, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="dseed",
                          extra=["--seed", 4])["loss"]
    assert np.max(np.abs(other - base)) > 1e-3, "the dropout seed should change the masks"


def test_frozen_layer_is_not_trained(work):
    """The object graph's trainable_variables list restricts the trainables (a layer with
    trainable=False at export keeps its weights), and the curve matches TF's."""
    tmp, data, models = work
    path, weights, spec = models["frozen"]
    model = _keras_model(spec, weights)
    model.layers[0].trainable = False
    step = tf_train_step(model, keras.losses.SparseCategoricalCrossentropy(), keras.optimizers.SGD(0.1))

    ref = np.array([float(step(data["x"][s * BATCH:(s + 1) * BATCH], data["y"][s * BATCH:(s + 1) * BATCH]))
                    for s in range(10)])
    got = tessera_trace(tmp, path, 10, "sparse_categorical_crossentropy", False, "sgd", 0.1, name="frozen")
    _check_losses(ref, got["loss"])
    trainable = [k for k in got if k.startswith("trainable/")]
    assert sorted(got[k].shape for k in trainable) == [(10,), (32, 10)]
    frozen_kernel = [k for k in got if k.startswith("var/") and got[k].shape == (784, 32)]
    assert len(frozen_kernel) == 1
    np.testing.assert_array_equal(got[frozen_kernel[0]], weights[0])


@pytest.mark.parametrize("replicas", [1, 2])
def test_restore_continues_exactly(work, replicas):
    """state() -> a new Trainer -> restore() in the middle of a run (dropout, RMSprop with
    momentum slots, a cosine schedule) gives the uninterrupted run's bits."""
    tmp, _, models = work
    path, _, _ = models["dropout"]
    flags = ["--seed", 3, "--momentum", 0.5, "--replicas", replicas]
    sched = {"name": "cosine", "decay_steps": 8}
    whole = tessera_trace(tmp, path, 8, "sparse_categorical_crossentropy", False, "rmsprop", 1e-3, sched,
                          extra=flags, name=f"whole{replicas}")
    resumed = tessera_trace(tmp, path, 8, "sparse_categorical_crossentropy", False, "rmsprop", 1e-3, sched,
                            extra=[*flags, "--restart-at", 3], name=f"resumed{replicas}")
    assert sorted(whole) == sorted(resumed)
    assert any(k.startswith("slot/momentum/") for k in whole)
    for k in whole:
        np.testing.assert_array_equal(resumed[k], whole[k], err_msg=k)


def test_rdu_target_has_cpu_numerics_and_a_simulated_step_time(work):
    tmp, _, models = work
    path, _, _ = models["softmax"]
    cpu = tessera_trace(tmp, path, 3, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="cpu3")
    rdu = tessera_trace(tmp, path, 3, "sparse_categorical_crossentropy", False, "adam", 1e-3, name="rdu3",
                        extra=["--target", "rdu"])
    np.testing.assert_array_equal(rdu["loss"], cpu["loss"])
    assert 0 < rdu["rdu_step_seconds"][0] < 1.0
    assert "rdu_step_seconds" not in cpu


def test_sync_batch_norm(work):
    """sync_batch_norm: replicas share the global batch's statistics, i.e. the one-graph curve;
    across processes it is refused clearly."""
    tmp, _, models = work
    path, _, _ = models["cnn"]
    run = lambda name, *extra: tessera_trace(tmp, path, 5, "sparse_categorical_crossentropy", False, "sgd", 0.1,
                                             name=name, x="x_img.npy", extra=list(extra))
    one = run("s1")
    synced = run("s2", "--replicas", 2, "--sync-batch-norm")
    split = run("s3", "--replicas", 2)
    np.testing.assert_allclose(synced["loss"], one["loss"], rtol=1e-6)
    assert np.max(np.abs(split["loss"][1:] - one["loss"][1:])) > 1e-5, "per-replica statistics should differ"
    proc = run_cli("train-trace", path, "--x", tmp / "x_img.npy", "--y", tmp / "y.npy", "--batch", 8, "--steps", 1,
                   "--out", tmp / "bad.npz", "--processes", 2, "--sync-batch-norm", check=False)
    assert proc.returncode != 0 and "across processes are not implemented" in proc.stderr, proc.stderr
