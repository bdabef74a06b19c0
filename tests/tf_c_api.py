"""Runs SavedModel signatures through TensorFlow's C API, the loader path of the stock model
server: `TF_LoadLibrary` for op libraries, `TF_LoadSessionFromSavedModel` (the C++
`LoadSavedModel`) and `TF_SessionRun` on the tensor names of the MetaGraphDef's SignatureDefs.

A script, run in its own process by tests/test_serving_loader.py: it talks to the shared
libraries of the installed tensorflow wheel through ctypes and never imports TensorFlow's Python
runtime, so nothing of `tf.saved_model.load` or of Python op registration can help it.

stdin: JSON {"model_dir", "libraries": [.so paths], "runs": [{"signature", "inputs": {key: nested
list}, ["shapes": {key: dims}], ["latin1": true]}], ["collect_errors": true]}; each input gets the
dtype its SignatureDef declares; "shapes" gives a flat input its shape (an empty [0, 0] matrix);
"latin1" sends each string's characters as bytes (invalid UTF-8 included). With
"collect_errors", a run that fails gives {"error": {"code", "message"}} (TF_Code: 3 is
INVALID_ARGUMENT) instead of ending the process.
stdout (last line): JSON {"loaded": {library file: [op names]}, "tags": [...],
"signatures": {name: {"inputs": {key: tensor}, "outputs": {key: tensor}}},
"results": [{key: {"dtype", "shape", "value"}}], "python_runtime_imported": false}; strings
travel as latin-1 text, so that any bytes come back exactly.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys
import types

# TF_DataType values (tensorflow/c/tf_datatype.h), the same numbers as the DataType enum of
# tensorflow/core/framework/types.proto that SignatureDefs use
TF_FLOAT, TF_INT32, TF_STRING, TF_INT64, TF_BOOL = 1, 3, 7, 9, 10
DTYPES = {
    "float32": TF_FLOAT,
    "int32": TF_INT32,
    "string": TF_STRING,
    "int64": TF_INT64,
    "bool": TF_BOOL,
}
CTYPES = {
    TF_FLOAT: ctypes.c_float,
    TF_INT32: ctypes.c_int32,
    TF_INT64: ctypes.c_int64,
    TF_BOOL: ctypes.c_bool,
}
TSTRING_SIZE = 24  # sizeof(TF_TString) (tensorflow/core/platform/ctstring_internal.h)

P = ctypes.c_void_p


class TF_Buffer(ctypes.Structure):
    _fields_ = [("data", P), ("length", ctypes.c_size_t), ("data_deallocator", P)]


class TF_Output(ctypes.Structure):
    _fields_ = [("oper", P), ("index", ctypes.c_int)]


# The installed wheels' folders, found without importing the packages.
TENSORFLOW_DIR = importlib.util.find_spec("tensorflow").submodule_search_locations[0]
TEXT_OPS_DIR = os.path.join(
    importlib.util.find_spec("tensorflow_text").submodule_search_locations[0], "python", "ops"
)
# The TF.Text op libraries the task graphs need (SentencePiece, NFKD normalisation, the NER
# word split, the segment trimmer); the model server built with TF.Text links all of them.
TEXT_OP_LIBRARIES = (
    "_sentencepiece_tokenizer.so",
    "_normalize_ops.so",
    "_regex_split_ops.so",
    "_trimmer_ops.so",
)


def text_op_libraries(names=TEXT_OP_LIBRARIES) -> list[str]:
    return [os.path.join(TEXT_OPS_DIR, name) for name in names]


def protobuf_modules():
    """The wheel's generated protobuf modules without `tensorflow/__init__.py` (which would start
    the Python runtime): a bare package object stands in for `tensorflow`; the modules below it
    need only the protobuf library."""
    package = types.ModuleType("tensorflow")
    package.__path__ = [TENSORFLOW_DIR]
    sys.modules["tensorflow"] = package
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2

    return op_def_pb2, meta_graph_pb2, config_pb2


def c_api():
    """libtensorflow_cc.so.2 exports the C API (TF_* symbols, version tag `tensorflow`); it needs
    libtensorflow_framework.so.2, loaded first and globally so that op libraries resolve against
    the same registries."""
    ctypes.CDLL(
        os.path.join(TENSORFLOW_DIR, "libtensorflow_framework.so.2"), mode=ctypes.RTLD_GLOBAL
    )
    lib = ctypes.CDLL(
        os.path.join(TENSORFLOW_DIR, "libtensorflow_cc.so.2"), mode=ctypes.RTLD_GLOBAL
    )
    signatures = {
        "TF_NewStatus": (P, []),
        "TF_GetCode": (ctypes.c_int, [P]),
        "TF_Message": (ctypes.c_char_p, [P]),
        "TF_LoadLibrary": (P, [ctypes.c_char_p, P]),
        "TF_GetOpList": (TF_Buffer, [P]),
        "TF_NewGraph": (P, []),
        "TF_NewSessionOptions": (P, []),
        "TF_SetConfig": (None, [P, ctypes.c_char_p, ctypes.c_size_t, P]),
        "TF_NewBuffer": (ctypes.POINTER(TF_Buffer), []),
        "TF_LoadSessionFromSavedModel": (
            P,
            [
                P,
                P,
                ctypes.c_char_p,
                ctypes.POINTER(ctypes.c_char_p),
                ctypes.c_int,
                P,
                ctypes.POINTER(TF_Buffer),
                P,
            ],
        ),
        "TF_GraphOperationByName": (P, [P, ctypes.c_char_p]),
        "TF_AllocateTensor": (
            P,
            [ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_size_t],
        ),
        "TF_TensorData": (P, [P]),
        "TF_TensorType": (ctypes.c_int, [P]),
        "TF_NumDims": (ctypes.c_int, [P]),
        "TF_Dim": (ctypes.c_int64, [P, ctypes.c_int]),
        "TF_TensorElementCount": (ctypes.c_int64, [P]),
        "TF_DeleteTensor": (None, [P]),
        "TF_StringInit": (None, [P]),
        "TF_StringCopy": (None, [P, ctypes.c_char_p, ctypes.c_size_t]),
        "TF_StringGetDataPointer": (P, [P]),
        "TF_StringGetSize": (ctypes.c_size_t, [P]),
        "TF_SessionRun": (
            None,
            [
                P,
                P,
                ctypes.POINTER(TF_Output),
                ctypes.POINTER(P),
                ctypes.c_int,
                ctypes.POINTER(TF_Output),
                ctypes.POINTER(P),
                ctypes.c_int,
                P,
                ctypes.c_int,
                P,
                P,
            ],
        ),
        "TF_CloseSession": (None, [P, P]),
        "TF_DeleteSession": (None, [P, P]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def check(lib, status, what: str):
    if lib.TF_GetCode(status) != 0:
        raise RuntimeError(f"{what}: {lib.TF_Message(status).decode('utf-8', 'replace')}")


def nested_shape(value) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def flatten(value):
    if isinstance(value, list):
        return [x for v in value for x in flatten(v)]
    return [value]


def reshape(flat: list, shape: list[int]):
    if not shape:
        return flat[0]
    step = len(flat) // shape[0] if shape[0] else 0
    return [reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def make_tensor(lib, code: int, value, shape=None, encoding: str = "utf-8"):
    shape = nested_shape(value) if shape is None else list(shape)
    flat = flatten(value)
    dims = (ctypes.c_int64 * len(shape))(*shape)
    if code == TF_STRING:
        # A TF_STRING tensor holds TF_TString structs, each initialised, then given its bytes.
        tensor = lib.TF_AllocateTensor(code, dims, len(shape), TSTRING_SIZE * len(flat))
        base = lib.TF_TensorData(tensor)
        for i, text in enumerate(flat):
            data = text.encode(encoding)
            lib.TF_StringInit(base + i * TSTRING_SIZE)
            lib.TF_StringCopy(base + i * TSTRING_SIZE, data, len(data))
        return tensor
    if code not in CTYPES:
        raise TypeError(f"input dtype TF_DataType {code} is not handled by {__file__}")
    ctype = CTYPES[code]
    tensor = lib.TF_AllocateTensor(code, dims, len(shape), ctypes.sizeof(ctype) * len(flat))
    ctypes.memmove(
        lib.TF_TensorData(tensor), (ctype * len(flat))(*flat), ctypes.sizeof(ctype) * len(flat)
    )
    return tensor


def read_tensor(lib, tensor) -> dict:
    code = lib.TF_TensorType(tensor)
    shape = [lib.TF_Dim(tensor, d) for d in range(lib.TF_NumDims(tensor))]
    count, base = lib.TF_TensorElementCount(tensor), lib.TF_TensorData(tensor)
    if code == TF_STRING:
        flat = []
        for i in range(count):
            item = base + i * TSTRING_SIZE
            size = lib.TF_StringGetSize(item)
            flat.append(ctypes.string_at(lib.TF_StringGetDataPointer(item), size).decode("latin-1"))
    elif code in CTYPES:
        flat = list((CTYPES[code] * count).from_address(base))
    else:
        raise TypeError(f"output dtype TF_DataType {code} is not handled by {__file__}")
    name = {v: k for k, v in DTYPES.items()}[code]
    return {"dtype": name, "shape": shape, "value": reshape(flat, shape)}


def output(lib, graph, tensor_name: str) -> TF_Output:
    op_name, _, index = tensor_name.partition(":")
    op = lib.TF_GraphOperationByName(graph, op_name.encode("utf-8"))
    if not op:
        raise KeyError(f"operation {op_name!r} (tensor {tensor_name}) is not in the loaded graph")
    return TF_Output(op, int(index or 0))


class Session:
    """One SavedModel loaded through the C API, its signatures run as often as wanted: what the
    model server does per request. `threads` sets the session's intra- and inter-op pools
    (ConfigProto); 0 keeps TensorFlow's default (all cores)."""

    def __init__(self, model_dir: str, libraries: list[str], threads: int = 0):
        op_def_pb2, meta_graph_pb2, config_pb2 = protobuf_modules()
        self.lib = lib = c_api()
        self.status = status = lib.TF_NewStatus()
        self.loaded = {}
        for path in libraries:
            handle = lib.TF_LoadLibrary(path.encode("utf-8"), status)
            check(lib, status, f"TF_LoadLibrary({path})")
            ops = op_def_pb2.OpList()
            buffer = lib.TF_GetOpList(handle)
            ops.ParseFromString(ctypes.string_at(buffer.data, buffer.length))
            self.loaded[os.path.basename(path)] = sorted(op.name for op in ops.op)
        options = lib.TF_NewSessionOptions()
        if threads:
            config = config_pb2.ConfigProto(
                intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads
            ).SerializeToString()
            lib.TF_SetConfig(options, config, len(config), status)
            check(lib, status, "TF_SetConfig")
        self.graph, meta = lib.TF_NewGraph(), lib.TF_NewBuffer()
        tags = (ctypes.c_char_p * 1)(b"serve")
        self.session = lib.TF_LoadSessionFromSavedModel(
            options, None, model_dir.encode("utf-8"), tags, 1, self.graph, meta, status
        )
        check(lib, status, f"TF_LoadSessionFromSavedModel({model_dir}, tags=serve)")
        self.meta_graph = meta_graph_pb2.MetaGraphDef()
        self.meta_graph.ParseFromString(ctypes.string_at(meta.contents.data, meta.contents.length))

    @property
    def signatures(self) -> dict:
        return {
            name: {
                "inputs": {k: v.name for k, v in sig.inputs.items()},
                "outputs": {k: v.name for k, v in sig.outputs.items()},
            }
            for name, sig in self.meta_graph.signature_def.items()
        }

    def run(self, signature_name: str, inputs: dict, shapes=None, encoding="utf-8") -> dict:
        """{output key: {"dtype", "shape", "value"}}; a failed run raises `RunError`."""
        lib, status = self.lib, self.status
        signature = self.meta_graph.signature_def[signature_name]
        in_keys, out_keys = sorted(signature.inputs), sorted(signature.outputs)
        if sorted(inputs) != in_keys:
            raise KeyError(f"signature {signature_name} takes {in_keys}, got {sorted(inputs)}")
        shapes = shapes or {}
        feeds = (TF_Output * len(in_keys))(
            *[output(lib, self.graph, signature.inputs[k].name) for k in in_keys]
        )
        values = [
            make_tensor(lib, signature.inputs[k].dtype, inputs[k], shapes.get(k), encoding)
            for k in in_keys
        ]
        fetches = (TF_Output * len(out_keys))(
            *[output(lib, self.graph, signature.outputs[k].name) for k in out_keys]
        )
        out_values = (P * len(out_keys))()
        lib.TF_SessionRun(
            self.session,
            None,
            feeds,
            (P * len(values))(*values),
            len(in_keys),
            fetches,
            out_values,
            len(out_keys),
            None,
            0,
            None,
            status,
        )
        for value in values:
            lib.TF_DeleteTensor(value)
        if lib.TF_GetCode(status) != 0:
            message = lib.TF_Message(status).decode("utf-8", "replace")
            raise RunError(signature_name, lib.TF_GetCode(status), message)
        try:
            return {k: read_tensor(lib, out_values[i]) for i, k in enumerate(out_keys)}
        finally:
            for i in range(len(out_keys)):
                lib.TF_DeleteTensor(out_values[i])

    def close(self):
        self.lib.TF_CloseSession(self.session, self.status)
        self.lib.TF_DeleteSession(self.session, self.status)


class RunError(RuntimeError):
    """A failed `TF_SessionRun`: `code` is its TF_Code (3 is INVALID_ARGUMENT)."""

    def __init__(self, signature_name: str, code: int, message: str):
        super().__init__(f"TF_SessionRun({signature_name}): {message}")
        self.code, self.message = code, message


def main(request: dict) -> dict:
    session = Session(request["model_dir"], request["libraries"])
    results = []
    for run in request["runs"]:
        encoding = "latin-1" if run.get("latin1") else "utf-8"
        try:
            results.append(
                session.run(run["signature"], run["inputs"], run.get("shapes"), encoding)
            )
        except RunError as e:
            if not request.get("collect_errors"):
                raise
            results.append({"error": {"code": e.code, "message": e.message}})
    session.close()
    return {
        "loaded": session.loaded,
        "tags": list(session.meta_graph.meta_info_def.tags),
        "signatures": session.signatures,
        "results": results,
        "python_runtime_imported": "tensorflow.python" in sys.modules,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.load(sys.stdin))))
