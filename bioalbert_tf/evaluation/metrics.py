"""Metric functions with the official scorers' semantics (pure Python / numpy / scipy).

Every score is a fraction in [0, 1] (the report shows x100, as the papers do). Counts come with
every score so a number can be checked by hand.

- NER: entity-level exact-match P/R/F1 exactly as conlleval computes it (IOB1 and IOB2, typed
  `B-Disease` or untyped `B`/`I`/`O` tags), plus a token-level P/R/F1 defined in `ner_scores`.
  The two differ a lot on the same predictions; papers do not always say which one they report.
- RE: micro P/R/F1 over the positive classes (the negative class is excluded).
- HoC: per abstract (sentences grouped by PMID): BLURB's micro F1 over (abstract, label),
  BLUE's example-based F1 and the macro F1 over labels.
- MedNLI: accuracy. STS: Pearson and Spearman (None where undefined, never NaN).
- BioASQ factoid: strict accuracy, lenient accuracy and MRR over the top 5 answers, matched as
  the official evaluator matches them.
- Aggregates: per-task means and the BLURB-style macro score.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from absl import logging

from bioalbert_tf.evaluation.conlleval import (  # noqa: F401 (metrics' NER names)
    TOKEN_F1_DEFINITION,
    ConllCounts,
    _prf,
    conlleval_counts,
    end_of_chunk,
    entities,
    ner_scores,
    split_tag,
    start_of_chunk,
)

# Negative relation labels of the public RE sets (ChemProt/i2b2 "false", DDI "DDI-false",
# GAD/EU-ADR "0"); micro F1 leaves them out.
NEGATIVE_LABELS = ("false", "DDI-false", "0")
CHEMPROT_POSITIVE_LABELS = ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")


# ------------------------------------------------------------------------------------------- RE


def re_scores(
    gold: Sequence[str],
    pred: Sequence[str],
    negative_labels: Iterable[str] = NEGATIVE_LABELS,
    positive_labels: Iterable[str] | None = None,
) -> dict:
    """Micro P/R/F1 over the positive classes, and a per-class table.

    positive_labels: the classes that count (e.g. ChemProt's CPR:3/4/5/6/9); any other label is
    treated as negative, as sklearn's `f1_score(average="micro", labels=...)` does. None: every
    label seen in gold or predictions that is not in negative_labels.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    negative = set(negative_labels)
    if positive_labels is None:
        positive = sorted((set(gold) | set(pred)) - negative)
    else:
        positive = list(positive_labels)
    pos = set(positive)
    gold_n = collections.Counter(g for g in gold if g in pos)
    pred_n = collections.Counter(p for p in pred if p in pos)
    correct_n = collections.Counter(
        g for g, p in zip(gold, pred, strict=True) if g == p and g in pos
    )
    precision, recall, f1 = _prf(
        sum(correct_n.values()), sum(pred_n.values()), sum(gold_n.values())
    )
    per_class = {}
    for label in positive:
        p, r, f = _prf(correct_n[label], pred_n[label], gold_n[label])
        per_class[label] = {
            "precision": p,
            "recall": r,
            "f1": f,
            "gold": gold_n[label],
            "predicted": pred_n[label],
            "correct": correct_n[label],
        }
    return {
        "micro_precision": precision,
        "micro_recall": recall,
        "micro_f1": f1,
        "accuracy": accuracy(gold, pred),
        "num_examples": len(gold),
        "positive_labels": positive,
        "negative_labels": sorted(negative),
        "per_class": per_class,
    }


# ------------------------------------------------------------------------------------------ HoC


def parse_hoc_labels(text: str) -> dict[int, int]:
    """'0_0,1_1,...' -> {0: 0, 1: 1, ...}: label index '_' active (0/1), comma separated."""
    out: dict[int, int] = {}
    for item in text.strip().split(","):
        index, sep, value = item.strip().partition("_")
        if not sep or not index.isdigit() or value not in ("0", "1"):
            raise ValueError(f"expected items like '3_1' (label index _ 0/1), got {item!r}")
        if int(index) in out:
            raise ValueError(f"label index {index} appears twice in {text!r}")
        out[int(index)] = int(value)
    return out


def format_hoc_labels(active: Sequence[int]) -> str:
    """[0, 1, 0, ...] -> '0_0,1_1,2_0,...' (the HoC TSV format)."""
    return ",".join(f"{i}_{int(bool(a))}" for i, a in enumerate(active))


def abstract_id(index: str) -> str:
    """'22239943_s0' -> '22239943': sentences of one abstract share the PMID prefix."""
    return str(index).split("_", 1)[0]


def _active_set(labels: str | Mapping[int, int] | Sequence[int]) -> set[int]:
    if isinstance(labels, str):
        labels = parse_hoc_labels(labels)
    if isinstance(labels, Mapping):
        return {int(k) for k, v in labels.items() if int(v)}
    return {i for i, v in enumerate(labels) if int(v)}


def hoc_scores(
    ids: Sequence[str],
    gold: Sequence[str | Mapping[int, int] | Sequence[int]],
    pred: Sequence[str | Mapping[int, int] | Sequence[int]],
    num_labels: int | None = None,
) -> dict:
    """HoC per abstract: an abstract's label set is the union over its sentences of their
    active labels. Three published scores of those sets:

    - `micro_f1` (BLURB, the main score): micro P/R/F1 over (abstract, label) pairs;
    - `example_f1` (BLUE's `eval_hoc.py`): the mean over abstracts of precision and of recall,
      then their harmonic mean. An abstract without predicted labels has precision 0, as there.
      BLUE divides by zero on an abstract without gold labels; here such an abstract has recall 1
      and precision 1 if nothing is predicted for it, else 0;
    - `macro_f1`: the mean over the labels of each label's F1 over abstracts.

    ids: the sentence `index` column (e.g. '22239943_s0'); gold/pred: label strings
    ('0_0,1_1,...'), {index: 0/1} maps, or 0/1 vectors.
    """
    if not len(ids) == len(gold) == len(pred):
        raise ValueError(f"{len(ids)} ids, {len(gold)} gold and {len(pred)} predicted rows")
    gold_sets: dict[str, set[int]] = collections.defaultdict(set)
    pred_sets: dict[str, set[int]] = collections.defaultdict(set)
    seen_labels: set[int] = set()
    for i, g, p in zip(ids, gold, pred, strict=True):
        doc = abstract_id(i)
        gold_sets[doc] |= _active_set(g)
        pred_sets[doc] |= _active_set(p)
        if isinstance(g, str):
            seen_labels |= set(parse_hoc_labels(g))
    if num_labels is None:
        seen_labels |= {x for s in gold_sets.values() for x in s}
        num_labels = max(seen_labels) + 1 if seen_labels else 0
    docs = sorted(gold_sets)
    correct = sum(len(gold_sets[d] & pred_sets[d]) for d in docs)
    n_pred = sum(len(pred_sets[d]) for d in docs)
    n_gold = sum(len(gold_sets[d]) for d in docs)
    precision, recall, f1 = _prf(correct, n_pred, n_gold)
    per_label = {}
    for j in range(num_labels):
        c = sum(j in gold_sets[d] and j in pred_sets[d] for d in docs)
        pj = sum(j in pred_sets[d] for d in docs)
        gj = sum(j in gold_sets[d] for d in docs)
        lp, lr, lf = _prf(c, pj, gj)
        per_label[str(j)] = {
            "precision": lp,
            "recall": lr,
            "f1": lf,
            "gold": gj,
            "predicted": pj,
            "correct": c,
        }
    example_p, example_r = [], []
    for d in docs:
        g, p = gold_sets[d], pred_sets[d]
        if g:
            example_p.append(len(g & p) / len(p) if p else 0.0)
            example_r.append(len(g & p) / len(g))
        else:
            example_p.append(0.0 if p else 1.0)
            example_r.append(1.0)
    ep = float(np.mean(example_p)) if docs else 0.0
    er = float(np.mean(example_r)) if docs else 0.0
    return {
        "micro_precision": precision,
        "micro_recall": recall,
        "micro_f1": f1,
        "example_precision": ep,
        "example_recall": er,
        "example_f1": 2 * ep * er / (ep + er) if ep + er else 0.0,
        "macro_f1": float(np.mean([v["f1"] for v in per_label.values()])) if per_label else 0.0,
        "num_abstracts": len(docs),
        "num_abstracts_without_labels": sum(not gold_sets[d] for d in docs),
        "num_sentences": len(ids),
        "per_label": per_label,
        "definition": "abstract label set = union over its sentences; micro_f1 (BLURB) over "
        "(abstract, label) pairs; example_f1 (BLUE) = harmonic mean of the mean per-abstract "
        "precision and recall; macro_f1 = mean of the per-label F1",
    }


# ------------------------------------------------------------------------------ NLI, STS


def accuracy(gold: Sequence, pred: Sequence) -> float:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold) if gold else 0.0


def classification_scores(gold: Sequence[str], pred: Sequence[str]) -> dict:
    return {"accuracy": accuracy(gold, pred), "num_examples": len(gold)}


def sts_scores(gold: Sequence[float], pred: Sequence[float]) -> dict:
    """Pearson and Spearman correlation (scipy).

    A NaN or infinite value is refused (ValueError naming its 0-based row). A constant gold or
    predicted vector has no correlation: both are None (null in JSON), with a warning, never 0.
    """
    from scipy import stats

    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold scores but {len(pred)} predictions")
    g = np.asarray(gold, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    for name, values in (("gold score", g), ("prediction", p)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(f"{name} {bad[0]} is {values[bad[0]]}: scores must be finite")
    pearson = spearman = None
    if len(g) < 2 or np.all(p == p[0]) or np.all(g == g[0]):
        which = (
            "fewer than 2 rows"
            if len(g) < 2
            else ("the predictions are constant" if np.all(p == p[0]) else "the gold is constant")
        )
        logging.warning("Pearson and Spearman are undefined (%s): reported as null", which)
    else:
        pearson = float(stats.pearsonr(g, p)[0])
        spearman = float(stats.spearmanr(g, p)[0])
    return {"pearson": pearson, "spearman": spearman, "num_examples": len(g)}


# --------------------------------------------------------------------------------------- BioASQ


def normalize_answer(text: str) -> str:
    """The official BioASQ evaluator's form of an answer: lowercased (Java's `toLowerCase`), not
    stripped: a gold synonym padded with a space matches only an answer padded the same way."""
    return str(text).lower()


def golden_synonyms(exact_answer) -> list[str]:
    """A factoid `exact_answer` as a flat synonym list.

    Golden files give a list of synonym lists ([['neural crest cells'], ['NCC']]) or a list of
    strings; every string is an accepted answer.
    """
    if isinstance(exact_answer, str):
        return [exact_answer]
    out: list[str] = []
    for item in exact_answer:
        out.extend(golden_synonyms(item))
    return out


def bioasq_factoid_scores(
    golden: Mapping[str, Sequence[str]],
    predictions: Mapping[str, Sequence[str]],
    top_k: int = 5,
) -> dict:
    """The official evaluator's factoid scores (`EvaluatorTask1b -phaseB -e 5`): strict accuracy
    (the first answer is a golden synonym), lenient accuracy (one of the answers is), and MRR
    (1 / rank of the first answer that is, 0 when none is). Answers and synonyms are compared
    lowercased and otherwise exactly (no stripping). Every golden question counts; a question
    without answers scores 0. More than top_k answers for a question is an error (BioASQ takes
    at most 5; the evaluator would score them all).
    """
    strict = lenient = rr = 0.0
    answered = 0
    for qid, synonyms in golden.items():
        accepted = {normalize_answer(s) for s in synonyms}
        answers = [normalize_answer(a) for a in predictions.get(qid, [])]
        if len(answers) > top_k:
            raise ValueError(f"question {qid}: {len(answers)} answers; at most {top_k} are scored")
        answered += bool(answers)
        ranks = [r for r, a in enumerate(answers, start=1) if a in accepted]
        if ranks:
            strict += ranks[0] == 1
            lenient += 1
            rr += 1.0 / ranks[0]
    n = len(golden)
    return {
        "strict_accuracy": strict / n if n else 0.0,
        "lenient_accuracy": lenient / n if n else 0.0,
        "mrr": rr / n if n else 0.0,
        "num_questions": n,
        "num_answered": answered,
    }


BIOASQ_KEYS = ("strict_accuracy", "lenient_accuracy", "mrr")


def bioasq_year_scores(batches: Mapping[str, Mapping]) -> dict:
    """Means over the batches of a year ({batch name: bioasq_factoid_scores(...)}), as BioBERT
    reports them, with the per-batch scores kept."""
    out = {
        k: float(np.mean([b[k] for b in batches.values()])) if batches else 0.0 for k in BIOASQ_KEYS
    }
    out["num_questions"] = int(sum(b["num_questions"] for b in batches.values()))
    out["per_batch"] = {name: dict(b) for name, b in batches.items()}
    return out


# ----------------------------------------------------------------------------------- aggregates


def task_averages(scores: Mapping[str, float], dataset_task: Mapping[str, str]) -> dict:
    """{task: mean score over that task's datasets} for the datasets present in `scores`."""
    by_task: dict[str, list[float]] = collections.defaultdict(list)
    for name, score in scores.items():
        if name not in dataset_task:
            raise KeyError(f"dataset {name!r} has no task; known: {sorted(dataset_task)}")
        if score is not None and not math.isnan(score):
            by_task[dataset_task[name]].append(float(score))
    return {task: float(np.mean(v)) for task, v in sorted(by_task.items())}


def blurb_score(scores: Mapping[str, float], dataset_task: Mapping[str, str]) -> float:
    """BLURB-style macro score: the mean over tasks of the mean over each task's datasets, so
    tasks with many datasets (NER) do not dominate."""
    per_task = task_averages(scores, dataset_task)
    return float(np.mean(list(per_task.values()))) if per_task else float("nan")


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample sd (ddof=1) of seeds or folds; sd is None for a single value."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None


def fold_summary(fold_scores: Mapping[int, Mapping]) -> dict:
    """{fold: test metrics} -> {"folds": ..., "mean": {metric: ...}, "sd": {metric: ...}} over
    every numeric metric that all folds report."""
    folds = {str(k): dict(v) for k, v in sorted(fold_scores.items())}
    keys = [
        k
        for k, v in next(iter(folds.values())).items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        and all(isinstance(f.get(k), int | float) for f in folds.values())
    ]
    stats = {k: mean_sd([f[k] for f in folds.values()]) for k in keys}
    return {
        "folds": folds,
        "num_folds": len(folds),
        "mean": {k: m for k, (m, _) in stats.items()},
        "sd": {k: s for k, (_, s) in stats.items()},
    }
