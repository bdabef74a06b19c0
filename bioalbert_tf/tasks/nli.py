"""Natural language inference (MedNLI): [CLS] classification of the pair (premise, hypothesis)."""

from bioalbert_tf.tasks.base import SequenceClassificationTask


class NLITask(SequenceClassificationTask):
    pair = True
