"""Document classification (HoC): multi-label (sigmoid per hallmark) on [CLS] of each sentence;
the decision threshold is chosen on dev after training (`after_training`); BLURB scores per
abstract. Predictions are label strings in the gold format (`0_1,1_0,...`)."""

import keras
import numpy as np
import tensorflow as tf

from bioalbert_tf.evaluation import metrics
from bioalbert_tf.tasks.base import SequenceClassificationTask

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


class DocClassificationTask(SequenceClassificationTask):
    threshold = 0.5
    head_name, model_suffix = "multilabel_classifier", "multilabel"

    def targets(self, examples):
        index = {label: i for i, label in enumerate(self.labels)}
        y = np.zeros((len(examples), len(self.labels)), np.float32)
        for row, e in enumerate(examples):
            for hallmark, on in metrics.parse_hoc_labels(e.label).items():
                if on:
                    y[row, index[str(hallmark)]] = 1.0
        return y

    def loss(self):
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def probabilities(self, examples, batch_size=32):
        return 1.0 / (1.0 + np.exp(-self.raw_outputs(examples, batch_size)))

    def label_strings(self, probabilities, threshold: float) -> list[str]:
        """[rows, labels] probabilities -> gold-format strings `0_1,1_0,...` at a threshold."""
        return [
            ",".join(
                f"{name}_{int(p >= threshold)}" for name, p in zip(self.labels, row, strict=True)
            )
            for row in probabilities
        ]

    def predict(self, examples, batch_size: int = 32):
        return self.label_strings(self.probabilities(examples, batch_size), self.threshold)

    def after_training(self, dev_rows, score, batch_size):
        """The threshold in 0.05..0.95 with the best dev score (ties: the one nearest 0.5)."""
        if not dev_rows:
            return {"threshold": self.threshold, "threshold_chosen_on": None}
        p = self.probabilities(dev_rows, batch_size)
        best = max(THRESHOLDS, key=lambda t: (score(self.label_strings(p, t)), -abs(t - 0.5)))
        self.threshold = float(best)
        return {"threshold": self.threshold, "threshold_chosen_on": "dev"}

    def _serve(self, text_a, text_b=None):
        probs = tf.sigmoid(self.model(self.encode_texts(text_a), training=False))
        names = tf.broadcast_to(tf.constant(self.labels), tf.shape(probs))
        return {
            "probabilities": probs,
            "active": tf.cast(probs >= self.threshold, tf.int32),
            "label_names": names,
        }
