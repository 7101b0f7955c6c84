"""TF Serving's own SavedModel fixtures (written by TensorFlow 1.x and 2.x) run through Tessera
with the values TF Serving's tests expect."""
import base64
import json

import numpy as np
import pytest

from tessera_testlib import SERVING_TESTDATA, assert_numeric_match, run_cli, run_saved_model

SERVABLES = SERVING_TESTDATA / "servables/tensorflow/testdata"

HALF_PLUS_TWO = [
    "saved_model_half_plus_two_cpu/00000123",
    "saved_model_half_plus_two_2_versions/00000123",
    "saved_model_half_plus_two_2_versions/00000124",
    "saved_model_half_plus_two_gpu/00000123",
    "saved_model_half_plus_two_gpu_trt/00000123",
    "saved_model_half_plus_two_mkl/00000123",
    "saved_model_half_plus_two_mlmd/00000123",
    "saved_model_half_plus_two_cpu_with_saved_model_config/00000123",
    "saved_model_half_plus_two_cpu_with_empty_saved_model_config/00000123",
]
TF2_HALF_PLUS_TWO = "saved_model_half_plus_two_tf2_cpu/00000123"


def _example(**features):
    """A serialized tf.train.Example with float features (built with TF's own protos)."""
    from tensorflow.core.example import example_pb2
    ex = example_pb2.Example()
    for name, value in features.items():
        ex.features.feature[name].float_list.value.append(value)
    return ex.SerializeToString()


def _b64_list(*examples):
    return json.dumps([{"b64": base64.b64encode(e).decode()} for e in examples])


def _run_json(model, signature, inputs_json):
    import tempfile, pathlib
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "out.npz"
        run_cli("run", model, "--signature", signature, "--input", inputs_json, "--output", out)
        with np.load(out) as z:
            return {k: z[k] for k in z.files}


@pytest.mark.parametrize("path", HALF_PLUS_TWO)
def test_tf1_half_plus_two_predict(path):
    x = np.random.default_rng(0).normal(size=(7, 1)).astype(np.float32) * 10
    out = run_saved_model(SERVABLES / path, {"x": x})
    assert_numeric_match(0.5 * x + 2, out["y"], "y")


def test_tf1_half_plus_three_predict():
    x = np.random.default_rng(1).normal(size=(5, 1)).astype(np.float32)
    out = run_saved_model(SERVABLES / "saved_model_half_plus_three/00000123", {"x": x})
    assert_numeric_match(0.5 * x + 3, out["y"], "y")


def test_tf2_half_plus_two_predict():
    x = np.random.default_rng(2).normal(size=(1,)).astype(np.float32)
    out = run_saved_model(SERVABLES / TF2_HALF_PLUS_TWO, {"x": x})
    assert_numeric_match(0.5 * x + 2, out["y"], "y")


def test_matrix_half_plus_two_predict():
    model = SERVING_TESTDATA / "batching/testdata/matrix_half_plus_two/1"
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3)
    out = run_saved_model(model, {"x": x})
    np.testing.assert_array_equal(out["y"], [[[2.5, 3, 3.5], [4, 4.5, 5], [5.5, 6, 6.5]]])
    x = np.random.default_rng(3).normal(size=(4, 3, 3)).astype(np.float32)
    assert_numeric_match(0.5 * x + 2, run_saved_model(model, {"x": x})["y"], "y")


@pytest.mark.parametrize("path", ["saved_model_half_plus_two_cpu/00000123", TF2_HALF_PLUS_TWO])
@pytest.mark.parametrize("signature,key,expected", [
    ("regress_x_to_y", "outputs", 3.0),
    ("regress_x_to_y2", "outputs", 4.0),
    ("classify_x_to_y", "scores", 3.0),
])
def test_example_signatures(path, signature, key, expected):
    out = _run_json(SERVABLES / path, signature, "inputs=" + _b64_list(_example(x=2.0)))
    np.testing.assert_allclose(out[key].reshape(-1), [expected])


def test_example_signatures_batch():
    xs = [2.0, -4.0, 10.0]
    out = _run_json(SERVABLES / "saved_model_half_plus_two_cpu/00000123", "regress_x_to_y",
                    "inputs=" + _b64_list(*[_example(x=v) for v in xs]))
    np.testing.assert_allclose(out["outputs"].reshape(-1), [0.5 * v + 2 for v in xs])


def test_x2_signatures():
    out = run_saved_model(SERVABLES / "saved_model_half_plus_two_cpu/00000123",
                          {"inputs": np.array([[2.0]], np.float32)}, signature="regress_x2_to_y3")
    np.testing.assert_allclose(out["outputs"].reshape(-1), [4.0])
    out = run_saved_model(SERVABLES / TF2_HALF_PLUS_TWO, {"inputs": np.array([2.0], np.float32)},
                          signature="classify_x2_to_y3")
    np.testing.assert_allclose(out["scores"].reshape(-1), [4.0])


def test_bad_half_plus_two_names_what_is_missing():
    proc = run_cli("run", SERVABLES / "bad_half_plus_two/00000123", "--input", "x=[[1.0]]", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "saved_model.pb" in proc.stderr and "export.meta" in proc.stderr, proc.stderr


def test_tflite_is_rejected_with_a_reason():
    proc = run_cli("inspect", SERVABLES / "saved_model_half_plus_two_tflite/00000123", check=False)
    assert proc.returncode != 0
    assert "TFLite" in proc.stderr, proc.stderr


def test_wrong_signature_name_lists_available():
    proc = run_cli("run", SERVABLES / "saved_model_half_plus_two_cpu/00000123", "--signature", "nope",
                   "--input", "x=[[1.0]]", check=False)
    assert proc.returncode == 1
    assert "no signature 'nope'" in proc.stderr and "serving_default" in proc.stderr, proc.stderr
