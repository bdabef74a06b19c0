"""Fine-tuning as a library function (run_finetuning.py is its command line).

Trains a task model from a pretrained checkpoint (TF1 or ours) with the reference's recipe
(AdamW without bias correction, weight decay 0.01 except LayerNorm/bias, gradients clipped to
global norm 1.0, linear warm-up then polynomial decay); evaluates on dev every
`eval_every_steps` and keeps the best weights (without a dev split: the last weights); predicts
test; writes predictions, metrics.json and the SavedModel. Reading, scoring and prediction files
are the evaluation core's (`bioalbert_tf.evaluation`), the same code the benchmark runner uses.

A data folder of numbered folds (`1/`, `2/`, ...: BioBERT's GAD and EU-ADR) is cross-validated:
each fold in `<output_dir>/fold-<k>/`, and `<output_dir>/metrics.json` holds every fold's test
scores with their mean and sample sd.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import keras
from absl import logging

from bioalbert_tf import checkpoints, fileio, run_settings
from bioalbert_tf.evaluation import datasets, formats, metrics, scoring

METRICS_FILE = "metrics.json"
BEST_WEIGHTS = "best.weights.h5"


@dataclasses.dataclass(frozen=True)
class FinetuningConfig:
    dataset: str
    data_dir: str
    output_dir: str
    albert_config_file: str
    spm_model_file: str
    init_checkpoint: str | None = None
    # The paper's Table 5: AdamW, lr 1e-5, batch 32, 10000 steps, 320 warm-up, lowercased;
    # max length 512 for NER and 128 otherwise (None: the dataset registry's).
    learning_rate: float = 1e-5
    train_batch_size: int = 32
    eval_batch_size: int = 64
    num_train_steps: int = 10000
    num_warmup_steps: int = 320
    max_seq_length: int | None = None
    eval_every_steps: int = 1000
    use_train_dev: bool = False
    do_lower_case: bool = True
    random_seed: int = 12345
    weight_decay_rate: float = 0.01
    folds: str | None = None  # cross-validation: which folds ("1,3"); None = all

    def __post_init__(self):
        for name in ("learning_rate", "train_batch_size", "eval_batch_size", "num_train_steps",
                     "eval_every_steps"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.num_warmup_steps <= self.num_train_steps:
            raise ValueError(f"num_warmup_steps must be in [0, num_train_steps="
                             f"{self.num_train_steps}], got {self.num_warmup_steps}")  # fmt: skip


def run(config: FinetuningConfig) -> dict:
    """Fine-tunes, evaluates and exports one model, or one per cross-validation fold."""
    spec = datasets.get(config.dataset)
    folds = [] if spec.task == datasets.QA else datasets.find_folds(config.data_dir)
    if folds:
        return run_cross_validation(
            config, datasets.select_folds(folds, config.folds, config.data_dir)
        )
    if config.folds:
        raise ValueError(
            f"--folds={config.folds}: {config.data_dir} has no fold folders (1/, 2/, ...)"
        )
    # Refused before anything is written: a finished run with other settings in output_dir (a
    # rerun with the same settings trains again and replaces its own outputs).
    finished_run(config)
    return run_one(config)


def run_one(config: FinetuningConfig) -> dict:
    spec = datasets.get(config.dataset)
    keras.utils.set_random_seed(config.random_seed)
    labels = datasets.labels_for(spec, config.data_dir)
    train, dev, test = load_splits(spec, config, labels)
    task = build_task(spec, config, labels)
    init = (
        checkpoints.load_init_checkpoint(task.encoder, config.init_checkpoint)
        if config.init_checkpoint
        else "random"
    )
    logging.info("%s: %d train rows, %d dev, %d test; labels %s; init %s",
                 spec.name, len(train), len(dev), len(test), task.labels, init)  # fmt: skip
    if not dev:
        logging.warning("%s: no dev rows in %s: training without dev selection; the last weights are kept",
                        spec.name, config.data_dir)  # fmt: skip
    fileio.makedirs(config.output_dir)
    task.model.compile(optimizer=make_optimizer(config), loss=task.loss())
    dev_eval = DevEvaluation(task, dev, config)
    start = time.time()
    task.model.fit(task.train_dataset(train, config.train_batch_size, config.random_seed),
                   steps_per_epoch=dev_eval.per_round, epochs=dev_eval.rounds,
                   callbacks=[dev_eval], verbose=0)  # fmt: skip
    train_seconds = time.time() - start
    task.model.load_weights(dev_eval.weights_path)
    after = task.after_training(dev.rows, dev_eval.main_score, config.eval_batch_size)
    name = "predictions.json" if spec.task == datasets.QA else "test_predictions.tsv"
    predict = lambda rows: task.predict(rows, config.eval_batch_size)  # noqa: E731
    test_scores = scoring.evaluate(test, predict, fileio.join(config.output_dir, name)).scores
    result = {
        "dataset": config.dataset, "task": spec.task, "init_checkpoint": config.init_checkpoint, "init": init,
        "dev_selection": bool(dev), "best_dev": dev_eval.best, "history": dev_eval.history, **after,
        "test": test_scores, "train_seconds": round(train_seconds, 1),
        "seconds_per_1000_steps": round(1000 * train_seconds / dev_eval.steps, 1), "config": dataclasses.asdict(config),
    }  # fmt: skip
    from bioalbert_tf import export

    export.export_task(task, fileio.join(config.output_dir, "saved_model"),
                       {"best_dev_step": dev_eval.best.get("step"), **after})  # fmt: skip
    write_json(fileio.join(config.output_dir, METRICS_FILE), result)
    return result


def load_splits(spec, config: FinetuningConfig, labels: tuple[str, ...]):
    """(training rows, dev Gold, test Gold). Dev may be missing or empty; test may not."""
    if spec.task == datasets.QA:  # BioASQ: SQuAD training files; test batches + golden files
        train = datasets.read_qa_training(config.data_dir)
        dev = scoring.Gold(spec, "dev", [], [])
    else:
        train_split = "train_dev" if config.use_train_dev else "train"
        train = datasets.read_split(spec, config.data_dir, train_split)
        dev = scoring.load_gold(spec, config.data_dir, "dev", optional=True)
    test = scoring.load_gold(spec, config.data_dir, "test")
    if spec.task == datasets.NER:
        for gold in (dev, test):
            datasets.check_known_tags(gold.rows, labels, gold.files[0] if gold.files else "")
    for split, rows in (("train", train), ("test", test.rows)):
        if not rows:  # an empty test split would end with no test scores and exit code 0
            where = (
                config.data_dir
                if spec.task == datasets.QA
                else formats.split_file(config.data_dir, split)
            )
            raise datasets.DatasetError(where, None, f"at least one row (the {split} split)")
    return train, dev, test


def build_task(spec, config: FinetuningConfig, labels: tuple[str, ...]):
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.tasks import create_task

    albert_config = AlbertConfig.from_json_file(config.albert_config_file)
    # A vocabulary larger than the model's embedding table fails only mid-training otherwise.
    run_settings.check_spm_model(config.spm_model_file, albert_config, config.albert_config_file)
    with fileio.open_file(config.spm_model_file, "rb") as f:
        spm_model = f.read()
    max_len = config.max_seq_length or spec.max_seq_length
    return create_task(
        spec, labels, albert_config, spm_model, max_len, do_lower_case=config.do_lower_case
    )


def make_optimizer(config: FinetuningConfig):
    """The reference's fine-tuning optimizer: AdamW, decay 0.01 except LayerNorm/bias, gradients
    clipped to global norm 1.0, warm-up then linear decay to 0."""
    from bioalbert_tf.optimization import CLIP_NORM, AlbertWarmupPolynomialDecay, adamw

    schedule = AlbertWarmupPolynomialDecay(
        config.learning_rate, config.num_train_steps, config.num_warmup_steps
    )
    return adamw(schedule, weight_decay_rate=config.weight_decay_rate, global_clipnorm=CLIP_NORM)


class DevEvaluation(keras.callbacks.Callback):
    """After every round of `eval_every_steps`: scores dev with the evaluation core and saves the
    weights when the main metric improves; without dev rows, saves the last weights."""

    def __init__(self, task, dev, config: FinetuningConfig):
        super().__init__()
        self.task, self.dev, self.config = task, dev, config
        # fit() runs `rounds` epochs of `per_round` steps; dev is scored after each
        self.rounds = math.ceil(config.num_train_steps / config.eval_every_steps)
        self.per_round = math.ceil(config.num_train_steps / self.rounds)
        self.weights_path = fileio.join(config.output_dir, BEST_WEIGHTS)
        self.best: dict = {}
        self.history: list[dict] = []
        self.steps = 0

    def main_score(self, predictions) -> float:
        """The dev main metric of predictions on the dev rows."""
        return scoring.evaluate(self.dev, lambda rows: predictions).scores["main_score"]

    def on_epoch_end(self, epoch, logs=None):
        self.steps = (epoch + 1) * self.per_round
        entry = {"step": self.steps, "loss": float((logs or {}).get("loss", float("nan")))}
        self.history.append(entry)
        if not self.dev:
            self.best = {"step": self.steps}
            self.task.model.save_weights(self.weights_path)
            return
        scores = scoring.evaluate(
            self.dev, lambda rows: self.task.predict(rows, self.config.eval_batch_size)
        ).scores
        entry["dev"] = scores["main_score"]
        logging.info("step %d/%d: loss %.4f, dev %s %.4f", self.steps, self.rounds * self.per_round,
                     entry["loss"], scores["main_key"], entry["dev"])  # fmt: skip
        if not self.best or scores["main_score"] > self.best["main_score"]:
            self.best = {
                "step": self.steps,
                **{k: v for k, v in scores.items() if not isinstance(v, dict)},
            }
            self.task.model.save_weights(self.weights_path)


def run_cross_validation(config: FinetuningConfig, folds: list[tuple[int, str]]) -> dict:
    """Every fold in `<output_dir>/fold-<k>/`; a fold already finished with the same settings is
    not run again. The summary holds each fold's test scores, their mean and sample sd."""
    per_fold = {}
    for k, fold_dir in folds:
        fold = dataclasses.replace(config, data_dir=fold_dir, output_dir=fileio.join(config.output_dir, f"fold-{k}"),
                                   folds=None)  # fmt: skip
        done = finished_run(fold)
        if done:
            logging.info(
                "fold %d: finished earlier with the same settings (%s); not run again",
                k,
                fold.output_dir,
            )
        else:
            logging.info("fold %d of %d: %s", k, len(folds), fold_dir)
        per_fold[k] = done or run_one(fold)
    summary = metrics.fold_summary({k: r["test"] for k, r in per_fold.items()})
    main_key = datasets.get(config.dataset).main_key
    logging.info("%s, %d folds: %s %.4f ± %.4f", config.dataset, summary["num_folds"], main_key,
                 summary["mean"][main_key], summary["sd"][main_key] or 0.0)  # fmt: skip
    result = {
        "dataset": config.dataset, "task": datasets.get(config.dataset).task, "main_key": main_key,
        "cross_validation": summary, "fold_dirs": {str(k): fileio.join(config.output_dir, f"fold-{k}") for k, _ in folds},
        "config": dataclasses.asdict(config),
    }  # fmt: skip
    write_json(fileio.join(config.output_dir, METRICS_FILE), result)
    return result


def finished_run(config: FinetuningConfig) -> dict | None:
    """The metrics.json of a run finished with these settings, else None; a finished run with
    other settings is refused rather than overwritten."""
    path = fileio.join(config.output_dir, METRICS_FILE)
    if not fileio.exists(path):
        return None
    with fileio.open_file(path, "r") as f:
        earlier = json.load(f)
    # Not output_dir: a finished run's folder may have been moved or copied since.
    wanted = {k: v for k, v in dataclasses.asdict(config).items() if k != "output_dir"}
    diff = {
        k: (earlier.get("config", {}).get(k), v)
        for k, v in wanted.items()
        if earlier.get("config", {}).get(k) != v
    }
    if diff:
        raise ValueError(f"{path} holds a finished run with other settings "
                         f"({', '.join(f'{k}: {a!r} there, {b!r} now' for k, (a, b) in diff.items())}); "
                         "use another --output_dir or remove it")  # fmt: skip
    return earlier


def write_json(path: str, obj: dict) -> None:
    """Written whole or not at all: a crash never leaves a half-written metrics.json."""
    fileio.write_text_atomic(path, json.dumps(obj, indent=2, default=float) + "\n")
