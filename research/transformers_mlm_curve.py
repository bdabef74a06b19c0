r"""The masked-LM accuracy curve of transformers' PyTorch ALBERT on our pretraining TFRecords.

An independent check of a pretraining curve: it trains `AlbertForPreTraining` from scratch on the
same records, with the same albert_config.json, and prints the masked-LM accuracy of each
`--log_every` steps (the mean over those steps' masked positions, as `run_pretraining` logs
it). AdamW (weight decay 0.01, epsilon 1e-6), linear warm-up over --warmup_steps then linear
decay to 0 at --steps, gradients clipped to norm 1.0. `--optimizer=torch` is PyTorch's AdamW
(bias-corrected moments); `--optimizer=bert` is BERT's AdamWeightDecayOptimizer, which
`run_pretraining --optimizer=adamw` follows: no bias correction, no decay on LayerNorm and bias.

  python -m research.transformers_mlm_curve --records=output/demo/tfrecords \
      --albert_config_file=configs/albert_demo.json --steps=600 --batch_size=64 --learning_rate=1e-3
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import time

from absl import app, flags

from bioalbert_tf import settings
from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class TransformersMlmCurveConfig:
    """This script's settings (its flags are generated from these fields)."""

    records: str = setting(help="Folder of the builder's *.tfrecord shards.")
    albert_config_file: str = setting(help="The model's albert_config.json.")
    steps: int = setting(600, "Training steps.")
    warmup_steps: int = setting(15, "Linear warm-up steps.")
    batch_size: int = setting(64, "Batch size.")
    learning_rate: float = setting(1e-3, "Peak AdamW learning rate.")
    log_every: int = setting(100, "Steps per printed line.")
    seed: int = setting(0, "Seed of the weights and the shuffle.")
    optimizer: str = setting("torch", "PyTorch's AdamW or BERT's.", choices=("torch", "bert"))


FLAGS = flags.FLAGS
settings.define_flags(TransformersMlmCurveConfig)
flags.mark_flags_as_required(["records", "albert_config_file"])

INT_FEATURES = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "next_sentence_labels",
)


def bert_adamw(named_parameters, lr: float, weight_decay: float = 0.01):
    """BERT's AdamWeightDecayOptimizer as a torch optimizer: beta 0.9 / 0.999, epsilon 1e-6, no
    bias correction, decoupled weight decay except on LayerNorm and bias parameters."""
    import torch

    class BertAdamW(torch.optim.Optimizer):
        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                    m, v = state["m"], state["v"]
                    m.mul_(0.9).add_(p.grad, alpha=0.1)
                    v.mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
                    update = m / (v.sqrt() + 1e-6)
                    if group["weight_decay"]:
                        update = update + group["weight_decay"] * p
                    p.add_(update, alpha=-group["lr"])

    decay, no_decay = [], []
    for name, p in named_parameters:
        excluded = any(k in name for k in ("LayerNorm", "layer_norm", "bias"))  # as ALBERT
        (no_decay if excluded else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return BertAdamW(groups, {"lr": lr})


def main(argv):
    del argv
    import tensorflow as tf
    import torch
    from transformers import AlbertConfig, AlbertForPreTraining

    torch.manual_seed(FLAGS.seed)
    with open(FLAGS.albert_config_file, encoding="utf-8") as f:
        c = json.load(f)
    act = {"gelu": "gelu_new"}.get(c["hidden_act"], c["hidden_act"])  # ALBERT's tanh GELU
    config = AlbertConfig(
        **{
            k: c[k]
            for k in (
                "vocab_size",
                "embedding_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "max_position_embeddings",
                "initializer_range",
                "type_vocab_size",
                "hidden_dropout_prob",
                "attention_probs_dropout_prob",
            )
        },
        hidden_act=act,
    )
    model = AlbertForPreTraining(config)
    files = sorted(glob.glob(os.path.join(FLAGS.records, "*.tfrecord")))
    spec = {k: tf.io.VarLenFeature(tf.int64) for k in INT_FEATURES}
    spec["masked_lm_weights"] = tf.io.VarLenFeature(tf.float32)

    def parse(record):
        return {
            k: tf.sparse.to_dense(v) for k, v in tf.io.parse_single_example(record, spec).items()
        }

    ds = tf.data.TFRecordDataset(files).repeat().shuffle(10_000, seed=FLAGS.seed).map(parse)
    ds = ds.batch(FLAGS.batch_size, drop_remainder=True).take(FLAGS.steps)
    if FLAGS.optimizer == "bert":
        opt = bert_adamw(model.named_parameters(), FLAGS.learning_rate)
    else:
        opt = torch.optim.AdamW(
            model.parameters(), lr=FLAGS.learning_rate, weight_decay=0.01, eps=1e-6
        )
    warm, total = max(1, FLAGS.warmup_steps), FLAGS.steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: k / warm if k < warm else max(0.0, 1 - k / total)
    )
    start, correct, counted = time.time(), 0, 0
    for step, b in enumerate(ds.as_numpy_iterator(), 1):
        ids = torch.tensor(b["input_ids"])
        pos, lab = torch.tensor(b["masked_lm_positions"]), torch.tensor(b["masked_lm_ids"])
        real = torch.tensor(b["masked_lm_weights"]) > 0
        labels = torch.full_like(ids, -100)  # transformers' labels: -100 where not masked
        rows = torch.arange(ids.shape[0])[:, None].expand_as(pos)
        labels[rows[real], pos[real]] = lab[real]
        out = model(
            input_ids=ids,
            attention_mask=torch.tensor(b["input_mask"]),
            token_type_ids=torch.tensor(b["segment_ids"]),
            labels=labels,
            sentence_order_label=torch.tensor(b["next_sentence_labels"]).view(-1),
        )
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        with torch.no_grad():
            masked = labels != -100
            correct += (out.prediction_logits.argmax(-1)[masked] == labels[masked]).sum().item()
            counted += masked.sum().item()
        if step % FLAGS.log_every == 0 or step == total:
            rate = step * FLAGS.batch_size / (time.time() - start)
            print(
                f"step {step}/{total}  loss {out.loss.item():.4f}  mlm_acc {correct / counted:.4f}"
                f"  {rate:.1f} examples/s",
                flush=True,
            )
            correct = counted = 0


if __name__ == "__main__":
    app.run(main)
