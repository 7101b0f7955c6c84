"""Writes the bundled default model (examples/mnist_mlp, a Keras 3 SavedModel export of the
seed MLP, trained briefly on MNIST) and examples/mnist_digits.npz (16 held-out digits).

Run by developers only (needs TensorFlow and ../shared/data/mnist); the outputs are committed
so the demo needs neither."""
import gzip
import json
import pathlib
import shutil

import numpy as np
import tensorflow as tf
import keras

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared/data/mnist"


def load_idx(name):
    data = gzip.open(MNIST / name).read()
    if "images" in name:
        return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0
    return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)


def main():
    keras.utils.set_random_seed(0)
    x = load_idx("t10k-images-idx3-ubyte.gz")
    y = load_idx("t10k-labels-idx1-ubyte.gz")
    model = keras.Sequential([
        keras.Input((784,), name="pixels"),
        keras.layers.Dense(512, activation="gelu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(256, activation="gelu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(3e-4), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:8000], y[:8000], batch_size=256, epochs=8, verbose=0)
    _, acc = model.evaluate(x[8000:], y[8000:], verbose=0)
    out = REPO / "examples/mnist_mlp"
    shutil.rmtree(out, ignore_errors=True)
    model.export(str(out))
    fn = tf.saved_model.load(str(out)).signatures["serving_default"]
    (in_name,) = fn.structured_input_signature[1].keys()
    digits = x[8000:8016]
    np.savez(REPO / "examples/mnist_digits.npz", **{in_name: digits})
    probs = list(fn(**{in_name: tf.constant(digits)}).values())[0].numpy()
    print(json.dumps({"held_out_accuracy": round(float(acc), 4), "input": in_name,
                      "predicted": probs.argmax(1).tolist(), "labels": y[8000:8016].tolist()}))


if __name__ == "__main__":
    main()
