"""FLOP conservation against TensorFlow: the multiply-add FLOPs of every MatMul and Conv2D in
TF's own frozen graph of a zoo model (shapes from TF, counted with the formula of TF's FLOP
registry: 2 x output elements x contraction length) equal the FLOPs the rdu lowering assigns
to its products and convolutions after Tessera's passes have fused them."""
import json

import numpy as np
import pytest

from conftest import ZOO_DIR, zoo_models
from tessera_testlib import run_cli

NAMES = ("mlp_k3", "cnn_k3", "cnn_tfk", "resnet50_k3")
MODELS = [m for m in zoo_models("inference") if m["name"] in NAMES]
BATCH = 8


def tf_product_flops(path, signature):
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    loaded = tf.saved_model.load(str(path))  # keeps the variables alive while tracing
    sig = loaded.signatures[signature]
    (name, spec), = sig.structured_input_signature[1].items()
    fn = tf.function(lambda x: sig(**{name: x})).get_concrete_function(
        tf.TensorSpec([BATCH] + list(spec.shape[1:]), spec.dtype))
    total = 0
    for op in convert_variables_to_constants_v2(fn).graph.get_operations():
        if op.type not in ("MatMul", "Conv2D"):
            continue
        out = int(np.prod(op.outputs[0].shape.as_list()))
        if op.type == "MatMul":
            a = op.inputs[0].shape.as_list()
            total += 2 * out * (a[0] if op.get_attr("transpose_a") else a[1])
        else:
            f = op.inputs[1].shape.as_list()
            total += 2 * out * f[0] * f[1] * f[2]
    return total


@pytest.mark.parametrize("model", MODELS, ids=[m["name"] for m in MODELS])
def test_product_flops_match_tensorflow(model, tmp_path):
    out = tmp_path / "r.json"
    sig = model["signature"] or "serving_default"
    run_cli("simulate", ZOO_DIR / model["path"], "--signature", sig, "--chip", "small", "--batch", BATCH,
            "--json", out)
    ours = json.loads(out.read_text())["product_flops"]
    want = tf_product_flops(ZOO_DIR / model["path"], sig)
    assert want > 0
    assert ours == want
