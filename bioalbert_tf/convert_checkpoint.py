r"""Converts ALBERT checkpoints between the original TF1 layout and ours.

TF1 (Google ALBERT, published BioALBERT) -> ours (a TF2 object checkpoint of the pretrainer):
  python -m bioalbert_tf.convert_checkpoint --tf1_checkpoint=albert_base/model.ckpt-best \
      --albert_config_file=albert_base/albert_config.json --output_dir=converted/
Ours (a conversion or a pretraining output_dir, or a ckpt prefix) -> TF1:
  python -m bioalbert_tf.convert_checkpoint --to_tf1 --keras_checkpoint=pretrain_out/ \
      --albert_config_file=albert_config.json --output_tf1=export/model.ckpt-best
Add --keras_hub_preset_dir (and --spm_model_file) to also write a keras-hub AlbertBackbone preset.
Files that already exist where the output goes (a `checkpoint` state file, albert_config.json, a
checkpoint of the same name, a non-empty preset folder) are left alone unless --overwrite.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from bioalbert_tf import checkpoints, fileio, run_folder

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "tf1_checkpoint", None, "TF1 checkpoint prefix (local or gs://), e.g. .../model.ckpt-best."
)
flags.DEFINE_string(
    "albert_config_file", None, "albert_config.json; default: the one beside the checkpoint."
)
flags.DEFINE_string("output_dir", None, "Where our checkpoint (ckpt-N, albert_config.json) goes.")
flags.DEFINE_bool("to_tf1", False, "Convert ours -> TF1 instead.")
flags.DEFINE_string(
    "keras_checkpoint", None, "Our checkpoint: a prefix, or a folder with a `checkpoint` file."
)
flags.DEFINE_string("output_tf1", None, "TF1 prefix to write, e.g. export/model.ckpt-best.")
flags.DEFINE_integer(
    "global_step", None, "global_step to store in the TF1 checkpoint (default: ours, if any)."
)
flags.DEFINE_string(
    "keras_hub_preset_dir", None, "Also write a keras-hub AlbertBackbone preset here."
)
flags.DEFINE_string(
    "spm_model_file", None, "SentencePiece model to include in the keras-hub preset."
)
flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace output files that already exist (by default such a conversion is refused).",
)


def _config(checkpoint_path: str):
    return checkpoints.config_for(checkpoint_path, FLAGS.albert_config_file)


def _step(prefix: str) -> int | None:
    import tensorflow as tf

    names = dict(tf.train.list_variables(prefix))
    for name in (
        "step/.ATTRIBUTES/VARIABLE_VALUE",
        "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE",
        "global_step",
    ):
        if name in names:
            return int(tf.train.load_variable(prefix, name))
    return None


def _folder() -> str:
    """The folder the checkpoint is written to."""
    if FLAGS.to_tf1:
        return fileio.dirname(FLAGS.output_tf1)
    return FLAGS.output_dir


def _outputs() -> list[str]:
    """The paths this command writes (files, and the preset folder)."""
    folder = _folder()
    if FLAGS.to_tf1:
        paths = [FLAGS.output_tf1 + ".index", *fileio.glob(FLAGS.output_tf1 + ".data-*")]
    else:
        # Checkpoint.save numbers from 1 in a new checkpoint object: ckpt-1.*
        paths = fileio.glob(fileio.join(folder, "ckpt-1.*"))
    paths += [fileio.join(folder, "checkpoint"), fileio.join(folder, checkpoints.CONFIG_NAME)]
    if FLAGS.keras_hub_preset_dir:
        paths.append(FLAGS.keras_hub_preset_dir)
    return paths


def _refuse_overwrite() -> None:
    # A pretraining or fine-tuning run's folder is never written into, even with --overwrite:
    # its `checkpoint` and albert_config.json replaced, it could not resume. An earlier
    # conversion's (a checkpoint and albert_config.json only) is replaced with --overwrite.
    run_folder.refuse_foreign(_folder(), "convert_checkpoint", own=("checkpoint", ".index"))
    fileio.refuse_overwrite(_outputs(), FLAGS.overwrite)


def main(argv):
    del argv
    from bioalbert_tf.config import ConfigError

    if FLAGS.to_tf1 and not (FLAGS.keras_checkpoint and FLAGS.output_tf1):
        raise app.UsageError("--to_tf1 needs --keras_checkpoint and --output_tf1")
    if not FLAGS.to_tf1 and not (FLAGS.tf1_checkpoint and FLAGS.output_dir):
        raise app.UsageError("give --tf1_checkpoint and --output_dir (or --to_tf1 ...)")
    try:
        with run_folder.hold(_folder(), "convert_checkpoint"):
            summary = _convert()
    except KeyboardInterrupt as e:
        print(
            run_folder.interrupted(e, "nothing was converted; rerun the command"), file=sys.stderr
        )
        return 130
    except (
        checkpoints.CheckpointMismatchError,
        FileNotFoundError,
        FileExistsError,
        ConfigError,
        ValueError,
        *fileio.fault_types(),
    ) as e:
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def _convert() -> dict:
    """Converts as the flags say; returns the summary printed."""
    from bioalbert_tf.modeling import AlbertPretrainer

    _refuse_overwrite()
    if FLAGS.to_tf1:
        prefix = checkpoints.resolve_checkpoint(FLAGS.keras_checkpoint)
        model = AlbertPretrainer(_config(FLAGS.keras_checkpoint))
        checkpoints.load_keras_checkpoint(model, prefix)
        step = FLAGS.global_step if FLAGS.global_step is not None else _step(prefix)
        names = checkpoints.save_tf1_checkpoint(model, FLAGS.output_tf1, step)
        model.config.to_json_file(fileio.join(_folder(), checkpoints.CONFIG_NAME))
        summary = {
            "from": prefix,
            "to": FLAGS.output_tf1,
            "variables": len(names),
            "global_step": step,
        }
    else:
        prefix = checkpoints.resolve_checkpoint(FLAGS.tf1_checkpoint)
        model = AlbertPretrainer(_config(FLAGS.tf1_checkpoint))
        report = checkpoints.load_tf1_checkpoint(model, prefix)
        path = checkpoints.save_keras_checkpoint(model, FLAGS.output_dir, report.global_step)
        summary = {
            "from": prefix,
            "to": path,
            "loaded": report.loaded,
            "ignored_optimizer_and_step": report.ignored,
            "global_step": report.global_step,
        }
    if FLAGS.keras_hub_preset_dir:
        from bioalbert_tf.serving.keras_hub_export import save_keras_hub_preset

        summary["keras_hub_preset"] = save_keras_hub_preset(
            model.encoder, FLAGS.keras_hub_preset_dir, FLAGS.spm_model_file
        )
    return summary


if __name__ == "__main__":
    app.run(main)
