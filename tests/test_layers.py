"""One harness for every layer and model: the embeddings, a block, the encoder, the pretrainer
and each task's Keras model. It checks output shapes, the get_config -> from_config round trip,
`.keras` save and load, and mixed_float16 (float32 variables, float16 compute).
"""

import contextlib
import copy
import dataclasses
import functools
import io
import json
from collections.abc import Callable

import numpy as np
import pytest

from tests.conftest import small_config

keras = pytest.importorskip("keras")

BATCH, SEQ, VOCAB = 2, 8, 100
# embedding_size != hidden_size, so the encoder has its embedding_hidden_mapping_in; two groups,
# so it has two blocks; weights large enough that every output depends on them.
SIZES = {
    "vocab_size": VOCAB,
    "embedding_size": 8,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_hidden_groups": 2,
    "num_attention_heads": 2,
    "intermediate_size": 24,
    "max_position_embeddings": 16,
    "initializer_range": 0.2,
}


def tiny_config():
    return small_config(**SIZES)


def features(preds: int | None = None) -> dict:
    """A batch with padding in its second row and two segments."""
    rng = np.random.default_rng(0)
    out = {
        "input_ids": rng.integers(5, VOCAB, (BATCH, SEQ)).astype("int32"),
        "input_mask": np.array([[1] * SEQ, [1] * (SEQ - 3) + [0] * 3], "int32"),
        "segment_ids": np.array([[0] * 5 + [1] * (SEQ - 5)] * BATCH, "int32"),
    }
    if preds:
        out["masked_lm_positions"] = np.array([[1, 3, 6], [0, 2, 4]], "int32")[:, :preds]
    return out


@functools.cache
def spm_model() -> bytes:
    """A SentencePiece model for the tasks' TextEncoder; the Keras models never read it."""
    import sentencepiece as spm

    lines = ["the protein binds the receptor", "mutations of the gene cause disease"]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=40,
        hard_vocab_limit=False,
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        minloglevel=2,
    )
    return model.getvalue()


def task_model(dataset: str, labels: tuple[str, ...]):
    from bioalbert_tf.evaluation import datasets
    from bioalbert_tf.tasks import create_task

    config = tiny_config()
    spec = datasets.get(dataset)
    task = create_task(spec, labels, config, spm_model(), config.max_position_embeddings)
    return task.model


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable  # () -> the layer or model, made under the global dtype policy
    args: Callable  # () -> its positional call arguments
    shapes: dict  # output name -> shape ("output" for a single tensor)
    mixed_dtypes: dict  # output name -> dtype under mixed_float16


def _embeddings():
    from bioalbert_tf.modeling.layers import AlbertEmbeddings

    return AlbertEmbeddings(tiny_config(), name="embeddings")


def _block():
    from bioalbert_tf.modeling.layers import AlbertBlock

    return AlbertBlock(tiny_config(), name="group_0_inner_group_0")


def _encoder():
    from bioalbert_tf.modeling import AlbertEncoder

    return AlbertEncoder(tiny_config())


def _pretrainer():
    from bioalbert_tf.modeling import AlbertPretrainer

    return AlbertPretrainer(tiny_config())


def _hidden():
    x = np.random.default_rng(1).standard_normal((BATCH, SEQ, SIZES["hidden_size"]))
    return x.astype("float32"), features()["input_mask"]


HIDDEN = SIZES["hidden_size"]
ENCODER_OUT = {"sequence_output": (BATCH, SEQ, HIDDEN), "pooled_output": (BATCH, HIDDEN)}
F16_ENCODER = {"sequence_output": "float16", "pooled_output": "float16"}
LABELS = {
    "ner": ("O", "B-Disease", "I-Disease"),
    "re": ("false", "CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9"),
    "hoc": tuple(str(i) for i in range(10)),
    "nli": ("contradiction", "entailment", "neutral"),
}
# The task models end in a plain Dense head: under mixed_float16 their logits are float16.
CASES = {
    "embeddings": Case(
        _embeddings,
        lambda: (features()["input_ids"], features()["segment_ids"]),
        {"output": (BATCH, SEQ, SIZES["embedding_size"])},
        {"output": "float16"},
    ),
    "block": Case(_block, _hidden, {"output": (BATCH, SEQ, HIDDEN)}, {"output": "float16"}),
    "encoder": Case(_encoder, lambda: (features(),), ENCODER_OUT, F16_ENCODER),
    "pretrainer": Case(
        _pretrainer,
        lambda: (features(preds=3),),
        {"mlm_logits": (BATCH, 3, VOCAB), "sop_logits": (BATCH, 2), **ENCODER_OUT},
        {"mlm_logits": "float32", "sop_logits": "float32", **F16_ENCODER},
    ),
    "ner": Case(
        lambda: task_model("ncbi_disease", LABELS["ner"]),
        lambda: (features(),),
        {"output": (BATCH, SEQ, 3)},
        {"output": "float16"},
    ),
    "relation": Case(
        lambda: task_model("chemprot", LABELS["re"]),
        lambda: (features(),),
        {"output": (BATCH, 6)},
        {"output": "float16"},
    ),
    "doc_classification": Case(
        lambda: task_model("hoc", LABELS["hoc"]),
        lambda: (features(),),
        {"output": (BATCH, 10)},
        {"output": "float16"},
    ),
    "nli": Case(
        lambda: task_model("mednli", LABELS["nli"]),
        lambda: (features(),),
        {"output": (BATCH, 3)},
        {"output": "float16"},
    ),
    "sts": Case(
        lambda: task_model("biosses", ()),
        lambda: (features(),),
        {"output": (BATCH, 1)},
        {"output": "float16"},
    ),
    "qa": Case(
        lambda: task_model("bioasq6b", ()),
        lambda: (features(),),
        {"output": (BATCH, SEQ, 2)},
        {"output": "float16"},
    ),
}


@contextlib.contextmanager
def global_dtype_policy(name: str):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def call(layer, case: Case) -> dict:
    """The outputs as {name: numpy array}; a single tensor is named "output"."""
    out = layer(*case.args(), training=False)
    return {
        k: np.asarray(v) for k, v in (out if isinstance(out, dict) else {"output": out}).items()
    }


def assert_same_outputs(actual: dict, expected: dict):
    assert list(actual) == list(expected)
    for name in expected:
        assert actual[name].dtype == expected[name].dtype, name
        np.testing.assert_allclose(
            np.asarray(actual[name], "float32"),
            np.asarray(expected[name], "float32"),
            rtol=1e-6,
            atol=1e-6,
            err_msg=name,
        )


def as_json(config: dict) -> dict:
    """The config as a .keras file holds it (tuples become lists)."""
    return json.loads(json.dumps(config))


def copy_weights(source, target):
    assert [w.path for w in target.weights] == [w.path for w in source.weights]
    target.set_weights(source.get_weights())


def assert_same_weights(actual, expected):
    assert [w.path for w in actual.weights] == [w.path for w in expected.weights]
    for a, e in zip(actual.weights, expected.weights, strict=True):
        assert a.dtype == e.dtype, a.path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e), err_msg=a.path)


def run_layer_test(case: Case, tmp_path):
    """Shapes; get_config -> from_config gives the same config and, with the weights copied, the
    same outputs; `.keras` save and load gives the same config, weights and outputs."""
    keras.utils.set_random_seed(0)
    layer = case.make()
    outputs = call(layer, case)
    assert {k: v.shape for k, v in outputs.items()} == case.shapes
    assert {v.dtype for v in outputs.values()} == {np.dtype("float32")}

    config = layer.get_config()
    as_json(keras.saving.serialize_keras_object(layer))  # raises where it is not JSON
    clone = type(layer).from_config(copy.deepcopy(config))  # a Functional's pops its keys
    assert clone.get_config() == config
    call(clone, case)  # builds a layer that its constructor leaves unbuilt
    copy_weights(layer, clone)
    assert_same_outputs(call(clone, case), outputs)

    path = tmp_path / "model.keras"
    keras.saving.save_model(layer, path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(layer)
    assert as_json(loaded.get_config()) == as_json(config)
    assert_same_weights(loaded, layer)
    assert_same_outputs(call(loaded, case), outputs)


def run_mixed_precision_test(case: Case, tmp_path):
    """Made under mixed_float16: float32 variables, outputs of case.mixed_dtypes close to the
    float32 model's with the same weights; saved and loaded back under the float32 policy, it
    still computes in float16 and gives the same outputs."""
    keras.utils.set_random_seed(0)
    reference = case.make()
    expected = call(reference, case)
    with global_dtype_policy("mixed_float16"):
        layer = case.make()
    assert (layer.compute_dtype, layer.variable_dtype) == ("float16", "float32")
    call(layer, case)  # builds a layer that its constructor leaves unbuilt
    assert {w.dtype for w in layer.weights} == {"float32"}
    copy_weights(reference, layer)
    outputs = call(layer, case)
    assert {k: str(v.dtype) for k, v in outputs.items()} == case.mixed_dtypes
    for name, value in expected.items():
        np.testing.assert_allclose(
            np.asarray(outputs[name], "float32"), value, rtol=0.01, atol=0.005, err_msg=name
        )

    path = tmp_path / "mixed.keras"
    keras.saving.save_model(layer, path)
    with global_dtype_policy("float32"):
        loaded = keras.saving.load_model(path)
    assert_same_weights(loaded, layer)
    assert_same_outputs(call(loaded, case), outputs)


@pytest.mark.parametrize("name", list(CASES))
def test_layer(name, tmp_path):
    run_layer_test(CASES[name], tmp_path)


@pytest.mark.parametrize("name", list(CASES))
def test_mixed_float16(name, tmp_path):
    run_mixed_precision_test(CASES[name], tmp_path)
