"""Every task SavedModel on the stock model server's loader path: TensorFlow's C API loads the
TF.Text op libraries and the SavedModel (the C++ `LoadSavedModel`) and runs the SignatureDefs'
tensors with `TF_SessionRun` (tests/tf_c_api.py, in its own process); the outputs equal those of
`tf.saved_model.load`. Every op of every graph is a core TensorFlow op or a TF.Text op."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests import serving_examples, tf_c_api
from tests.conftest import ROOT

tf = pytest.importorskip("tensorflow")


# Inputs beyond docs/serving.md's: empty strings, non-ASCII text, texts and word lists longer than a
# window (MAX_SEQ_LENGTH 48), a batch of mixed lengths.
LONG = "Tumour of the βcell in Müller's glia — 5 µm, with BRCA1 loss. " * 6
EDGE_CASES = {
    ("ner", "serving_default"): {"text": ["", LONG, "APC2"]},
    ("ner", "tag_words"): {
        "words": [LONG.split(), ["", "x"] + [""] * (len(LONG.split()) - 2)],
        "num_words": [len(LONG.split()), 2],
    },
    ("re", "serving_default"): {"text": ["", LONG]},
    ("hoc", "serving_default"): {"text": [LONG, ""]},
    ("nli", "serving_default"): {"text_a": ["", LONG], "text_b": [LONG, ""]},
    ("sts", "serving_default"): {"text_a": [LONG, ""], "text_b": ["", ""]},
    ("qa", "serving_default"): {"question": ["What is lost?", ""], "context": [LONG, ""]},
}


def batches():
    """(task, signature) -> docs/serving.md's examples followed by the edge cases, one batch."""
    out = {}
    for key, columns in serving_examples.EXAMPLES.items():
        extra = EDGE_CASES[key]
        if "words" in columns:  # a dense [batch, max_words] matrix: pad every row to one width
            rows = columns["words"] + extra["words"]
            width = max(len(r) for r in rows)
            out[key] = {
                "words": [r + [""] * (width - len(r)) for r in rows],
                "num_words": columns["num_words"] + extra["num_words"],
            }
        else:
            out[key] = {k: v + extra[k] for k, v in columns.items()}
    return out


@pytest.fixture(scope="module")
def models(tiny_spm, tmp_path_factory):
    return serving_examples.build_models(tiny_spm, str(tmp_path_factory.mktemp("serving")))


def _c_api_process(request: dict) -> subprocess.CompletedProcess:
    """tests/tf_c_api.py on `request`, in a process of its own (as a model server runs)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "tf_c_api.py")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def run_c_api(model_dir: str, runs: list[dict], libraries=tf_c_api.TEXT_OP_LIBRARIES) -> dict:
    request = {
        "model_dir": model_dir,
        "libraries": tf_c_api.text_op_libraries(libraries),
        "runs": runs,
    }
    proc = _c_api_process(request)
    assert proc.returncode == 0, f"tests/tf_c_api.py on {model_dir}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_same(c_output: dict, python: np.ndarray, where: str):
    """One output tensor: the C API's (dtype, shape, nested values) against the Python loader's."""
    assert c_output["shape"] == list(python.shape), where
    value = np.asarray(c_output["value"]).reshape(python.shape)
    if python.dtype.kind in "SO":  # bytes: the C side sent them as latin-1 text
        c_bytes = [s.encode("latin-1") for s in value.reshape(-1)]
        assert c_bytes == python.reshape(-1).tolist(), where
    elif python.dtype.kind == "f":
        assert c_output["dtype"] == "float32" and python.dtype == np.float32, where
        np.testing.assert_allclose(value, python, rtol=1e-5, atol=1e-6, err_msg=where)
    else:
        assert c_output["dtype"] == python.dtype.name, where
        np.testing.assert_array_equal(value, python, err_msg=where)


@pytest.mark.parametrize("task", list(serving_examples.TASK_MODELS))
def test_c_api_session_serves_what_the_python_loader_serves(models, task):
    path = models[task]
    cases = {sig: cols for (t, sig), cols in batches().items() if t == task}
    served = run_c_api(path, [{"signature": s, "inputs": c} for s, c in cases.items()])
    assert served["tags"] == ["serve"] and served["python_runtime_imported"] is False
    # The op libraries loaded are TF.Text's, and they define the ops the graphs need.
    assert {"SentencepieceOp", "RegexSplitWithOffsets", "NormalizeUTF8"} <= {
        op for ops in served["loaded"].values() for op in ops
    }
    for (signature, columns), result in zip(cases.items(), served["results"], strict=True):
        python = serving_examples.run_python(path, signature, columns)
        names = served["signatures"][signature]
        assert sorted(names["outputs"]) == sorted(python) == sorted(result), signature
        assert sorted(names["inputs"]) == sorted(columns), signature
        for key, array in python.items():
            assert_same(result[key], array, f"{task} {signature} {key}")
    if task == "ner":  # the comparison covered real entities, not only padding
        assert sum(served["results"][0]["num_entities"]["value"]) > 0


def test_c_api_load_fails_without_the_text_op_libraries(models):
    """The C-API path registers nothing by itself: without TF.Text's libraries the load fails
    with the error the model server gives for a missing op."""
    proc = _c_api_process({"model_dir": models["re"], "libraries": [], "runs": []})
    assert proc.returncode != 0
    assert "Op type not registered" in proc.stderr, proc.stderr[-2000:]


# --- every op is core TensorFlow or TF.Text -------------------------------------------------

REGISTRY = textwrap.dedent(
    """
    import json, sys
    import tensorflow  # core only: TF.Text's ops are not registered yet
    from tensorflow.python.framework import op_def_registry
    names = json.loads(sys.stdin.read())
    core = [n for n in names if op_def_registry.get(n) is not None]
    import tensorflow_text  # registers TF.Text's ops
    text = [n for n in names if op_def_registry.get(n) is not None and n not in core]
    print(json.dumps({"core": core, "text": text}))
    """
)


def graph_op_types(saved_model_dir: str) -> set[str]:
    """Op types of every node of every MetaGraph: the graph's own nodes and the nodes of every
    function in its library (tf.function bodies, the signatures' callees)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(pathlib.Path(saved_model_dir, "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in saved.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops


def registered_ops(names) -> dict[str, set[str]]:
    """Which of the op names core TensorFlow registers, and which TF.Text adds, seen from a
    process that imports tensorflow_text only after reading the core registry."""
    proc = subprocess.run(
        [sys.executable, "-c", REGISTRY],
        input=json.dumps(sorted(names)),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return {k: set(v) for k, v in found.items()}


def foreign_ops(used: set[str], core: set[str], text: set[str]) -> set[str]:
    """The ops a model server with core TensorFlow and TF.Text could not run."""
    return used - core - text


# Probes of the checker: a core op, a TF.Text op, an op of TF Addons (not linked by the model
# server) and a made-up one.
PROBES = {"MatMul", "SentencepieceOp", "Addons>GatherTree", "KerasOnlyOp"}


@pytest.fixture(scope="module")
def graph_ops(models):
    """(op types per task, the registry's answer for all of them and the probes): one process."""
    used = {task: graph_op_types(path) for task, path in models.items()}
    return used, registered_ops(set().union(PROBES, *used.values()))


def test_foreign_op_checker_flags_an_op_from_elsewhere(graph_ops):
    _, found = graph_ops
    assert found["core"] & PROBES == {"MatMul"} and found["text"] & PROBES == {"SentencepieceOp"}
    assert foreign_ops(PROBES, **found) == {"Addons>GatherTree", "KerasOnlyOp"}


def test_every_graph_op_is_core_tensorflow_or_tf_text(models, graph_ops):
    used, found = graph_ops
    foreign = {task: sorted(foreign_ops(ops, **found)) for task, ops in used.items()}
    assert foreign == {task: [] for task in models}, f"ops neither core nor TF.Text: {foreign}"
    # What the C-API test loads covers the TF.Text ops the graphs use.
    text_used = set().union(*used.values()) & found["text"]
    assert "SentencepieceTokenizeOp" in text_used and "RegexSplitWithOffsets" in used["ner"]
    served = run_c_api(models["re"], [])
    assert text_used <= {op for ops in served["loaded"].values() for op in ops}
    assert sorted(served["loaded"]) == sorted(tf_c_api.TEXT_OP_LIBRARIES)


# --- docs/serving.md's REST examples----------------------------------------------------------

DOCS_EXAMPLE = re.compile(
    r"curl -s localhost:8501/v1/models/(\w+):predict -d '(.+?)'\n```\n\n```json\n(.*?)\n```",
    re.DOTALL,
)


def test_docs_rest_examples_are_the_signatures_requests_and_outputs(models):
    """Each (task, signature) has its request in docs/serving.md, identical to EXAMPLES, and a
    response with one prediction per instance holding exactly the signature's outputs."""
    readme = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    tasks = {name: task for task, name in serving_examples.MODEL_NAMES.items()}
    seen = set()
    for model_name, request, response in DOCS_EXAMPLE.findall(readme):
        request, response = json.loads(request), json.loads(response)
        key = (tasks[model_name], request["signature_name"])
        seen.add(key)
        columns = serving_examples.EXAMPLES[key]
        assert request == serving_examples.rest_request(key[1], columns), key
        fn = serving_examples._load(models[key[0]]).signatures[key[1]]
        outputs = sorted(fn.structured_outputs)
        predictions = response["predictions"]
        assert len(predictions) == len(request["instances"]), key
        if len(outputs) > 1:
            assert all(sorted(p) == outputs for p in predictions), (key, outputs)
        else:
            assert not any(isinstance(p, dict) for p in predictions), key
    assert seen == set(serving_examples.EXAMPLES)


def test_rest_response_writes_floats_and_rows_as_tf_serving():
    text = serving_examples.rest_response(
        {"p": np.array([[0.5, 0.1], [2.0, 1 / 3]], np.float32), "s": np.array([b"a", b"\xc3\xa9"])}
    )
    assert json.loads(text) == {
        "predictions": [{"p": [0.5, 0.1], "s": "a"}, {"p": [2.0, 0.333333343], "s": "é"}]
    }
    assert '"p": [2.0, 0.333333343]' in text  # %.9g where six digits do not read back
    single = serving_examples.rest_response({"score": np.array([1.0, 0.25], np.float32)})
    assert json.loads(single) == {"predictions": [1.0, 0.25]}
