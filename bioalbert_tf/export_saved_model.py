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

from absl import app, flags

from bioalbert_tf import checkpoints, fileio, run_folder

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "pretrainer", ["pretrainer"], "What to export.")
flags.DEFINE_string("checkpoint", None, "TF1 prefix or ours (prefix or folder), local or gs://.")
flags.DEFINE_string(
    "albert_config_file", None, "albert_config.json; default: the one beside the checkpoint."
)
flags.DEFINE_string("output_dir", None, "SavedModel folder to write.")
flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace a non-empty --output_dir with this export (by default such an export is refused).",
)


def export_pretrainer(model, output_dir: str) -> str:
    import keras
    import tensorflow as tf

    spec = tf.TensorSpec([None, None], tf.int32)

    def serve(input_ids, input_mask, segment_ids):
        out = model.encoder(
            {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
        )
        return {
            "sequence_output": out["sequence_output"],
            "pooled_output": out["pooled_output"],
            "mlm_logits": model.mlm_logits(out["sequence_output"]),
            "sop_logits": model.sop_logits(out["pooled_output"]),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[spec, spec, spec])
    archive.write_out(output_dir, verbose=False)
    return output_dir


def main(argv):
    del argv
    from bioalbert_tf.config import ConfigError
    from bioalbert_tf.modeling import AlbertPretrainer

    if not (FLAGS.checkpoint and FLAGS.output_dir):
        raise app.UsageError("--checkpoint and --output_dir are required")
    # The SavedModel replaces its folder whole: the lock is beside it, in the parent folder.
    output = FLAGS.output_dir.rstrip("/")
    parent, name = fileio.dirname(output), fileio.basename(output)
    try:
        with run_folder.hold(parent, "export_saved_model", name=f".{name}.lock"):
            run_folder.refuse_foreign(output, "export_saved_model")
            fileio.refuse_overwrite([output], FLAGS.overwrite, "Choose another --output_dir")
            config = checkpoints.config_for(FLAGS.checkpoint, FLAGS.albert_config_file)
            model = AlbertPretrainer(config)
            kind = checkpoints.load_init_checkpoint(model, FLAGS.checkpoint)
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
            {"checkpoint": FLAGS.checkpoint, "kind": kind, "saved_model": FLAGS.output_dir},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    app.run(main)
