r"""Pretrains (Bio)ALBERT: MLM + SOP with ALBERT's LAMB, on TPU, GPUs, several workers or CPU.

  python -m bioalbert_tf.run_pretraining --tpu=my-tpu --tpu_zone=europe-west4-a \
    --input_file='gs://bucket/tfrecords/*.tfrecord' --output_dir=gs://bucket/bioalbert_base \
    --albert_config_file=configs/albert_base.json --init_checkpoint=gs://bucket/albert_base/model.ckpt-best \
    --flagfile=configs/pretraining/base_pubmed.flags

Flag names are those of google-research/albert run_pretraining.py. Rerunning the same command
resumes from the newest checkpoint in --output_dir.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_list("input_file", None, "TFRecord files: comma list or globs, local or gs://.")
flags.DEFINE_list(
    "eval_input_file", None, "Eval TFRecords (default: --input_file, as the original)."
)
flags.DEFINE_string("output_dir", None, "Checkpoints, summaries, eval results (local or gs://).")
flags.DEFINE_string("albert_config_file", None, "albert_config.json of the model.")
flags.DEFINE_string(
    "init_checkpoint", None, "TF1 (Google ALBERT / BioALBERT) or our checkpoint, prefix or folder."
)
flags.DEFINE_integer("train_batch_size", 1024, "Global training batch size (over all replicas).")
flags.DEFINE_integer("eval_batch_size", 64, "Global eval batch size.")
flags.DEFINE_integer("max_seq_length", 512, "Sequence length of the TFRecords.")
flags.DEFINE_integer(
    "max_predictions_per_seq", 20, "Masked-LM predictions per sequence in the TFRecords."
)
flags.DEFINE_float("learning_rate", 0.00176, "Peak learning rate.")
flags.DEFINE_integer(
    "num_train_steps", 200000, "Training steps (the polynomial decay reaches 0 here)."
)
flags.DEFINE_integer("num_warmup_steps", 3125, "Linear warm-up steps.")
flags.DEFINE_float("poly_power", 1.0, "Power of the polynomial decay.")
flags.DEFINE_enum("optimizer", "lamb", ["lamb", "adamw"], "ALBERT's LAMB, or BERT's AdamW.")
flags.DEFINE_integer("save_checkpoints_steps", 5000, "Checkpoint every this many steps.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints to keep.")
flags.DEFINE_integer(
    "iterations_per_loop", 1000, "Steps per call into the device (steps per execution)."
)
flags.DEFINE_bool("do_train", True, "Train.")
flags.DEFINE_bool(
    "do_eval", False, "Evaluate at each checkpoint; keep the best as model.ckpt-best."
)
flags.DEFINE_integer("max_eval_steps", 100, "Eval batches.")
flags.DEFINE_string(
    "tpu", None, "TPU name or grpc:// address; unset: GPUs / TF_CONFIG workers / CPU."
)
flags.DEFINE_string("tpu_zone", None, "GCE zone of the TPU.")
flags.DEFINE_string("gcp_project", None, "GCP project of the TPU.")
flags.DEFINE_integer("tpu_connect_timeout", 120, "Seconds to wait for the TPU before giving up.")
flags.DEFINE_bool("use_bfloat16", False, "mixed_bfloat16: bfloat16 compute, float32 variables.")
flags.DEFINE_integer("random_seed", 12345, "Seed of initialisation and data order.")
flags.DEFINE_string(
    "spm_model_file",
    None,
    "SentencePiece model of the TFRecords: checks that vocab_size holds all its ids "
    "(the builder's stats.json, when beside the TFRecords, is checked anyway).",
)
flags.DEFINE_bool(
    "export_tf1",
    False,
    "Also write the final (and best) weights in the original TF1 layout under output_dir/tf1.",
)
flags.DEFINE_bool(
    "jit_compile",
    True,
    "XLA-compile each replica's forward/backward on CPU and GPU (TPUs always compile). On by "
    "default: on CPU it measured 1.2-1.4x the plain TensorFlow graph at ALBERT small, never "
    "clearly slower (benchmarks/pretraining_bench); --nojit_compile turns it off.",
)


def main(argv):
    del argv
    from bioalbert_tf import distribute, fileio, pretraining, run_folder
    from bioalbert_tf.checkpoints import CheckpointMismatchError
    from bioalbert_tf.config import ConfigError

    for name in ("input_file", "output_dir", "albert_config_file"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required")
    config = pretraining.PretrainingConfig(
        input_file=tuple(FLAGS.input_file),
        eval_input_file=tuple(FLAGS.eval_input_file or ()),
        output_dir=FLAGS.output_dir,
        albert_config_file=FLAGS.albert_config_file,
        init_checkpoint=FLAGS.init_checkpoint,
        train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.eval_batch_size,
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        learning_rate=FLAGS.learning_rate,
        num_train_steps=FLAGS.num_train_steps,
        num_warmup_steps=FLAGS.num_warmup_steps,
        poly_power=FLAGS.poly_power,
        optimizer=FLAGS.optimizer,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max,
        iterations_per_loop=FLAGS.iterations_per_loop,
        do_train=FLAGS.do_train,
        do_eval=FLAGS.do_eval,
        max_eval_steps=FLAGS.max_eval_steps,
        use_bfloat16=FLAGS.use_bfloat16,
        random_seed=FLAGS.random_seed,
        export_tf1=FLAGS.export_tf1,
        spm_model_file=FLAGS.spm_model_file,
        jit_compile=FLAGS.jit_compile,
    )
    try:
        strategy = distribute.get_strategy(
            FLAGS.tpu, FLAGS.tpu_zone, FLAGS.gcp_project, FLAGS.tpu_connect_timeout
        )
        if not distribute.is_accelerated(strategy):
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()  # CPU: resumed runs give identical weights
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
