"""Relation extraction (DDI, EU-ADR, GAD, ChemProt, i2b2): [CLS] classification of a sentence
whose entities are masked (@GENE$) or marked (<< >>, [[ ]])."""

from bioalbert_tf.tasks.base import SequenceClassificationTask


class RelationTask(SequenceClassificationTask):
    pair = False
