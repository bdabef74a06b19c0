"""The contract every task follows, and the sequence-classification family (RE, NLI, HoC, STS).

A Task owns: its Keras model (our AlbertEncoder + a head), the in-graph preprocessing
(`preprocessing.TextEncoder`, identical in training and serving), a tf.data pipeline for
training, batched prediction back to Python values, and its SavedModel signatures.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from bioalbert_tf.modeling import AlbertEncoder
from bioalbert_tf.modeling.layers import initializer
from bioalbert_tf.tasks.preprocessing import TextEncoder, pack

CLASSIFIER_DROPOUT = 0.1  # ALBERT/BERT run_classifier: dropout 0.1 on the pooled output


class Task:
    """Shared parts. Subclasses set `head_units`, build `outputs`, `loss`, predictions, signatures."""

    pair = False  # text_a + text_b input

    def __init__(
        self,
        spec,
        labels,
        albert_config,
        spm_model: bytes,
        max_seq_length: int,
        do_lower_case: bool = True,
    ):
        if max_seq_length > albert_config.max_position_embeddings:
            raise ValueError(
                f"max_seq_length {max_seq_length} exceeds max_position_embeddings {albert_config.max_position_embeddings}"
            )
        self.spec, self.labels = spec, tuple(labels)
        self.albert_config, self.max_seq_length = albert_config, max_seq_length
        self.text_encoder = TextEncoder(spm_model, do_lower_case)
        self.encoder = AlbertEncoder(albert_config)
        self.model = self.build_model()

    # --- model -------------------------------------------------------------------------------
    def build_model(self) -> keras.Model:
        raise NotImplementedError

    def head(self, units: int, name: str) -> keras.layers.Dense:
        return keras.layers.Dense(
            units, kernel_initializer=initializer(self.albert_config), name=name
        )

    # --- data --------------------------------------------------------------------------------
    def encode_texts(self, text_a, text_b=None):
        segments = [self.text_encoder.tokenize(text_a)]
        if text_b is not None:
            segments.append(self.text_encoder.tokenize(text_b))
        return pack(segments, self.max_seq_length)

    def predict(self, examples, batch_size: int = 32):
        raise NotImplementedError

    def signatures(self) -> dict:
        raise NotImplementedError


class SequenceClassificationTask(Task):
    """[CLS] classification on the pooled output: RE (single text), NLI (pairs)."""

    def build_model(self):
        c = self.albert_config
        inputs = {
            k: keras.Input((None,), dtype="int32", name=k)
            for k in ("input_ids", "input_mask", "segment_ids")
        }
        pooled = self.encoder(inputs)["pooled_output"]
        pooled = keras.layers.Dropout(CLASSIFIER_DROPOUT)(pooled)
        logits = self.head(len(self.labels), "classifier")(pooled)
        del c
        return keras.Model(inputs, logits, name=f"{self.spec.name}_classifier")

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

    def raw_outputs(self, examples, batch_size: int) -> np.ndarray:
        a, b = self.text_columns(examples)
        ds = tf.data.Dataset.from_tensor_slices((a, b) if self.pair else (a,)).batch(batch_size)
        ds = ds.map(lambda *texts: self.encode_texts(*texts))
        return np.concatenate(
            [np.asarray(self.model(batch, training=False)) for batch in ds], axis=0
        )

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
