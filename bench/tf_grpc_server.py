"""The TensorFlow baseline for bench/serve.py: TF 2.21 serving one SavedModel's signatures from
a threaded Python gRPC server that implements tensorflow.serving.PredictionService/Predict
with tensorflow-serving-api's protos (TF Serving itself, tensorflow_model_server, is not
installable here). Each call: TensorProto -> tensor (tf.make_ndarray), the signature's
concrete function (graph mode, TF's own intra-op pool shared by every request thread),
outputs -> TensorProto. No batching: TF Serving's batching lives in its C++ server.

usage: python3 bench/tf_grpc_server.py SAVED_MODEL --port_file F [--model_name default]
       [--workers 64] [--intra_op 2] [--inter_op 1]
Writes {"grpc": port, "config": {...}} to --port_file once it serves; stops on SIGTERM.
"""
import argparse
import json
import os
import signal
import sys
import threading
from concurrent import futures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('saved_model')
    ap.add_argument('--port_file', required=True)
    ap.add_argument('--model_name', default='default')
    ap.add_argument('--workers', type=int, default=64)
    ap.add_argument('--intra_op', type=int, default=2)
    ap.add_argument('--inter_op', type=int, default=1)
    ap.add_argument('--version', type=int, default=1)
    args = ap.parse_args()

    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    loaded = tf.saved_model.load(args.saved_model)
    signatures = dict(loaded.signatures)
    # Graph-mode functions, as TF Serving runs a Session; traced once per input shape.
    fns = {k: tf.function(f) for k, f in signatures.items()}

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            spec = request.model_spec
            if spec.name != args.model_name:
                context.abort(grpc.StatusCode.NOT_FOUND, f'Servable not found for request: {spec.name}')
            key = spec.signature_name or 'serving_default'
            fn = fns.get(key)
            if fn is None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f'signature {key} not found')
            try:
                feeds = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
                out = fn(**feeds)
            except Exception as e:  # noqa: BLE001 - reported to the client like TF Serving would
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            resp = predict_pb2.PredictResponse()
            resp.model_spec.name = args.model_name
            resp.model_spec.version.value = args.version
            resp.model_spec.signature_name = key
            for k, v in out.items():
                resp.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
            return resp

    opts = [('grpc.max_send_message_length', -1), ('grpc.max_receive_message_length', -1)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers), options=opts)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    config = {'tf_version': tf.__version__, 'grpcio': grpc.__version__, 'workers': args.workers,
              'intra_op': args.intra_op, 'inter_op': args.inter_op,
              'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default (on)'),
              'graph_mode': True, 'batching': False}
    tmp = args.port_file + '.tmp'
    with open(tmp, 'w') as f:
        json.dump({'grpc': port, 'config': config}, f)
    os.replace(tmp, args.port_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(1).wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
