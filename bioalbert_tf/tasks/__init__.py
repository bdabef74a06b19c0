"""Task models for the paper's six tasks, one module each, one contract (`base.Task`), and the
mapping from a dataset's task to its class."""

from bioalbert_tf.evaluation import datasets
from bioalbert_tf.tasks.base import Task
from bioalbert_tf.tasks.doc_classification import DocClassificationTask
from bioalbert_tf.tasks.ner import NERTask
from bioalbert_tf.tasks.nli import NLITask
from bioalbert_tf.tasks.qa import QATask
from bioalbert_tf.tasks.relation import RelationTask
from bioalbert_tf.tasks.sts import STSTask

TASKS: dict[str, type[Task]] = {
    datasets.NER: NERTask,
    datasets.RE: RelationTask,
    datasets.DOC: DocClassificationTask,
    datasets.NLI: NLITask,
    datasets.STS: STSTask,
    datasets.QA: QATask,
}


def create_task(
    spec, labels, albert_config, spm_model: bytes, max_seq_length: int, **kwargs
) -> Task:
    """The Task object for a registered dataset spec (kwargs: do_lower_case, classifier_dropout)."""
    return TASKS[spec.task](spec, labels, albert_config, spm_model, max_seq_length, **kwargs)
