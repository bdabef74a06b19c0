"""Document classification (HoC): multi-label (sigmoid per hallmark) on [CLS] of each sentence;
the decision threshold is chosen on dev (`choose_threshold`), BLURB scores per abstract."""

import keras
import numpy as np
import tensorflow as tf

from bioalbert_tf.tasks.base import CLASSIFIER_DROPOUT, SequenceClassificationTask


class DocClassificationTask(SequenceClassificationTask):
    pair = False
    threshold = 0.5

    def build_model(self):
        inputs = {
            k: keras.Input((None,), dtype="int32", name=k)
            for k in ("input_ids", "input_mask", "segment_ids")
        }
        pooled = keras.layers.Dropout(CLASSIFIER_DROPOUT)(self.encoder(inputs)["pooled_output"])
        logits = self.head(len(self.labels), "multilabel_classifier")(pooled)
        return keras.Model(inputs, logits, name=f"{self.spec.name}_multilabel")

    def targets(self, examples):
        index = {label: i for i, label in enumerate(self.labels)}
        y = np.zeros((len(examples), len(self.labels)), np.float32)
        for row, e in enumerate(examples):
            for label in e.label:
                y[row, index[label]] = 1.0
        return y

    def loss(self):
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def probabilities(self, examples, batch_size=32):
        return 1.0 / (1.0 + np.exp(-self.raw_outputs(examples, batch_size)))

    def predict(self, examples, batch_size: int = 32, probabilities=None):
        p = self.probabilities(examples, batch_size) if probabilities is None else probabilities
        return [tuple(self.labels[j] for j in np.flatnonzero(row >= self.threshold)) for row in p]

    def choose_threshold(self, examples, score_fn, batch_size: int = 32) -> float:
        """The threshold in 0.05..0.95 with the best dev score (score_fn(examples, predictions))."""
        p = self.probabilities(examples, batch_size)
        best = max(
            np.arange(0.05, 0.951, 0.05),
            key=lambda t: (score_fn(examples, self._at(p, t)), -abs(t - 0.5)),
        )
        self.threshold = float(round(best, 2))
        return self.threshold

    def _at(self, p, t):
        return [tuple(self.labels[j] for j in np.flatnonzero(row >= t)) for row in p]

    def _serve(self, text_a, text_b=None):
        probs = tf.sigmoid(self.model(self.encode_texts(text_a), training=False))
        names = tf.broadcast_to(tf.constant(self.labels), tf.shape(probs))
        return {
            "probabilities": probs,
            "active": tf.cast(probs >= self.threshold, tf.int32),
            "label_names": names,
        }


TASK_CLASS = DocClassificationTask
