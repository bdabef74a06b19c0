"""Runs a SavedModel on a dataset split with batched tf.data, writes predictions and metrics.

The SavedModel contract (any model that serves it can be benchmarked; no modeling code here):
- NER: signature `tag_words`: `words` string [batch, max_words] (padded with ""), `num_words`
  int32 [batch] -> `tags` string [batch, max_words] (word-level IOB tags; positions >=
  num_words are ignored).
- RE, HoC: `serving_default`: `text` string [batch]; MedNLI: `text_a`, `text_b` string [batch]
  -> `label` string [batch], `probabilities` float32 [batch, num_labels]; multi-label HoC also
  `active` int32 [batch, num_labels] and `label_names` string [batch, num_labels].
- STS: `serving_default`: `text_a`, `text_b` -> `score` float32 [batch].
- QA (BioASQ): `serving_default`: `question`, `context` string [batch] -> `answers` string
  [batch, 5], `answer_probabilities` float32 [batch, 5]. Every (question, snippet) pair is run;
  a question's answers are merged by maximum probability, deduplicated case-insensitively, and
  the top 5 kept.

Output per run: `<output_dir>/<dataset>[/seed_<seed>]/predictions.{tsv,json}` (the formats
`score` reads) and `metrics.json` (metrics, speed, hashes of the SavedModel and the data).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import platform
import time
from collections.abc import Sequence

import numpy as np
from absl import logging

from bioalbert_tf import fileio
from bioalbert_tf.benchmark import data, metrics, predictions, score, tasks
from bioalbert_tf.benchmark.tasks import DatasetSpec

METRICS_FILE = "metrics.json"
NUM_ANSWERS = 5


@dataclasses.dataclass(frozen=True)
class RunConfig:
    saved_model: str  # folder, local or gs://
    dataset: str  # a name in tasks.DATASETS
    data_dir: str  # the dataset's folder (split files, or the BioASQ batches + golden files)
    output_dir: str
    split: str = "test"
    batch_size: int = 32
    seed: int | None = None  # the fine-tuning seed of this SavedModel; recorded, and names a folder

    @property
    def run_dir(self) -> str:
        run_dir = fileio.join(self.output_dir, self.dataset)
        return run_dir if self.seed is None else fileio.join(run_dir, f"seed_{self.seed}")


# ------------------------------------------------------------------------------- SavedModels


def load_saved_model(path: str):
    # Serving graphs with in-graph SentencePiece need tensorflow_text's ops registered first.
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        logging.warning("tensorflow_text is not installed: SentencePiece ops will not load")
    import tensorflow as tf

    if not fileio.exists(fileio.join(path, "saved_model.pb")):
        raise FileNotFoundError(f"{path} is not a SavedModel folder (no saved_model.pb)")
    return tf.saved_model.load(path)


def signature(model, name: str, inputs: Sequence[str], outputs: Sequence[str], path: str):
    """The named signature, checked against the contract."""
    if name not in model.signatures:
        raise ValueError(f"{path} has no signature {name!r}; it has {sorted(model.signatures)}")
    fn = model.signatures[name]
    have_in = set(fn.structured_input_signature[1])
    have_out = set(fn.structured_outputs)
    missing_in, missing_out = set(inputs) - have_in, set(outputs) - have_out
    if missing_in or missing_out:
        raise ValueError(
            f"{path} signature {name!r}: expected inputs {sorted(inputs)} and outputs "
            f"{sorted(outputs)}; it has inputs {sorted(have_in)} and outputs {sorted(have_out)}"
        )
    return fn


def saved_model_sha256(path: str) -> str:
    """sha256 over the SavedModel's files: relative path and content hash of each, in order."""
    h = hashlib.sha256()
    for rel in data.walk_files(path):
        h.update(rel.encode() + b"\0" + bytes.fromhex(data.file_sha256(fileio.join(path, rel))))
    return h.hexdigest()


# -------------------------------------------------------------------------------- prediction


def _decode(values) -> list[str]:
    return [v.decode("utf-8") for v in values]


def predict_ner(fn, sentences: Sequence[data.NerSentence], batch_size: int) -> list[list[str]]:
    import tensorflow as tf

    # Sorted by length so batches carry little padding; the order is restored below.
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i].words))
    lengths = [len(sentences[i].words) for i in order]
    flat = [w for i in order for w in sentences[i].words]
    words = tf.RaggedTensor.from_row_lengths(tf.constant(flat, tf.string), lengths)
    ds = (
        tf.data.Dataset.from_tensor_slices(words)
        .ragged_batch(batch_size)
        .map(lambda r: (r.to_tensor(""), tf.cast(r.row_lengths(), tf.int32)))
        .prefetch(tf.data.AUTOTUNE)
    )
    sorted_tags: list[list[str]] = []
    for batch_words, num_words in ds:
        tags = fn(words=batch_words, num_words=num_words)["tags"].numpy()  # [batch, max_words]
        if (
            tags.ndim != 2
            or tags.shape[0] != len(num_words)
            or tags.shape[1] < batch_words.shape[1]
        ):
            raise ValueError(
                f"tag_words returned tags of shape {tags.shape}; expected "
                f"[{len(num_words)}, >= {batch_words.shape[1]}]"
            )
        sorted_tags.extend(_decode(row[:n]) for row, n in zip(tags, num_words.numpy(), strict=True))
    out: list[list[str]] = [[] for _ in sentences]
    for i, tags in zip(order, sorted_tags, strict=True):
        out[i] = tags
    return out


def _label_indexes(names: Sequence[str]) -> list[int]:
    """HoC label names -> gold label indexes: integer names ('3') are indexes; otherwise the
    position is."""
    if all(n.strip().isdigit() for n in names):
        return [int(n) for n in names]
    return list(range(len(names)))


def _batches(inputs: dict[str, list[str]], batch_size: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        {k: tf.constant(v, tf.string) for k, v in inputs.items()}
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def predict_examples(
    fn, spec: DatasetSpec, examples: Sequence[data.Example], batch_size: int
) -> list[str | float]:
    """One prediction per example, in order: a label, a HoC label string or an STS score."""
    if spec.task in ("re", "doc_classification"):
        inputs = {"text": [ex.text_a for ex in examples]}
    else:
        inputs = {
            "text_a": [ex.text_a for ex in examples],
            "text_b": [ex.text_b for ex in examples],
        }
    out: list[str | float] = []
    for batch in _batches(inputs, batch_size):
        result = fn(**batch)
        if spec.task == "sts":
            out.extend(float(s) for s in result["score"].numpy().reshape(-1))
        elif spec.task == "doc_classification":
            active = result["active"].numpy()  # [batch, num_labels]
            names = result["label_names"].numpy()  # [batch, num_labels]
            for row_active, row_names in zip(active, names, strict=True):
                idx = _label_indexes(_decode(row_names))
                pairs = sorted(zip(idx, row_active.tolist(), strict=True))
                out.append(",".join(f"{i}_{int(bool(a))}" for i, a in pairs))
        else:
            out.extend(_decode(result["label"].numpy().reshape(-1)))
    if len(out) != len(examples):
        raise ValueError(f"{len(out)} predictions for {len(examples)} examples")
    return out


def merge_answers(
    answers: Sequence[Sequence[str]], probabilities: Sequence[Sequence[float]], k: int = NUM_ANSWERS
) -> list[str]:
    """One question's answers from all its snippets: the best probability of each answer
    (compared case-insensitively, stripped; the spelling of that best occurrence kept), top k.
    Ties keep the first-seen order."""
    best: dict[str, tuple[float, int, str]] = {}
    for snippet_answers, snippet_probs in zip(answers, probabilities, strict=True):
        for text, prob in zip(snippet_answers, snippet_probs, strict=True):
            key = metrics.normalize_answer(text)
            if not key:
                continue
            if key not in best or prob > best[key][0]:
                order = best[key][1] if key in best else len(best)
                best[key] = (float(prob), order, text.strip())
    ranked = sorted(best.values(), key=lambda v: (-v[0], v[1]))
    return [text for _, _, text in ranked[:k]]


def predict_bioasq(fn, pairs: Sequence[data.QaPair], batch_size: int) -> dict[str, list[str]]:
    inputs = {"question": [p.question for p in pairs], "context": [p.context for p in pairs]}
    per_pair_answers: list[list[str]] = []
    per_pair_probs: list[list[float]] = []
    for batch in _batches(inputs, batch_size):
        result = fn(**batch)
        per_pair_answers.extend(_decode(row) for row in result["answers"].numpy())
        per_pair_probs.extend(row.tolist() for row in result["answer_probabilities"].numpy())
    grouped: dict[str, tuple[list, list]] = {}
    for pair, ans, prob in zip(pairs, per_pair_answers, per_pair_probs, strict=True):
        a, p = grouped.setdefault(pair.question_id, ([], []))
        a.append(ans)
        p.append(prob)
    return {qid: merge_answers(a, p) for qid, (a, p) in grouped.items()}


# ------------------------------------------------------------------------------------- runs


def versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    except ImportError:
        pass
    try:
        import tensorflow_text

        out["tensorflow_text"] = tensorflow_text.__version__
    except (ImportError, AttributeError):
        pass
    return out


@dataclasses.dataclass
class _Outcome:
    """What a task-specific pass leaves for the shared bookkeeping."""

    scores: dict
    gold_files: list[str]
    predictions_path: str
    num_examples: int
    seconds: float  # SavedModel calls and input pipeline only


def _run_ner(model, spec: DatasetSpec, config: RunConfig) -> _Outcome:
    gold_file = data.split_file(config.data_dir, config.split)
    sentences = data.read_ner(gold_file)
    fn = signature(model, "tag_words", ["words", "num_words"], ["tags"], config.saved_model)
    t0 = time.perf_counter()
    tags = predict_ner(fn, sentences, config.batch_size)
    seconds = time.perf_counter() - t0
    path = fileio.join(config.run_dir, "predictions.tsv")
    predictions.write_ner(path, ((s.words, t) for s, t in zip(sentences, tags, strict=True)))
    scores = metrics.ner_scores([s.tags for s in sentences], tags)
    return _Outcome(scores, [gold_file], path, len(sentences), seconds)


def _run_qa(model, spec: DatasetSpec, config: RunConfig) -> _Outcome:
    if config.split != "test":
        raise ValueError(f"{spec.name}: only the test batches exist, not {config.split!r}")
    batches = data.bioasq_batches(config.data_dir, spec.bioasq_year)
    pairs = [p for _, test, _ in batches for p in data.read_squad(test)]
    fn = signature(
        model,
        "serving_default",
        ["question", "context"],
        ["answers", "answer_probabilities"],
        config.saved_model,
    )
    t0 = time.perf_counter()
    answers = predict_bioasq(fn, pairs, config.batch_size)
    seconds = time.perf_counter() - t0
    path = fileio.join(config.run_dir, "predictions.json")
    predictions.write_bioasq(path, answers)
    scores = score.score_bioasq([golden for _, _, golden in batches], answers)
    gold_files = [f for _, test, golden in batches for f in (test, golden)]
    return _Outcome(scores, gold_files, path, len(pairs), seconds)


def _run_examples(model, spec: DatasetSpec, config: RunConfig) -> _Outcome:
    gold_file = data.split_file(config.data_dir, config.split)
    examples = data.read_examples(spec.task, gold_file)
    inputs = ["text"] if spec.task in ("re", "doc_classification") else ["text_a", "text_b"]
    outputs = {"sts": ["score"], "doc_classification": ["active", "label_names"]}
    fn = signature(
        model, "serving_default", inputs, outputs.get(spec.task, ["label"]), config.saved_model
    )
    t0 = time.perf_counter()
    values = predict_examples(fn, spec, examples, config.batch_size)
    seconds = time.perf_counter() - t0
    path = fileio.join(config.run_dir, "predictions.tsv")
    predictions.write_id_predictions(
        path, ((ex.id, v) for ex, v in zip(examples, values, strict=True))
    )
    scores = score.score_examples(spec, examples, values)
    return _Outcome(scores, [gold_file], path, len(examples), seconds)


def run(config: RunConfig, model=None) -> dict:
    """Runs one SavedModel on one dataset split; returns (and writes) its metrics.json."""
    spec = tasks.get(config.dataset)
    started = time.perf_counter()
    model = model if model is not None else load_saved_model(config.saved_model)
    fileio.makedirs(config.run_dir)
    task_run = {"ner": _run_ner, "qa": _run_qa}.get(spec.task, _run_examples)
    out = task_run(model, spec, config)
    result = score.with_header(spec, out.scores)
    result["run"] = {
        "saved_model": config.saved_model,
        "saved_model_sha256": saved_model_sha256(config.saved_model),
        "split": config.split,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "data_files": {f: data.file_sha256(f) for f in out.gold_files},
        "predictions": out.predictions_path,
        "num_examples": out.num_examples,
        "predict_seconds": out.seconds,
        "examples_per_second": out.num_examples / out.seconds if out.seconds > 0 else None,
        "total_seconds": time.perf_counter() - started,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    with fileio.open_file(fileio.join(config.run_dir, METRICS_FILE), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    logging.info(
        "%s %s: %s = %.4f, %d examples in %.2f s",
        spec.name,
        config.split,
        spec.main_key,
        result["main_score"],
        out.num_examples,
        out.seconds,
    )
    return result


def read_suite(path: str, output_dir: str, defaults: dict | None = None) -> list[RunConfig]:
    """A suite file: a JSON list (or {"runs": [...]}) of {dataset, saved_model, data_dir,
    seed, [split], [batch_size]}."""
    obj = json.loads(data.read_text(path))
    runs = obj.get("runs") if isinstance(obj, dict) else obj
    if not isinstance(runs, list):
        raise data.FormatError(path, None, 'a list of runs or {"runs": [...]}')
    defaults = defaults or {}
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"output_dir"}
    out = []
    for i, item in enumerate(runs):
        if not isinstance(item, dict) or not {"dataset", "saved_model", "data_dir"} <= set(item):
            raise data.FormatError(
                path, None, f"run {i}: an object with dataset, saved_model, data_dir", str(item)
            )
        unknown = set(item) - fields
        if unknown:
            raise data.FormatError(
                path, None, f"run {i}: keys among {sorted(fields)}", str(unknown)
            )
        tasks.get(item["dataset"])
        out.append(RunConfig(output_dir=output_dir, **{**defaults, **item}))
    return out


def run_suite(configs: Sequence[RunConfig], progress: bool = True) -> list[dict]:
    """Runs every config in order, with a progress bar over the datasets."""
    from tqdm import tqdm

    results = []
    bar = tqdm(configs, desc="benchmark", unit="dataset", disable=not progress)
    for config in bar:
        bar.set_description(
            f"{config.dataset}" + (f" seed {config.seed}" if config.seed is not None else "")
        )
        result = run(config)
        bar.set_postfix(
            score=f"{result['main_score']:.4f}",
            ex_per_s=f"{result['run']['examples_per_second'] or 0:.0f}",
        )
        results.append(result)
    return results
