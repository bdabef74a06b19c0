"""Predictions from a SavedModel with the project's signatures: loading it, its signature
functions, and the batching of each task's examples through them (NER words, sentence tasks,
BioASQ question-context pairs). Part of the runner (`runner` uses these)."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Sequence

import numpy as np
from absl import logging

from bioalbert_tf import fileio
from bioalbert_tf.evaluation import datasets, formats
from bioalbert_tf.evaluation.datasets import DatasetSpec


def _is_saved_model(path: str) -> bool:
    return fileio.exists(fileio.join(path, "saved_model.pb"))


def load_saved_model(path: str):
    # Serving graphs with in-graph SentencePiece need tensorflow_text's ops registered first.
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        logging.warning("tensorflow_text is not installed: SentencePiece ops will not load")
    import tensorflow as tf

    if not _is_saved_model(path):
        raise FileNotFoundError(f"{path} is not a SavedModel folder (no saved_model.pb)")
    return tf.saved_model.load(path)


def signature(model, name: str, inputs: Sequence[str], outputs: Sequence[str], path: str):
    """The named signature, checked against the contract."""
    if name not in model.signatures:
        raise ValueError(f"{path} has no signature {name!r}; it has {sorted(model.signatures)}")
    fn = model.signatures[name]
    have_in = set(fn.structured_input_signature[1])
    have_out = set(fn.structured_outputs)
    missing_in, missing_out = set(inputs) - have_in, set(outputs) - have_out
    if missing_in or missing_out:
        raise ValueError(
            f"{path} signature {name!r}: expected inputs {sorted(inputs)} and outputs "
            f"{sorted(outputs)}; it has inputs {sorted(have_in)} and outputs {sorted(have_out)}"
        )
    return fn


def saved_model_sha256(path: str) -> str:
    """sha256 over the SavedModel's files: relative path and content hash of each, in order."""
    h = hashlib.sha256()
    for rel in fileio.walk_files(path):
        h.update(rel.encode() + b"\0" + bytes.fromhex(formats.file_sha256(fileio.join(path, rel))))
    return h.hexdigest()


# -------------------------------------------------------------------------------- prediction


def _decode(values) -> list[str]:
    return [v.decode("utf-8") for v in values]


def predict_ner(fn, sentences: Sequence[formats.NerSentence], batch_size: int) -> list[list[str]]:
    import tensorflow as tf

    # Sorted by length so batches carry little padding; the order is restored below.
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i].words))
    lengths = [len(sentences[i].words) for i in order]
    flat = [w for i in order for w in sentences[i].words]
    words = tf.RaggedTensor.from_row_lengths(tf.constant(flat, tf.string), lengths)
    ds = (
        tf.data.Dataset.from_tensor_slices(words)
        .ragged_batch(batch_size)
        .map(lambda r: (r.to_tensor(""), tf.cast(r.row_lengths(), tf.int32)))
        .prefetch(tf.data.AUTOTUNE)
    )
    sorted_tags: list[list[str]] = []
    for batch_words, num_words in ds:
        tags = fn(words=batch_words, num_words=num_words)["tags"].numpy()  # [batch, max_words]
        if (
            tags.ndim != 2
            or tags.shape[0] != len(num_words)
            or tags.shape[1] < batch_words.shape[1]
        ):
            raise ValueError(
                f"tag_words returned tags of shape {tags.shape}; expected "
                f"[{len(num_words)}, >= {batch_words.shape[1]}]"
            )
        sorted_tags.extend(_decode(row[:n]) for row, n in zip(tags, num_words.numpy(), strict=True))
    out: list[list[str]] = [[] for _ in sentences]
    for i, tags in zip(order, sorted_tags, strict=True):
        out[i] = tags
    return out


def _label_indexes(names: Sequence[str]) -> list[int]:
    """HoC label names -> gold label indexes: integer names ('3') are indexes; otherwise the
    position is."""
    if all(n.strip().isdigit() for n in names):
        return [int(n) for n in names]
    return list(range(len(names)))


def _batches(inputs: dict[str, list[str]], batch_size: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        {k: tf.constant(v, tf.string) for k, v in inputs.items()}
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def predict_examples(
    fn, spec: DatasetSpec, examples: Sequence[formats.Example], batch_size: int
) -> list[str | float]:
    """One prediction per example, in order: a label, a HoC label string or an STS score."""
    if spec.task in (datasets.RE, datasets.DOC):
        inputs = {"text": [ex.text_a for ex in examples]}
    else:
        inputs = {
            "text_a": [ex.text_a for ex in examples],
            "text_b": [ex.text_b for ex in examples],
        }
    out: list[str | float] = []
    for batch in _batches(inputs, batch_size):
        result = fn(**batch)
        if spec.task == datasets.STS:
            out.extend(float(s) for s in result["score"].numpy().reshape(-1))
        elif spec.task == datasets.DOC:
            active = result["active"].numpy()  # [batch, num_labels]
            names = result["label_names"].numpy()  # [batch, num_labels]
            for row_active, row_names in zip(active, names, strict=True):
                idx = _label_indexes(_decode(row_names))
                pairs = sorted(zip(idx, row_active.tolist(), strict=True))
                out.append(",".join(f"{i}_{int(bool(a))}" for i, a in pairs))
        else:
            out.extend(_decode(result["label"].numpy().reshape(-1)))
    if len(out) != len(examples):
        raise ValueError(f"{len(out)} predictions for {len(examples)} examples")
    return out


def predict_qa_pairs(fn, pairs: Sequence[formats.QaPair], batch_size: int) -> list[list]:
    """[(answer, probability)] of each (question, snippet) pair, empty answers dropped."""
    inputs = {"question": [p.question for p in pairs], "context": [p.context for p in pairs]}
    out: list[list] = []
    for batch in _batches(inputs, batch_size):
        result = fn(**batch)
        for texts, probs in zip(
            result["answers"].numpy(), result["answer_probabilities"].numpy(), strict=True
        ):
            out.append([(t, float(p)) for t, p in zip(_decode(texts), probs, strict=True) if t])
    return out


# ------------------------------------------------------------------------------------- runs


def versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    except ImportError:
        pass
    try:
        import tensorflow_text

        out["tensorflow_text"] = tensorflow_text.__version__
    except (ImportError, AttributeError):
        pass
    return out
