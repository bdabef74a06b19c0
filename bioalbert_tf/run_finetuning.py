r"""Fine-tunes a pretrained (Bio)ALBERT on one of the paper's 20 datasets and exports it for serving.

  python -m bioalbert_tf.run_finetuning --dataset=ncbi_disease --data_dir=data/NCBI-disease \
    --init_checkpoint=bioalbert/model.ckpt-best --albert_config_file=configs/albert_base.json \
    --spm_model_file=30k-clean.model --output_dir=out/ncbi_disease \
    --flagfile=configs/finetuning/ncbi_disease.flags

Writes <output_dir>/test_predictions.tsv, metrics.json and saved_model/. A --data_dir of
numbered fold folders (1/ ... 10/, BioBERT's GAD and EU-ADR) runs every fold (or --folds=1,3),
each in <output_dir>/fold-<k>/, and writes the mean and sd over folds to <output_dir>/metrics.json.
The settings are recorded in <output_dir>/run_settings.json; a later run into the folder with
other settings is refused before anything is written, unless --overwrite.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from bioalbert_tf import fileio
from bioalbert_tf.evaluation import datasets

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", None, list(datasets.REGISTRY), "Dataset of the paper.")
flags.DEFINE_string(
    "data_dir",
    None,
    "Folder with train/dev(el)/test files, or with numbered fold folders 1/, 2/, ... (local or gs://).",
)
flags.DEFINE_string("output_dir", None, "Where predictions, metrics.json and saved_model/ go.")
flags.DEFINE_string("albert_config_file", None, "albert_config.json of the pretrained model.")
flags.DEFINE_string("spm_model_file", None, "SentencePiece model of the pretrained model.")
flags.DEFINE_string("init_checkpoint", None, "TF1 (Google ALBERT / BioALBERT) or our checkpoint.")
flags.DEFINE_float("learning_rate", 1e-5, "Peak learning rate (paper: 1e-5).")
flags.DEFINE_integer("train_batch_size", 32, "Training batch size (paper: 32).")
flags.DEFINE_integer("eval_batch_size", 64, "Prediction batch size.")
flags.DEFINE_integer("num_train_steps", 10000, "Training steps (paper: 10000).")
flags.DEFINE_integer("num_warmup_steps", 320, "Warm-up steps (paper: 320).")
flags.DEFINE_integer("max_seq_length", None, "Default: 512 for NER, 128 otherwise (paper).")
flags.DEFINE_integer("eval_every_steps", 1000, "Evaluate on dev (and keep the best) this often.")
flags.DEFINE_integer(
    "save_checkpoints_steps",
    None,
    "Also save a resume checkpoint (model, optimizer, data position) this often; by default "
    "one is saved at every dev evaluation only.",
)
flags.DEFINE_bool("use_train_dev", False, "Train on train_dev.tsv (train + dev).")
flags.DEFINE_bool("do_lower_case", True, "Lowercase in normalisation.")
flags.DEFINE_integer("random_seed", 12345, "Seed.")
flags.DEFINE_string("folds", None, "Cross-validation: the folds to run, e.g. 1,3 (default: all).")
flags.DEFINE_bool(
    "jit_compile",
    True,
    "XLA-compile the training step on CPU and GPU (benchmarks/finetuning_bench); "
    "--nojit_compile trains with the plain graph.",
)
flags.DEFINE_bool(
    "overwrite",
    False,
    "Start --output_dir afresh: remove what fine-tuning wrote there before (metrics, "
    "predictions, weights, saved_model/, run_settings.json, fold-<k>/), leaving other files. "
    "By default a folder whose run_settings.json records other settings is refused.",
)


def main(argv):
    del argv
    from bioalbert_tf import finetuning, run_folder
    from bioalbert_tf.checkpoints import CheckpointMismatchError
    from bioalbert_tf.config import ConfigError

    for name in ("dataset", "data_dir", "output_dir", "albert_config_file", "spm_model_file"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required")
    try:
        config = finetuning.FinetuningConfig(
            dataset=FLAGS.dataset,
            data_dir=FLAGS.data_dir,
            output_dir=FLAGS.output_dir,
            albert_config_file=FLAGS.albert_config_file,
            spm_model_file=FLAGS.spm_model_file,
            init_checkpoint=FLAGS.init_checkpoint,
            learning_rate=FLAGS.learning_rate,
            train_batch_size=FLAGS.train_batch_size,
            eval_batch_size=FLAGS.eval_batch_size,
            num_train_steps=FLAGS.num_train_steps,
            num_warmup_steps=FLAGS.num_warmup_steps,
            max_seq_length=FLAGS.max_seq_length,
            eval_every_steps=FLAGS.eval_every_steps,
            save_checkpoints_steps=FLAGS.save_checkpoints_steps,
            use_train_dev=FLAGS.use_train_dev,
            do_lower_case=FLAGS.do_lower_case,
            random_seed=FLAGS.random_seed,
            folds=FLAGS.folds,
            jit_compile=FLAGS.jit_compile,
        )
        result = finetuning.run(config, overwrite=FLAGS.overwrite)
    except KeyboardInterrupt as e:
        then = (
            f"rerun the same command to resume from the last checkpoint in {FLAGS.output_dir} "
            "(one at every dev evaluation and every --save_checkpoints_steps)"
        )
        print(run_folder.interrupted(e, then), file=sys.stderr)
        return 130
    except (
        datasets.DatasetError,
        FileNotFoundError,
        ValueError,
        ConfigError,
        CheckpointMismatchError,
        *fileio.fault_types(),
    ) as e:
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    print(json.dumps(summary(result), indent=2, default=float))
    print(f"predictions, metrics.json and saved_model/ in {FLAGS.output_dir}")
    return 0


_HEADLINE = ("micro_precision", "micro_recall", "entity_precision", "entity_recall")


def summary(result: dict) -> dict:
    """What to print: the headline numbers of one run, or of the cross-validation."""
    if "cross_validation" in result:
        cv = result["cross_validation"]
        key = result["main_key"]
        return {
            "dataset": result["dataset"],
            "folds": {k: f[key] for k, f in cv["folds"].items()},
            "mean": {k: v for k, v in cv["mean"].items() if k in _HEADLINE or k == key},
            "sd": {k: v for k, v in cv["sd"].items() if k in _HEADLINE or k == key},
        }
    out = {
        k: result[k]
        for k in ("dataset", "dev_selection", "best_dev", "train_seconds", "seconds_per_1000_steps")
        if k in result
    }
    out["test"] = {k: v for k, v in result["test"].items() if not isinstance(v, dict | list)}
    return out


if __name__ == "__main__":
    app.run(main)
