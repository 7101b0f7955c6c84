"""Wire-compatibility check of Tessera's proto/ schemas against TensorFlow.

For every message and enum declared in our .proto files, the descriptor of the
same full name in TensorFlow's generated *_pb2 modules must agree on: field
numbers, names, types, labels, type names, oneof membership, packing, map-ness,
reserved numbers/names, nested types, and enum values.

Descriptor set lookup order:
  1. $TESSERA_PROTO_DESC (must exist if set),
  2. <repo>/build/tessera_protos.desc (if newer than every .proto),
  3. a fresh one built here with protoc ($TESSERA_PROTOC or `protoc` on PATH).
TensorFlow itself is only needed as the reference; without it the comparison
tests are skipped.
"""

import functools
import importlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
DEFAULT_DESC = REPO / "build" / "tessera_protos.desc"

FD = descriptor_pb2.FieldDescriptorProto

# Everything the importer relies on; a schema that silently vanishes fails here.
REQUIRED = {
    "tensorflow/core/framework/types.proto": [
        "DataType", "SerializedDType"],
    "tensorflow/core/framework/tensor_shape.proto": [
        "TensorShapeProto", "TensorShapeProto.Dim"],
    "tensorflow/core/framework/tensor.proto": [
        "TensorProto", "VariantTensorDataProto"],
    "tensorflow/core/framework/tensor_slice.proto": [
        "TensorSliceProto", "TensorSliceProto.Extent"],
    "tensorflow/core/framework/resource_handle.proto": [
        "ResourceHandleProto", "ResourceHandleProto.DtypeAndShape"],
    "tensorflow/core/framework/attr_value.proto": [
        "AttrValue", "AttrValue.ListValue", "NameAttrList"],
    "tensorflow/core/framework/node_def.proto": [
        "NodeDef", "NodeDef.ExperimentalDebugInfo"],
    "tensorflow/core/framework/op_def.proto": [
        "OpDef", "OpDef.ArgDef", "OpDef.AttrDef", "OpDeprecation", "OpList"],
    "tensorflow/core/framework/function.proto": [
        "FunctionDefLibrary", "FunctionDef", "FunctionDef.ArgAttrs",
        "GradientDef", "RegisteredGradient"],
    "tensorflow/core/framework/graph.proto": ["GraphDef"],
    "tensorflow/core/framework/graph_debug_info.proto": [
        "GraphDebugInfo", "GraphDebugInfo.FileLineCol",
        "GraphDebugInfo.StackTrace"],
    "tensorflow/core/framework/versions.proto": ["VersionDef"],
    "tensorflow/core/framework/full_type.proto": ["FullTypeId", "FullTypeDef"],
    "tensorflow/core/framework/variable.proto": [
        "VariableDef", "SaveSliceInfoDef", "VariableSynchronization",
        "VariableAggregation"],
    "tensorflow/core/protobuf/meta_graph.proto": [
        "MetaGraphDef", "MetaGraphDef.MetaInfoDef", "CollectionDef",
        "CollectionDef.NodeList", "CollectionDef.BytesList",
        "CollectionDef.Int64List", "CollectionDef.FloatList",
        "CollectionDef.AnyList", "TensorInfo", "TensorInfo.CooSparse",
        "TensorInfo.CompositeTensor", "SignatureDef", "AssetFileDef"],
    "tensorflow/core/protobuf/saved_model.proto": ["SavedModel"],
    "tensorflow/core/protobuf/saved_object_graph.proto": [
        "SavedObjectGraph", "SavedObject", "SavedUserObject", "SavedAsset",
        "SavedFunction", "CapturedTensor", "SavedConcreteFunction",
        "SavedBareConcreteFunction", "SavedConstant", "SavedVariable",
        "FunctionSpec", "FunctionSpec.JitCompile", "SavedResource",
        "SaveableObject"],
    "tensorflow/core/protobuf/trackable_object_graph.proto": [
        "TrackableObjectGraph", "TrackableObjectGraph.TrackableObject",
        "TrackableObjectGraph.TrackableObject.ObjectReference",
        "TrackableObjectGraph.TrackableObject.SerializedTensor",
        "TrackableObjectGraph.TrackableObject.SlotVariableReference",
        "RegisteredSaver"],
    "tensorflow/core/protobuf/saver.proto": [
        "SaverDef", "SaverDef.CheckpointFormatVersion"],
    "tensorflow/core/protobuf/struct.proto": [
        "StructuredValue", "NoneValue", "ListValue", "TupleValue", "DictValue",
        "PairValue", "NamedTupleValue", "TensorSpecProto",
        "BoundedTensorSpecProto", "TypeSpecProto",
        "TypeSpecProto.TypeSpecClass"],
    "tensorflow/core/protobuf/tensor_bundle.proto": [
        "BundleHeaderProto", "BundleHeaderProto.Endianness",
        "BundleEntryProto"],
    "tensorflow/core/example/feature.proto": [
        "BytesList", "FloatList", "Int64List", "Feature", "Features",
        "FeatureList", "FeatureLists"],
    "tensorflow/core/example/example.proto": ["Example", "SequenceExample"],
    # TensorBoard event files (issue 5).
    "tensorflow/core/util/event.proto": ["Event", "SourceMetadata", "SessionLog"],
    "tensorflow/core/framework/summary.proto": [
        "Summary", "Summary.Value", "SummaryMetadata", "SummaryMetadata.PluginData",
        "DataClass"],
    "xla/tsl/protobuf/histogram.proto": ["HistogramProto"],
    # TF Serving's API (issue 6): what its clients send and expect.
    "tensorflow_serving/apis/predict.proto": ["serving.PredictRequest", "serving.PredictResponse"],
    "tensorflow_serving/apis/classification.proto": [
        "serving.ClassificationRequest", "serving.ClassificationResponse"],
    "tensorflow_serving/apis/regression.proto": [
        "serving.RegressionRequest", "serving.RegressionResponse"],
    "tensorflow_serving/apis/inference.proto": [
        "serving.MultiInferenceRequest", "serving.MultiInferenceResponse"],
    "tensorflow_serving/apis/get_model_metadata.proto": [
        "serving.GetModelMetadataRequest", "serving.GetModelMetadataResponse",
        "serving.SignatureDefMap"],
    "tensorflow_serving/apis/get_model_status.proto": [
        "serving.GetModelStatusRequest", "serving.GetModelStatusResponse"],
    "tensorflow_serving/apis/model_management.proto": [
        "serving.ReloadConfigRequest", "serving.ReloadConfigResponse"],
    "tensorflow_serving/config/model_server_config.proto": [
        "serving.ModelServerConfig", "serving.ModelConfig"],
}

# Honest partial declarations: what a file deliberately leaves out of TF's version of it.
# prediction_log.proto (warm-up records): no log_metadata / session_run_log /
# predict_streamed_log, hence no imports of logging.proto and session_service.proto.
PARTIAL_FILES = {
    "tensorflow_serving/apis/prediction_log.proto": {
        "imports": {"tensorflow_serving/apis/logging.proto",
                    "tensorflow_serving/apis/session_service.proto"},
        "messages": {"tensorflow.serving.PredictStreamedLog",
                     "tensorflow.serving.SessionRunLog"},
    },
}
PARTIAL_FIELDS = {"tensorflow.serving.PredictionLog": {1, 5, 7}}

# Files TF Serving's pip package does not ship: checked against the design notes
# (shared/design/tf-formats-and-serving.md §1.6) instead: number -> (name, type, type_name, label).
_I64 = ("TYPE_MESSAGE", "google.protobuf.Int64Value", "LABEL_OPTIONAL")
DOC_ONLY = {
    # --monitoring_config_file (design notes §1.9: prometheus_config { enable, path }).
    "tensorflow_serving/config/monitoring_config.proto": {
        "tensorflow.serving.PrometheusConfig": {
            1: ("enable", "TYPE_BOOL", "", "LABEL_OPTIONAL"),
            2: ("path", "TYPE_STRING", "", "LABEL_OPTIONAL"),
        },
        "tensorflow.serving.MonitoringConfig": {
            1: ("prometheus_config", "TYPE_MESSAGE", "tensorflow.serving.PrometheusConfig",
                "LABEL_OPTIONAL"),
        },
    },
    "tensorflow_serving/servables/tensorflow/session_bundle_config.proto": {
        "tensorflow.serving.BatchingParameters": {
            1: ("max_batch_size",) + _I64,
            2: ("batch_timeout_micros",) + _I64,
            3: ("max_enqueued_batches",) + _I64,
            4: ("num_batch_threads",) + _I64,
            5: ("thread_pool_name", "TYPE_MESSAGE", "google.protobuf.StringValue",
                "LABEL_OPTIONAL"),
            6: ("allowed_batch_sizes", "TYPE_INT64", "", "LABEL_REPEATED"),
            7: ("pad_variable_length_inputs", "TYPE_BOOL", "", "LABEL_OPTIONAL"),
        },
    },
}

# ModelService.ListModelNames has no pip counterpart: tensorflow-serving-api's schema lacks it;
# newer tensorflow/serving sources declare the rpc in model_service.proto ("Lists the live model
# names"), but its message bodies were not in the sources found, so ours are checked against this
# table (number -> (name, type, type_name, label)) and the method against NOT_IN_PIP_METHODS.
NOT_IN_PIP = {
    "tensorflow.serving.ListModelNamesRequest": {},
    "tensorflow.serving.ListModelNamesResponse": {
        1: ("model_names", "TYPE_STRING", "", "LABEL_REPEATED"),
    },
}
NOT_IN_PIP_METHODS = {
    "ModelService": {
        "ListModelNames": (".tensorflow.serving.ListModelNamesRequest",
                           ".tensorflow.serving.ListModelNamesResponse", False, False),
    },
}

# The gRPC services a TF Serving client calls: same methods, request and response types.
SERVICES = {
    "tensorflow_serving/apis/prediction_service.proto": "PredictionService",
    "tensorflow_serving/apis/model_service.proto": "ModelService",
}


# --------------------------------------------------------------------------
# Loading our descriptor set
# --------------------------------------------------------------------------

def _proto_files():
    return sorted(PROTO_ROOT.rglob("*.proto"))


def _build_with_protoc():
    protoc = os.environ.get("TESSERA_PROTOC") or shutil.which("protoc")
    if not protoc:
        return None, "no descriptor set found and protoc is not available"
    files = [str(p) for p in _proto_files()]
    with tempfile.TemporaryDirectory(prefix="tessera_proto_") as tmp:
        out = Path(tmp) / "tessera_protos.desc"
        cmd = [protoc, f"-I{PROTO_ROOT}", "--include_imports",
               f"--descriptor_set_out={out}", *files]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError("protoc failed on proto/:\n" + res.stderr)
        return out.read_bytes(), f"built with {protoc}"


@functools.lru_cache(maxsize=None)
def load_ours():
    """Returns (FileDescriptorSet or None, how it was obtained)."""
    env = os.environ.get("TESSERA_PROTO_DESC")
    if env:
        path = Path(env)
        if not path.is_file():
            raise RuntimeError(f"TESSERA_PROTO_DESC={env} does not exist")
        data, how = path.read_bytes(), f"from $TESSERA_PROTO_DESC={env}"
    else:
        data, how = None, None
        if DEFAULT_DESC.is_file():
            newest = max((p.stat().st_mtime for p in _proto_files()),
                         default=0)
            if DEFAULT_DESC.stat().st_mtime >= newest:
                data, how = DEFAULT_DESC.read_bytes(), f"from {DEFAULT_DESC}"
        if data is None:
            data, how = _build_with_protoc()
            if data is None and DEFAULT_DESC.is_file():
                data, how = DEFAULT_DESC.read_bytes(), f"stale {DEFAULT_DESC}"
    if data is None:
        return None, how
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    return fds, how


def our_files():
    fds, _ = load_ours()
    if fds is None:
        return {}
    return {f.name: f for f in fds.file
            if not f.name.startswith("google/protobuf/")}


def _walk(file_proto):
    """Yields (kind, full_name, proto) for all messages/enums, nested too."""
    pkg = file_proto.package

    def msgs(prefix, items):
        for m in items:
            name = f"{prefix}.{m.name}"
            yield "message", name, m
            for e in m.enum_type:
                yield "enum", f"{name}.{e.name}", e
            yield from msgs(name, m.nested_type)

    for e in file_proto.enum_type:
        yield "enum", f"{pkg}.{e.name}", e
    yield from msgs(pkg, file_proto.message_type)


def _index(files):
    out = {}
    for fname, fp in files.items():
        for kind, full, proto in _walk(fp):
            out[full] = (kind, fname, proto)
    return out


def _params():
    fds, how = load_ours()
    if fds is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason=how),
                             id="no-descriptor-set")]
    return [pytest.param(full, id=full)
            for full in sorted(_index(our_files()))]


# --------------------------------------------------------------------------
# TensorFlow reference descriptors
# --------------------------------------------------------------------------

def _tf_module_for(fname):
    return fname[:-len(".proto")].replace("/", ".") + "_pb2"


@functools.lru_cache(maxsize=None)
def tf_files():
    """FileDescriptorProtos from TensorFlow for each of our files, plus deps."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("tensorflow", reason="TensorFlow is the reference")
    # TF Serving's schemas come from tensorflow-serving-api (installed without deps).
    for mod in ("tensorflow.core.protobuf.meta_graph_pb2",):
        importlib.import_module(mod)
    pool = descriptor_pool.Default()
    missing = []
    for fname in our_files():
        if fname in DOC_ONLY:
            continue
        try:
            importlib.import_module(_tf_module_for(fname))
        except ImportError:
            # Some files (xla/tsl/...) have no importable module of their own but are
            # loaded as dependencies of one that has.
            try:
                pool.FindFileByName(fname)
            except KeyError:
                missing.append(fname)
    out = {}
    todo = [f for f in our_files() if f not in missing and f not in DOC_ONLY]
    while todo:
        name = todo.pop()
        if name in out or name.startswith("google/protobuf/"):
            continue
        fd = pool.FindFileByName(name)
        out[name] = descriptor_pb2.FileDescriptorProto.FromString(
            fd.serialized_pb)
        skip = PARTIAL_FILES.get(name, {}).get("imports", set())
        todo.extend(d.name for d in fd.dependencies if d.name not in skip)
    return out, tuple(missing)


@pytest.fixture(scope="module")
def tf():
    files, missing = tf_files()
    return files, missing, _index(files)


@pytest.fixture(scope="module")
def ours():
    fds, how = load_ours()
    if fds is None:
        pytest.skip(how)
    return _index(our_files())


# --------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------

def _type_name(t):
    return FD.Type.Name(t)


def _label_name(l):
    return FD.Label.Name(l)


def _field_facts(msg, f):
    in_oneof = f.HasField("oneof_index") and not f.proto3_optional
    return {
        "name": f.name,
        "type": _type_name(f.type),
        "label": _label_name(f.label),
        "type_name": f.type_name.lstrip("."),
        "oneof": msg.oneof_decl[f.oneof_index].name if in_oneof else None,
        "proto3_optional": f.proto3_optional,
        "packed": f.options.packed if f.options.HasField("packed") else None,
        "default": f.default_value if f.HasField("default_value") else None,
    }


def _reserved(proto):
    ranges = set()
    for r in proto.reserved_range:
        ranges.update(range(r.start, r.end))  # messages: end exclusive
    return ranges, set(proto.reserved_name)


def _compare_message(where, ours_m, tf_m):
    errs = []
    o_fields = {f.number: f for f in ours_m.field}
    t_fields = {f.number: f for f in tf_m.field}
    full = where.rsplit(" ", 1)[-1]
    for num in PARTIAL_FIELDS.get(full, ()):  # declared omissions, see PARTIAL_FIELDS
        assert num not in o_fields, f"{where}: field {num} is declared after all"
        t_fields.pop(num, None)
    for num in sorted(set(t_fields) - set(o_fields)):
        errs.append(f"{where}: missing field {num} ({t_fields[num].name})")
    for num in sorted(set(o_fields) - set(t_fields)):
        errs.append(f"{where}: extra field {num} ({o_fields[num].name}) "
                    f"not in TensorFlow")
    for num in sorted(set(o_fields) & set(t_fields)):
        a = _field_facts(ours_m, o_fields[num])
        b = _field_facts(tf_m, t_fields[num])
        for key in a:
            if a[key] != b[key]:
                errs.append(f"{where}: field {num} ({b['name']}): {key} is "
                            f"{a[key]!r}, TensorFlow has {b[key]!r}")
    if ours_m.options.map_entry != tf_m.options.map_entry:
        errs.append(f"{where}: map_entry differs")
    o_nested = {m.name for m in ours_m.nested_type}
    t_nested = {m.name for m in tf_m.nested_type}
    if o_nested != t_nested:
        errs.append(f"{where}: nested messages differ: missing "
                    f"{sorted(t_nested - o_nested)}, extra "
                    f"{sorted(o_nested - t_nested)}")
    o_enums = {e.name for e in ours_m.enum_type}
    t_enums = {e.name for e in tf_m.enum_type}
    if o_enums != t_enums:
        errs.append(f"{where}: nested enums differ: missing "
                    f"{sorted(t_enums - o_enums)}, extra "
                    f"{sorted(o_enums - t_enums)}")
    o_oneofs = [o.name for o in ours_m.oneof_decl]
    if full in PARTIAL_FIELDS:  # a partial message may drop a oneof whose fields it omits
        used = {f.oneof_index for f in tf_m.field
                if f.number in t_fields and f.HasField("oneof_index")}
        t_keep = [o.name for i, o in enumerate(tf_m.oneof_decl) if i in used]
        o_oneofs, tf_m_oneofs = o_oneofs, t_keep
    else:
        tf_m_oneofs = [o.name for o in tf_m.oneof_decl]
    t_oneofs = tf_m_oneofs
    if sorted(o_oneofs) != sorted(t_oneofs):
        errs.append(f"{where}: oneofs {o_oneofs} != TensorFlow {t_oneofs}")
    if _reserved(ours_m) != _reserved(tf_m):
        errs.append(f"{where}: reserved {_reserved(ours_m)} != "
                    f"TensorFlow {_reserved(tf_m)}")
    return errs


def _check_against_doc(where, full_name, proto, table):
    assert full_name in table, f"{where}: not in the documented schema"
    want = table[full_name]
    got = {f.number: (f.name, _type_name(f.type), f.type_name.lstrip("."),
                      _label_name(f.label)) for f in proto.field}
    assert got == want, f"{where}: {got} != documented {want}"


def _compare_enum(where, ours_e, tf_e):
    errs = []
    o_vals = {v.number: v.name for v in ours_e.value}
    t_vals = {v.number: v.name for v in tf_e.value}
    if len(o_vals) != len(ours_e.value) or len(t_vals) != len(tf_e.value):
        # Aliased numbers: compare as name -> number instead.
        o_vals = {v.name: v.number for v in ours_e.value}
        t_vals = {v.name: v.number for v in tf_e.value}
    for k in sorted(set(t_vals) - set(o_vals), key=str):
        errs.append(f"{where}: missing value {k} ({t_vals[k]})")
    for k in sorted(set(o_vals) - set(t_vals), key=str):
        errs.append(f"{where}: extra value {k} ({o_vals[k]}) not in "
                    f"TensorFlow")
    for k in sorted(set(o_vals) & set(t_vals), key=str):
        if o_vals[k] != t_vals[k]:
            errs.append(f"{where}: value {k}: {o_vals[k]!r}, TensorFlow has "
                        f"{t_vals[k]!r}")
    o_res = ({(r.start, r.end) for r in ours_e.reserved_range},
             set(ours_e.reserved_name))
    t_res = ({(r.start, r.end) for r in tf_e.reserved_range},
             set(tf_e.reserved_name))
    if o_res != t_res:
        errs.append(f"{where}: reserved {o_res} != TensorFlow {t_res}")
    return errs


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

@pytest.mark.parametrize("full_name", _params())
def test_matches_tensorflow(full_name, ours, tf):
    tf_files_, missing, tf_index = tf
    kind, fname, proto = ours[full_name]
    where = f"proto/{fname}: {kind} {full_name}"
    if fname in DOC_ONLY:
        _check_against_doc(where, full_name, proto, DOC_ONLY[fname])
        return
    if full_name in NOT_IN_PIP and full_name not in tf_index:
        _check_against_doc(where, full_name, proto, NOT_IN_PIP)
        return
    if fname in missing:
        pytest.fail(f"proto/{fname}: TensorFlow has no module "
                    f"{_tf_module_for(fname)}")
    if full_name not in tf_index:
        pytest.fail(f"{where}: no {kind} of that name in TensorFlow")
    tf_kind, tf_fname, tf_proto = tf_index[full_name]
    errs = []
    if tf_kind != kind:
        errs.append(f"{where}: TensorFlow declares it as a {tf_kind}")
    elif tf_fname != fname:
        errs.append(f"{where}: TensorFlow declares it in {tf_fname}")
    elif kind == "message":
        errs += _compare_message(where, proto, tf_proto)
    else:
        errs += _compare_enum(where, proto, tf_proto)
    assert not errs, "\n".join(errs)


def test_files_match_tensorflow(ours, tf):
    """Package, syntax and imports per file; every TF declaration present."""
    tf_files_, missing, tf_index = tf
    files = our_files()
    errs = [f"proto/{f}: no TensorFlow counterpart" for f in missing]
    for fname, fp in files.items():
        t = tf_files_.get(fname)
        if t is None:
            continue
        if fp.package != t.package:
            errs.append(f"proto/{fname}: package {fp.package!r} != "
                        f"{t.package!r}")
        if (fp.syntax or "proto2") != (t.syntax or "proto2"):
            errs.append(f"proto/{fname}: syntax {fp.syntax or 'proto2'} != "
                        f"TensorFlow {t.syntax or 'proto2'}")
        allowed = PARTIAL_FILES.get(fname, {}).get("imports", set())
        if set(fp.dependency) != set(t.dependency) - allowed:
            errs.append(f"proto/{fname}: imports {sorted(fp.dependency)} != "
                        f"TensorFlow {sorted(t.dependency)}")
    # Every file TF needs for our set (transitively) must be ours too.
    for fname in sorted(set(tf_files_) - set(files)):
        errs.append(f"proto/{fname}: missing (imported by TensorFlow's "
                    f"version of our files)")
    # Every TF message/enum in those files must exist in ours.
    for full, (kind, fname, _) in sorted(tf_index.items()):
        if full in PARTIAL_FILES.get(fname, {}).get("messages", set()):
            continue
        if full not in ours:
            errs.append(f"proto/{fname}: missing {kind} {full}")
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("fname", sorted(REQUIRED))
def test_required_coverage(fname, ours):
    files = our_files()
    assert fname in files, f"proto/{fname} is missing from the descriptor set"
    errs = []
    for short in REQUIRED[fname]:
        full = f"tensorflow.{short}"
        if full not in ours:
            errs.append(f"proto/{fname}: {full} missing")
        elif ours[full][1] != fname:
            errs.append(f"proto/{fname}: {full} declared in {ours[full][1]}")
    assert not errs, "\n".join(errs)


def test_data_type_has_ref_variants(ours):
    """Every concrete DataType value v has a matching v + 100 *_REF value."""
    _, _, enum = ours["tensorflow.DataType"]
    by_name = {v.name: v.number for v in enum.value}
    errs = []
    for name, num in by_name.items():
        if name == "DT_INVALID" or name.endswith("_REF"):
            continue
        ref = name + "_REF"
        if by_name.get(ref) != num + 100:
            errs.append(f"DataType: {ref} should be {num + 100}, "
                        f"got {by_name.get(ref)}")
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("fname", sorted(SERVICES))
def test_services_match_tensorflow_serving(fname, ours, tf):
    tf_files_, _, _ = tf
    mine = our_files()[fname]
    theirs = tf_files_[fname]
    def methods(fp):
        [svc] = [s for s in fp.service if s.name == SERVICES[fname]]
        return {m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                for m in svc.method}
    want = methods(theirs)
    for name, sig in NOT_IN_PIP_METHODS.get(SERVICES[fname], {}).items():
        want.setdefault(name, sig)
    assert methods(mine) == want
