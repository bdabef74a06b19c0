r"""Fine-tunes a pretrained (Bio)ALBERT on one of the paper's 20 datasets and exports it for
serving.

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

from bioalbert_tf import fileio, settings
from bioalbert_tf.evaluation import datasets
from bioalbert_tf.training.finetuning_config import FinetuningConfig, FinetuningOptions

FLAGS = flags.FLAGS
settings.define_flags(FinetuningConfig, choices={"dataset": list(datasets.REGISTRY)})
settings.define_flags(FinetuningOptions)


def main(argv):
    del argv
    from bioalbert_tf import run_folder
    from bioalbert_tf.checkpoints import CheckpointMismatchError
    from bioalbert_tf.config import ConfigError
    from bioalbert_tf.training import finetuning

    try:
        config = settings.from_flags(FinetuningConfig)
        options = settings.from_flags(FinetuningOptions)
        result = finetuning.run(config, overwrite=options.overwrite)
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
