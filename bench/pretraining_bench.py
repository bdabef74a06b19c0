"""`make bench` for pretraining: one training step at batch 8, ours against keras-hub and
transformers.

At small (hidden 256, 4 layers) and base (hidden 768, 12 layers) ALBERT, both with a 30k
vocabulary, at sequence 128 and 512, batch 8, 20 predictions per sequence:
  ours           training.pretraining.Trainer: MLM + SOP, ALBERT's LAMB, clipping, TFRecords in
  ours XLA       the same with --jit_compile
  keras-hub      keras_hub.models.AlbertMaskedLM.fit (XLA, its default), MLM only, keras' Lamb
  HF stock       transformers' AlbertForPreTraining (PyTorch, default attention), MLM on every
                 position + SOP, torch AdamW
  HF masked      the same weights, MLM head on the 20 masked positions only (what ours and the
                 reference compute) + SOP
Each figure is the median of per-step wall times after warm-up steps, in its own process (so its
peak RSS is its own), one after another. GFLOP/s counts the same model FLOPs for every column
(forward and backward of the reference computation: MLM head on masked positions only), so the
GFLOP/s ratios equal the speed ratios; it is set against TensorFlow's fp32 matmul peak measured at
the start of the same run.

  python -m bench.pretraining_bench              # the whole table (about 30 min on 2 cores)
  python -m bench.pretraining_bench small        # only the small rows
  python -m bench.pretraining_bench base/512 ours_xla keras_hub   # one row, two columns
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile

from bench import common

OUT = os.path.join("output", "bench")
BATCH, PREDICTIONS = 8, 20
SMALL = {
    "embedding_size": 128,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
}
SIZES = {"small": SMALL, "base": {}}  # base: AlbertConfig()'s defaults (configs/albert_base.json)
CASES = [("small", 128, 20), ("small", 512, 20), ("base", 128, 6), ("base", 512, 5)]
WARMUP = 2  # steps after the first (compiling) one, before measuring
COLUMNS = ["ours", "ours_xla", "keras_hub", "hf_stock", "hf_masked"]
TITLES = {
    "ours": "ours",
    "ours_xla": "ours XLA",
    "keras_hub": "keras-hub (XLA)",
    "hf_stock": "HF stock",
    "hf_masked": "HF masked",
}

_TIMED = """
import json, resource, statistics, time
def peak_rss_mb():
    # VmHWM: this process's own peak. ru_maxrss would also count the parent's memory before exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def report(first, times):
    median = statistics.median(times)
    print(json.dumps({"median_s_per_step": median, "examples_per_s": BATCH / median, "first_step_s": first,
                      "min_s_per_step": min(times), "max_s_per_step": max(times), "steps": len(times),
                      "peak_rss_mb": peak_rss_mb()}))
def timed(step, steps, warmup):
    t = time.perf_counter(); step(); first = time.perf_counter() - t
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
    report(first, times)
"""  # noqa: E501

OURS = """
import sys
import tensorflow as tf
from bioalbert_tf.training import pretraining
cfg_file, records, seq, steps, jit, out = sys.argv[1:7]
config = pretraining.PretrainingConfig(input_file=(records,), output_dir=out, albert_config_file=cfg_file,
    train_batch_size=BATCH, max_seq_length=int(seq), max_predictions_per_seq=PREDICTIONS, num_train_steps=10**6,
    num_warmup_steps=0, iterations_per_loop=1, learning_rate=1e-4, jit_compile=jit == "1")
trainer = pretraining.Trainer(config, tf.distribute.get_strategy())
timed(lambda: trainer.train_steps(1), int(steps), WARMUP)
"""  # noqa: E501

KERAS_HUB = """
import sys, time
import numpy as np, keras, keras_hub
from bioalbert_tf.config import AlbertConfig
cfg_file, seq, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = AlbertConfig.from_json_file(cfg_file)
backbone = keras_hub.models.AlbertBackbone(vocabulary_size=c.vocab_size, num_layers=c.num_hidden_layers,
    num_heads=c.num_attention_heads, embedding_dim=c.embedding_size, hidden_dim=c.hidden_size,
    intermediate_dim=c.intermediate_size, num_groups=c.num_hidden_groups, num_inner_repetitions=c.inner_group_num,
    max_sequence_length=c.max_position_embeddings)
model = keras_hub.models.AlbertMaskedLM(backbone=backbone, preprocessor=None)
model.compile(optimizer=keras.optimizers.Lamb(1e-4), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              weighted_metrics=["sparse_categorical_accuracy"])
rng = np.random.default_rng(0)
n = BATCH * (steps + WARMUP + 1)
x = {"token_ids": rng.integers(5, c.vocab_size, (n, seq)), "segment_ids": np.zeros((n, seq), "int32"),
     "padding_mask": np.ones((n, seq), "int32"),
     "mask_positions": np.sort(rng.integers(1, seq - 1, (n, PREDICTIONS)), axis=1)}
y = rng.integers(5, c.vocab_size, (n, PREDICTIONS)); w = np.ones((n, PREDICTIONS), "float32")

class Times(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.t = time.perf_counter()
    def on_train_batch_end(self, batch, logs=None):
        times.append(time.perf_counter() - self.t)

times = []
model.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=[Times()])
report(times[0], times[1 + WARMUP :])
"""  # noqa: E501

HF = """
import sys
import torch
from transformers import AlbertConfig as HFConfig, AlbertForPreTraining
from bioalbert_tf.config import AlbertConfig
cfg_file, seq, steps, masked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
c = AlbertConfig.from_json_file(cfg_file)
torch.manual_seed(0)
model = AlbertForPreTraining(HFConfig(vocab_size=c.vocab_size, embedding_size=c.embedding_size,
    hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers, num_hidden_groups=c.num_hidden_groups,
    num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
    inner_group_num=c.inner_group_num, hidden_act="gelu_new", hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0,
    max_position_embeddings=c.max_position_embeddings, layer_norm_eps=1e-12))
model.train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
g = torch.Generator().manual_seed(0)
ids = torch.randint(5, c.vocab_size, (BATCH, seq), generator=g)
positions = torch.sort(torch.randint(1, seq - 1, (BATCH, PREDICTIONS), generator=g), dim=1).values
targets = torch.randint(5, c.vocab_size, (BATCH, PREDICTIONS), generator=g)
sop = torch.randint(0, 2, (BATCH,), generator=g)
ce = torch.nn.CrossEntropyLoss()

def step():
    optimizer.zero_grad(set_to_none=True)
    if masked:
        out = model.albert(input_ids=ids)
        hidden = torch.gather(out.last_hidden_state, 1, positions[..., None].expand(-1, -1, c.hidden_size))
        mlm = model.predictions(hidden)
        loss = ce(mlm.reshape(-1, c.vocab_size), targets.reshape(-1)) + ce(model.sop_classifier(out.pooler_output), sop)
    else:
        labels = torch.full((BATCH, seq), -100).scatter(1, positions, targets)
        loss = model(input_ids=ids, labels=labels, sentence_order_label=sop).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()

timed(step, steps, WARMUP)
"""  # noqa: E501

MATMUL = """
import json, time
import numpy as np, tensorflow as tf
best = {}
for n in (1024, 2048, 4096):
    a = tf.constant(np.random.default_rng(0).standard_normal((n, n), np.float32))
    f = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)))
    f(a).numpy()
    reps = max(2, int(2e10 / (2 * n ** 3)))
    times = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            f(a).numpy()
        times.append((time.perf_counter() - t) / reps)
    best[n] = 2 * n ** 3 / min(times) / 1e9
print(json.dumps({"gflops": max(best.values()), "by_size": best}))
"""


def model_flops(c: dict, seq: int) -> float:
    """Training FLOPs of one example: 3x the forward (backward is twice the forward), counting
    the matmuls of the reference computation (MLM head on the masked positions only)."""
    h, e, i, v, layers = (
        c["hidden_size"],
        c["embedding_size"],
        c["intermediate_size"],
        c["vocab_size"],
        c["num_hidden_layers"],
    )
    layer = 2 * seq * (4 * h * h + 2 * h * i) + 2 * 2 * seq * seq * h  # projections, FFN, QK^T, AV
    forward = 2 * seq * e * h + layers * layer + 2 * PREDICTIONS * (h * e + e * v) + 2 * h * h
    return 3.0 * forward


def _write_records(folder: str, seq: int, vocab: int, n: int = 64) -> str:
    from bioalbert_tf import features
    from tfrecords_builder import writer

    path = os.path.join(folder, f"random-{seq}-{vocab}.tfrecord")
    if os.path.exists(path):
        return path
    rng = random.Random(0)
    enc = writer.PretrainingExampleEncoder(features.pretraining_features(seq, PREDICTIONS), vocab)
    w = writer.AtomicTFRecordWriter(path)
    for _ in range(n):
        la = rng.randint(1, seq - 4)
        ids = (
            [2]
            + [rng.randrange(5, vocab) for _ in range(la)]
            + [3]
            + [rng.randrange(5, vocab) for _ in range(seq - la - 3)]
            + [3]
        )
        positions = sorted(rng.sample(range(1, seq - 1), PREDICTIONS))
        w.write(
            enc.encode(
                ids, la, bytes(seq), positions, [ids[p] for p in positions], rng.randint(0, 1)
            )
        )
    w.commit()
    return path


def _run(script: str, *args: str) -> dict:
    head = f"BATCH, PREDICTIONS, WARMUP = {BATCH}, {PREDICTIONS}, {WARMUP}\n" + _TIMED
    return common.run_json([sys.executable, "-c", head + script, *args])


def measure(work: str, size: str, seq: int, steps: int, columns=COLUMNS) -> dict:
    from bioalbert_tf.config import AlbertConfig

    values = {**AlbertConfig().to_dict(), **SIZES[size], "max_position_embeddings": 512}
    cfg = os.path.join(work, f"albert_{size}.json")
    AlbertConfig.from_dict(values).to_json_file(cfg)
    records = _write_records(work, seq, values["vocab_size"])
    s, n = str(seq), str(steps)
    commands = {
        "ours": (OURS, cfg, records, s, n, "0", os.path.join(work, f"o-{size}-{s}")),
        "ours_xla": (OURS, cfg, records, s, n, "1", os.path.join(work, f"x-{size}-{s}")),
        "keras_hub": (KERAS_HUB, cfg, s, n),
        "hf_stock": (HF, cfg, s, n, "0"),
        "hf_masked": (HF, cfg, s, n, "1"),
    }
    result = {"gflop_per_example": model_flops(values, seq) / 1e9}
    for column in columns:
        command = commands[column]
        result[column] = _run(*command)
        # A base / 512 column takes minutes: each is shown as soon as it is measured.
        print(
            f"  {size} / {seq}, {TITLES[column]}: {result[column]['examples_per_s']:.3f} "
            f"examples/s, peak RSS {result[column]['peak_rss_mb'] / 1024:.1f} GB",
            flush=True,
        )
    return result


def table(rows: list[dict], peak: float) -> str:
    lines = [
        "| model / seq | "
        + " | ".join(f"{TITLES[c]} ex/s" for c in COLUMNS)
        + " | ours XLA / keras-hub | ours XLA / HF stock | ours / HF stock"
        + " | GFLOP/s (ours XLA, % of matmul peak) | peak RSS GB ("
        + ", ".join(TITLES[c] for c in COLUMNS)
        + ") |",
        "|---" * (len(COLUMNS) + 6) + "|",
    ]
    for r in rows:
        ex = {c: r[c]["examples_per_s"] for c in COLUMNS if c in r}

        def ratio(a, b, ex=ex):
            return f"{ex[a] / ex[b]:.2f}x" if a in ex and b in ex else "-"

        gflops = ex.get("ours_xla", 0.0) * r["gflop_per_example"]
        lines.append(
            f"| {r['size']} / {r['seq']} | "
            + " | ".join(f"{ex[c]:.2f}" if c in ex else "-" for c in COLUMNS)
            + (
                f" | {ratio('ours_xla', 'keras_hub')} | {ratio('ours_xla', 'hf_stock')}"
                f" | {ratio('ours', 'hf_stock')}"
            )
            + (f" | {gflops:.0f} ({100 * gflops / peak:.0f}%) | " if gflops else " | - | ")
            + ", ".join(f"{r[c]['peak_rss_mb'] / 1024:.1f}" if c in r else "-" for c in COLUMNS)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(dir=OUT)
    # Arguments select cases (`small`, `base/512`) and columns (`ours_xla`, `hf_stock`, ...).
    columns = [c for c in COLUMNS if c in argv[1:]] or COLUMNS
    only = set(argv[1:]) - set(COLUMNS)
    cases = [c for c in CASES if not only or c[0] in only or f"{c[0]}/{c[1]}" in only]
    cpu = common.cpu()
    matmul = _run(MATMUL)
    print(
        f"{cpu}; TensorFlow fp32 matmul peak {matmul['gflops']:.0f} GFLOP/s "
        f"(best of n = 1024, 2048, 4096); batch {BATCH}, {PREDICTIONS} predictions",
        flush=True,
    )
    rows = []
    for size, seq, steps in cases:
        r = {
            "size": size,
            "seq": seq,
            "measured_steps": steps,
            **measure(work, size, seq, steps, columns),
        }
        rows.append(r)
        print(table([r], matmul["gflops"]).splitlines()[-1], flush=True)
    result = {"cpu": cpu, "matmul_peak": matmul, "batch": BATCH, "rows": rows}
    with open(os.path.join(OUT, "pretraining_bench.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"\n{cpu}; TF fp32 matmul peak {matmul['gflops']:.0f} GFLOP/s; batch {BATCH}; median "
        f"step time after {WARMUP + 1} warm-up steps\n" + table(rows, matmul["gflops"])
    )


if __name__ == "__main__":
    main(sys.argv)
