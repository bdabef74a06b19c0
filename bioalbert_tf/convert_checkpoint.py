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

from absl import app

from bioalbert_tf import checkpoints, fileio, run_folder, settings
from bioalbert_tf.conversion import ConversionConfig, convert

settings.define_flags(ConversionConfig)


def main(argv):
    del argv
    from bioalbert_tf.config import ConfigError

    try:
        config = settings.from_flags(ConversionConfig)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    try:
        with run_folder.hold(config.folder, "convert_checkpoint"):
            summary = convert(config)
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


if __name__ == "__main__":
    app.run(main)
