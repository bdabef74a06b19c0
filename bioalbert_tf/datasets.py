"""The paper's 20 fine-tuning datasets: task, label set, metric, max length, and the examples of
each split in the formats people have (BioBERT/BLURB TSV, SciBERT ChemProt JSON lines, MedNLI JSON
lines, SQuAD-format BioASQ). The files are read by the benchmark's readers
(`bioalbert_tf.benchmark.data`), so fine-tuning and scoring accept the same files, with the same
errors. Pure Python.
"""

from __future__ import annotations

import dataclasses

from bioalbert_tf.benchmark import data as formats
from bioalbert_tf.benchmark import metrics

NER, RE, DOC, NLI, STS, QA = "ner", "re", "doc_classification", "nli", "sts", "qa"


# A malformed dataset file; the message names file, line and what was expected.
DatasetError = formats.FormatError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str
    metric: str  # entity_f1 | micro_f1 | hoc_f1 | accuracy | pearson | bioasq
    max_seq_length: int
    labels: tuple[str, ...] = ()  # empty: taken from the training file
    negative_labels: tuple[str, ...] = ()  # RE: excluded from micro F1
    score_range: tuple[float, float] | None = None  # STS


HOC_LABELS = tuple(str(i) for i in range(10))  # the 10 hallmarks, as indexed in the BLURB files
_SPECS = [
    DatasetSpec("ncbi_disease", NER, "entity_f1", 512),
    DatasetSpec("bc5cdr_disease", NER, "entity_f1", 512),
    DatasetSpec("bc5cdr_chem", NER, "entity_f1", 512),
    DatasetSpec("bc2gm", NER, "entity_f1", 512),
    DatasetSpec("jnlpba", NER, "entity_f1", 512),
    DatasetSpec("linnaeus", NER, "entity_f1", 512),
    DatasetSpec("s800", NER, "entity_f1", 512),
    DatasetSpec("share_clefe", NER, "entity_f1", 512),
    DatasetSpec(
        "ddi",
        RE,
        "micro_f1",
        128,
        ("DDI-advise", "DDI-effect", "DDI-int", "DDI-mechanism", "DDI-false"),
        ("DDI-false",),
    ),
    DatasetSpec("euadr", RE, "micro_f1", 128, ("0", "1"), ("0",)),
    DatasetSpec("gad", RE, "micro_f1", 128, ("0", "1"), ("0",)),
    DatasetSpec(
        "chemprot",
        RE,
        "micro_f1",
        128,
        ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false"),
        ("false",),
    ),
    DatasetSpec(
        "i2b2",
        RE,
        "micro_f1",
        128,
        ("PIP", "TeCP", "TeRP", "TrAP", "TrCP", "TrIP", "TrNAP", "TrWP", "false"),
        ("false",),
    ),
    DatasetSpec("hoc", DOC, "hoc_f1", 128, HOC_LABELS),
    DatasetSpec(
        "mednli",
        NLI,
        "accuracy",
        128,
        ("contradiction", "entailment", "neutral"),
    ),
    DatasetSpec("medsts", STS, "pearson", 128, score_range=(0.0, 5.0)),
    DatasetSpec("biosses", STS, "pearson", 128, score_range=(0.0, 4.0)),
    DatasetSpec("bioasq4b", QA, "bioasq", 128),
    DatasetSpec("bioasq5b", QA, "bioasq", 128),
    DatasetSpec("bioasq6b", QA, "bioasq", 128),
]
REGISTRY = {s.name: s for s in _SPECS}


def get(name: str) -> DatasetSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


NerSentence = formats.NerSentence


@dataclasses.dataclass
class TextExample:
    id: str
    text_a: str
    text_b: str | None
    label: object  # str (RE, NLI), float (STS), tuple of active label names (HoC)


@dataclasses.dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[str]  # training answers (text); empty for test batches


def read_squad(path: str) -> list[QAExample]:
    """SQuAD-format BioASQ (BioBERT layout): one example per (question, snippet)."""
    return [
        QAExample(p.pair_id, p.question, p.context, list(p.answers))
        for p in formats.read_squad(path)
    ]


def _declared_labels(spec: DatasetSpec, path: str) -> tuple[str, ...]:
    """The label set a file must use: the registry's, except SciBERT's ChemProt files (`.txt`),
    which name their classes differently and so define their own (empty: read from the file)."""
    if spec.name == "chemprot" and path.endswith(".txt"):
        return ()
    return spec.labels


def _text_example(
    spec: DatasetSpec, path: str, declared: tuple[str, ...], row: formats.Example
) -> TextExample:
    if spec.task == DOC:
        active = metrics.parse_hoc_labels(row.label)
        label = tuple(str(i) for i, on in sorted(active.items()) if on)
    elif spec.task == STS:
        label = row.score
    else:
        label = row.label
        if declared and label not in declared:
            raise DatasetError(path, row.line, f"a label in {list(declared)}", label)
    text_b = row.text_b.strip() if row.text_b is not None else None
    return TextExample(row.id, row.text_a.strip(), text_b, label)


def read_split(name: str, data_dir: str, split: str):
    """The examples of one split of a registered dataset: NerSentence (NER), QAExample (QA, read
    from the SQuAD file `data_dir`), else TextExample."""
    spec = get(name)
    if spec.task == QA:
        return read_squad(data_dir)
    path = formats.split_file(data_dir, split)
    if spec.task == NER:
        return formats.read_ner(path)
    declared = _declared_labels(spec, path)
    return [
        _text_example(spec, path, declared, row) for row in formats.read_examples(spec.task, path)
    ]


def labels_for(name: str, data_dir: str) -> tuple[str, ...]:
    """The label set: the registry's, else the training file's (NER tags: O first, then sorted)."""
    spec = get(name)
    if spec.task == QA:
        return ()  # spans, no labels
    if spec.task == NER:
        tags = {t for s in formats.read_ner(formats.split_file(data_dir, "train")) for t in s.tags}
        return ("O", *sorted(tags - {"O"}))
    declared = _declared_labels(spec, formats.split_file(data_dir, "train"))
    if declared:
        return declared
    return tuple(sorted({str(e.label) for e in read_split(name, data_dir, "train")}))
