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

The settings a run depends on are recorded in `<output_dir>/run_settings.json` (and in each fold
folder's) before training starts, and compared on every later run into the folder: another
setting, other data files, other initial weights, or cross-validation where a single run was (or
the reverse) is refused before anything is written, unless `overwrite` starts the folder afresh.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time

import keras
from absl import logging

from bioalbert_tf import checkpoints, fileio, manifest, run_folder
from bioalbert_tf.evaluation import datasets, formats, metrics, scoring
from bioalbert_tf.training import run_settings
from bioalbert_tf.training.dev_evaluation import BEST_WEIGHTS, RESUME_DIR, DevEvaluation
from bioalbert_tf.training.finetuning_config import FinetuningConfig

METRICS_FILE = "metrics.json"
TEST_PREDICTIONS = "test_predictions.tsv"
QA_PREDICTIONS = "predictions.json"  # BioASQ
SAVED_MODEL = "saved_model"
# Every file fine-tuning writes in its output_dir (and in fold-<k>/): what --overwrite removes.
OUTPUTS = (METRICS_FILE, manifest.SETTINGS_NAME, BEST_WEIGHTS, TEST_PREDICTIONS, QA_PREDICTIONS)


def run(config: FinetuningConfig, overwrite: bool = False) -> dict:
    """Fine-tunes, evaluates and exports one model, or one per cross-validation fold.

    Refused before anything is written: an output_dir or fold folder whose run_settings.json
    records other settings (a rerun with the same ones trains a single run again, replacing its
    own outputs, and skips finished folds). `overwrite` first removes what fine-tuning wrote in
    output_dir (OUTPUTS, saved_model/, fold-<k>/), leaving other files, and starts afresh.
    """
    with run_folder.hold(config.output_dir, COMMAND):
        return _run(config, overwrite)


def _run(config: FinetuningConfig, overwrite: bool) -> dict:
    spec = datasets.get(config.dataset)
    folds = [] if spec.task == datasets.QA else datasets.find_folds(config.data_dir)
    if config.folds and not folds:
        raise ValueError(
            f"--folds={config.folds}: {config.data_dir} has no fold folders (1/, 2/, ...)"
        )
    selected = datasets.select_folds(folds, config.folds, config.data_dir) if folds else []
    settings = settings_of(config, [k for k, _ in selected] or None)
    fold_runs = []
    for k, fold_dir in selected:
        fold = dataclasses.replace(
            config,
            data_dir=fold_dir,
            output_dir=fileio.join(config.output_dir, f"fold-{k}"),
            folds=None,
        )
        fold_runs.append((k, fold, settings_of(fold)))
    for run_config, now in [(config, settings)] + [(fold, s) for _, fold, s in fold_runs]:
        check_settings(run_config, now, overwrite)
    if overwrite:
        clear_outputs(config.output_dir)
    if fold_runs:
        return run_cross_validation(config, settings, fold_runs)
    done = finished_run(config)
    if done:
        logging.info(
            "%s: finished earlier with the same settings; not run again (--overwrite "
            "runs it afresh)",
            config.output_dir,
        )
        return done
    return run_one(config, {config.output_dir: settings})


# run_settings.json of fine-tuning: every flag that changes what is trained, the model config,
# and what the flags' paths held when the run started (DATA_FILES, SPM_MODEL, INIT_WEIGHTS,
# the model config): a path spelled another way, or a folder moved or copied since, is the same
# run. Not compared either: folds (as CROSS_VALIDATION), eval_batch_size (prediction only) and
# jit_compile (float round-off, not what is trained).
NOT_COMPARED = (
    "output_dir",
    "data_dir",
    "albert_config_file",
    "spm_model_file",
    "init_checkpoint",
    "folds",
    "eval_batch_size",
    "jit_compile",
    "save_checkpoints_steps",
)
SETTINGS = tuple(f.name for f in dataclasses.fields(FinetuningConfig) if f.name not in NOT_COMPARED)
COMMAND = "run_finetuning"  # run_settings.json's "command": another command's file is not ours
DATA_FILES = "data_files"  # name and size of each file in --data_dir (not in its subfolders)
SPM_MODEL = "spm_model"  # name and size of --spm_model_file
FILES = {DATA_FILES: "--data_dir", SPM_MODEL: "--spm_model_file"}
# The checkpoint --init_checkpoint resolves to (a folder: its latest), with the sha256 of its
# .index, which holds a checksum of every tensor: a folder whose pretraining went on, or a
# model.ckpt-best rewritten with better weights, is another start. None: random initialisation.
INIT_WEIGHTS = "init_weights"
# The folds of a cross-validation folder (None: a single run). Which folds may change between
# runs (the summary covers those run last); a single run and a cross-validation may not share.
CROSS_VALIDATION = "cross_validation_folds"


def settings_of(config: FinetuningConfig, folds: list[int] | None = None) -> dict:
    """What run_settings.json records for `config` (`folds`: those of a cross-validation)."""
    from bioalbert_tf.config import AlbertConfig

    values = {name: getattr(config, name) for name in SETTINGS}
    values[manifest.COMMAND] = COMMAND
    albert_config = AlbertConfig.from_json_file(config.albert_config_file)
    values[run_settings.ALBERT_CONFIG] = albert_config.to_dict()
    # Fine-tuning's own outputs are not data (should --output_dir be --data_dir).
    names = [n.rstrip("/") for n in fileio.listdir(config.data_dir)]
    paths = [
        fileio.join(config.data_dir, n)
        for n in names
        if fileio.final_name(n) not in OUTPUTS and n != run_folder.LOCK_NAME
    ]
    values[DATA_FILES] = manifest.files_of(p for p in paths if not fileio.isdir(p))
    values[SPM_MODEL] = manifest.files_of([config.spm_model_file])
    values[INIT_WEIGHTS] = None
    if config.init_checkpoint:
        prefix = checkpoints.resolve_checkpoint(config.init_checkpoint)
        digest = formats.file_sha256(prefix + ".index")[:16]
        values[INIT_WEIGHTS] = f"{fileio.basename(prefix)} (.index sha256 {digest}...)"
    values[CROSS_VALIDATION] = folds
    return values


def _kind(settings: dict) -> dict:
    """What is compared of a run's folds: a single run or a cross-validation (which folds may
    change between runs: metrics.json summarises those run last)."""
    folds = settings.get(CROSS_VALIDATION)
    return {**settings, CROSS_VALIDATION: "a single run" if folds is None else "a cross-validation"}


def check_settings(config: FinetuningConfig, now: dict, overwrite: bool = False) -> None:
    """Raises SettingsMismatchError if output_dir's run_settings.json records other settings
    than `now` (from `settings_of`; with `overwrite`, only if it is another command's). Writes
    nothing."""
    path = fileio.join(config.output_dir, manifest.SETTINGS_NAME)
    named = {**FILES, INIT_WEIGHTS: "--init_checkpoint weights", CROSS_VALIDATION: "the run"}
    before = manifest.check(
        path,
        now,
        f"{config.output_dir} holds a fine-tuning run",
        "Choose another --output_dir, or pass --overwrite to start this one afresh (the "
        "metrics, predictions, weights and SavedModel fine-tuning wrote there are removed).",
        overwrite,
        COMMAND,
        _kind,
        keys=[*SETTINGS, *FILES, INIT_WEIGHTS, run_settings.ALBERT_CONFIG, CROSS_VALIDATION],
        **run_settings.compare_args(config.albert_config_file, SETTINGS, named),
    )
    if before is None:
        return
    was, folds = before.get(CROSS_VALIDATION), now[CROSS_VALIDATION]
    if was != folds:
        logging.info(
            "%s: folds %s before, %s now; metrics.json will summarise those run now",
            config.output_dir,
            was,
            folds,
        )


def clear_outputs(output_dir: str) -> None:
    """--overwrite: removes what fine-tuning wrote in output_dir (OUTPUTS, their .tmp files,
    saved_model/, and the same in fold-<k>/, which goes when nothing else is left in it)."""
    if not fileio.isdir(output_dir):
        return
    removed = []
    for name in (n.rstrip("/") for n in fileio.listdir(output_dir)):
        path = fileio.join(output_dir, name)
        if fileio.final_name(name) in OUTPUTS:
            fileio.remove(path)
        elif name in (SAVED_MODEL, RESUME_DIR):
            fileio.rmtree(path)
        elif re.fullmatch(r"fold-\d+", name) and fileio.isdir(path):
            clear_outputs(path)
            if fileio.listdir(path):
                continue
            fileio.rmtree(path)
        else:
            continue
        removed.append(name)
    if removed:
        logging.info("--overwrite: removed %s from %s", ", ".join(removed), output_dir)


def run_one(config: FinetuningConfig, records: dict[str, dict]) -> dict:
    """One model: trains, evaluates, exports. `records` ({folder: settings}) are written to the
    folders' run_settings.json once the data, model and checkpoint are read, before training."""
    spec = datasets.get(config.dataset)
    keras.utils.set_random_seed(config.random_seed)
    labels = datasets.labels_for(spec, config.data_dir)
    train, dev, test = load_splits(spec, config, labels)
    task = build_task(spec, config, labels)
    init = "random"
    if config.init_checkpoint:
        try:
            init = checkpoints.load_init_checkpoint(task.encoder, config.init_checkpoint)
        except checkpoints.CheckpointMismatchError as e:
            raise checkpoints.CheckpointMismatchError(
                f"--init_checkpoint={config.init_checkpoint} does not fit the model of "
                f"--albert_config_file={config.albert_config_file}: {e}"
            ) from None
    logging.info(
        "%s: %d train rows, %d dev, %d test; labels %s; init %s",
        spec.name,
        len(train),
        len(dev),
        len(test),
        task.labels,
        init,
    )
    if not dev:
        logging.warning(
            "%s: no dev rows in %s: training without dev selection; the last weights are kept",
            spec.name,
            config.data_dir,
        )
    fileio.makedirs(config.output_dir)
    for folder, settings in records.items():
        manifest.record(fileio.join(folder, manifest.SETTINGS_NAME), settings)
    compile_task(task, config)
    dev_eval = DevEvaluation(task, dev, config)
    done = dev_eval.resume.restore()  # steps taken by an interrupted run, or 0

    def batches_from(step: int):
        # The batches of the steps taken are skipped: the same order as an uninterrupted run. A
        # new dataset for each fit(): a second iterator of one would be shuffled otherwise.
        return task.train_dataset(train, config.train_batch_size, config.random_seed).skip(step)

    start = time.time()
    rounds_done, into_round = divmod(done, dev_eval.per_round)
    if into_round:  # resumed within a round: the rest of it first
        task.model.fit(
            batches_from(done),
            steps_per_epoch=dev_eval.per_round - into_round,
            epochs=1,
            callbacks=[dev_eval],
            verbose=0,
        )
        rounds_done += 1
    if rounds_done < dev_eval.rounds:
        task.model.fit(
            batches_from(rounds_done * dev_eval.per_round),
            steps_per_epoch=dev_eval.per_round,
            epochs=dev_eval.rounds,
            initial_epoch=rounds_done,
            callbacks=[dev_eval],
            verbose=0,
        )
    train_seconds = time.time() - start
    task.model.load_weights(dev_eval.weights_path)
    after = task.after_training(dev.rows, dev_eval.main_score, config.eval_batch_size)
    name = QA_PREDICTIONS if spec.task == datasets.QA else TEST_PREDICTIONS
    predict = lambda rows: task.predict(rows, config.eval_batch_size)  # noqa: E731
    test_scores = scoring.evaluate(test, predict, fileio.join(config.output_dir, name)).scores
    result = {
        "dataset": config.dataset,
        "task": spec.task,
        "init_checkpoint": config.init_checkpoint,
        "init": init,
        "dev_selection": bool(dev),
        "best_dev": dev_eval.best,
        "history": dev_eval.history,
        **after,
        "test": test_scores,
        "train_seconds": round(train_seconds, 1),
        "seconds_per_1000_steps": round(1000 * train_seconds / dev_eval.steps, 1),
        "config": dataclasses.asdict(config),
    }
    from bioalbert_tf.serving import export

    # Written beside and renamed into place: never half of one export and half of another.
    metadata = {"best_dev_step": dev_eval.best.get("step"), **after}
    fileio.replace_folder(
        fileio.join(config.output_dir, SAVED_MODEL),
        lambda folder: export.export_task(task, folder, metadata),
    )
    write_json(fileio.join(config.output_dir, METRICS_FILE), result)  # last: the run is finished
    dev_eval.resume.remove()
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
        window = (config.max_seq_length or spec.max_seq_length) - 2  # [CLS] and [SEP]
        train_file = formats.split_file(config.data_dir, train_split)
        for rows, path in (
            (train, train_file),
            *((g.rows, g.files[0]) for g in (dev, test) if g.files),
        ):
            datasets.warn_long_sentences(rows, window, path)
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


def compile_task(task, config: FinetuningConfig) -> None:
    """Compiles the task's Keras model for training: the reference's optimizer, the task's loss,
    the training step XLA-compiled unless config.jit_compile is False."""
    task.model.compile(
        optimizer=make_optimizer(config), loss=task.loss(), jit_compile=config.jit_compile
    )


def make_optimizer(config: FinetuningConfig):
    """The reference's fine-tuning optimizer: AdamW, decay 0.01 except LayerNorm/bias, gradients
    clipped to global norm 1.0, warm-up then linear decay to 0."""
    from bioalbert_tf.training.optimization import CLIP_NORM, AlbertWarmupPolynomialDecay, adamw

    schedule = AlbertWarmupPolynomialDecay(
        config.learning_rate, config.num_train_steps, config.num_warmup_steps
    )
    return adamw(schedule, weight_decay_rate=config.weight_decay_rate, global_clipnorm=CLIP_NORM)


def run_cross_validation(
    config: FinetuningConfig, settings: dict, folds: list[tuple[int, FinetuningConfig, dict]]
) -> dict:
    """Every fold ((k, its config, its settings)) in `<output_dir>/fold-<k>/`; a fold already
    finished with the same settings is not run again. The summary holds each fold's test
    scores, their mean and sample sd. `settings` are output_dir's (recorded with each fold's)."""
    per_fold = {}
    for k, fold, fold_settings in folds:
        done = finished_run(fold)
        if done:
            logging.info(
                "fold %d: finished earlier with the same settings (%s); not run again",
                k,
                fold.output_dir,
            )
        else:
            logging.info("fold %d of %d: %s", k, len(folds), fold.data_dir)
        per_fold[k] = done or run_one(
            fold, {config.output_dir: settings, fold.output_dir: fold_settings}
        )
    summary = metrics.fold_summary({k: r["test"] for k, r in per_fold.items()})
    main_key = datasets.get(config.dataset).main_key
    logging.info(
        "%s, %d folds: %s %s ± %s",
        config.dataset,
        summary["num_folds"],
        main_key,
        summary["mean"].get(main_key),
        summary["sd"].get(main_key),
    )
    result = {
        "dataset": config.dataset,
        "task": datasets.get(config.dataset).task,
        "main_key": main_key,
        "cross_validation": summary,
        "fold_dirs": {str(k): fold.output_dir for k, fold, _ in folds},
        "config": dataclasses.asdict(config),
    }
    manifest.record(fileio.join(config.output_dir, manifest.SETTINGS_NAME), settings)  # folds now
    write_json(fileio.join(config.output_dir, METRICS_FILE), result)
    return result


def finished_run(config: FinetuningConfig) -> dict | None:
    """The metrics.json of a finished run in output_dir, else None. Called after check_settings
    has found run_settings.json to record these settings; metrics.json is written last, so it
    marks a run whose outputs are all there."""
    path = fileio.join(config.output_dir, METRICS_FILE)
    settings = fileio.join(config.output_dir, manifest.SETTINGS_NAME)
    if not fileio.exists(path):
        return None
    if not fileio.exists(settings):
        raise ValueError(
            f"{path} is not a fine-tuning run's (no {manifest.SETTINGS_NAME} beside it); "
            "choose another --output_dir"
        )
    return fileio.read_json(path)


def write_json(path: str, obj: dict) -> None:
    """Written whole or not at all: a crash never leaves a half-written metrics.json."""
    fileio.write_text_atomic(path, json.dumps(obj, indent=2, default=float) + "\n")
