r"""Pretrains (Bio)ALBERT: MLM + SOP with ALBERT's LAMB, on TPU, GPUs, several workers or CPU.

  python -m bioalbert_tf.run_pretraining --tpu=my-tpu --tpu_zone=europe-west4-a \
    --input_file='gs://bucket/tfrecords/*.tfrecord' --output_dir=gs://bucket/bioalbert_base \
    --albert_config_file=configs/albert_base.json \
    --init_checkpoint=gs://bucket/albert_base/model.ckpt-best \
    --flagfile=configs/pretraining/base_pubmed.flags

Flag names are those of google-research/albert run_pretraining.py. Rerunning the same command
resumes from the newest checkpoint in --output_dir.
"""

from __future__ import annotations

import json
import sys

from absl import app, logging

from bioalbert_tf import settings
from bioalbert_tf.training.distribute import TpuOptions
from bioalbert_tf.training.pretraining_config import PretrainingConfig

settings.define_flags(PretrainingConfig)
settings.define_flags(TpuOptions)


def main(argv):
    del argv
    from bioalbert_tf import fileio, run_folder
    from bioalbert_tf.checkpoints import CheckpointMismatchError
    from bioalbert_tf.config import ConfigError
    from bioalbert_tf.training import distribute, pretraining

    config = settings.from_flags(PretrainingConfig)
    try:
        strategy = distribute.get_strategy(settings.from_flags(TpuOptions))
        if not distribute.is_accelerated(strategy):
            import tensorflow as tf

            # CPU: resumed runs give identical weights
            tf.config.experimental.enable_op_determinism()
        with run_folder.hold(
            config.output_dir, "run_pretraining", lock=strategy.extended.should_checkpoint
        ):
            result = pretraining.run(config, strategy)
    except KeyboardInterrupt as e:
        then = (
            f"rerun the same command to resume from the last checkpoint in {config.output_dir} "
            "(one every --save_checkpoints_steps)"
        )
        print(run_folder.interrupted(e, then), file=sys.stderr)
        sys.stderr.flush()
        import os

        os._exit(130)
    except (
        distribute.TPUConnectionError,
        FileNotFoundError,
        ValueError,
        ConfigError,
        CheckpointMismatchError,
        *fileio.fault_types(),
    ) as e:
        logging.error("%s", e)
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        sys.stderr.flush()
        import os

        os._exit(1)  # a hung TPU connection thread must not keep the process alive
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    app.run(main)
