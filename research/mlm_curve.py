r"""How fast a small ALBERT leaves the frequent-token plateau: the curve behind the demo's recipe.

Trains with `run_pretraining`'s own Trainer (LAMB, clipping, XLA) on the builder's TFRecords and
prints, every --log_every steps, the elapsed seconds, the masked-LM accuracy and loss of those steps
(as `run_pretraining` logs them) and the top 5 pieces for [MASK] in the demo's four fill-mask
sentences, with how many name the expected word. It stops at --steps or after --minutes. The
defaults are the demo's recipe (bioalbert_tf/demo_recipe.py and its config file); the model flags
change that config (the result is written to <output_dir>/albert_config.json). The learning rate
decays linearly to 0 at --steps, as in every run.

  python -m research.mlm_curve --records=output/demo/tfrecords \
      --spm_model_file=output/demo/vocab/bio8k.model --num_hidden_layers=2 --steps=12000
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import app, flags

from bioalbert_tf import demo_recipe as recipe
from bioalbert_tf import settings
from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class MlmCurveConfig:
    """This script's settings (its flags are generated from these fields)."""

    records: str = setting(help="Folder of the builder's *.tfrecord shards.")
    spm_model_file: str = setting(help="Their SentencePiece model.")
    output_dir: str = setting("output/bench/mlm_curve", "Checkpoints and the config.")
    max_seq_length: int = setting(recipe.SEQ, "Sequence length of the records.")
    max_predictions_per_seq: int = setting(
        recipe.PREDICTIONS, "Masked-LM predictions per sequence."
    )
    albert_config_file: str = setting(recipe.CONFIG, "The model, before the flags below.")
    hidden_size: int | None = setting(None, "Hidden size (intermediate size 4x).")
    embedding_size: int | None = setting(None, "Embedding size.")
    num_hidden_layers: int | None = setting(None, "Layers (one shared group).")
    num_attention_heads: int | None = setting(None, "Attention heads.")
    vocab_size: int | None = setting(None, "Vocabulary size of the records.")
    initializer_range: float | None = setting(None, "Standard deviation of the initial weights.")
    batch_size: int = setting(recipe.BATCH, "Batch size.")
    learning_rate: float = setting(recipe.LEARNING_RATE, "Peak learning rate.")
    optimizer: str = setting("lamb", "run_pretraining's --optimizer.", choices=("lamb", "adamw"))
    warmup_steps: int = setting(recipe.WARMUP, "Linear warm-up steps.")
    steps: int = setting(recipe.STEPS, "Steps of the schedule (and at most this many are run).")
    minutes: float = setting(13.0, "Stop after the log line that passes this many minutes.")
    log_every: int = setting(500, "Steps per printed line.")


FLAGS = flags.FLAGS
settings.define_flags(MlmCurveConfig)
flags.mark_flags_as_required(["records", "spm_model_file"])


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.tokenization import MASK_ID, Tokenizer
    from bioalbert_tf.training.pretraining import PretrainingConfig, Trainer

    os.makedirs(FLAGS.output_dir, exist_ok=True)
    config = AlbertConfig.from_json_file(FLAGS.albert_config_file).to_dict()
    for name in (
        "hidden_size",
        "embedding_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
        "initializer_range",
    ):
        if FLAGS[name].value is not None:
            config[name] = FLAGS[name].value
    if FLAGS.hidden_size is not None:
        config["intermediate_size"] = 4 * FLAGS.hidden_size
    config["max_position_embeddings"] = max(config["max_position_embeddings"], FLAGS.max_seq_length)
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
        ),
        tf.distribute.get_strategy(),
    )
    tok = Tokenizer(FLAGS.spm_model_file)
    batches = []
    for sentence, _ in recipe.FILL_MASK:
        ids = recipe.fill_mask_ids(tok, sentence, MASK_ID)
        x = tf.constant([ids], tf.int32)
        batches.append(
            {
                "input_ids": x,
                "input_mask": tf.ones_like(x),
                "segment_ids": tf.zeros_like(x),
                "masked_lm_positions": tf.constant([[ids.index(MASK_ID)]]),
            }
        )
    start, step = time.time(), 0
    while step < FLAGS.steps and time.time() - start < FLAGS.minutes * 60:
        n = min(FLAGS.log_every, FLAGS.steps - step)
        metrics = trainer.train_steps(n)
        step += n
        tops, ranks = [], []
        for batch, (_, expected) in zip(batches, recipe.FILL_MASK, strict=True):
            logits = trainer.model(batch, training=False)["mlm_logits"].numpy()[0, 0]
            tops.append([tok.id_to_piece(int(i)) for i in np.argsort(-logits)[:5]])
            ranks.append(recipe.expected_rank(logits, tok, expected))
        hits = sum(
            recipe.names_expected(top, expected)
            for top, (_, expected) in zip(tops, recipe.FILL_MASK, strict=True)
        )
        print(
            json.dumps(
                {
                    "step": step,
                    "seconds": round(time.time() - start),
                    "mlm_accuracy": round(metrics["mlm_accuracy"], 4),
                    "mlm_loss": round(metrics["mlm_loss"], 3),
                    "fill_mask_hits": hits,
                    "expected_ranks": ranks,
                    "top5": [" ".join(t) for t in tops],
                },
                ensure_ascii=False,
            ),
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
