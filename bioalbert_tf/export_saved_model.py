r"""Exports a SavedModel for TF Serving.

  python -m bioalbert_tf.export_saved_model --model=pretrainer \
      --checkpoint=<TF1 prefix or ours> --albert_config_file=albert_config.json \
      --output_dir=saved_model/

`serving_default` of the pretrainer takes int32 input_ids, input_mask, segment_ids [batch, seq]
and returns sequence_output [batch, seq, hidden], pooled_output [batch, hidden],
mlm_logits [batch, seq, vocab] (every position) and sop_logits [batch, 2].
A folder holding another kind of run (checkpoints, a run's settings, TFRecords) is never
replaced. Another non-empty --output_dir is left alone unless --overwrite, which replaces it
whole: the export is written beside it (<output_dir>.writing) and takes its place once complete,
so nothing of an earlier export is left in it, and a crash while exporting leaves the earlier one
as it was.
"""

from __future__ import annotations

import json
import sys

from absl import app

from bioalbert_tf import checkpoints, fileio, run_folder, settings
from bioalbert_tf.serving.export import ExportConfig, export_pretrainer

settings.define_flags(ExportConfig)


def main(argv):
    del argv
    from bioalbert_tf.config import ConfigError
    from bioalbert_tf.modeling import AlbertPretrainer

    config = settings.from_flags(ExportConfig)
    # The SavedModel replaces its folder whole: the lock is beside it, in the parent folder.
    output = config.output_dir.rstrip("/")
    parent, name = fileio.dirname(output), fileio.basename(output)
    try:
        with run_folder.hold(parent, "export_saved_model", name=f".{name}.lock"):
            run_folder.refuse_foreign(output, "export_saved_model")
            fileio.refuse_overwrite([output], config.overwrite, "Choose another --output_dir")
            albert = checkpoints.config_for(config.checkpoint, config.albert_config_file)
            model = AlbertPretrainer(albert)
            kind = checkpoints.load_init_checkpoint(model, config.checkpoint)
            fileio.replace_folder(output, lambda folder: export_pretrainer(model, folder))
    except KeyboardInterrupt as e:
        then = f"{output} is as it was before; rerun the command"
        print(run_folder.interrupted(e, then), file=sys.stderr)
        return 130
    except (
        checkpoints.CheckpointMismatchError,
        FileNotFoundError,
        FileExistsError,
        ConfigError,
        *fileio.fault_types(),
    ) as e:
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {"checkpoint": config.checkpoint, "kind": kind, "saved_model": config.output_dir},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    app.run(main)
