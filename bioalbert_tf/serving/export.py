"""SavedModels for TF Serving: every task's signatures take raw UTF-8 strings; SentencePiece
tokenization and normalisation run inside the graph (tensorflow-text); the SentencePiece model
and the label map are assets of the SavedModel. The pretrainer's SavedModel
(`export_saved_model`) takes token ids.

Loading needs `import tensorflow_text` first (its ops are not in core TensorFlow); TF Serving
builds that include tensorflow-text ops serve it directly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile

from bioalbert_tf import fileio
from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """export_saved_model's settings (its flags are generated from these fields)."""

    checkpoint: str = setting(help="TF1 prefix or ours (prefix or folder), local or gs://.")
    output_dir: str = setting(help="SavedModel folder to write.")
    model: str = setting("pretrainer", "What to export.", choices=("pretrainer",))
    albert_config_file: str | None = setting(
        None, "albert_config.json; default: the one beside the checkpoint."
    )
    overwrite: bool = setting(
        False,
        "Replace a non-empty --output_dir with this export (by default such an export is refused).",
    )


def export_pretrainer(model, output_dir: str) -> str:
    """Writes the pretrainer's SavedModel: `serving_default` takes int32 input_ids, input_mask,
    segment_ids [batch, seq] and returns sequence_output, pooled_output, mlm_logits (every
    position) and sop_logits."""
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


def export_task(task, output_dir: str, extra_metadata: dict | None = None) -> str:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(task.model)
    archive.track(task.text_encoder)  # the SentencePiece resource and its model bytes
    with tempfile.TemporaryDirectory() as tmp:
        spm_path = os.path.join(tmp, "spm.model")
        with open(spm_path, "wb") as f:
            f.write(task.text_encoder.spm_model.numpy())
        labels_path = os.path.join(tmp, "labels.txt")
        with open(labels_path, "w", encoding="utf-8") as f:
            f.write("".join(f"{label}\n" for label in task.labels))
        meta_path = os.path.join(tmp, "task.json")
        with open(meta_path, "w", encoding="utf-8") as f:
            meta = {
                "dataset": task.spec.name,
                "task": task.spec.task,
                "labels": list(task.labels),
                "max_seq_length": task.max_seq_length,
                "signatures": sorted(task.signatures()),
                **(extra_metadata or {}),
            }
            json.dump(meta, f, indent=2)
        # Assets are copied into saved_model/assets when the object graph holds them.
        holder = getattr(archive, "_tf_trackable", archive)
        for attr, path in (
            ("spm_model_asset", spm_path),
            ("labels_asset", labels_path),
            ("task_asset", meta_path),
        ):
            setattr(holder, attr, tf.saved_model.Asset(path))
        for name, (fn, specs, arg_names) in task.signatures().items():
            named = [
                tf.TensorSpec(s.shape, s.dtype, name=n)
                for s, n in zip(specs, arg_names, strict=True)
            ]
            archive.add_endpoint(name, fn, input_signature=named)
        archive.write_out(output_dir, verbose=False)
    return output_dir


def load(path: str):
    """tf.saved_model.load with the tensorflow-text ops registered."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers SentencepieceOp & co.)

    if not fileio.exists(path):
        raise FileNotFoundError(f"SavedModel not found: {path}")
    return tf.saved_model.load(path)
