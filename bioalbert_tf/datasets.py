"""The paper's 20 fine-tuning datasets: task, label set, metric, max length, and readers for the
formats people have (BioBERT/BLURB TSV, SciBERT ChemProt JSON lines, MedNLI JSON lines,
SQuAD-format BioASQ). Pure Python: the benchmark runner uses it too.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys

from bioalbert_tf import fileio

NER, RE, DOC, NLI, STS, QA = "ner", "re", "doc_classification", "nli", "sts", "qa"


class DatasetError(ValueError):
    """A malformed dataset file; the message names file, line and what was expected."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str
    metric: str  # entity_f1 | micro_f1 | hoc_f1 | accuracy | pearson | bioasq
    max_seq_length: int
    labels: tuple[str, ...] = ()  # empty: taken from the training file
    negative_labels: tuple[str, ...] = ()  # RE: excluded from micro F1
    score_range: tuple[float, float] | None = None  # STS
    file_format: str = "tsv"  # tsv | scibert_jsonl | mednli_jsonl | squad


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
        file_format="mednli_jsonl",
    ),
    DatasetSpec("medsts", STS, "pearson", 128, score_range=(0.0, 5.0)),
    DatasetSpec("biosses", STS, "pearson", 128, score_range=(0.0, 4.0)),
    DatasetSpec("bioasq4b", QA, "bioasq", 128, file_format="squad"),
    DatasetSpec("bioasq5b", QA, "bioasq", 128, file_format="squad"),
    DatasetSpec("bioasq6b", QA, "bioasq", 128, file_format="squad"),
]
REGISTRY = {s.name: s for s in _SPECS}


def get(name: str) -> DatasetSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


@dataclasses.dataclass
class NerSentence:
    words: list[str]
    tags: list[str]


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


SPLIT_FILES = {
    "train": ("train.tsv", "train.txt", "train.jsonl", "mli_train_v1.jsonl"),
    "dev": ("devel.tsv", "dev.tsv", "dev.txt", "dev.jsonl", "mli_dev_v1.jsonl"),
    "test": ("test.tsv", "test.txt", "test.jsonl", "mli_test_v1.jsonl"),
    "train_dev": ("train_dev.tsv",),
}


def split_path(data_dir: str, split: str) -> str:
    for name in SPLIT_FILES[split]:
        path = fileio.join(data_dir, name)
        if fileio.exists(path):
            return path
    raise FileNotFoundError(
        f"{data_dir}: no {split} file (looked for {', '.join(SPLIT_FILES[split])})"
    )


def _lines(path: str):
    with fileio.open_file(path, "r") as f:
        yield from enumerate(f, start=1)


def read_ner(path: str) -> list[NerSentence]:
    """CoNLL/BioBERT IOB TSV: `word<TAB>tag` (extra middle columns ignored), blank line between
    sentences, `-DOCSTART-` lines skipped; plain (B/I/O) or typed (B-Disease) tags."""
    sentences, words, tags = [], [], []
    for n, raw in _lines(path):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            if words:
                sentences.append(NerSentence(words, tags))
            words, tags = [], []
            continue
        if line.startswith("-DOCSTART-"):
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        tag = cols[-1].strip()
        if len(cols) < 2 or not (
            tag == "O" or tag[:2] in ("B-", "I-", "E-", "S-") or tag in ("B", "I")
        ):
            raise DatasetError(
                f"{path}:{n}: expected `word<TAB>tag` with an IOB tag, got {line[:80]!r}"
            )
        words.append(cols[0])
        tags.append(tag)
    if words:
        sentences.append(NerSentence(words, tags))
    return sentences


def _tsv_rows(path: str):
    csv.field_size_limit(sys.maxsize)
    with fileio.open_file(path, "r") as f:
        yield from enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1)


def read_classification_tsv(path: str, spec: DatasetSpec) -> list[TextExample]:
    """RE (`[id<TAB>]sentence<TAB>label`, optional header), HoC (`labels<TAB>sentence<TAB>index`),
    STS (`pair_id<TAB>sent1<TAB>sent2<TAB>score`)."""
    out = []
    for n, row in _tsv_rows(path):
        if not row or not any(c.strip() for c in row):
            continue
        if n == 1 and row[-1].strip().lower() in ("label", "score", "index"):
            continue  # a header row
        if spec.task == DOC:
            if len(row) != 3:
                raise DatasetError(
                    f"{path}:{n}: expected `labels<TAB>sentence<TAB>index`, got {len(row)} columns"
                )
            labels, sentence, index = row
            try:
                active = tuple(
                    i for i, v in (pair.split("_") for pair in labels.split(",")) if v == "1"
                )
            except ValueError:
                raise DatasetError(
                    f"{path}:{n}: expected labels like 0_0,1_1,..., got {labels[:60]!r}"
                ) from None
            out.append(TextExample(index, sentence, None, active))
        elif spec.task == STS:
            if len(row) != 4:
                raise DatasetError(
                    f"{path}:{n}: expected `pair_id<TAB>sent1<TAB>sent2<TAB>score`, got {len(row)} columns"
                )
            try:
                out.append(TextExample(row[0], row[1], row[2], float(row[3])))
            except ValueError:
                raise DatasetError(f"{path}:{n}: score {row[3]!r} is not a number") from None
        else:
            if len(row) == 2:
                ident, sentence, label = str(len(out)), row[0], row[1]
            elif len(row) == 3:
                ident, sentence, label = row
            else:
                raise DatasetError(
                    f"{path}:{n}: expected `[id<TAB>]sentence<TAB>label`, got {len(row)} columns"
                )
            label = label.strip()
            if spec.labels and label not in spec.labels:
                raise DatasetError(f"{path}:{n}: label {label!r} is not one of {list(spec.labels)}")
            out.append(TextExample(ident.strip(), sentence.strip(), None, label))
    return out


def read_scibert_jsonl(path: str) -> list[TextExample]:
    """SciBERT ChemProt: {"text": "... << chem >> ... [[ gene ]] ...", "label": ...} per line."""
    out = []
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            out.append(TextExample(str(len(out)), record["text"], None, record["label"]))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DatasetError(
                f"{path}:{n}: expected a JSON object with text and label ({e})"
            ) from None
    return out


def read_mednli(path: str) -> list[TextExample]:
    out = []
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            out.append(
                TextExample(
                    str(r.get("pairID", len(out))), r["sentence1"], r["sentence2"], r["gold_label"]
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DatasetError(
                f"{path}:{n}: expected sentence1, sentence2, gold_label ({e})"
            ) from None
    return out


def read_squad(path: str) -> list[QAExample]:
    """SQuAD-format BioASQ (BioBERT layout): one example per (question, snippet)."""
    with fileio.open_file(path, "r") as f:
        try:
            data = json.load(f)["data"]
        except (json.JSONDecodeError, KeyError) as e:
            raise DatasetError(f"{path}: expected SQuAD JSON with a `data` list ({e})") from None
    out = []
    for article in data:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                answers = [a["text"] for a in qa.get("answers", [])]
                out.append(QAExample(qa["id"], qa["question"], paragraph["context"], answers))
    return out


def read_split(name: str, data_dir: str, split: str):
    """The examples of one split of a registered dataset."""
    spec = get(name)
    path = split_path(data_dir, split) if spec.file_format != "squad" else data_dir
    if spec.task == NER:
        return read_ner(path)
    if spec.file_format == "mednli_jsonl" or path.endswith(".jsonl") and spec.task == NLI:
        return read_mednli(path)
    if path.endswith(".txt") and spec.task == RE:
        return read_scibert_jsonl(path)
    if spec.task == QA:
        return read_squad(path)
    return read_classification_tsv(path, spec)


def labels_for(name: str, data_dir: str) -> tuple[str, ...]:
    """The label set: the registry's, else the training file's (NER tags: O first, then sorted)."""
    spec = get(name)
    if spec.task == QA:
        return ()  # spans, no labels
    if spec.task == NER:
        tags = {t for s in read_ner(split_path(data_dir, "train")) for t in s.tags}
        return ("O", *sorted(tags - {"O"}))
    if spec.labels and not (
        spec.name == "chemprot" and split_path(data_dir, "train").endswith(".txt")
    ):
        return spec.labels
    return tuple(sorted({str(e.label) for e in read_split(name, data_dir, "train")}))
