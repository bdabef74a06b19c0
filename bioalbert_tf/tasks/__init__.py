"""Task models for the paper's six tasks, one module each, one contract (`base.Task`)."""

import importlib

from bioalbert_tf import datasets

MODULES = {
    datasets.NER: "ner",
    datasets.RE: "relation",
    datasets.DOC: "doc_classification",
    datasets.NLI: "nli",
    datasets.STS: "sts",
    datasets.QA: "qa",
}


def create_task(
    spec, labels, albert_config, spm_model: bytes, max_seq_length: int, do_lower_case: bool = True
):
    """The Task object for a registered dataset spec."""
    module = importlib.import_module(f"bioalbert_tf.tasks.{MODULES[spec.task]}")
    return module.TASK_CLASS(spec, labels, albert_config, spm_model, max_seq_length, do_lower_case)
