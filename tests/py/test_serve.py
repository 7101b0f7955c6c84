"""`tessera serve` end to end (issue 6): TF Serving's own expectations on its half_plus_two
fixture, through the real Python gRPC client (tensorflow-serving-api) and plain HTTP, and the
bad-input cases of acceptance 3 -- after each, the server must still answer.

All traffic is on loopback; every call has a timeout, and the server is stopped with SIGTERM
(it must drain and exit 0)."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from conftest import ZOO_DIR, zoo_models
from tessera_testlib import SERVING_TESTDATA, TESSERA, assert_numeric_match

grpc = pytest.importorskip("grpc")
pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2, get_model_metadata_pb2, get_model_status_pb2, inference_pb2, model_service_pb2_grpc,
    predict_pb2, prediction_service_pb2_grpc, regression_pb2)

SERVABLES = SERVING_TESTDATA / "servables/tensorflow/testdata"
HALF_PLUS_TWO = SERVABLES / "saved_model_half_plus_two_cpu"
METADATA_JSON = SERVABLES / "half_plus_two_model_metadata.json"
CALL_TIMEOUT = 30  # seconds, every gRPC / HTTP call
MAX_BODY = 1 << 20
HEADER_TIMEOUT_MS = 1000


class Server:
    def __init__(self, tmp, base=None, name="default", extra=()):
        self.tmp = tmp
        if base is None:
            base = tmp / "models" / "default"
            shutil.copytree(HALF_PLUS_TWO / "00000123", base / "00000123")
        (tmp / "monitoring.txt").write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
        self.port_file = tmp / "ports.json"
        self.access_log = tmp / "access.log"
        self.stderr = open(tmp / "stderr.txt", "w+")
        self.proc = subprocess.Popen(
            [str(TESSERA), "serve", "--port=0", "--rest_api_port=auto", "--host=127.0.0.1",
             f"--model_name={name}", f"--model_base_path={base}", f"--port_file={self.port_file}",
             f"--monitoring_config_file={tmp / 'monitoring.txt'}", f"--rest_api_max_body_bytes={MAX_BODY}",
             f"--rest_api_header_timeout_in_ms={HEADER_TIMEOUT_MS}", "--rest_api_body_timeout_in_ms=2000",
             f"--access_log={self.access_log}", "--file_system_poll_wait_seconds=1", *extra],
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.time() + 120
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                pytest.fail(f"tessera serve did not start:\n{self.log()}")
            time.sleep(0.1)
        ports = json.loads(self.port_file.read_text())
        self.grpc_port, self.rest_port = ports["grpc"], ports["rest"]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_stub = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def log(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-4000:]

    def http(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=CALL_TIMEOUT)
        try:
            data = body if body is None or isinstance(body, bytes) else (
                body if isinstance(body, str) else json.dumps(body)).encode()
            conn.request(method, path, body=data)
            r = conn.getresponse()
            text = r.read().decode()
            return r.status, text
        finally:
            conn.close()

    def stop(self):
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.stderr.close()
        return rc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve"))
    yield s
    rc = s.stop()
    assert rc == 0, f"tessera serve exited {rc} after SIGTERM:\n{open(s.tmp / 'stderr.txt').read()[-3000:]}"


def _predict_request(x, signature="", output_filter=()):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "default"
    if signature:
        req.model_spec.signature_name = signature
    req.inputs["x"].CopyFrom(_float_tensor(x))
    req.output_filter.extend(output_filter)
    return req


def _float_tensor(x):
    import tensorflow as tf
    return tf.make_tensor_proto(np.asarray(x, np.float32))


def _example_input(input_proto, **features):
    ex = input_proto.example_list.examples.add()
    for k, v in features.items():
        ex.features.feature[k].float_list.value.append(v)


def assert_still_serving(server):
    """Both front ends answer a good request after whatever the test did."""
    status, body = server.http("POST", "/v1/models/default:predict", {"instances": [[2.0]]})
    assert status == 200 and json.loads(body) == {"predictions": [[3.0]]}, (status, body)
    import tensorflow as tf
    resp = server.predict_stub.Predict(_predict_request([[2.0]]), timeout=CALL_TIMEOUT)
    assert tf.make_ndarray(resp.outputs["y"]).ravel().tolist() == [3.0]


# ---------------------------------------------------------------- gRPC (TF Serving's tests)

def test_grpc_predict_documented(server):
    import tensorflow as tf
    for x in ([[2.0]], [2.0]):  # TF Serving's test feeds shape [1] to x, declared [-1,1]
        for output_filter in ((), ("y",)):
            resp = server.predict_stub.Predict(_predict_request(x, output_filter=output_filter),
                                               timeout=CALL_TIMEOUT)
            assert list(resp.outputs["y"].tensor_shape.dim) == list(_float_tensor(x).tensor_shape.dim)
            assert resp.outputs["y"].dtype == tf.float32.as_datatype_enum
            assert tf.make_ndarray(resp.outputs["y"]).ravel().tolist() == [3.0]
            assert resp.model_spec.name == "default"
            assert resp.model_spec.version.value == 123
            assert resp.model_spec.signature_name == "serving_default"


def test_grpc_predict_random(server):
    import tensorflow as tf
    x = np.random.default_rng(6).normal(size=(17, 1)).astype(np.float32) * 100
    resp = server.predict_stub.Predict(_predict_request(x), timeout=CALL_TIMEOUT)
    assert_numeric_match(0.5 * x + 2, tf.make_ndarray(resp.outputs["y"]), "y")


def test_grpc_classify_regress_multi(server):
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name = "default"
    req.model_spec.signature_name = "classify_x_to_y"
    _example_input(req.input, x=2.0)
    resp = server.predict_stub.Classify(req, timeout=CALL_TIMEOUT)
    assert len(resp.result.classifications) == 1
    assert len(resp.result.classifications[0].classes) == 1
    assert resp.result.classifications[0].classes[0].score == pytest.approx(3.0)
    assert resp.model_spec.version.value == 123

    rreq = regression_pb2.RegressionRequest()
    rreq.model_spec.name = "default"
    rreq.model_spec.signature_name = "regress_x_to_y"
    _example_input(rreq.input, x=2.0)
    rresp = server.predict_stub.Regress(rreq, timeout=CALL_TIMEOUT)
    assert rresp.result.regressions[0].value == pytest.approx(3.0)

    mreq = inference_pb2.MultiInferenceRequest()
    for sig, method in (("regress_x_to_y", "tensorflow/serving/regress"),
                        ("classify_x_to_y", "tensorflow/serving/classify")):
        t = mreq.tasks.add()
        t.model_spec.name = "default"
        t.model_spec.signature_name = sig
        t.method_name = method
    _example_input(mreq.input, x=2.0)
    mresp = server.predict_stub.MultiInference(mreq, timeout=CALL_TIMEOUT)
    assert len(mresp.results) == 2
    assert mresp.results[0].regression_result.regressions[0].value == pytest.approx(3.0)
    assert mresp.results[1].classification_result.classifications[0].classes[0].score == pytest.approx(3.0)


def test_grpc_status_and_metadata(server):
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "default"
    resp = server.model_stub.GetModelStatus(req, timeout=CALL_TIMEOUT)
    assert len(resp.model_version_status) == 1
    assert resp.model_version_status[0].version == 123
    assert resp.model_version_status[0].status.error_code == 0

    mreq = get_model_metadata_pb2.GetModelMetadataRequest()
    mreq.model_spec.name = "default"
    mreq.metadata_field.append("signature_def")
    mresp = server.predict_stub.GetModelMetadata(mreq, timeout=CALL_TIMEOUT)
    assert mresp.model_spec.name == "default"
    assert mresp.model_spec.version.value == 123
    assert list(mresp.metadata.keys()) == ["signature_def"]


def _our_model_service_messages():
    """ListModelNames' messages, built from our own .proto (the pip schema has no such rpc)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from test_proto_schema import load_ours
    fds, how = load_ours()
    if fds is None:
        pytest.skip(how)
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return [message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{n}"))
            for n in ("ListModelNamesRequest", "ListModelNamesResponse")]


def test_grpc_list_model_names(server):
    req_cls, resp_cls = _our_model_service_messages()
    call = server.channel.unary_unary("/tensorflow.serving.ModelService/ListModelNames",
                                      request_serializer=req_cls.SerializeToString,
                                      response_deserializer=resp_cls.FromString)
    resp = call(req_cls(), timeout=CALL_TIMEOUT)
    assert list(resp.model_names) == ["default"]


def test_grpc_errors(server):
    req = _predict_request([[2.0]])
    req.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as e:
        server.predict_stub.Predict(req, timeout=CALL_TIMEOUT)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    req = _predict_request([[2.0]], signature="nope")
    with pytest.raises(grpc.RpcError) as e:
        server.predict_stub.Predict(req, timeout=CALL_TIMEOUT)
    assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    import tensorflow as tf
    req = _predict_request([[2.0]])
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([[2]], np.int32)))  # wrong dtype
    with pytest.raises(grpc.RpcError) as e:
        server.predict_stub.Predict(req, timeout=CALL_TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "expects dtype float32, got int32" in e.value.details()
    req = _predict_request([[2.0]])
    req.model_spec.name = "../default"
    with pytest.raises(grpc.RpcError) as e:
        server.predict_stub.Predict(req, timeout=CALL_TIMEOUT)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()  # a name, never a path
    assert_still_serving(server)


# ---------------------------------------------------------------- REST (TF Serving's tests)

def test_rest_predict_row_and_columnar(server):
    status, body = server.http("POST", "/v1/models/default:predict", {"instances": [[2.0], [3.0], [4.0]]})
    assert status == 200 and json.loads(body) == {"predictions": [[3.0], [3.5], [4.0]]}, body
    status, body = server.http("POST", "/v1/models/default:predict", {"inputs": [[2.0], [3.0], [4.0]]})
    assert status == 200 and json.loads(body) == {"outputs": [[3.0], [3.5], [4.0]]}, body
    status, body = server.http("POST", "/v1/models/default/versions/123:predict",
                               {"signature_name": "serving_default", "instances": [[2.0], [4.0]]})
    assert status == 200 and json.loads(body) == {"predictions": [[3.0], [4.0]]}, body


def test_rest_predict_documented(server):
    # TF Serving's documented bodies feed shape [3] to the [-1,1] placeholder, which TF allows.
    status, body = server.http("POST", "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]})
    assert status == 200 and json.loads(body) == {"predictions": [3.0, 3.5, 4.0]}, body
    status, body = server.http("POST", "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]})
    assert status == 200 and json.loads(body) == {"outputs": [3.0, 3.5, 4.0]}, body


def test_rest_predict_random(server):
    x = np.random.default_rng(7).normal(size=(9, 1)).astype(np.float32)
    status, body = server.http("POST", "/v1/models/default:predict", {"instances": x.tolist()})
    assert status == 200, body
    assert_numeric_match(0.5 * x + 2, np.asarray(json.loads(body)["predictions"], np.float32), "y")


def test_rest_classify_regress(server):
    status, body = server.http("POST", "/v1/models/default:classify",
                               {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]})
    assert status == 200 and json.loads(body) == {"results": [[["", 3.0]]]}, body
    status, body = server.http("POST", "/v1/models/default:regress",
                               {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]})
    assert status == 200 and json.loads(body) == {"results": [3.0]}, body


def test_rest_status_and_metadata(server):
    status, body = server.http("GET", "/v1/models/default")
    assert status == 200
    assert json.loads(body) == {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    status, body = server.http("GET", "/v1/models/default/versions/123")
    assert status == 200 and json.loads(body)["model_version_status"][0]["version"] == "123"
    status, body = server.http("GET", "/v1/models/default/metadata")
    assert status == 200, body
    assert json.loads(body) == json.loads(METADATA_JSON.read_text())


def test_prometheus_page(server):
    server.http("POST", "/v1/models/default:predict", {"instances": [1.0]})
    status, body = server.http("GET", "/monitoring/prometheus/metrics")
    assert status == 200
    assert "# TYPE" in body


def test_access_log(server):
    server.http("GET", "/v1/models/default")
    lines = [json.loads(l) for l in server.access_log.read_text().splitlines()]
    assert any(l["api"] == "REST" and l["path"] == "/v1/models/default" and l["status"] == 200 for l in lines)
    assert all({"time", "peer", "method", "status", "latency_ms"} <= l.keys() for l in lines)


# ---------------------------------------------------------------- acceptance 3: bad input

@pytest.mark.parametrize("path,body,code,needle", [
    ("/v1/models/default:predict", '{"instances": [2.0', 400, "JSON Parse error"),
    ("/v1/models/default:predict", {"instances": ["two"]}, 400, "not DT_FLOAT"),
    ("/v1/models/default:predict", {"instances": [1.0], "inputs": [1.0]}, 400, "only one of"),
    ("/v1/models/default:predict", {"signature_name": "nope", "instances": [1.0]}, 400, "nope"),
    ("/v1/models/half:predict", {"instances": [1.0]}, 404, "Servable not found"),
    ("/v1/models/default/versions/7:predict", {"instances": [1.0]}, 404, ""),
    ("/v1/models/default/labels/nope:predict", {"instances": [1.0]}, 400, "Unrecognized servable version label"),
    ("/v1/models/..%2F..%2Fetc:predict", {"instances": [1.0]}, 400, "Invalid model name"),
    ("/v1/models/../etc:predict", {"instances": [1.0]}, 400, "Invalid model name"),
    ("/v1/nothing", None, 404, "Malformed request"),
])
def test_rest_bad_requests(server, path, body, code, needle):
    status, text = server.http("POST" if body is not None else "GET", path, body)
    if code is None:
        assert status in (400, 404), text
    else:
        assert status == code, text
    assert needle in json.loads(text)["error"]
    assert_still_serving(server)


def test_rest_undeclared_shape_runs_like_tf(server):
    # x is declared [-1,1] but TF feeds whatever the graph takes: y = 0.5 x + 2 elementwise.
    status, body = server.http("POST", "/v1/models/default:predict", {"instances": [[1.0, 2.0]]})
    assert status == 200 and json.loads(body) == {"predictions": [[2.5, 3.0]]}, body


def _matmul_saved_model(export_dir):
    """A TF1 SavedModel whose signature declares x [-1,4] over a placeholder of unknown shape,
    y = x @ ones(4,2): shapes other than [n,4] reach MatMul, which must refuse them."""
    import tensorflow as tf
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, shape=None, name="x")
        y = tf.matmul(x, tf.ones([4, 2]), name="y")
        x_info = v1.saved_model.utils.build_tensor_info(x)
        x_info.tensor_shape.CopyFrom(tf.TensorShape([None, 4]).as_proto())
        sig = v1.saved_model.signature_def_utils.build_signature_def(
            inputs={"x": x_info}, outputs={"y": v1.saved_model.utils.build_tensor_info(y)},
            method_name="tensorflow/serving/predict")
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
        builder.save()


def test_shape_the_graph_cannot_take(tmp_path):
    base = tmp_path / "models" / "mm"
    _matmul_saved_model(base / "1")
    s = Server(tmp_path, base=base, name="mm")
    try:
        ok = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
        status, body = s.http("POST", "/v1/models/mm:predict", ok)
        assert status == 200 and json.loads(body) == {"predictions": [[10.0, 10.0]]}, body
        for bad in ({"instances": [[1.0, 2.0, 3.0]]}, {"instances": [1.0, 2.0]}):
            status, body = s.http("POST", "/v1/models/mm:predict", bad)
            assert status == 400, body
            assert "MatMul" in json.loads(body)["error"], body
        status, body = s.http("POST", "/v1/models/mm:predict", ok)
        assert status == 200, body
    finally:
        assert s.stop() == 0


def _raw(server, data, read=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", server.rest_port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def test_oversized_body_gets_413(server):
    head = (f"POST /v1/models/default:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n").encode()
    reply = _raw(server, head)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"error"' in reply
    # A client that sends the whole oversized body at once still reads the 413.
    status, text = server.http("POST", "/v1/models/default:predict", b"[" + b"1," * (MAX_BODY // 2 + 10) + b"1]")
    assert status == 413 and "too large" in json.loads(text)["error"], text
    assert_still_serving(server)


def test_slow_loris_is_cut_off(server):
    s = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
    try:
        s.sendall(b"POST /v1/models/default:predict HTTP/1.1\r\nHost: x\r\n")  # headers never end
        start = time.time()
        assert_still_serving(server)  # others are served meanwhile
        s.settimeout(10 * HEADER_TIMEOUT_MS / 1000)
        assert s.recv(100) == b""  # the server closed it
        assert time.time() - start < 10 * HEADER_TIMEOUT_MS / 1000
    finally:
        s.close()


def test_client_drops_mid_request(server):
    # Mid-body, then mid-headers, then right after a full request (before the answer).
    body = json.dumps({"instances": [2.0] * 1000}).encode()
    head = (f"POST /v1/models/default:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    _raw(server, head + body[:100], read=False)
    _raw(server, head[:20], read=False)
    _raw(server, head + body, read=False)
    assert_still_serving(server)


def test_garbage_http_and_grpc_ports(server):
    reply = _raw(server, b"\x00\x01garbage\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    s = socket.create_connection(("127.0.0.1", server.grpc_port), timeout=10)
    try:
        s.sendall(os.urandom(4096) + b"GET / HTTP/1.1\r\n\r\n")
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        s.close()
    assert_still_serving(server)


def test_keep_alive_many_requests_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=CALL_TIMEOUT)
    try:
        for i in range(20):
            conn.request("POST", "/v1/models/default:predict", body=json.dumps({"instances": [[float(i)]]}))
            r = conn.getresponse()
            assert r.status == 200
            assert json.loads(r.read()) == {"predictions": [[0.5 * i + 2]]}
    finally:
        conn.close()


# ---------------------------------------------------------------- configs, bad model, channel args

def test_two_model_config_and_channel_arguments(tmp_path):
    """TF Serving's good_model_config (half_plus_two + half_plus_three) with its gRPC channel
    arguments test: both models answer on both APIs."""
    text = (SERVABLES / "good_model_config.txt").read_text()
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(HALF_PLUS_TWO))
    text = text.replace("${TEST_HALF_PLUS_THREE_DIR}", str(SERVABLES / "saved_model_half_plus_three"))
    (tmp_path / "config.txt").write_text(text)
    s = Server(tmp_path, base=tmp_path / "unused", extra=(
        f"--model_config_file={tmp_path / 'config.txt'}",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb"))
    try:
        import tensorflow as tf
        for name, want in (("half_plus_two", 3.0), ("half_plus_three", 4.0)):
            req = _predict_request([[2.0]])
            req.model_spec.name = name
            resp = s.predict_stub.Predict(req, timeout=CALL_TIMEOUT)
            assert tf.make_ndarray(resp.outputs["y"]).ravel().tolist() == [want]
            status, body = s.http("POST", f"/v1/models/{name}:predict", {"instances": [[2.0]]})
            assert status == 200 and json.loads(body) == {"predictions": [[want]]}, body
        # The REST doc's half_plus_three example, and its regress signature (declared DT_FLOAT
        # over the DT_STRING tf_example placeholder, as TF1 wrote it), which TF Serving answers.
        status, body = s.http("POST", "/v1/models/half_plus_three:predict", {"instances": [1.0, 2.0, 5.0]})
        assert status == 200 and json.loads(body) == {"predictions": [3.5, 4.0, 5.5]}, body
        status, body = s.http("POST", "/v1/models/half_plus_three:regress",
                              {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 2.0}]})
        assert status == 200 and json.loads(body) == {"results": [4.0]}, body
    finally:
        assert s.stop() == 0


def test_bad_model_keeps_server_up(tmp_path):
    """bad_half_plus_two (no signatures): the server runs; Predict is FAILED_PRECONDITION
    over gRPC and HTTP 400 over REST."""
    base = tmp_path / "bad"
    shutil.copytree(SERVABLES / "bad_half_plus_two", base)
    s = Server(tmp_path, base=base)
    try:
        with pytest.raises(grpc.RpcError) as e:
            s.predict_stub.Predict(_predict_request([[2.0]]), timeout=CALL_TIMEOUT)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value.details()
        status, body = s.http("POST", "/v1/models/default:predict", {"instances": [[2.0]]})
        assert status == 400 and "error" in json.loads(body), body
        status, body = s.http("GET", "/v1/models/default")
        assert status in (200, 404), body  # the server still answers
    finally:
        assert s.stop() == 0


# ---------------------------------------------------------------- zoo models vs TensorFlow

ZOO_SERVED = [m for m in zoo_models("inference") if m["name"] in ("mlp_k3", "resnet50_k3")]


@pytest.mark.parametrize("model", ZOO_SERVED, ids=[m["name"] for m in ZOO_SERVED])
def test_zoo_model_through_both_apis(tmp_path, model):
    """TensorFlow's outputs (stored with the zoo) through gRPC and REST at batch 3."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    folder = ZOO_DIR / model["path"]
    base = tmp_path / "base"
    base.mkdir()
    (base / "1").symlink_to(folder.resolve(), target_is_directory=True)
    with np.load(folder.parent / "inputs_b3.npz") as z:
        inputs = {k: z[k] for k in z.files}
    with np.load(folder.parent / "outputs_b3.npz") as z:
        expected = {k: z[k] for k in z.files}
    s = Server(tmp_path, base=base, name=model["name"])
    try:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = model["name"]
        for k, v in inputs.items():
            req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
        resp = s.predict_stub.Predict(req, timeout=120)
        assert set(resp.outputs) == set(expected)
        for k, ref in expected.items():
            assert_numeric_match(ref, tf.make_ndarray(resp.outputs[k]), f"gRPC {k}")

        body = {"inputs": {k: v.tolist() for k, v in inputs.items()}}
        status, text = s.http("POST", f"/v1/models/{model['name']}:predict", body)
        assert status == 200, text[:500]
        out = json.loads(text)["outputs"]
        if len(expected) == 1:
            out = {next(iter(expected)): out}
        for k, ref in expected.items():
            assert_numeric_match(ref, np.asarray(out[k], ref.dtype), f"REST {k}")

        # The REST metadata equals TensorFlow's own SignatureDef for the signature.
        status, text = s.http("GET", f"/v1/models/{model['name']}/metadata")
        assert status == 200, text[:500]
        sig = json.loads(text)["metadata"]["signature_def"]["signature_def"][model["signature"]]
        loaded = tf.saved_model.load(str(folder))
        tf_sig = loaded.signatures[model["signature"]]
        for k, spec in tf_sig.structured_input_signature[1].items():
            assert sig["inputs"][k]["dtype"] == types_pb2.DataType.Name(spec.dtype.as_datatype_enum)
            assert [int(d["size"]) for d in sig["inputs"][k]["tensor_shape"]["dim"]] == \
                [-1 if d is None else d for d in spec.shape.as_list()]
        assert set(sig["outputs"]) == set(tf_sig.structured_outputs)
    finally:
        assert s.stop() == 0


def test_batching_plans_allowed_sizes_before_traffic(tmp_path):
    """With batching, each allowed batch size of a signature is planned at load (logged), and a
    batch-3 request (padded to 4) still gives TensorFlow's outputs."""
    import tensorflow as tf
    model = next(m for m in ZOO_SERVED if m["name"] == "mlp_k3")
    folder = ZOO_DIR / model["path"]
    base = tmp_path / "base"
    base.mkdir()
    (base / "1").symlink_to(folder.resolve(), target_is_directory=True)
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000 }\n"
                      "allowed_batch_sizes: 1\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n")
    s = Server(tmp_path, base=base, name="mlp",
               extra=("--enable_batching", f"--batching_parameters_file={params}"))
    try:
        with np.load(folder.parent / "inputs_b3.npz") as z:
            inputs = {k: z[k] for k in z.files}
        with np.load(folder.parent / "outputs_b3.npz") as z:
            expected = {k: z[k] for k in z.files}
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "mlp"
        for k, v in inputs.items():
            req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
        resp = s.predict_stub.Predict(req, timeout=CALL_TIMEOUT)
        for k, ref in expected.items():
            assert_numeric_match(ref, tf.make_ndarray(resp.outputs[k]), f"gRPC {k}")
        assert f"signature '{model['signature']}': planned batch sizes 1,2,4,8 in" in s.log()
    finally:
        assert s.stop() == 0
