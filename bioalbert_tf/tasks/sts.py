"""Sentence similarity (MedSTS, BIOSSES): regression on [CLS] of the pair, clipped to the
dataset's score range at prediction time."""

import keras
import numpy as np
import tensorflow as tf

from bioalbert_tf.tasks.base import SequenceClassificationTask


class STSTask(SequenceClassificationTask):
    pair = True
    head_name, model_suffix = "regressor", "regressor"

    def head_units(self) -> int:
        return 1

    def targets(self, examples):
        return np.array([[float(e.score)] for e in examples], np.float32)

    def loss(self):
        return keras.losses.MeanSquaredError()

    def predict(self, examples, batch_size: int = 32):
        low, high = self.spec.score_range or (-np.inf, np.inf)
        return [float(v) for v in np.clip(self.raw_outputs(examples, batch_size)[:, 0], low, high)]

    def _serve(self, text_a, text_b=None):
        low, high = self.spec.score_range or (-1e9, 1e9)
        score = self.model(self.encode_texts(text_a, text_b), training=False)[:, 0]
        return {"score": tf.clip_by_value(score, low, high)}
