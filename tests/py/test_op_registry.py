"""The op registry against TensorFlow's: TF strips default-valued attributes when it saves a
graph (stripped_default_attrs), so every default TF declares must be in our registry with the
same value."""
import json
import math

import pytest

from tessera_testlib import run_cli

OURS = [json.loads(line) for line in run_cli("ops", "--json").stdout.splitlines()]


def _tf_default(value):
    """A TF AttrValue default as the JSON our `tessera ops --json` prints."""
    import tensorflow as tf
    kind = value.WhichOneof("value")
    if kind == "list":
        lst = value.list
        for field in ("i", "f", "s", "type", "b"):
            items = list(getattr(lst, field))
            if items:
                if field == "s":
                    return [s.decode("latin-1") for s in items]
                if field == "type":
                    return [tf.dtypes.as_dtype(t).name for t in items]
                return items
        return []
    if kind == "s":
        return value.s.decode("latin-1")
    if kind == "type":
        return tf.dtypes.as_dtype(value.type).name
    if kind == "shape":
        return None if value.shape.unknown_rank else [d.size for d in value.shape.dim]
    return getattr(value, kind)


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_registry_is_not_empty():
    assert len(OURS) > 100, f"only {len(OURS)} ops registered"


@pytest.mark.parametrize("entry", OURS, ids=[e["op"] for e in OURS])
def test_defaults_match_tensorflow(entry):
    from tensorflow.python.framework import op_def_registry
    tf_def = op_def_registry.get(entry["op"])
    if tf_def is None:
        assert entry["op"].startswith("Ts"), f"{entry['op']} is neither a TF op nor a Tessera (Ts*) op"
        return
    for attr in tf_def.attr:
        if not attr.HasField("default_value"):
            continue
        want = _tf_default(attr.default_value)
        assert attr.name in entry["defaults"], \
            f"{entry['op']}: missing default for attribute '{attr.name}' (TF: {want!r})"
        assert _same(entry["defaults"][attr.name], want), \
            f"{entry['op']}.{attr.name}: ours {entry['defaults'][attr.name]!r}, TF {want!r}"
    # Stateful ops are never folded or deduplicated; being more conservative than TF is fine.
    if tf_def.is_stateful and entry["op"] not in PURE_CHECKS:
        assert entry["stateful"], f"{entry['op']}: TF marks it stateful, Tessera does not"


# TF marks these stateful only so they are not pruned; they compute a pure function of their
# input (or fail), so folding them is safe.
PURE_CHECKS = {"CheckNumerics", "CheckNumericsV2"}
