"""Gold-data readers for the public benchmark formats (local or gs:// paths).

- NER: BioBERT TSV, `word<TAB>tag` (further columns allowed, the tag is the last one), a blank
  line between sentences, `-DOCSTART-` lines skipped.
- RE: TSV `id<TAB>sentence<TAB>label` or `sentence<TAB>label`, with or without a header
  (`index sentence label`); also JSON lines `{"text", "label"}`.
- HoC: TSV with header `labels<TAB>sentence<TAB>index`, labels like `0_0,1_1,...`.
- STS: TSV `pair_id<TAB>sent1<TAB>sent2<TAB>score` (or without pair_id), header optional.
- MedNLI: JSON lines with `sentence1`, `sentence2`, `gold_label`, `pairID`.
- BioASQ: BioBERT's SQuAD-format test batches and the BioASQ golden files.

Split files: `train.tsv`, `devel.tsv` or `dev.tsv`, `test.tsv` (SciBERT ChemProt: `<split>.txt`;
MedNLI: `mli_<split>_v1.jsonl` or `<split>.jsonl`). Rows without an id get their 0-based row
number (header excluded).

These are the only readers of the public formats: fine-tuning and the benchmark runner both read
their splits through `bioalbert_tf.evaluation.datasets`, which calls them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

from bioalbert_tf import fileio
from bioalbert_tf.evaluation import metrics


class FormatError(ValueError):
    """A malformed input file: names the file, the line and what was expected."""

    def __init__(self, path: str, line: int | None, expected: str, got: str | None = None):
        where = f"{path}:{line}" if line else str(path)
        message = f"{where}: expected {expected}"
        if got is not None:
            message += f"; got {got[:200]!r}"
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class NerSentence:
    words: tuple[str, ...]
    tags: tuple[str, ...]
    line: int = 0  # 1-based line of the first word (0: not read from a file)


@dataclasses.dataclass(frozen=True)
class Example:
    """One RE / HoC / NLI / STS row. label: the class or HoC label string; score: STS."""

    id: str
    text_a: str
    text_b: str | None = None
    label: str | None = None
    score: float | None = None
    line: int = 0


@dataclasses.dataclass(frozen=True)
class QaPair:
    """One (question, snippet) pair of a BioBERT SQuAD-format BioASQ test file."""

    question_id: str  # the BioASQ question id, shared by the question's snippets
    pair_id: str  # BioBERT's `<question id>_<snippet number>`
    question: str
    context: str
    answers: tuple[str, ...] = ()  # training files only; test batches have none


def read_text(path: str) -> str:
    with fileio.open_file(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise FormatError(path, line, "UTF-8 text", repr(data[e.start : e.start + 20])) from None


def lines_of(path: str) -> list[str]:
    # split("\n"), not splitlines(): biomedical text holds \x1c, \x85 and \u2028 inside lines.
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with fileio.open_file(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------- splits

_SPLIT_NAMES = {
    "train": ("train",),
    "dev": ("devel", "dev"),
    "devel": ("devel", "dev"),
    "test": ("test",),
    "train_dev": ("train_dev",),
}


def split_file(data_dir: str, split: str) -> str:
    """The file of a split, e.g. <data_dir>/devel.tsv or dev.tsv for split 'dev'; SciBERT's
    `<split>.txt` and MedNLI's `mli_<split>_v1.jsonl` / `<split>.jsonl` are found too."""
    if split not in _SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(_SPLIT_NAMES)}")
    names = [
        pattern.format(s)
        for pattern in ("{}.tsv", "{}.txt", "mli_{}_v1.jsonl", "{}.jsonl")
        for s in _SPLIT_NAMES[split]
    ]
    for name in names:
        path = fileio.join(data_dir, name)
        if fileio.exists(path):
            return path
    raise FileNotFoundError(f"{data_dir}: no {split} file (looked for {', '.join(names)})")


# ---------------------------------------------------------------------------------------- NER


def is_iob_tag(tag: str) -> bool:
    return tag in ("O", "B", "I", "E", "S") or (
        tag[:2] in ("B-", "I-", "E-", "S-") and len(tag) > 2
    )


def read_ner(path: str) -> list[NerSentence]:
    sentences: list[NerSentence] = []
    words: list[str] = []
    tags: list[str] = []
    first = 0

    def flush():
        if words:
            sentences.append(NerSentence(tuple(words), tuple(tags), first))
        words.clear()
        tags.clear()

    for number, line in enumerate(lines_of(path), start=1):
        if not line.strip():
            flush()
            continue
        fields = line.split("\t")
        if len(fields) == 1:
            fields = line.split()
        if fields[0].startswith("-DOCSTART-"):
            flush()
            continue
        if len(fields) < 2 or not fields[-1].strip() or not fields[0].strip():
            raise FormatError(path, number, "'word<TAB>tag' or a blank line", line)
        if not is_iob_tag(fields[-1].strip()):
            raise FormatError(path, number, "an IOB/IOBES tag (O, B, I, B-type, ...) last", line)
        if not words:
            first = number
        words.append(fields[0].strip())
        tags.append(fields[-1].strip())
    flush()
    return sentences


# ----------------------------------------------------------------------------- RE, HoC, STS

_ID_COLUMNS = ("index", "id", "pair_id", "pairid", "guid")
_TEXT_COLUMNS = ("sentence", "text", "sentence1", "sent1")
_LABEL_COLUMNS = ("label", "labels", "gold_label")


def _table(path: str) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """(header fields or None, [(line number, fields)]) of a TSV, blank lines skipped."""
    rows = [(n, line.split("\t")) for n, line in enumerate(lines_of(path), start=1) if line]
    if not rows:
        raise FormatError(path, None, "at least one row")
    first = [f.strip().lower() for f in rows[0][1]]
    # A header names a text column and a label column (GAD: index sentence label).
    if set(first) & set(_TEXT_COLUMNS) and set(first) & set(_LABEL_COLUMNS):
        return first, rows[1:]
    return None, rows


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def _check_width(path: str, rows, width: int, expected: str) -> None:
    for number, fields in rows:
        if len(fields) != width:
            raise FormatError(
                path, number, f"{width} tab-separated columns ({expected})", "\t".join(fields)
            )


def read_re(path: str) -> list[Example]:
    """RE TSV (with or without header / id column) or JSON lines {"text", "label"}."""
    lines = lines_of(path)
    if lines and lines[0].lstrip().startswith("{"):
        return _read_jsonl_re(path, lines)
    header, rows = _table(path)
    if header is not None:
        id_col, text_col = _column(header, _ID_COLUMNS), _column(header, _TEXT_COLUMNS)
        label_col = _column(header, _LABEL_COLUMNS)
        if text_col is None or label_col is None:
            raise FormatError(path, 1, "a header with sentence and label columns", str(header))
        _check_width(path, rows, len(header), "as many as the header")
    else:
        width = len(rows[0][1])
        if width not in (2, 3):
            raise FormatError(path, rows[0][0], "id<TAB>sentence<TAB>label or sentence<TAB>label")
        _check_width(path, rows, width, "id, sentence, label" if width == 3 else "sentence, label")
        id_col, text_col, label_col = (0, 1, 2) if width == 3 else (None, 0, 1)
    out = []
    for row, (number, fields) in enumerate(rows):
        ex_id = fields[id_col].strip() if id_col is not None else str(row)
        label = fields[label_col].strip()
        if not label:
            raise FormatError(path, number, "a non-empty label", "\t".join(fields))
        out.append(Example(ex_id, fields[text_col], label=label, line=number))
    return _unique_ids(path, out)


def _read_jsonl_re(path: str, lines: list[str]) -> list[Example]:
    out = []
    for row, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out.append(
                Example(str(obj.get("id", row)), obj["text"], label=str(obj["label"]), line=row + 1)
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise FormatError(
                path, row + 1, 'a JSON object with "text" and "label"', line
            ) from None
    return _unique_ids(path, out)


def _unique_ids(path: str, examples: list[Example]) -> list[Example]:
    seen: dict[str, int] = {}
    for ex in examples:
        if ex.id in seen:
            raise FormatError(
                path, ex.line, f"unique ids (id {ex.id!r} also on line {seen[ex.id]})"
            )
        seen[ex.id] = ex.line
    return examples


def read_hoc(path: str) -> list[Example]:
    """HoC TSV: `labels<TAB>sentence<TAB>index`; label strings are checked."""
    header, rows = _table(path)
    if header is not None:
        label_col, text_col = _column(header, _LABEL_COLUMNS), _column(header, _TEXT_COLUMNS)
        id_col = _column(header, _ID_COLUMNS)
        if label_col is None or text_col is None or id_col is None:
            raise FormatError(path, 1, "header labels<TAB>sentence<TAB>index", str(header))
        _check_width(path, rows, len(header), "as many as the header")
    else:
        _check_width(path, rows, 3, "labels, sentence, index")
        label_col, text_col, id_col = 0, 1, 2
    out = []
    for number, fields in rows:
        label = fields[label_col].strip()
        try:
            metrics.parse_hoc_labels(label)
        except ValueError as e:
            raise FormatError(path, number, f"HoC labels like '0_0,1_1,...' ({e})", label) from None
        out.append(Example(fields[id_col].strip(), fields[text_col], label=label, line=number))
    return _unique_ids(path, out)


def read_sts(path: str) -> list[Example]:
    """STS TSV: `pair_id<TAB>sent1<TAB>sent2<TAB>score` or `sent1<TAB>sent2<TAB>score`."""
    lines = lines_of(path)
    rows = [(n, line.split("\t")) for n, line in enumerate(lines, start=1) if line]
    if not rows:
        raise FormatError(path, None, "at least one row")
    try:
        float(rows[0][1][-1])
    except ValueError:
        rows = rows[1:]  # a header: its last field is not a number
    if not rows:
        raise FormatError(path, None, "at least one row after the header")
    width = len(rows[0][1])
    if width not in (3, 4):
        raise FormatError(path, rows[0][0], "pair_id<TAB>sent1<TAB>sent2<TAB>score")
    _check_width(
        path, rows, width, "pair_id, sent1, sent2, score" if width == 4 else "sent1, sent2, score"
    )
    out = []
    for row, (number, fields) in enumerate(rows):
        try:
            score = float(fields[-1])
        except ValueError:
            raise FormatError(
                path, number, "a numeric score in the last column", fields[-1]
            ) from None
        ex_id = fields[0].strip() if width == 4 else str(row)
        out.append(Example(ex_id, fields[-3], fields[-2], score=score, line=number))
    return _unique_ids(path, out)


def read_mednli(path: str) -> list[Example]:
    out = []
    for number, line in enumerate(lines_of(path), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            ex = Example(
                str(obj.get("pairID", len(out))),
                obj["sentence1"],
                obj["sentence2"],
                label=str(obj["gold_label"]),
                line=number,
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise FormatError(
                path, number, 'a JSON object with "sentence1", "sentence2", "gold_label"', line
            ) from None
        out.append(ex)
    return _unique_ids(path, out)


def read_examples(task: str, path: str) -> list[Example]:
    """The rows of a non-NER, non-QA task's file (task: re, doc_classification, nli, sts)."""
    readers = {"re": read_re, "doc_classification": read_hoc, "nli": read_mednli, "sts": read_sts}
    if task not in readers:
        raise ValueError(f"{path}: the {task} task has no example reader")
    return readers[task](path)


# ------------------------------------------------------------------------------------- BioASQ

_SNIPPET_SUFFIX = re.compile(r"^(.*)_(\d+)$")


def question_id(pair_id: str) -> str:
    """BioBERT's '56c073fcef6e394741000020_000' -> BioASQ's '56c073fcef6e394741000020'."""
    m = _SNIPPET_SUFFIX.match(pair_id)
    return m.group(1) if m else pair_id


def load_json(path: str):
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise FormatError(path, e.lineno, f"valid JSON ({e.msg})") from None


def read_squad(path: str) -> list[QaPair]:
    """(question, snippet) pairs of a SQuAD-format BioASQ file {"data": [{"paragraphs": ...}]}:
    BioBERT's test batches, and its training files (with answers)."""
    obj = load_json(path)
    out = []
    try:
        for article in obj["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    pid = str(qa["id"])
                    answers = tuple(a["text"] for a in qa.get("answers", []))
                    out.append(
                        QaPair(question_id(pid), pid, qa["question"], paragraph["context"], answers)
                    )
    except (KeyError, TypeError) as e:
        raise FormatError(
            path,
            None,
            f"SQuAD format data[].paragraphs[].{{context, qas[].{{id, question}}}} ({e})",
        ) from None
    return out


def read_bioasq_golden(path: str) -> dict[str, list[str]]:
    """{question id: accepted answers} for the factoid questions of a golden file."""
    obj = load_json(path)
    try:
        return {
            str(q["id"]): metrics.golden_synonyms(q["exact_answer"])
            for q in obj["questions"]
            if q.get("type") == "factoid"
        }
    except (KeyError, TypeError) as e:
        raise FormatError(
            path, None, f'{{"questions": [{{"id", "type", "exact_answer"}}]}} ({e})'
        ) from None


def bioasq_batches(data_dir: str, year: str) -> list[tuple[str, str, str]]:
    """[(batch name, test file, golden file)] of a year ('4b'): BioASQ-test-factoid-4b-N.json
    with 4BN_golden.json, N = 1..5."""
    tests = fileio.glob(fileio.join(data_dir, f"BioASQ-test-factoid-{year}-*.json"))
    out = []
    for test in tests:
        m = re.search(r"-(\d+)\.json$", test)
        if not m:
            continue
        n = m.group(1)
        golden = fileio.join(data_dir, f"{year.upper()}{n}_golden.json")
        if not fileio.exists(golden):
            raise FileNotFoundError(f"{test} has no golden file {golden}")
        out.append((f"{year}-{n}", test, golden))
    if not out:
        raise FileNotFoundError(f"no BioASQ-test-factoid-{year}-*.json in {data_dir}")
    return sorted(out, key=lambda b: int(b[0].rsplit("-", 1)[1]))
