"""One tiny task SavedModel per task (random weights), the serving examples of docs/serving.md,
and TF Serving's REST row format, shared by tests/test_serving_loader.py and by docs/serving.md.

`python -m tests.serving_examples SPM_MODEL` builds the tiny models, runs every example through
its signature with `tf.saved_model.load` and prints each REST request and the response that
TF Serving's `:predict` would write for those outputs (docs/serving.md).
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
import sys
import tempfile

import numpy as np

# task -> (dataset of the registry, labels of the tiny model; None: the registry's)
TASK_MODELS = {
    "ner": ("ncbi_disease", ("O", "B", "I")),
    "re": ("gad", None),
    "hoc": ("hoc", None),
    "nli": ("mednli", None),
    "sts": ("biosses", ()),
    "qa": ("bioasq4b", ()),
}
# task -> the model name of docs/serving.md's TF Serving URLs
MODEL_NAMES = {
    "ner": "ner",
    "re": "gad",
    "hoc": "hoc",
    "nli": "mednli",
    "sts": "biosses",
    "qa": "bioasq",
}
MAX_SEQ_LENGTH = 48  # short, so that the tests' long texts are cut into windows

# (task, signature) -> columns of one batch, as the signature takes them
EXAMPLES = {
    ("ner", "serving_default"): {
        "text": ["Mutations in APC cause familial adenomatous polyposis.", ""]
    },
    ("ner", "tag_words"): {
        "words": [["Germline", "BRCA1", "mutations"], ["Ataxia", "", ""]],
        "num_words": [3, 1],
    },
    ("re", "serving_default"): {"text": ["@GENE$ variants raise the risk of @DISEASE$ ."]},
    ("hoc", "serving_default"): {"text": ["Tumour cells evade apoptosis and invade tissue."]},
    ("nli", "serving_default"): {
        "text_a": ["The patient has a fever."],
        "text_b": ["The patient is afebrile."],
    },
    ("sts", "serving_default"): {
        "text_a": ["BRCA1 mutations raise breast cancer risk.", "Aspirin inhibits COX-1."],
        "text_b": ["Breast cancer risk is higher with BRCA1 mutations.", "The sky is blue."],
    },
    ("qa", "serving_default"): {
        "question": ["What protects against alpha-synuclein neurotoxicity?"],
        "context": ["Spermidine protects against alpha-synuclein neurotoxicity in flies."],
    },
}


def build_models(spm_model: str, out_dir: str, seed: int = 0) -> dict[str, str]:
    """Exports one task SavedModel per task under out_dir/<task>: random weights, small sizes
    that all differ (tests/conftest.py small_config), the given SentencePiece model."""
    import keras

    from bioalbert_tf.evaluation import datasets
    from bioalbert_tf.serving import export
    from bioalbert_tf.tasks import create_task
    from tests.conftest import small_config

    keras.utils.set_random_seed(seed)
    config = small_config(vocab_size=1000, max_position_embeddings=64)
    spm = pathlib.Path(spm_model).read_bytes()
    paths = {}
    for task_name, (dataset, labels) in TASK_MODELS.items():
        spec = datasets.get(dataset)
        task = create_task(
            spec, spec.labels if labels is None else labels, config, spm, MAX_SEQ_LENGTH
        )
        paths[task_name] = export.export_task(task, str(pathlib.Path(out_dir) / task_name))
    return paths


def rest_request(signature: str, columns: dict) -> dict:
    """TF Serving's row format: one object per instance, the signature named."""
    batch = len(next(iter(columns.values())))
    return {
        "signature_name": signature,
        "instances": [{k: v[i] for k, v in columns.items()} for i in range(batch)],
    }


def _decimal(value: float) -> str:
    """A float32 as TF Serving writes it (util/json_tensor.cc WriteDecimal): six significant
    digits (%g) when they read back as the same float32, else %.9g; ".0" added to whole
    numbers."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = f"{value:g}"
    if np.float32(float(text)) != np.float32(value):
        text = f"{value:.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, bytes):
        return json.dumps(value.decode("utf-8"), ensure_ascii=False)
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return _decimal(float(value))
    return str(int(value))


def rest_response(outputs: dict) -> str:
    """The `:predict` response TF Serving writes for a row-format request, given the signature's
    output arrays (util/json_tensor.cc MakeRowFormatJsonFromTensors): {"predictions": [...]},
    one item per batch row; an object keyed by output name when the signature has several
    outputs, the bare value when it has one; each row's arrays on one line. (The server orders
    the keys as its protobuf map iterates; sorted here.)"""
    arrays = {k: np.asarray(v) for k, v in sorted(outputs.items())}
    batch = {len(a) for a in arrays.values()}
    if len(batch) != 1:
        raise ValueError(
            f"outputs have different batch sizes: { {k: a.shape for k, a in arrays.items()} }"
        )
    rows = []
    for i in range(batch.pop()):
        if len(arrays) == 1:
            rows.append("        " + _value(next(iter(arrays.values()))[i : i + 1].tolist()[0]))
            continue
        fields = [
            f'            "{k}": {_value(a[i : i + 1].tolist()[0])}' for k, a in arrays.items()
        ]
        rows.append("        {\n" + ",\n".join(fields) + "\n        }")
    return '{\n    "predictions": [\n' + ",\n".join(rows) + "\n    ]\n}"


@functools.cache
def _load(path: str):
    from bioalbert_tf.serving import export

    return export.load(path)


def run_python(path: str, signature: str, columns: dict) -> dict:
    """The signature's outputs under `tf.saved_model.load` (tensorflow-text imported first)."""
    import tensorflow as tf

    fn = _load(path).signatures[signature]
    specs = fn.structured_input_signature[1]
    outputs = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in columns.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def main(spm_model: str):
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_models(spm_model, tmp)
        for (task, signature), columns in EXAMPLES.items():
            request = json.dumps(rest_request(signature, columns), ensure_ascii=False)
            print(f"### {task} {signature}\n")
            print(f"curl -s localhost:8501/v1/models/{MODEL_NAMES[task]}:predict -d '{request}'\n")
            print(rest_response(run_python(paths[task], signature, columns)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
