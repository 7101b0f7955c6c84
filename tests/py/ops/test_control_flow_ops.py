"""Differential tests of functional control flow (If/While/Case as control flow v2 emits them),
TensorList ops and tf.train.Example parsing against TensorFlow.

Control flow graphs are tf.compat.v1 graphs built with control flow v2 (tf.cond,
tf.while_loop, tf.switch_case, TensorArray, tf.map_fn), so their GraphDefs carry a function
library. Each test runs the graph in a TF session and through `tessera run`, comparing with the
project's numeric-match rule (exact for integers, bools and strings; the default float
tolerance for float32 arithmetic inside loops).
"""
import numpy as np
import pytest

from tessera_testlib import compare_graph_with_tf as check, graph_op_types as _ops, run_graph

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1
raw = tf.raw_ops
tf1.enable_control_flow_v2()


# ---------------------------------------------------------------- control flow

def test_cond():
    g = tf.Graph()
    with g.as_default():
        p = tf1.placeholder(tf.bool, [], name="p")
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        k = tf1.placeholder(tf.int32, [], name="k")
        a, b = tf.cond(p, lambda: (x * 2.0 + 1.0, k + 1), lambda: (x - 3.0, k * 5))
        # A cond whose branches return different static shapes (output shape unknown).
        c = tf.cond(p, lambda: tf.reduce_sum(x, axis=1), lambda: tf.reshape(x, [-1]))
    assert _ops(g) & {"If", "StatelessIf"}
    rng = np.random.default_rng(0)
    xv = rng.uniform(-2, 2, (2, 3)).astype(np.float32)
    check(g, [a, b, c], [{p: True, x: xv, k: 4}, {p: False, x: xv, k: -2},
                         {p: False, x: np.zeros((0, 3), np.float32), k: 0}])


def test_while_loop():
    g = tf.Graph()
    with g.as_default():
        n = tf1.placeholder(tf.int32, [], name="n")
        x = tf1.placeholder(tf.float32, [None], name="x")
        i, acc = tf.while_loop(lambda i, acc: i < n,
                               lambda i, acc: (i + 1, acc * 0.5 + tf.cast(i, tf.float32)),
                               (tf.constant(0), x))
        # A loop variable that grows (shape invariant [None]).
        _, grown = tf.while_loop(lambda j, v: j < n,
                                 lambda j, v: (j + 1, tf.concat([v, tf.cast([j, j * j], tf.float32)], 0)),
                                 (tf.constant(0), tf.zeros([0])),
                                 shape_invariants=(tf.TensorShape([]), tf.TensorShape([None])))
    assert _ops(g) & {"While", "StatelessWhile"}
    xv = np.array([1.0, -2.0, 3.5], np.float32)
    check(g, [i, acc, grown], [{n: 0, x: xv}, {n: 1, x: xv}, {n: 7, x: xv}, {n: -1, x: xv}])


def test_nested_cond_in_while_and_switch_case():
    g = tf.Graph()
    with g.as_default():
        n = tf1.placeholder(tf.int32, [], name="n")
        idx = tf1.placeholder(tf.int32, [], name="idx")
        x = tf1.placeholder(tf.float32, [2, 2], name="x")

        def body(i, v):
            v = tf.cond(tf.equal(i % 2, 0), lambda: v + 1.0, lambda: tf.matmul(v, v) * 0.25)
            return i + 1, v

        _, looped = tf.while_loop(lambda i, v: i < n, body, (tf.constant(0), x))
        case = tf.switch_case(idx, [lambda: x * 2.0, lambda: x - 1.0, lambda: tf.transpose(x)])
    assert "Case" in _ops(g) or "StatelessCase" in _ops(g)
    xv = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    check(g, [looped, case], [{n: 0, idx: 0, x: xv}, {n: 5, idx: 1, x: xv}, {n: 3, idx: 2, x: xv},
                              {n: 2, idx: 7, x: xv}, {n: 1, idx: -3, x: xv}])


def test_tensor_array_loops_and_map_fn():
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        steps = tf.shape(x)[0]
        inputs = tf.TensorArray(tf.float32, size=steps).unstack(x)
        out = tf.TensorArray(tf.float32, size=steps, element_shape=[3])

        def body(t, state, ta):
            state = state * 0.9 + inputs.read(t)
            return t + 1, state, ta.write(t, state)

        _, last, out = tf.while_loop(lambda t, *_: t < steps, body,
                                     (tf.constant(0), tf.zeros([3]), out))
        stacked = out.stack()
        # dynamic_size TensorArray (grows by writes past its size).
        dyn = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
        _, dyn = tf.while_loop(lambda i, ta: i < steps * 2, lambda i, ta: (i + 1, ta.write(i, i * i)),
                               (tf.constant(0), dyn))
        dyn_stacked = dyn.stack()
        mapped = tf.map_fn(lambda row: tf.reduce_sum(row * row), x)
    assert any(op.startswith("TensorList") for op in _ops(g))
    rng = np.random.default_rng(1)
    cases = [{x: rng.uniform(-1, 1, (4, 3)).astype(np.float32)}, {x: np.ones((1, 3), np.float32)}]
    check(g, [last, stacked, dyn_stacked, mapped], cases)


# ---------------------------------------------------------------- TensorList ops

def test_tensor_list_raw_ops():
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 2], name="x")
        s = tf1.placeholder(tf.string, [None], name="s")
        f32 = tf.float32
        l = raw.TensorListFromTensor(tensor=x, element_shape=[2])
        item = raw.TensorListGetItem(input_handle=l, index=1, element_shape=[2], element_dtype=f32)
        l2 = raw.TensorListSetItem(input_handle=l, index=0, item=item * 10.0)
        l2 = raw.TensorListPushBack(input_handle=l2, tensor=tf.constant([7.0, 8.0]))
        stacked = raw.TensorListStack(input_handle=l2, element_shape=[2], element_dtype=f32)
        orig = raw.TensorListStack(input_handle=l, element_shape=[2], element_dtype=f32)  # unchanged
        length = raw.TensorListLength(input_handle=l2)
        eshape = raw.TensorListElementShape(input_handle=l2, shape_type=tf.int32)
        rest, popped = raw.TensorListPopBack(input_handle=l2, element_shape=[2], element_dtype=f32)
        gathered = raw.TensorListGather(input_handle=rest, indices=[2, 0, 0], element_shape=[2],
                                        element_dtype=f32)
        resized = raw.TensorListStack(input_handle=raw.TensorListResize(input_handle=rest, size=5),
                                      element_shape=[2], element_dtype=f32)
        reserved = raw.TensorListReserve(element_shape=[-1], num_elements=3, element_dtype=f32)
        reserved = raw.TensorListSetItem(input_handle=reserved, index=2, item=[1.0, 2.0])
        zeros_filled = raw.TensorListStack(input_handle=reserved, element_shape=-1, element_dtype=f32)
        scattered = raw.TensorListStack(
            input_handle=raw.TensorListScatterV2(tensor=x[:3], indices=[4, 0, 2], element_shape=[2],
                                                 num_elements=6),
            element_shape=[2], element_dtype=f32)
        into = raw.TensorListStack(
            input_handle=raw.TensorListScatterIntoExistingList(input_handle=l, tensor=x[:2] + 1.0,
                                                               indices=[1, 0]),
            element_shape=[2], element_dtype=f32)
        split = raw.TensorListSplit(tensor=x, element_shape=[-1, 2], lengths=tf.constant([1, 2, 0, 1], tf.int64))
        joined, lengths = raw.TensorListConcatV2(input_handle=split, element_shape=[-1, 2],
                                                 leading_dims=tf.zeros([0], tf.int64), element_dtype=f32)
        split_item = raw.TensorListGetItem(input_handle=split, index=1, element_shape=[-1, 2], element_dtype=f32)
        empty = raw.EmptyTensorList(element_shape=[2, 2], max_num_elements=-1, element_dtype=f32)
        empty_stack = raw.TensorListStack(input_handle=empty, element_shape=-1, element_dtype=f32)
        words = raw.TensorListStack(
            input_handle=raw.TensorListFromTensor(tensor=s, element_shape=tf.constant(-1)),
            element_shape=-1, element_dtype=tf.string)
    fetches = [item, stacked, orig, length, eshape, popped, gathered, resized, zeros_filled, scattered,
               into, joined, lengths, split_item, empty_stack, words]
    xv = np.arange(8, dtype=np.float32).reshape(4, 2)
    check(g, fetches, [{x: xv, s: np.array([b"a", b"", b"xyz"], dtype=object)}])


@pytest.mark.parametrize("case", ["get_oob", "set_bad_shape", "stack_unknown_shape", "pop_empty"])
def test_tensor_list_errors_name_the_node(case):
    g = tf.Graph()
    with g.as_default():
        i = tf1.placeholder(tf.int32, [], name="i")
        f32 = tf.float32
        l = raw.TensorListReserve(element_shape=[2], num_elements=3, element_dtype=f32)
        if case == "get_oob":
            out = raw.TensorListGetItem(input_handle=l, index=i, element_shape=[2], element_dtype=f32, name="bad")
        elif case == "set_bad_shape":
            item = tf1.placeholder_with_default(tf.zeros([3]), [None])  # hides [3] from TF's checks
            l2 = raw.TensorListSetItem(input_handle=l, index=i, item=item, name="bad")
            out = raw.TensorListLength(input_handle=l2)
        elif case == "stack_unknown_shape":
            u = raw.TensorListReserve(element_shape=-1, num_elements=i, element_dtype=f32)
            out = raw.TensorListStack(input_handle=u, element_shape=-1, element_dtype=f32, name="bad")
        else:
            e = raw.EmptyTensorList(element_shape=[2], max_num_elements=i, element_dtype=f32)
            out = raw.TensorListPopBack(input_handle=e, element_shape=[2], element_dtype=f32, name="bad")[1]
    with pytest.raises(AssertionError, match=r"node 'bad'"):
        run_graph(g.as_graph_def(), {"i:0": np.int32(3)}, [out.name])


# ---------------------------------------------------------------- Example parsing

def _example(rng, keys_present):
    f = {}
    if "a" in keys_present:
        f["a"] = tf.train.Feature(float_list=tf.train.FloatList(value=rng.uniform(-5, 5, 2).tolist()))
    if "b" in keys_present:
        f["b"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(rng.integers(-2**40, 2**40))]))
    if "s" in keys_present:
        words = [b"", b"cat", b"\xc3\xa9t\xc3\xa9", b"\x00bin\x01"]
        f["s"] = tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[words[j] for j in rng.integers(0, 4, rng.integers(0, 4))]))
    if "r" in keys_present:
        f["r"] = tf.train.Feature(int64_list=tf.train.Int64List(value=rng.integers(0, 9, rng.integers(0, 5)).tolist()))
    if "q" in keys_present:
        f["q"] = tf.train.Feature(float_list=tf.train.FloatList(value=rng.uniform(0, 1, 2 * rng.integers(0, 3)).tolist()))
    if "e" in keys_present:
        f["e"] = tf.train.Feature()  # no value list: treated as missing
    return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


def _examples(seed, n):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        present = {k for k in "asrqe" if rng.uniform() < 0.6} | {"b"}
        out.append(_example(rng, present))
    return out


def _flatten(parsed):
    """The plain tensors of parse_example's dict (SparseTensor/RaggedTensor components)."""
    tensors = []
    for key in sorted(parsed):
        v = parsed[key]
        if isinstance(v, tf.SparseTensor):
            tensors += [v.indices, v.values, v.dense_shape]
        elif isinstance(v, tf.RaggedTensor):
            tensors += [v.flat_values, v.row_splits]
        else:
            tensors.append(v)
    return tensors


FEATURES = {
    "a": tf.io.FixedLenFeature([2], tf.float32, default_value=[7.0, 8.0]),
    "b": tf.io.FixedLenFeature([], tf.int64),
    "e": tf.io.FixedLenFeature([1], tf.string, default_value=[b"dflt"]),
    "s": tf.io.VarLenFeature(tf.string),
    "r": tf.io.RaggedFeature(tf.int64),
    "q": tf.io.FixedLenSequenceFeature([2], tf.float32, allow_missing=True, default_value=-1.0),
}


@pytest.mark.parametrize("batch", [0, 1, 5])
def test_parse_example_v2(batch):
    g = tf.Graph()
    with g.as_default():
        serialized = tf1.placeholder_with_default(
            tf.constant(_examples(batch, batch), tf.string, shape=[batch]), [None], name="serialized")
        parsed = tf.io.parse_example(serialized, FEATURES)
        single = tf.io.parse_example(serialized[0] if batch else tf.constant(b""),
                                     {k: FEATURES[k] for k in "asr"} if batch else {"a": FEATURES["a"]})
    assert "ParseExampleV2" in _ops(g)
    check(g, _flatten(parsed) + _flatten(single), [{}])


def test_parse_example_v1_and_single_example():
    examples = _examples(42, 4)
    g = tf.Graph()
    with g.as_default():
        ser = tf.constant(examples)
        v1 = raw.ParseExample(serialized=ser, names=[], sparse_keys=["s", "r"], dense_keys=["a", "e"],
                              dense_defaults=[tf.constant([7.0, 8.0]), tf.constant([b"d"])],
                              sparse_types=[tf.string, tf.int64], dense_shapes=[[2], [1]])
        single = raw.ParseSingleExample(serialized=ser[1], dense_defaults=[tf.zeros([0], tf.int64)],
                                        num_sparse=1, sparse_keys=["r"], dense_keys=["b"],
                                        sparse_types=[tf.int64], dense_shapes=[[]])
    fetches = [t for group in v1 for t in group] + [t for group in single for t in group]
    check(g, fetches, [{}])


@pytest.mark.parametrize("case", ["missing", "wrong_type", "wrong_count", "malformed"])
def test_parse_errors_name_the_node_and_feature(case):
    good = tf.train.Example(features=tf.train.Features(feature={
        "b": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2]))})).SerializeToString()
    serialized = {"missing": [good, good], "wrong_type": [good], "wrong_count": [good],
                  "malformed": [good[:-1]]}[case]
    spec = {"missing": {"a": tf.io.FixedLenFeature([1], tf.float32)},
            "wrong_type": {"b": tf.io.FixedLenFeature([2], tf.float32)},
            "wrong_count": {"b": tf.io.FixedLenFeature([3], tf.int64)},
            "malformed": {"b": tf.io.FixedLenFeature([2], tf.int64)}}[case]
    expected = {"missing": r"Feature: a .*required", "wrong_type": r"Key: b, Index: 0",
                "wrong_count": r"Key: b, Index: 0", "malformed": r"could not parse example input 0"}[case]
    g = tf.Graph()
    with g.as_default():
        ser = tf1.placeholder_with_default(tf.constant(serialized), [None], name="ser")
        out = tf.io.parse_example(ser, spec)[next(iter(spec))]
    with tf1.Session(graph=g) as sess:
        with pytest.raises(tf.errors.InvalidArgumentError):
            sess.run(out)
    with pytest.raises(AssertionError, match=r"ParseExampleV2\)") as info:
        run_graph(g.as_graph_def(), {}, [out.name])
    assert pytest.importorskip("re").search(expected, str(info.value)), str(info.value)
