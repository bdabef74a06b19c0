"""Sentence similarity (MedSTS, BIOSSES): regression on [CLS] of the pair, clipped to the
dataset's score range at prediction time."""

import keras
import numpy as np
import tensorflow as tf

from bioalbert_tf.tasks.base import CLASSIFIER_DROPOUT, SequenceClassificationTask


class STSTask(SequenceClassificationTask):
    pair = True

    def build_model(self):
        inputs = {
            k: keras.Input((None,), dtype="int32", name=k)
            for k in ("input_ids", "input_mask", "segment_ids")
        }
        pooled = keras.layers.Dropout(CLASSIFIER_DROPOUT)(self.encoder(inputs)["pooled_output"])
        score = self.head(1, "regressor")(pooled)
        return keras.Model(inputs, score, name=f"{self.spec.name}_regressor")

    def targets(self, examples):
        return np.array([[float(e.label)] for e in examples], np.float32)

    def loss(self):
        return keras.losses.MeanSquaredError()

    def predict(self, examples, batch_size: int = 32):
        low, high = self.spec.score_range or (-np.inf, np.inf)
        return [float(v) for v in np.clip(self.raw_outputs(examples, batch_size)[:, 0], low, high)]

    def _serve(self, text_a, text_b=None):
        low, high = self.spec.score_range or (-1e9, 1e9)
        score = self.model(self.encode_texts(text_a, text_b), training=False)[:, 0]
        return {"score": tf.clip_by_value(score, low, high)}


TASK_CLASS = STSTask
