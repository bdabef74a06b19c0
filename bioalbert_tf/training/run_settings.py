"""What a run depends on, checked before it starts.

- Resuming: the settings a pretraining run's checkpoints depend on are recorded in
  `<output_dir>/run_settings.json` and compared when the folder holds a checkpoint to resume
  from. A mismatch is refused before anything in the folder is written, naming each differing
  setting with both values (otherwise a changed batch size ends in "Incompatible shapes" after
  "resumed from ckpt-N", and a changed model config overwrites the folder's albert_config.json).
  The input and eval TFRecords (name and size of each) and the number of replicas are among
  them: other data, or another replica count, would continue the run as a different one without
  a word. The recording and comparing is `manifest`'s, as for every command.
- Input: TFRecords that hold no record, or that were built with another sequence length,
  number of predictions or a larger vocabulary than the model's, are refused with the file and
  both numbers (otherwise: a silent endless loop over an empty dataset, a raw parse traceback,
  or a gather error after training has started).
- `train_metrics.jsonl`: lines logged after the checkpoint a run resumes from are dropped, so
  each step appears once.
"""

from __future__ import annotations

import json

from absl import logging

from bioalbert_tf import checkpoints, fileio, manifest, tokenization
from bioalbert_tf.run_folder import METRICS_NAME, STATS_NAME

SETTINGS_NAME = manifest.SETTINGS_NAME
# Settings the checkpoints (model, optimizer slots, input iterator) or the learning-rate curve
# depend on. num_train_steps is not among them: extending a run is allowed (and logged).
RESUME_SETTINGS = (
    "train_batch_size",
    "max_seq_length",
    "max_predictions_per_seq",
    "optimizer",
    "learning_rate",
    "num_warmup_steps",
    "poly_power",
    "random_seed",
    "use_bfloat16",
)
ALBERT_CONFIG = "albert_config"
# The input TFRecords, as sorted [name, size in bytes] pairs. By name, not path: the same shards
# copied to another folder or bucket (local -> gs://) resume; other shards, a shard more or less,
# or a shard rebuilt to another size are another data set (the checkpointed input position and
# the shuffle order refer to the recorded files).
INPUT_FILES = "input_files"
# The --eval_input_file TFRecords, likewise ([] when the run evaluates on its input files): the
# best checkpoint kept so far was chosen on them, and another eval set is not comparable.
EVAL_FILES = "eval_input_files"
# Replicas in sync: --train_batch_size is global and split over them, and each replica's
# gradients are clipped to norm 1 before they are summed, so another count changes the update
# (and with several replicas the input position is not checkpointed at all).
REPLICAS = "num_replicas_in_sync"

SettingsMismatchError = manifest.SettingsMismatchError  # raised by check_resume


class InputMismatchError(ValueError):
    """Input TFRecords that cannot feed this run; the message names the file and both values."""


def settings_of(
    config, albert_config, files: list[str], num_replicas: int, eval_files: list[str] = ()
) -> dict:
    """What run_settings.json records: flags, model config, input and eval files, replicas."""
    values = {name: getattr(config, name) for name in RESUME_SETTINGS}
    values["num_train_steps"] = config.num_train_steps
    values[ALBERT_CONFIG] = albert_config.to_dict()
    values[INPUT_FILES] = manifest.files_of(files)
    values[EVAL_FILES] = manifest.files_of(eval_files)
    values[REPLICAS] = num_replicas
    return values


def latest_checkpoint(output_dir: str) -> str | None:
    import tensorflow as tf

    return tf.train.latest_checkpoint(output_dir) if fileio.isdir(output_dir) else None


def compare_args(albert_config_file: str, flags, named: dict) -> dict:
    """How `manifest.differences` names what a run records: each of `flags` as `--<flag>`, the
    keys of `named` by their names there, and the model config's keys as albert_config.json's,
    whose values now come from `albert_config_file`."""
    labels = {name: f"--{name}" for name in flags}
    return {
        "labels": {**labels, **named, ALBERT_CONFIG: checkpoints.CONFIG_NAME},
        "sources": {ALBERT_CONFIG: albert_config_file},
    }


def check_resume(config, now: dict) -> str | None:
    """Raises SettingsMismatchError if output_dir holds a checkpoint made with other settings
    than `now` (from `settings_of`).

    Returns the checkpoint that will be resumed (None for a fresh run). Writes nothing.
    """
    latest = latest_checkpoint(config.output_dir)
    if latest is None:
        return None
    checkpoints.check_checkpoint_files(latest)
    path = fileio.join(config.output_dir, SETTINGS_NAME)
    if fileio.exists(path):
        before, source = fileio.read_json(path), path
    else:  # convert_checkpoint's folder records no settings: its albert_config.json is all
        config_path = fileio.join(config.output_dir, checkpoints.CONFIG_NAME)
        if not fileio.exists(config_path):
            return latest
        before = {ALBERT_CONFIG: fileio.read_json(config_path)}
        source = config_path
    compared = [*RESUME_SETTINGS, INPUT_FILES, EVAL_FILES, ALBERT_CONFIG, REPLICAS]
    files = {INPUT_FILES: "--input_file", EVAL_FILES: "--eval_input_file"}
    labels = compare_args(
        config.albert_config_file, RESUME_SETTINGS, {**files, REPLICAS: "replicas in sync"}
    )
    compared = [k for k in compared if k in before]
    rows = manifest.differences(before, now, source, compared, **labels)
    if rows:
        raise SettingsMismatchError(
            f"{config.output_dir} holds {fileio.basename(latest)}, made with other settings; "
            f"resuming it needs the same ones. {len(rows)} differ:\n" + "\n".join(rows) + "\n"
            "Rerun with the recorded values (the same input and eval files, the same number of "
            "replicas), or start a new --output_dir (with "
            f"--init_checkpoint={config.output_dir} to start from its weights)."
        )
    steps_before = before.get("num_train_steps")
    if steps_before is not None and steps_before != config.num_train_steps:
        logging.warning(
            "--num_train_steps changed from %d to %d on resume: the learning-rate decay is "
            "recomputed over %d steps",
            steps_before,
            config.num_train_steps,
            config.num_train_steps,
        )
    return latest


def trim_metrics(output_dir: str, step: int) -> int:
    """Drops train_metrics.jsonl lines with step > `step` (logged after the checkpoint resumed
    from, by a run killed before its next checkpoint); rewrites the file atomically.
    Returns the number of lines dropped."""
    path = fileio.join(output_dir, METRICS_NAME)
    if not fileio.exists(path):
        return 0
    with fileio.open_file(path, "r") as f:
        lines = f.read().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    dropped = len([line for line in lines if line.strip()]) - len(kept)
    if dropped:
        fileio.write_text_atomic(path, "".join(line + "\n" for line in kept))
        logging.info(
            "%s: dropped %d line(s) logged after step %d (the checkpoint resumed from)",
            path,
            dropped,
            step,
        )
    return dropped


def _first_record(path: str, compression: str):
    import tensorflow as tf

    for record in tf.data.TFRecordDataset(path, compression_type=compression).take(1):
        return record.numpy()
    return None


def _lengths(record: bytes) -> dict:
    import tensorflow as tf

    from bioalbert_tf import features

    feature = tf.train.Example.FromString(record).features.feature
    out = {}
    for flag, name in (
        ("max_seq_length", features.INPUT_IDS),
        ("max_predictions_per_seq", features.MASKED_LM_IDS),
    ):
        if name in feature:
            out[flag] = len(feature[name].int64_list.value)
    return out


def _stats_files(files: list[str]) -> list[str]:
    folders = sorted({fileio.dirname(f) for f in files})
    paths = [fileio.join(folder, STATS_NAME) for folder in folders]
    return [p for p in paths if fileio.exists(p)]


def check_vocab_size(size: int, source: str, albert_config, albert_config_file: str) -> None:
    """Refuses a vocabulary of `size` pieces (from `source`) that the embedding table cannot
    hold, before training meets an out-of-range id in a gather."""
    if size > albert_config.vocab_size:
        raise InputMismatchError(
            f"{source}: the vocabulary has {size} pieces, but vocab_size in "
            f"{albert_config_file} is {albert_config.vocab_size}: ids up to {size - 1} "
            f"would not fit the embedding table; set vocab_size >= {size}"
        )


def check_spm_model(spm_model_file: str, albert_config, albert_config_file: str) -> None:
    """check_vocab_size for a SentencePiece model file (fine-tuning can call this too)."""
    size = tokenization.load_sentencepiece(spm_model_file, check=False).get_piece_size()
    check_vocab_size(size, spm_model_file, albert_config, albert_config_file)


def check_inputs(
    files: list[str],
    config,
    albert_config,
    compression: str = "",
    flag: str = "--input_file",
    spm_model_file: str | None = None,
) -> None:
    """Refuses TFRecords with no record, or built for another length, prediction count or a
    larger vocabulary than the model's (from the builder's stats.json, else the first record,
    and `spm_model_file`)."""
    want = {
        "max_seq_length": config.max_seq_length,
        "max_predictions_per_seq": config.max_predictions_per_seq,
    }
    for stats_path in _stats_files(files):
        stats = fileio.read_json(stats_path)
        built = stats.get("flags", {})
        for name, value in want.items():
            if name in built and built[name] != value:
                raise InputMismatchError(
                    f"{stats_path}: the TFRecords were built with --{name}={built[name]}, "
                    f"this run has --{name}={value}; pass --{name}={built[name]} (or rebuild)"
                )
        if stats.get("vocab_size"):
            check_vocab_size(
                stats["vocab_size"],
                f"{stats_path} (vocab_size)",
                albert_config,
                config.albert_config_file,
            )
    if spm_model_file:
        check_spm_model(spm_model_file, albert_config, config.albert_config_file)
    # A repeated dataset with nothing in it never yields a batch: the run would spin forever.
    for path in files:
        record = _first_record(path, compression)
        if record is not None:
            break
    else:
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        raise InputMismatchError(f"{flag}: no records in any of the {len(files)} file(s): {shown}")
    for name, value in _lengths(record).items():
        if value != want[name]:
            raise InputMismatchError(
                f"{path}: its examples have {name} {value}, this run has --{name}={want[name]}; "
                f"pass --{name}={value} (or rebuild the TFRecords)"
            )
