"""The paper's 20 datasets, in one registry: task, label set, metric, default length, and how to
read each split (gold files in the public formats, numbered cross-validation folds).

Fine-tuning and the benchmark runner both read datasets through this module, so a file that
trains also scores, with the same label checks and the same errors. Pure Python.
"""

from __future__ import annotations

import dataclasses
import re

from absl import logging

from bioalbert_tf import fileio
from bioalbert_tf.evaluation import formats, metrics

NER, RE, DOC, NLI, STS, QA = "ner", "re", "doc_classification", "nli", "sts", "qa"
TASK_TITLES = {
    NER: "Named entity recognition",
    RE: "Relation extraction",
    DOC: "Document classification",
    NLI: "Inference",
    STS: "Sentence similarity",
    QA: "Question answering",
}
HOC_LABELS = tuple(str(i) for i in range(10))  # the 10 hallmarks, as indexed in the BLURB files

# A malformed dataset file; the message names file, line and what was expected.
DatasetError = formats.FormatError


@dataclasses.dataclass(frozen=True)
class Convention:
    """How a dataset's published numbers are computed: named in metrics.json and report.md."""

    name: str  # short: "conlleval (BioBERT)", "BLURB", "official BioASQ", ...
    matches: str  # the published scorer or pipeline whose numbers it reproduces


CONLLEVAL = Convention(
    "conlleval (BioBERT)",
    "conlleval.pl as BioBERT runs it (and seqeval's default mode): exact-match entity spans",
)
BLURB_RE = Convention(
    "BLURB",
    "BLURB / BLUE: micro F1 over the relation classes, the negative class left out "
    "(scikit-learn f1_score(average='micro', labels=positive classes))",
)
BIOBERT_BINARY = Convention(
    "BioBERT re_eval (binary)",
    "BioBERT's re_eval.py --task=binary and BLURB: F1 of the positive class '1'",
)
SCIBERT_RE = Convention(
    "SciBERT",
    "SciBERT's ChemProt files (13 named classes, no negative class): micro F1 over all classes",
)
BLURB_HOC = Convention(
    "BLURB",
    "BLURB: micro F1 over (abstract, label) pairs, an abstract's labels the union of its "
    "sentences'; BLUE's example-based F1 (eval_hoc.py) and the macro F1 are reported beside it",
)
ACCURACY = Convention("BLUE", "BLUE: accuracy over the test pairs")
PEARSON = Convention("BLUE", "BLUE / BLURB: Pearson correlation (scipy.stats.pearsonr)")
OFFICIAL_BIOASQ = Convention(
    "official BioASQ",
    "the official BioASQ evaluator (EvaluatorTask1b -phaseB -e 5): lowercased, unstripped "
    "matching against the golden synonyms; a question's answers merged over its snippets as "
    "BioBERT's transform_nbset2bioasqform.py does; the mean over a year's 5 batches",
)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str  # as the papers spell it
    task: str  # a key of TASK_TITLES
    metric: str  # what main_key means, in words
    main_key: str  # key of the metrics dict that fine-tuning, the report and BLURB use
    max_seq_length: int  # the paper's: 512 for NER, 128 otherwise
    labels: tuple[str, ...] = ()  # empty: taken from the training file (NER tags)
    negative_labels: tuple[str, ...] = ()  # RE: left out of micro F1
    # RE only: the classes micro F1 counts; None = every label that is not negative.
    positive_labels: tuple[str, ...] | None = None
    score_range: tuple[float, float] | None = None  # STS: predictions are clipped to it
    bioasq_year: str | None = None  # "4b" for bioasq4b
    # BioBERT also publishes 10-fold cross-validation folders (1/ ... 10/) for it; the paper
    # reports the official split. Both run (see find_folds).
    folds: bool = False
    higher_is_better: bool = True
    convention: Convention = CONLLEVAL
    # Files of another published format that define their own classes and scoring:
    # (file name suffix, the spec those files are read and scored with).
    variants: tuple[tuple[str, DatasetSpec], ...] = ()


_NER_METRIC = "entity-level F1 (conlleval exact match)"
_RE_METRIC = "micro F1 over the positive classes"


def _ner(name: str, title: str) -> DatasetSpec:
    return DatasetSpec(name, title, NER, _NER_METRIC, "entity_f1", 512)


def _re(
    name, title, labels, negative, positive=None, folds=False, convention=BLURB_RE, variants=()
) -> DatasetSpec:
    return DatasetSpec(
        name,
        title,
        RE,
        _RE_METRIC,
        "micro_f1",
        128,
        labels,
        negative,
        positive,
        folds=folds,
        convention=convention,
        variants=variants,
    )


def _qa(year: str) -> DatasetSpec:
    # The paper reports BioASQ factoid as lenient accuracy; strict accuracy and MRR beside it.
    return DatasetSpec(
        f"bioasq{year}",
        f"BioASQ {year}",
        QA,
        "lenient accuracy over the top 5 factoid answers (mean over the 5 batches)",
        "lenient_accuracy",
        128,
        bioasq_year=year,
        convention=OFFICIAL_BIOASQ,
    )


_CHEMPROT = ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false")
_DDI = ("DDI-advise", "DDI-effect", "DDI-int", "DDI-mechanism", "DDI-false")
_I2B2 = ("PIP", "TeCP", "TeRP", "TrAP", "TrCP", "TrIP", "TrNAP", "TrWP", "false")
# SciBERT's ChemProt (`train.txt`, JSON lines): its classes are read from the training file.
_CHEMPROT_SCIBERT = DatasetSpec(
    "chemprot",
    "ChemProt",
    RE,
    "micro F1 over all classes",
    "micro_f1",
    128,
    convention=SCIBERT_RE,
)

REGISTRY: dict[str, DatasetSpec] = {
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
        _re("ddi", "DDI", _DDI, ("DDI-false",)),
        _re("euadr", "EU-ADR", ("0", "1"), ("0",), folds=True, convention=BIOBERT_BINARY),
        _re("gad", "GAD", ("0", "1"), ("0",), folds=True, convention=BIOBERT_BINARY),
        _re(
            "chemprot",
            "ChemProt",
            _CHEMPROT,
            ("false",),
            metrics.CHEMPROT_POSITIVE_LABELS,
            variants=((".txt", _CHEMPROT_SCIBERT),),
        ),
        _re("i2b2", "i2b2-2010", _I2B2, ("false",)),
        DatasetSpec(
            "hoc",
            "HoC",
            DOC,
            "micro F1 over (abstract, label) pairs",
            "micro_f1",
            128,
            HOC_LABELS,
            convention=BLURB_HOC,
        ),
        DatasetSpec(
            "mednli",
            "MedNLI",
            NLI,
            "accuracy",
            "accuracy",
            128,
            ("contradiction", "entailment", "neutral"),
            convention=ACCURACY,
        ),
        DatasetSpec(
            "medsts",
            "MedSTS",
            STS,
            "Pearson correlation",
            "pearson",
            128,
            score_range=(0.0, 5.0),
            convention=PEARSON,
        ),
        DatasetSpec(
            "biosses",
            "BIOSSES",
            STS,
            "Pearson correlation",
            "pearson",
            128,
            score_range=(0.0, 4.0),
            convention=PEARSON,
        ),
        _qa("4b"),
        _qa("5b"),
        _qa("6b"),
    )
}


def get(name: str) -> DatasetSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def dataset_tasks() -> dict[str, str]:
    return {name: spec.task for name, spec in REGISTRY.items()}


# ----------------------------------------------------------------------------------- splits


def for_file(spec: DatasetSpec, path: str) -> DatasetSpec:
    """The spec a file is read and scored with: the registry's, or that of the published
    format the file is in (SciBERT's ChemProt `.txt` files name 13 classes of their own)."""
    for suffix, variant in spec.variants:
        if str(path).endswith(suffix):
            return variant
    return spec


def declared_labels(spec: DatasetSpec, path: str) -> tuple[str, ...]:
    """The label set a file must use (empty: any, read from the training file)."""
    return for_file(spec, path).labels


def read_split(spec: DatasetSpec, data_dir: str, split: str, optional: bool = False):
    """The gold rows of one split: NerSentence (NER), Example (RE, HoC, NLI, STS); QA splits are
    SQuAD files (`read_qa_training`, `bioasq_batches`).

    Labels outside the dataset's declared set are refused, naming file and line. optional: a
    missing split or one without rows gives [] (BioBERT's cross-validation folds ship an empty
    dev.tsv) instead of an error.
    """
    if spec.task == QA:
        raise ValueError(f"{spec.name}: QA data are SQuAD files; see read_qa_training")
    try:
        path = formats.split_file(data_dir, split)
    except FileNotFoundError:
        if optional:
            return []
        raise
    if optional and not formats.read_text(path).strip():
        return []
    if spec.task == NER:
        return formats.read_ner(path)
    rows = formats.read_examples(spec.task, path)
    declared = declared_labels(spec, path)
    if spec.task in (RE, NLI) and declared:
        for row in rows:
            if row.label not in declared:
                raise DatasetError(path, row.line, f"a label in {list(declared)}", row.label)
    return rows


def labels_for(spec: DatasetSpec, data_dir: str) -> tuple[str, ...]:
    """The label set: the registry's, else the training file's (NER tags: O first, then sorted)."""
    if spec.task == QA:
        return ()  # spans, no labels
    if spec.task == NER:
        tags = {t for s in read_split(spec, data_dir, "train") for t in s.tags}
        return ("O", *sorted(tags - {"O"}))
    declared = declared_labels(spec, formats.split_file(data_dir, "train"))
    if declared:
        return declared
    return tuple(sorted({str(e.label) for e in read_split(spec, data_dir, "train")}))


def check_known_tags(sentences, labels, path: str) -> None:
    """NER tags of dev/test files must be tags the model can predict (the training file's): a
    type seen only in test would otherwise count as missed entities without a word."""
    known = set(labels)
    for sentence in sentences:
        for k, tag in enumerate(sentence.tags):
            if tag not in known:
                raise DatasetError(
                    path,
                    sentence.line + k if sentence.line else None,
                    f"a tag of the training file ({', '.join(labels)})",
                    tag,
                )


def warn_long_sentences(sentences, window: int, path: str) -> str | None:
    """Warns (and returns the warning) when NER sentences have more words than a window holds
    pieces: they are split into overlapping windows, which is right for long sentences but
    usually means a file without blank lines between its sentences (all one 'sentence')."""
    long = [s for s in sentences if len(s.words) > window]
    if not long:
        return None
    worst = max(long, key=lambda s: len(s.words))
    message = (
        f"{path}: {len(long)} sentence(s) have more words than a window of {window} pieces "
        f"(the longest, {len(worst.words)} words, starts at line {worst.line}); they are tagged "
        "in overlapping windows. If the file has no blank lines between sentences, add them."
    )
    logging.warning("%s", message)
    return message


def read_qa_training(data_dir: str) -> list[formats.QaPair]:
    """SQuAD-format training files of a BioASQ folder (BioBERT layout: *train*.json)."""
    files = [
        p
        for p in fileio.glob(fileio.join(data_dir, "*.json"))
        if "train" in fileio.basename(p).lower()
    ]
    if not files:
        raise FileNotFoundError(f"{data_dir}: no SQuAD-format training file (*train*.json)")
    return [pair for path in sorted(files) for pair in formats.read_squad(path)]


# ------------------------------------------------------------------------ cross-validation


def find_folds(data_dir: str) -> list[tuple[int, str]]:
    """[(k, folder)] of the numbered fold folders `1/`, `2/`, ... in data_dir, by number; [] when
    data_dir holds none (an ordinary split folder)."""
    if not fileio.isdir(data_dir):
        raise FileNotFoundError(f"data folder not found: {data_dir}")
    out = []
    for name in fileio.listdir(data_dir):
        name = name.rstrip("/")
        if re.fullmatch(r"\d+", name) and fileio.isdir(fileio.join(data_dir, name)):
            out.append((int(name), fileio.join(data_dir, name)))
    return sorted(out)


def select_folds(available: list[tuple[int, str]], wanted: str | None, where: str):
    """The folds named in `wanted` ('1,3'; None or '' = all), each checked to exist."""
    if not wanted:
        return available
    have = dict(available)
    out = []
    for item in wanted.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) not in have:
            raise ValueError(
                f"--folds={wanted}: fold {item!r} is not among the folds of {where} "
                f"({', '.join(str(k) for k, _ in available) or 'none'})"
            )
        out.append((int(item), have[int(item)]))
    return out
