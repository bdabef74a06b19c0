"""Scoring: gold rows + predictions -> the metrics of the dataset's task, and `evaluate`, which
runs any predictor (a fine-tuned Keras task or a SavedModel signature) over a gold split,
writes the prediction file and scores it. Fine-tuning and the benchmark runner both call it.

What a predictor returns, per task, one value per gold row, in order:
- NER: the word-level tags of each sentence;
- RE / MedNLI: a label; HoC: a label string in the gold format `0_1,1_0,...`; STS: a float;
- QA: for each (question, snippet) pair, its answers as [(text, probability), ...].
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Sequence

from absl import logging

from bioalbert_tf import fileio
from bioalbert_tf.evaluation import datasets, formats, metrics, predictions
from bioalbert_tf.evaluation.datasets import DatasetSpec
from bioalbert_tf.evaluation.formats import Example, FormatError
from bioalbert_tf.settings import setting


def with_header(spec: DatasetSpec, scores: dict) -> dict:
    """Dataset, task, the main metric and the convention that computed it first, then every
    metric of the task. main_score is None where the metric is undefined (STS on constant
    predictions)."""
    return {
        "dataset": spec.name,
        "task": spec.task,
        "metric": spec.metric,
        "main_key": spec.main_key,
        "main_score": scores[spec.main_key],
        "convention": spec.convention.name,
        "convention_matches": spec.convention.matches,
        **scores,
    }


def _where(where: Sequence[str] | None, i: int) -> str:
    return where[i] if where else f"prediction {i}"


def check_labels(spec: DatasetSpec, allowed, predicted, where=None) -> None:
    """A predicted label outside the dataset's set is an error, not a silent miss (or, for a
    label the scorer does not know to be negative, a silent positive)."""
    allowed = set(allowed)
    for i, value in enumerate(predicted):
        if str(value) not in allowed:
            raise FormatError(
                _where(where, i), None, f"a {spec.name} label in {sorted(allowed)}", str(value)
            )


def check_ner_tags(gold: Sequence[Sequence[str]], predicted, where: str) -> None:
    """Predicted tags must be IOB/IOBES tags of the gold file's entity types: untyped `B`/`I`
    against typed gold (or a type the gold never uses) would score 0 without a word."""
    types = {metrics.split_tag(t)[1] for sentence in gold for t in sentence if t != "O"}
    for n, tags in enumerate(predicted):
        for tag in tags:
            if tag == "O":
                continue
            if not formats.is_iob_tag(tag) or (types and metrics.split_tag(tag)[1] not in types):
                expected = ", ".join(sorted(f"B-{t}" if t else "B" for t in types)) or "O"
                raise FormatError(
                    where,
                    None,
                    f"in sentence {n + 1}, IOB tags of the gold's "
                    f"entity types (O, {expected}, ...)",
                    tag,
                )


def score_examples(
    spec: DatasetSpec,
    gold: Sequence[Example],
    predicted: Sequence[str | float],
    where: Sequence[str] | None = None,
) -> dict:
    """Metrics of RE / HoC / NLI / STS predictions given in gold order, by spec's convention
    (`datasets.for_file` gives the spec of a gold file's format).

    where: 'file:line' of each prediction, for errors about its value. RE / NLI predictions must
    be labels of spec.labels (any label where it is empty: files that name their own classes).
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{spec.name}: {len(predicted)} predictions for {len(gold)} gold rows")
    if spec.task in (datasets.RE, datasets.NLI) and spec.labels:
        check_labels(spec, spec.labels, predicted, where)
    if spec.task == datasets.RE:
        return metrics.re_scores(
            [ex.label for ex in gold],
            [str(p) for p in predicted],
            spec.negative_labels,
            spec.positive_labels,
        )
    if spec.task == datasets.DOC:
        for i, value in enumerate(predicted):
            try:
                metrics.parse_hoc_labels(str(value))
            except ValueError as e:
                raise FormatError(
                    _where(where, i), None, f"HoC labels like '0_1,1_0,...' ({e})", str(value)
                ) from None
        return metrics.hoc_scores([ex.id for ex in gold], [ex.label for ex in gold], predicted)
    if spec.task == datasets.NLI:
        return metrics.classification_scores([ex.label for ex in gold], [str(p) for p in predicted])
    if spec.task == datasets.STS:
        values = []
        for i, value in enumerate(predicted):
            try:
                values.append(float(value))
            except ValueError:
                raise FormatError(_where(where, i), None, "a number", str(value)) from None
            if not math.isfinite(values[-1]):
                raise FormatError(_where(where, i), None, "a finite number", str(value))
        return metrics.sts_scores([ex.score for ex in gold], values)
    raise ValueError(f"{spec.name}: {spec.task} is not scored from examples")


def score_ner(gold: Sequence[formats.NerSentence], tags, where: str = "predictions") -> dict:
    gold_tags = [s.tags for s in gold]
    check_ner_tags(gold_tags, tags, where)
    return metrics.ner_scores(gold_tags, tags)


def expand_paths(paths: str | Sequence[str]) -> list[str]:
    """Gold files, in the order given (`fileio.expand`)."""
    return fileio.expand(paths, "gold files", in_order=True)


def batch_name(golden_path: str) -> str:
    """'.../4B1_golden.json' -> '4B1'."""
    name = fileio.basename(golden_path)
    return name[: -len("_golden.json")] if name.endswith("_golden.json") else name


_GOLDEN_NAME = re.compile(r"^(\d+)[Bb]\d+_golden\.json$")


def check_golden_year(spec: DatasetSpec, golden_path: str) -> None:
    """A golden file named like BioASQ's (`6B2_golden.json`) must be of the dataset's year."""
    m = _GOLDEN_NAME.match(fileio.basename(golden_path))
    if m and f"{m.group(1)}b" != spec.bioasq_year:
        raise ValueError(
            f"{golden_path} is a golden file of BioASQ {m.group(1)}b, not of "
            f"{spec.name} ({spec.bioasq_year}); pass --dataset=bioasq{m.group(1)}b"
        )


def read_goldens(spec: DatasetSpec, golden_paths: Sequence[str]) -> dict[str, dict]:
    """{batch name: {question id: golden synonyms}} of the golden files, each checked to be of
    the dataset's year."""
    out = {}
    for path in golden_paths:
        check_golden_year(spec, path)
        out[batch_name(path)] = formats.read_bioasq_golden(path)
    return out


def score_bioasq(
    goldens: dict[str, dict],
    answers: dict[str, Sequence[str]],
    where: str = "predictions",
    sources: str = "the golden files",
) -> dict:
    """Per-batch and mean scores of {question id: answers} against `read_goldens`' batches
    (`sources` names their files in errors). Every factoid question needs an entry (`[]`: no
    answer), and no other question id may appear: a file for another batch or year is refused,
    not scored 0."""
    known = {q for golden in goldens.values() for q in golden}
    missing = [q for golden in goldens.values() for q in golden if q not in answers]
    if missing:
        raise FormatError(
            where,
            None,
            f"answers for every factoid question of "
            f"{sources} ({len(missing)} of {len(known)} missing, "
            f"e.g. {missing[:3]}; write [] for a question without answers)",
        )
    unknown = [q for q in answers if q not in known]
    if unknown:
        raise FormatError(
            where,
            None,
            f"only question ids of {sources} ({len(unknown)} others)",
            unknown[0],
        )
    batches = {
        name: metrics.bioasq_factoid_scores(golden, {q: answers[q] for q in golden})
        for name, golden in goldens.items()
    }
    return metrics.bioasq_year_scores(batches)


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """The score command line's settings (its flags are generated from these fields)."""

    dataset: str = setting(
        help="Which dataset (sets the metric).", choices=tuple(datasets.REGISTRY)
    )
    gold: str = setting(
        help="Gold file; BioASQ: golden file(s), comma-separated and/or glob patterns."
    )
    predictions: str = setting(help="Prediction file (BioBERT NER: label_test.txt).")
    tokens: str | None = setting(None, "NER only: BioBERT's token_test.txt beside --predictions.")
    output: str | None = setting(None, "Where to write the metrics JSON (default: stdout only).")


def score_files(
    dataset: str, gold: str | Sequence[str], predictions_path: str, tokens: str | None = None
) -> dict:
    """Reads the gold and prediction files of a dataset and returns its metrics."""
    spec = datasets.get(dataset)
    if tokens and spec.task != datasets.NER:
        raise ValueError("--tokens is for NER prediction pairs only")
    if spec.task == datasets.QA:
        answers = predictions.read_bioasq(predictions_path)
        paths = expand_paths(gold)
        scores = score_bioasq(
            read_goldens(spec, paths), answers, predictions_path, ", ".join(paths)
        )
        return with_header(spec, scores)
    if not isinstance(gold, str):
        raise ValueError(f"{dataset}: one gold file expected, got {gold}")
    spec = datasets.for_file(spec, gold)
    if spec.task == datasets.NER:
        sentences = formats.read_ner(gold)
        stream = (
            predictions.read_biobert_pair(tokens, predictions_path)
            if tokens
            else predictions.read_ner_tokens(predictions_path)
        )
        tags = predictions.align_ner(sentences, stream, gold)
        return with_header(spec, score_ner(sentences, tags, predictions_path))
    examples = formats.read_examples(spec.task, gold)
    matched = predictions.match_predictions(
        examples, predictions.read_id_predictions(predictions_path), predictions_path, gold
    )
    values = [v for v, _ in matched]
    where = [f"{predictions_path}:{n}" for _, n in matched]
    return with_header(spec, score_examples(spec, examples, values, where))


# --------------------------------------------------------------------------------- evaluate


@dataclasses.dataclass(frozen=True)
class Gold:
    """The gold rows of one split and the files they came from (QA: every batch's test and
    golden file; `goldens` holds the golden files' questions, as `read_goldens` gives them)."""

    spec: DatasetSpec
    split: str
    rows: list
    files: list[str]
    goldens: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)


def load_gold(spec: DatasetSpec, data_dir: str, split: str, optional: bool = False) -> Gold:
    """A split's gold rows. optional: a missing or empty split gives an empty Gold."""
    if spec.task == datasets.QA:
        if split != "test":
            raise ValueError(f"{spec.name}: only the test batches exist, not {split!r}")
        batches = formats.bioasq_batches(data_dir, spec.bioasq_year)
        pairs = []
        goldens = read_goldens(spec, [golden for _, _, golden in batches])
        for _, test, golden in batches:
            batch_pairs = formats.read_squad(test)
            factoid = goldens[batch_name(golden)]
            foreign = sorted({p.question_id for p in batch_pairs} - set(factoid))
            if foreign:
                raise FormatError(
                    test,
                    None,
                    f"only factoid questions of {golden} ({len(foreign)} others)",
                    foreign[0],
                )
            pairs += batch_pairs
        files = [f for _, test, golden in batches for f in (test, golden)]
        return Gold(spec, split, pairs, files, goldens)
    rows = datasets.read_split(spec, data_dir, split, optional=optional)
    files = [formats.split_file(data_dir, split)] if rows else []
    return Gold(datasets.for_file(spec, files[0]) if files else spec, split, rows, files)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    scores: dict  # with_header(...): dataset, task, main_key, main_score, then every metric
    predictions_path: str | None
    num_examples: int
    predict_seconds: float  # the predictor's time only


def merge_pair_answers(
    pairs: Sequence[formats.QaPair], answers, rule: str = predictions.MERGE_BIOBERT
) -> dict[str, list[str]]:
    """Per-pair [(text, probability)] -> {question id: its top answers over all its snippets},
    merged by `rule` (predictions.MERGE_RULES)."""
    grouped: dict[str, tuple[list, list]] = {}
    for pair, pair_answers in zip(pairs, answers, strict=True):
        texts, probs = grouped.setdefault(pair.question_id, ([], []))
        texts.append([t for t, _ in pair_answers])
        probs.append([p for _, p in pair_answers])
    return {qid: predictions.merge_answers(t, p, rule=rule) for qid, (t, p) in grouped.items()}


def evaluate(
    gold: Gold,
    predict: Callable,
    predictions_path: str | None = None,
    answer_merge: str = predictions.MERGE_BIOBERT,
) -> Evaluation:
    """Runs predict(gold.rows), checks one prediction per row, writes the prediction file (in the
    format `python -m bioalbert_tf.benchmark.score` reads) and scores it. answer_merge: how a
    BioASQ question's answers are merged over its snippets (predictions.MERGE_RULES)."""
    spec = gold.spec
    if not gold.rows:
        raise ValueError(f"{spec.name} {gold.split}: no gold rows to evaluate on")
    t0 = time.perf_counter()
    predicted = list(predict(gold.rows))
    seconds = time.perf_counter() - t0
    if len(predicted) != len(gold.rows):
        raise ValueError(
            f"{spec.name} {gold.split}: {len(predicted)} predictions for {len(gold.rows)} rows"
        )
    if spec.task == datasets.QA:
        answers = merge_pair_answers(gold.rows, predicted, answer_merge)
        unasked = [q for g in gold.goldens.values() for q in g if q not in answers]
        if unasked:
            logging.warning(
                "%s: %d golden questions have no snippet in the test files: no answers",
                spec.name,
                len(unasked),
            )
        answers.update({q: [] for q in unasked})
        if predictions_path:
            predictions.write_bioasq(predictions_path, answers)
        golden_files = gold.files[1::2]  # each batch's test file, then its golden file
        scores = score_bioasq(
            gold.goldens, answers, predictions_path or "predictions", ", ".join(golden_files)
        )
        scores["answer_merge"] = answer_merge
        scores["answer_merge_rule"] = predictions.MERGE_RULES[answer_merge]
    elif spec.task == datasets.NER:
        if predictions_path:
            predictions.write_ner(
                predictions_path, ((s.words, t) for s, t in zip(gold.rows, predicted, strict=True))
            )
        scores = score_ner(gold.rows, predicted, predictions_path or "predictions")
    else:
        if predictions_path:
            predictions.write_id_predictions(
                predictions_path, ((ex.id, v) for ex, v in zip(gold.rows, predicted, strict=True))
            )
        scores = score_examples(spec, gold.rows, predicted)
    return Evaluation(with_header(spec, scores), predictions_path, len(gold.rows), seconds)
