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
  [batch, n], `answer_probabilities` float32 [batch, n], best first (n = 20 in this project's
  models, BioBERT's n-best size; empty strings pad). Every (question, snippet) pair is run; a
  question's answers are merged over its snippets by BioBERT's rule (probabilities of the same
  lowercased answer summed) or, with answer_merge="max", by their best probability; top 5 kept.

A SavedModel with `assets/task.json` (this project's) is scored only on the dataset it names,
unless allow_other_dataset (and then only on one of the same task and labels).

Cross-validation (GAD, EU-ADR): when data_dir holds numbered fold folders (`1/`, `2/`, ...) and
the SavedModel folder holds `fold-<k>/saved_model/` (what run_finetuning writes), every fold is
run on its own test split; the report shows mean ± sd over the folds.

Gold reading, prediction files and scoring are the evaluation core's (`bioalbert_tf.evaluation`);
this module only turns SavedModel signatures into predictors.

Output per run: `<output_dir>/<dataset>[/seed_<seed>][/fold_<k>]/predictions.{tsv,json}` (the
formats `score` reads) and `metrics.json` (metrics, speed, hashes of the SavedModel and data).
A folder holding another run's metrics.json (another SavedModel, data folder, split or batch
size) is refused unless `overwrite`, before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
import time
from collections.abc import Sequence

from absl import logging

from bioalbert_tf import fileio, manifest
from bioalbert_tf.benchmark.predict import (
    _is_saved_model,
    load_saved_model,
    predict_examples,
    predict_ner,
    predict_qa_pairs,
    saved_model_sha256,
    signature,
    versions,
)
from bioalbert_tf.evaluation import datasets, formats, predictions, scoring
from bioalbert_tf.evaluation.datasets import DatasetSpec
from bioalbert_tf.settings import setting

METRICS_FILE = "metrics.json"
DEFAULT_REFERENCES = (
    pathlib.Path(__file__).resolve().parents[2] / "configs" / "reference_scores.json"
)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One SavedModel on one dataset split (the command line's flags are generated from these
    fields)."""

    saved_model: str = setting(
        help="SavedModel folder, local or gs://; for cross-validated datasets, the folder holding "
        "fold-<k>/saved_model/ (run_finetuning's output_dir)."
    )
    dataset: str = setting(help="Which dataset.")
    data_dir: str = setting(help="The dataset's folder (split files or BioASQ batches).")
    output_dir: str = setting(help="Where predictions, metrics and the report go.")
    split: str = setting("test", "train, dev (devel.tsv or dev.tsv) or test.")
    batch_size: int = setting(32, "Examples per SavedModel call.")
    seed: int | None = setting(
        None, "Fine-tuning seed of the SavedModel (recorded; names a folder)."
    )
    fold: int | None = setting(None, "Cross-validation fold (data_dir is then that fold's folder).")
    answer_merge: str = setting(
        predictions.MERGE_BIOBERT,
        "BioASQ: how a question's answers are merged over its snippets: biobert (BioBERT's rule, "
        "probabilities of the same answer summed; the paper's numbers) or max (best probability).",
        choices=tuple(predictions.MERGE_RULES),
    )
    allow_other_dataset: bool = setting(
        False,
        "Score a SavedModel whose assets/task.json names another dataset of the same task and "
        "labels (GAD on EU-ADR).",
    )

    @property
    def run_dir(self) -> str:
        run_dir = fileio.join(self.output_dir, self.dataset)
        if self.seed is not None:
            run_dir = fileio.join(run_dir, f"seed_{self.seed}")
        return run_dir if self.fold is None else fileio.join(run_dir, f"fold_{self.fold}")


@dataclasses.dataclass(frozen=True)
class SuiteOptions:
    """The runner command line's flags beside one run's (RunConfig): a suite of runs, the report,
    and whether another run's results may be replaced."""

    suite: str | None = setting(
        None, "JSON list of runs; replaces --saved_model/--dataset/--data_dir."
    )
    report: bool = setting(True, "Write report.md / report.json / charts into --output_dir.")
    references: str = setting(str(DEFAULT_REFERENCES), "Published scores (JSON).")
    overwrite: bool = setting(
        False,
        "Replace another run's results (other SavedModel, data, split or batch size) in a run "
        "folder.",
    )


# What makes a run_dir's metrics.json this run's own: the folder is named by dataset, seed and
# fold only, so another SavedModel, data folder, split or batch size there is another result.
_SAME_RUN = ("saved_model", "data_dir", "split", "batch_size", "answer_merge")


def _recorded(config: RunConfig) -> dict:
    """The settings of _SAME_RUN as metrics.json records them (answer_merge: QA only)."""
    out = {k: getattr(config, k) for k in _SAME_RUN}
    if datasets.get(config.dataset).task != datasets.QA:
        out["answer_merge"] = None
    return out


def check_output(config: RunConfig, overwrite: bool = False) -> None:
    """Raises SettingsMismatchError (a ValueError) if config.run_dir holds the metrics of another
    run, unless `overwrite`; a rerun of the same run may replace its own."""
    manifest.check(
        fileio.join(config.run_dir, METRICS_FILE),
        _recorded(config),
        f"{config.run_dir} holds the result of another run",
        "Use another --output_dir (or --seed), or pass --overwrite to replace it.",
        overwrite,
        view=lambda scores: {k: scores.get("run", scores).get(k) for k in _SAME_RUN},
    )


TASK_FILE = ("assets", "task.json")  # what the project's SavedModels say they were trained for


def model_task(saved_model: str) -> dict | None:
    """The SavedModel's assets/task.json ({"dataset", "task", "labels", ...}); None for a
    SavedModel that has none (one not exported by this project)."""
    path = fileio.join(saved_model, *TASK_FILE)
    if not fileio.exists(path):
        return None
    meta = formats.load_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("dataset"), str):
        raise formats.FormatError(path, None, '{"dataset": ..., "task": ..., "labels": [...]}')
    return meta


def check_model_dataset(config: RunConfig) -> None:
    """A model is scored on the dataset its task.json names. With allow_other_dataset, on
    another dataset of the same task and, for classification, the same label set; never on one
    of another task (its predictions would be scored as if they were labels of this one)."""
    meta = model_task(config.saved_model)
    if meta is None or meta["dataset"] == config.dataset:
        return
    spec, trained = datasets.get(config.dataset), meta["dataset"]
    same_task = meta.get("task") == spec.task
    labels = set(meta.get("labels") or ())
    same_labels = (
        spec.task in (datasets.NER, datasets.QA) or not spec.labels or labels == set(spec.labels)
    )
    where = fileio.join(config.saved_model, *TASK_FILE)
    if not (same_task and same_labels):
        raise ValueError(
            f"{config.saved_model} was fine-tuned on {trained} ({meta.get('task')}, labels "
            f"{sorted(labels)}; {where}): it cannot be scored on {config.dataset} ({spec.task}, "
            f"labels {list(spec.labels)})"
        )
    if not config.allow_other_dataset:
        raise ValueError(
            f"{config.saved_model} was fine-tuned on {trained} ({where}), not {config.dataset}; "
            f"pass --allow_other_dataset to score it on {config.dataset} all the same"
        )
    logging.warning(
        "%s was fine-tuned on %s; scoring it on %s as asked",
        config.saved_model,
        trained,
        config.dataset,
    )


def expand_folds(config: RunConfig) -> list[RunConfig]:
    """A dataset folder of numbered folds (`1/`, `2/`, ...) with a folder of fold SavedModels
    (`fold-<k>/saved_model/`, as run_finetuning writes them, or `fold-<k>/` itself) -> one run per
    fold; anything else -> [config]."""
    if config.fold is not None or datasets.get(config.dataset).task == datasets.QA:
        return [config]
    folds = datasets.find_folds(config.data_dir)
    if not folds:
        return [config]
    out = []
    for k, fold_dir in folds:
        model = fileio.join(config.saved_model, f"fold-{k}")
        if not _is_saved_model(model):
            model = fileio.join(model, "saved_model")
        if not _is_saved_model(model):
            raise FileNotFoundError(
                f"{config.data_dir} holds cross-validation folds; expected a SavedModel for fold "
                f"{k} at {config.saved_model}/fold-{k}/saved_model (run_finetuning's layout)"
            )
        formats.split_file(fold_dir, config.split)  # every fold's split, before any fold runs
        out.append(dataclasses.replace(config, saved_model=model, data_dir=fold_dir, fold=k))
    return out


# ------------------------------------------------------------------------------- SavedModels


def predictor(model, spec: DatasetSpec, config: RunConfig):
    """rows -> predictions (the evaluation core's contract) from the SavedModel's signature."""
    path, size = config.saved_model, config.batch_size
    if spec.task == datasets.NER:
        fn = signature(model, "tag_words", ["words", "num_words"], ["tags"], path)
        return lambda sentences: predict_ner(fn, sentences, size)
    if spec.task == datasets.QA:
        fn = signature(
            model,
            "serving_default",
            ["question", "context"],
            ["answers", "answer_probabilities"],
            path,
        )
        return lambda pairs: predict_qa_pairs(fn, pairs, size)
    inputs = ["text"] if spec.task in (datasets.RE, datasets.DOC) else ["text_a", "text_b"]
    outputs = {datasets.STS: ["score"], datasets.DOC: ["active", "label_names"]}
    fn = signature(model, "serving_default", inputs, outputs.get(spec.task, ["label"]), path)
    return lambda examples: predict_examples(fn, spec, examples, size)


def run(config: RunConfig, model=None, overwrite: bool = False) -> dict:
    """Runs one SavedModel on one dataset split; returns (and writes) its metrics.json."""
    check_output(config, overwrite)
    check_model_dataset(config)
    spec = datasets.get(config.dataset)
    started = time.perf_counter()
    gold = scoring.load_gold(spec, config.data_dir, config.split)
    model = model if model is not None else load_saved_model(config.saved_model)
    fileio.makedirs(config.run_dir)
    name = "predictions.json" if spec.task == datasets.QA else "predictions.tsv"
    out = scoring.evaluate(
        gold,
        predictor(model, spec, config),
        fileio.join(config.run_dir, name),
        answer_merge=config.answer_merge,
    )
    result = dict(out.scores)
    result["run"] = {
        "saved_model": config.saved_model,
        "saved_model_sha256": saved_model_sha256(config.saved_model),
        "data_dir": config.data_dir,
        "split": config.split,
        "seed": config.seed,
        "fold": config.fold,
        "batch_size": config.batch_size,
        "answer_merge": _recorded(config)["answer_merge"],
        "data_files": {f: formats.file_sha256(f) for f in gold.files},
        "predictions": out.predictions_path,
        "num_examples": out.num_examples,
        "predict_seconds": out.predict_seconds,
        "examples_per_second": (
            out.num_examples / out.predict_seconds if out.predict_seconds > 0 else None
        ),
        "total_seconds": time.perf_counter() - started,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    # allow_nan=False: metrics.json stays valid JSON (undefined metrics are null).
    fileio.write_text_atomic(
        fileio.join(config.run_dir, METRICS_FILE),
        json.dumps(result, indent=2, allow_nan=False) + "\n",
    )
    logging.info(
        "%s %s%s: %s = %s, %d examples in %.2f s",
        spec.name,
        config.split,
        "" if config.fold is None else f" fold {config.fold}",
        spec.main_key,
        result["main_score"],
        out.num_examples,
        out.predict_seconds,
    )
    return result


# The type each suite key takes (int keys: not bool, which JSON's true would pass as).
_SUITE_TYPES = {
    "dataset": str,
    "saved_model": str,
    "data_dir": str,
    "split": str,
    "batch_size": int,
    "seed": int,
    "fold": int,
    "answer_merge": str,
    "allow_other_dataset": bool,
}


def read_suite(path: str, output_dir: str, defaults: dict | None = None) -> list[RunConfig]:
    """A suite file: a JSON list (or {"runs": [...]}) of {dataset, saved_model, data_dir,
    seed, [split], [batch_size], [answer_merge], [allow_other_dataset]}. Every entry is checked
    (keys, types, dataset, answer merge rule) before any runs; errors name the file and entry."""
    obj = formats.load_json(path)
    runs = obj.get("runs") if isinstance(obj, dict) else obj
    if not isinstance(runs, list):
        raise formats.FormatError(path, None, 'a list of runs or {"runs": [...]}')
    defaults = defaults or {}
    out = []
    for i, item in enumerate(runs):
        where = f"run {i + 1}"
        if not isinstance(item, dict) or not {"dataset", "saved_model", "data_dir"} <= set(item):
            raise formats.FormatError(
                path, None, f"{where}: an object with dataset, saved_model, data_dir", str(item)
            )
        unknown = set(item) - set(_SUITE_TYPES)
        if unknown:
            raise formats.FormatError(
                path, None, f"{where}: keys among {sorted(_SUITE_TYPES)}", str(sorted(unknown))
            )
        for key, value in item.items():
            kind = _SUITE_TYPES[key]
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            if not ok and not (value is None and key in ("seed", "fold")):
                raise formats.FormatError(
                    path, None, f"{where}: {key} as a JSON {kind.__name__}", json.dumps(value)
                )
        if item["dataset"] not in datasets.REGISTRY:
            raise formats.FormatError(
                path,
                None,
                f"{where}: a dataset among {', '.join(datasets.REGISTRY)}",
                item["dataset"],
            )
        merge = item.get("answer_merge", defaults.get("answer_merge", predictions.MERGE_BIOBERT))
        if merge not in predictions.MERGE_RULES:
            raise formats.FormatError(
                path, None, f"{where}: answer_merge among {list(predictions.MERGE_RULES)}", merge
            )
        out.append(RunConfig(output_dir=output_dir, **{**defaults, **item}))
    return out


def check_inputs(config: RunConfig) -> None:
    """The SavedModel and the data folder exist: checked for every run of a suite before the
    first one starts, so that a suite does not stop at its third run after two."""
    if not fileio.isdir(config.data_dir):
        raise FileNotFoundError(f"{config.dataset}: data folder not found: {config.data_dir}")
    qa = datasets.get(config.dataset).task == datasets.QA
    if config.fold is None and not qa and datasets.find_folds(config.data_dir):
        return  # cross-validation: expand_folds checks each fold's SavedModel and split
    if not qa:
        formats.split_file(config.data_dir, config.split)  # names the files it looked for
    if not _is_saved_model(config.saved_model):
        raise FileNotFoundError(
            f"{config.saved_model} is not a SavedModel folder (no saved_model.pb)"
        )


def run_suite(
    configs: Sequence[RunConfig], progress: bool = True, overwrite: bool = False
) -> list[dict]:
    """Runs every config (each fold of a cross-validated one) in order, with a progress bar.

    Refused before any run: two runs that would write the same folder, and (unless `overwrite`)
    a folder holding another run's metrics."""
    from tqdm import tqdm

    for config in configs:
        check_inputs(config)
    configs = [c for config in configs for c in expand_folds(config)]
    seen = {}
    for config in configs:
        if config.run_dir in seen:
            other = seen[config.run_dir]
            raise ValueError(
                f"{other.saved_model} ({other.split}) and {config.saved_model} ({config.split}) "
                f"would both write {config.run_dir}; give them different seeds"
            )
        seen[config.run_dir] = config
        check_output(config, overwrite)
        check_model_dataset(config)
    results = []
    bar = tqdm(configs, desc="benchmark", unit="run", disable=not progress)
    for config in bar:
        bar.set_description(
            f"{config.dataset}"
            + (f" seed {config.seed}" if config.seed is not None else "")
            + (f" fold {config.fold}" if config.fold is not None else "")
        )
        result = run(config, overwrite=True)  # every folder was checked above
        bar.set_postfix(
            score=f"{result['main_score']:.4f}",
            ex_per_s=f"{result['run']['examples_per_second'] or 0:.0f}",
        )
        results.append(result)
    return results
