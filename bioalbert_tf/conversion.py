"""Converting ALBERT checkpoints between the original TF1 layout and ours (the
`convert_checkpoint` command line's work): which files a conversion writes, what it refuses to
replace, and the conversion itself."""

from __future__ import annotations

import dataclasses

from bioalbert_tf import checkpoints, fileio, run_folder
from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class ConversionConfig:
    """convert_checkpoint's settings (its flags are generated from these fields)."""

    tf1_checkpoint: str | None = setting(
        None, "TF1 checkpoint prefix (local or gs://), e.g. .../model.ckpt-best."
    )
    albert_config_file: str | None = setting(
        None, "albert_config.json; default: the one beside the checkpoint."
    )
    output_dir: str | None = setting(
        None, "Where our checkpoint (ckpt-N, albert_config.json) goes."
    )
    to_tf1: bool = setting(False, "Convert ours -> TF1 instead.")
    keras_checkpoint: str | None = setting(
        None, "Our checkpoint: a prefix, or a folder with a `checkpoint` file."
    )
    output_tf1: str | None = setting(None, "TF1 prefix to write, e.g. export/model.ckpt-best.")
    global_step: int | None = setting(
        None, "global_step to store in the TF1 checkpoint (default: ours, if any)."
    )
    keras_hub_preset_dir: str | None = setting(
        None, "Also write a keras-hub AlbertBackbone preset here."
    )
    spm_model_file: str | None = setting(
        None, "SentencePiece model to include in the keras-hub preset."
    )
    overwrite: bool = setting(
        False, "Replace output files that already exist (by default such a conversion is refused)."
    )

    def __post_init__(self):
        if self.to_tf1 and not (self.keras_checkpoint and self.output_tf1):
            raise ValueError("--to_tf1 needs --keras_checkpoint and --output_tf1")
        if not self.to_tf1 and not (self.tf1_checkpoint and self.output_dir):
            raise ValueError("give --tf1_checkpoint and --output_dir (or --to_tf1 ...)")

    @property
    def folder(self) -> str:
        """The folder the checkpoint is written to."""
        return fileio.dirname(self.output_tf1) if self.to_tf1 else self.output_dir


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


def outputs(config: ConversionConfig) -> list[str]:
    """The paths a conversion writes (files, and the preset folder)."""
    folder = config.folder
    if config.to_tf1:
        paths = [config.output_tf1 + ".index", *fileio.glob(config.output_tf1 + ".data-*")]
    else:
        # Checkpoint.save numbers from 1 in a new checkpoint object: ckpt-1.*
        paths = fileio.glob(fileio.join(folder, "ckpt-1.*"))
    paths += [fileio.join(folder, "checkpoint"), fileio.join(folder, checkpoints.CONFIG_NAME)]
    if config.keras_hub_preset_dir:
        paths.append(config.keras_hub_preset_dir)
    return paths


def refuse_overwrite(config: ConversionConfig) -> None:
    # A pretraining or fine-tuning run's folder is never written into, even with --overwrite:
    # its `checkpoint` and albert_config.json replaced, it could not resume. An earlier
    # conversion's (a checkpoint and albert_config.json only) is replaced with --overwrite.
    run_folder.refuse_foreign(config.folder, "convert_checkpoint", own=("checkpoint", ".index"))
    fileio.refuse_overwrite(outputs(config), config.overwrite)


def convert(config: ConversionConfig) -> dict:
    """Converts as `config` says, after refusing to replace what it must not; returns a
    summary (from, to, variables or what was loaded, global_step, the preset's files)."""
    from bioalbert_tf.modeling import AlbertPretrainer

    refuse_overwrite(config)
    if config.to_tf1:
        prefix = checkpoints.resolve_checkpoint(config.keras_checkpoint)
        model = AlbertPretrainer(
            checkpoints.config_for(config.keras_checkpoint, config.albert_config_file)
        )
        checkpoints.load_keras_checkpoint(model, prefix)
        step = config.global_step if config.global_step is not None else _step(prefix)
        names = checkpoints.save_tf1_checkpoint(model, config.output_tf1, step)
        model.config.to_json_file(fileio.join(config.folder, checkpoints.CONFIG_NAME))
        summary = {
            "from": prefix,
            "to": config.output_tf1,
            "variables": len(names),
            "global_step": step,
        }
    else:
        prefix = checkpoints.resolve_checkpoint(config.tf1_checkpoint)
        model = AlbertPretrainer(
            checkpoints.config_for(config.tf1_checkpoint, config.albert_config_file)
        )
        report = checkpoints.load_tf1_checkpoint(model, prefix)
        path = checkpoints.save_keras_checkpoint(model, config.output_dir, report.global_step)
        summary = {
            "from": prefix,
            "to": path,
            "loaded": report.loaded,
            "ignored_optimizer_and_step": report.ignored,
            "global_step": report.global_step,
        }
    if config.keras_hub_preset_dir:
        from bioalbert_tf.serving.keras_hub_export import save_keras_hub_preset

        summary["keras_hub_preset"] = save_keras_hub_preset(
            model.encoder, config.keras_hub_preset_dir, config.spm_model_file
        )
    return summary
