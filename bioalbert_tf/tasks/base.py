"""The contract every task follows (`Task`), and the sequence-classification family (RE, NLI,
HoC, STS).

A Task owns its Keras model (our AlbertEncoder + a head), the in-graph preprocessing
(`preprocessing.TextEncoder`, identical in training and serving), a tf.data pipeline for
training, batched prediction in the evaluation core's format (`bioalbert_tf.evaluation.scoring`),
an optional step after training (HoC: the decision threshold) and its SavedModel signatures.
Fine-tuning calls exactly the methods declared here; a new task fills them in and is added to
`bioalbert_tf.tasks.TASKS`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from bioalbert_tf.modeling import AlbertEncoder
from bioalbert_tf.modeling.layers import initializer
from bioalbert_tf.tasks.preprocessing import TextEncoder, pack, same_batch

CLASSIFIER_DROPOUT = 0.1  # ALBERT/BERT run_classifier: dropout 0.1 on the pooled output
MODEL_INPUTS = ("input_ids", "input_mask", "segment_ids")
# Prediction cuts each batch to the first of these widths that holds its longest example (at most
# max_seq_length) and pads the last batch to the batch size, so the compiled forward pass sees a
# handful of shapes and compiles once for each, not once per batch. Padding never changes a real
# position's output (ALBERT's -10000 attention mask gives padded keys a weight of exactly 0).
PREDICT_WIDTHS = (32, 64, 128, 256, 512)


def bucket_width(longest: int, max_len: int) -> int:
    """The prediction width for a batch whose longest example has `longest` pieces."""
    return min(next((w for w in PREDICT_WIDTHS if w >= longest), max_len), max_len)


class Task(abc.ABC):
    """What fine-tuning needs of a task. Rows are the evaluation core's gold rows
    (`formats.NerSentence`, `formats.Example`, `formats.QaPair`)."""

    def __init__(
        self,
        spec,
        labels,
        albert_config,
        spm_model: bytes,
        max_seq_length: int,
        do_lower_case: bool = True,
        classifier_dropout: float = CLASSIFIER_DROPOUT,
    ):
        if max_seq_length > albert_config.max_position_embeddings:
            raise ValueError(
                f"max_seq_length {max_seq_length} exceeds max_position_embeddings "
                f"{albert_config.max_position_embeddings}"
            )
        self.spec, self.labels = spec, tuple(labels)
        self.albert_config, self.max_seq_length = albert_config, max_seq_length
        self.classifier_dropout = classifier_dropout
        self.text_encoder = TextEncoder(spm_model, do_lower_case)
        self.encoder = AlbertEncoder(albert_config)
        self.model = self.build_model()
        self._forward = None

    # --- the contract ---------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self) -> keras.Model:
        """The Keras model: token ids (MODEL_INPUTS) -> logits."""

    @abc.abstractmethod
    def loss(self):
        """The training loss, a Keras loss or fn(y_true, y_pred)."""

    @abc.abstractmethod
    def train_dataset(self, rows: Sequence, batch_size: int, seed: int) -> tf.data.Dataset:
        """Endless, shuffled (inputs, targets) batches of the training rows."""

    @abc.abstractmethod
    def predict(self, rows: Sequence, batch_size: int = 32) -> list:
        """One prediction per row, in the evaluation core's format (see evaluation.scoring)."""

    @abc.abstractmethod
    def signatures(self) -> dict:
        """{name: (fn, [TensorSpec], [input names])} served by the SavedModel."""

    def after_training(
        self, dev_rows: Sequence, score: Callable[[list], float], batch_size: int
    ) -> dict:
        """A step after the weights are chosen, given the dev rows and score(predictions) -> the
        main dev metric; returns what to record in metrics.json. Default: nothing to do."""
        del dev_rows, score, batch_size
        return {}

    # --- shared parts -----------------------------------------------------------------------
    def model_inputs(self) -> dict:
        return {k: keras.Input((None,), dtype="int32", name=k) for k in MODEL_INPUTS}

    def head(self, units: int, name: str) -> keras.layers.Dense:
        return keras.layers.Dense(
            units, kernel_initializer=initializer(self.albert_config), name=name
        )

    def encode_texts(self, text_a, text_b=None):
        if text_b is not None:
            text_a, text_b = same_batch(text_a=text_a, text_b=text_b)
        segments = [self.text_encoder.tokenize(text_a)]
        if text_b is not None:
            segments.append(self.text_encoder.tokenize(text_b))
        return pack(segments, self.max_seq_length)


class SequenceClassificationTask(Task):
    """[CLS] classification on the pooled output: RE (single text), NLI (pairs)."""

    pair = False  # text_a + text_b input
    head_name, model_suffix = "classifier", "classifier"

    def build_model(self):
        inputs = self.model_inputs()
        pooled = self.encoder(inputs)["pooled_output"]
        pooled = keras.layers.Dropout(self.classifier_dropout)(pooled)
        logits = self.head(self.head_units(), self.head_name)(pooled)
        return keras.Model(inputs, logits, name=f"{self.spec.name}_{self.model_suffix}")

    def head_units(self) -> int:
        return len(self.labels)

    def targets(self, examples) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[e.label] for e in examples], np.int32)

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def text_columns(self, examples):
        a = tf.constant([e.text_a for e in examples])
        b = tf.constant([e.text_b or "" for e in examples]) if self.pair else None
        return a, b

    def train_dataset(self, examples, batch_size: int, seed: int):
        a, b = self.text_columns(examples)
        y = self.targets(examples)
        ds = tf.data.Dataset.from_tensor_slices(((a, b) if self.pair else (a,), y))
        ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.batch(batch_size, drop_remainder=True)
        return ds.map(
            lambda texts, labels: (self.encode_texts(*texts), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(2)

    # Whether in-process prediction compiles the forward pass with XLA (one compile per width
    # in PREDICT_WIDTHS that the data needs); False runs it as a plain TensorFlow graph.
    predict_jit_compile = True

    def forward(self, inputs: dict) -> tf.Tensor:
        """The model's outputs (training=False) for dense [batch, width] inputs, by a function
        traced (and, with predict_jit_compile, XLA-compiled) once per input shape."""
        if self._forward is None:
            self._forward = tf.function(
                lambda x: self.model(x, training=False), jit_compile=self.predict_jit_compile
            )
        return self._forward(inputs)

    def bucketed_outputs(self, batch: dict, batch_size: int) -> np.ndarray:
        """forward() of one batch of max_seq_length inputs, cut to its bucket width and padded
        to batch_size rows; the padding rows' outputs are dropped."""
        n = int(batch["input_ids"].shape[0])
        longest = int(tf.reduce_max(tf.reduce_sum(batch["input_mask"], axis=1)))
        width = bucket_width(longest, self.max_seq_length)
        x = {k: tf.pad(v[:, :width], [[0, batch_size - n], [0, 0]]) for k, v in batch.items()}
        return np.asarray(self.forward(x))[:n]

    def raw_outputs(self, examples, batch_size: int) -> np.ndarray:
        a, b = self.text_columns(examples)
        ds = tf.data.Dataset.from_tensor_slices((a, b) if self.pair else (a,)).batch(batch_size)
        ds = ds.map(lambda *texts: self.encode_texts(*texts))
        return np.concatenate([self.bucketed_outputs(batch, batch_size) for batch in ds], axis=0)

    def predict(self, examples, batch_size: int = 32):
        logits = self.raw_outputs(examples, batch_size)
        return [self.labels[i] for i in logits.argmax(-1)]

    def _serve(self, text_a, text_b=None):
        logits = self.model(self.encode_texts(text_a, text_b), training=False)
        probs = tf.nn.softmax(logits, axis=-1)
        names = tf.constant(self.labels)
        return {"label": tf.gather(names, tf.argmax(probs, axis=-1)), "probabilities": probs}

    def signatures(self):
        string = tf.TensorSpec([None], tf.string)
        if self.pair:
            return {
                "serving_default": (
                    lambda text_a, text_b: self._serve(text_a, text_b),
                    [string, string],
                    ["text_a", "text_b"],
                )
            }
        return {"serving_default": (lambda text: self._serve(text), [string], ["text"])}
