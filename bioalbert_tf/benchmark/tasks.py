"""The benchmark's datasets: name -> task, metric, negative labels, main metric key.

Tasks follow the paper's grouping (NER, RE, document classification, inference, sentence
similarity, QA); the BLURB-style score averages datasets within a task, then tasks.
"""

from __future__ import annotations

import dataclasses

from bioalbert_tf.benchmark import metrics

TASK_TITLES = {
    "ner": "Named entity recognition",
    "re": "Relation extraction",
    "doc_classification": "Document classification",
    "nli": "Inference",
    "sts": "Sentence similarity",
    "qa": "Question answering",
}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str  # as the papers spell it
    task: str  # a key of TASK_TITLES
    metric: str  # what main_key means, in words
    main_key: str  # key of the metrics dict that the report and the BLURB score use
    negative_labels: tuple[str, ...] = ()
    # RE only: the classes micro F1 counts; None = every non-negative label seen.
    positive_labels: tuple[str, ...] | None = None
    higher_is_better: bool = True
    bioasq_year: str | None = None  # "4b" for bioasq4b


_NER_METRIC = "entity-level F1 (conlleval exact match)"
_RE_METRIC = "micro F1 over the positive classes"


def _ner(name: str, title: str) -> DatasetSpec:
    return DatasetSpec(name, title, "ner", _NER_METRIC, "entity_f1")


def _re(name: str, title: str, positive: tuple[str, ...] | None = None) -> DatasetSpec:
    return DatasetSpec(name, title, "re", _RE_METRIC, "micro_f1", metrics.NEGATIVE_LABELS, positive)


def _qa(year: str) -> DatasetSpec:
    # MRR is BioASQ's official ranking measure for factoid questions; strict and lenient
    # accuracy are reported beside it.
    return DatasetSpec(
        f"bioasq{year}",
        f"BioASQ {year}",
        "qa",
        "MRR over the top 5 factoid answers (mean over the 5 batches)",
        "mrr",
        bioasq_year=year,
    )


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _ner("ncbi_disease", "NCBI-disease"),
        _ner("bc5cdr_disease", "BC5CDR-disease"),
        _ner("bc5cdr_chem", "BC5CDR-chem"),
        _ner("bc2gm", "BC2GM"),
        _ner("jnlpba", "JNLPBA"),
        _ner("linnaeus", "LINNAEUS"),
        _ner("s800", "Species-800"),
        _ner("share_clefe", "ShARe/CLEFE"),
        _re("ddi", "DDI"),
        _re("euadr", "EU-ADR"),
        _re("gad", "GAD"),
        _re("chemprot", "ChemProt", metrics.CHEMPROT_POSITIVE_LABELS),
        _re("i2b2", "i2b2-2010"),
        DatasetSpec(
            "hoc",
            "HoC",
            "doc_classification",
            "micro F1 over (abstract, label) pairs",
            "micro_f1",
        ),
        DatasetSpec("mednli", "MedNLI", "nli", "accuracy", "accuracy"),
        DatasetSpec("medsts", "MedSTS", "sts", "Pearson correlation", "pearson"),
        DatasetSpec("biosses", "BIOSSES", "sts", "Pearson correlation", "pearson"),
        _qa("4b"),
        _qa("5b"),
        _qa("6b"),
    )
}


def get(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def dataset_tasks() -> dict[str, str]:
    return {name: spec.task for name, spec in DATASETS.items()}
