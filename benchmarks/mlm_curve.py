r"""How fast a small ALBERT leaves the frequent-token plateau: the curve behind the demo's recipe.

Trains with `run_pretraining`'s own Trainer (LAMB, clipping, XLA) on the builder's TFRecords and
prints, every --log_every steps, the elapsed seconds, the masked-LM accuracy and loss of those steps
(as `run_pretraining` logs them) and the top 5 pieces for [MASK] in the demo's four fill-mask
sentences, with how many name the expected word. It stops at --steps or after --minutes. The
model is set by flags (written to <output_dir>/albert_config.json); the learning rate decays
linearly to 0 at --steps, as in every run.

  python -m benchmarks.mlm_curve --records=output/demo/tfrecords --spm_model_file=output/demo/vocab/bio8k.model \
      --max_seq_length=32 --max_predictions_per_seq=5 --batch_size=32 --learning_rate=0.005 --steps=12000
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("records", None, "Folder of the builder's *.tfrecord shards.", required=True)
flags.DEFINE_string("spm_model_file", None, "Their SentencePiece model.", required=True)
flags.DEFINE_string("output_dir", "output/bench/mlm_curve", "Checkpoints and the config.")
flags.DEFINE_integer("max_seq_length", 32, "Sequence length of the records.")
flags.DEFINE_integer("max_predictions_per_seq", 5, "Masked-LM predictions per sequence.")
flags.DEFINE_integer("hidden_size", 128, "Hidden size.")
flags.DEFINE_integer("embedding_size", 128, "Embedding size.")
flags.DEFINE_integer("num_hidden_layers", 2, "Layers (one shared group).")
flags.DEFINE_integer("num_attention_heads", 2, "Attention heads.")
flags.DEFINE_integer("vocab_size", 8000, "Vocabulary size of the records.")
flags.DEFINE_float("initializer_range", 0.02, "Standard deviation of the initial weights.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_float("learning_rate", 0.005, "Peak learning rate.")
flags.DEFINE_enum("optimizer", "lamb", ["lamb", "adamw"], "run_pretraining's --optimizer.")
flags.DEFINE_integer("warmup_steps", 200, "Linear warm-up steps.")
flags.DEFINE_integer("steps", 12000, "Steps of the schedule (and at most this many are run).")
flags.DEFINE_float("minutes", 13.0, "Stop after the log line that passes this many minutes.")
flags.DEFINE_integer("log_every", 500, "Steps per printed line.")


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from bioalbert_tf import demo_recipe as recipe
    from bioalbert_tf.pretraining import PretrainingConfig, Trainer
    from bioalbert_tf.tokenization import MASK_ID, Tokenizer

    os.makedirs(FLAGS.output_dir, exist_ok=True)
    h = FLAGS.hidden_size
    config = {"attention_probs_dropout_prob": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0,
              "embedding_size": FLAGS.embedding_size, "hidden_size": h, "initializer_range": FLAGS.initializer_range, "intermediate_size": 4 * h,
              "max_position_embeddings": max(128, FLAGS.max_seq_length), "num_attention_heads": FLAGS.num_attention_heads,
              "num_hidden_layers": FLAGS.num_hidden_layers, "num_hidden_groups": 1, "inner_group_num": 1,
              "type_vocab_size": 2, "vocab_size": FLAGS.vocab_size}  # fmt: skip
    config_file = os.path.join(FLAGS.output_dir, "albert_config.json")
    with open(config_file, "w") as f:
        json.dump(config, f, indent=2)
    trainer = Trainer(
        PretrainingConfig(
            input_file=(os.path.join(FLAGS.records, "*.tfrecord"),),
            output_dir=FLAGS.output_dir,
            albert_config_file=config_file,
            train_batch_size=FLAGS.batch_size,
            max_seq_length=FLAGS.max_seq_length,
            max_predictions_per_seq=FLAGS.max_predictions_per_seq,
            learning_rate=FLAGS.learning_rate,
            num_train_steps=FLAGS.steps,
            num_warmup_steps=FLAGS.warmup_steps,
            optimizer=FLAGS.optimizer,
            jit_compile=True,
        ),  # fmt: skip
        tf.distribute.get_strategy(),
    )
    tok = Tokenizer(FLAGS.spm_model_file)
    batches = []
    for sentence, _ in recipe.FILL_MASK:
        ids = recipe.fill_mask_ids(tok, sentence, MASK_ID)
        x = tf.constant([ids], tf.int32)
        batches.append({"input_ids": x, "input_mask": tf.ones_like(x), "segment_ids": tf.zeros_like(x),
                        "masked_lm_positions": tf.constant([[ids.index(MASK_ID)]])})  # fmt: skip
    start, step = time.time(), 0
    while step < FLAGS.steps and time.time() - start < FLAGS.minutes * 60:
        n = min(FLAGS.log_every, FLAGS.steps - step)
        metrics = trainer.train_steps(n)
        step += n
        tops = []
        for batch in batches:
            logits = trainer.model(batch, training=False)["mlm_logits"].numpy()[0, 0]
            tops.append([tok.id_to_piece(int(i)) for i in np.argsort(-logits)[:5]])
        hits = sum(
            recipe.names_expected(top, expected)
            for top, (_, expected) in zip(tops, recipe.FILL_MASK, strict=True)
        )
        print(json.dumps({"step": step, "seconds": round(time.time() - start),
                          "mlm_accuracy": round(metrics["mlm_accuracy"], 4), "mlm_loss": round(metrics["mlm_loss"], 3),
                          "fill_mask_hits": hits, "top5": [" ".join(t) for t in tops]}, ensure_ascii=False), flush=True)  # fmt: skip


if __name__ == "__main__":
    app.run(main)
