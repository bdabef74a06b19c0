"""`make bench` for pretraining: examples/s and peak RSS of a training step on this CPU.

Ours (bioalbert_tf.pretraining.Trainer: full MLM + SOP step with ALBERT's LAMB, reading TFRecords)
side by side with keras-hub's AlbertMaskedLM.fit on the same ALBERT config (MLM only, keras' Lamb),
at tiny and base size, sequence 128 and 512; then our --iterations_per_loop 1 vs 100; then our
step with XLA (--jit_compile) against without. Every measurement runs in its own
process, one after another. `python -m benchmarks.pretraining_bench xla` runs the XLA part alone.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile

OUT = os.path.join("output", "bench")
TINY = {"vocab_size": 1000, "embedding_size": 32, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
        "intermediate_size": 256, "max_position_embeddings": 512}  # fmt: skip
BASE = {"max_position_embeddings": 512}  # configs/albert_base.json sizes
CASES = [
    ("tiny", 128, 32, 30),
    ("tiny", 512, 8, 20),
    ("base", 128, 8, 6),
    ("base", 512, 2, 4),
]  # size, seq, batch, steps


def _write_records(folder: str, seq: int, pred: int, vocab: int, n: int = 256) -> str:
    from bioalbert_tf import features
    from tfrecords_builder import writer

    path = os.path.join(folder, f"random-{seq}.tfrecord")
    if os.path.exists(path):
        return path
    rng = random.Random(0)
    enc = writer.PretrainingExampleEncoder(features.pretraining_features(seq, pred), vocab)
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
        positions = sorted(rng.sample(range(1, seq - 1), pred))
        w.write(
            enc.encode(
                ids, la, bytes(seq), positions, [ids[p] for p in positions], rng.randint(0, 1)
            )
        )
    w.commit()
    return path


OURS = """
import json, resource, sys, time
from bioalbert_tf import pretraining
import tensorflow as tf
cfg_file, records, seq, batch, steps, ipl, out = sys.argv[1:8]
seq, batch, steps, ipl = int(seq), int(batch), int(steps), int(ipl)
config = pretraining.PretrainingConfig(input_file=(records,), output_dir=out, albert_config_file=cfg_file,
    train_batch_size=batch, max_seq_length=seq, max_predictions_per_seq=20, num_train_steps=10**6, num_warmup_steps=0,
    iterations_per_loop=ipl, learning_rate=1e-4)
trainer = pretraining.Trainer(config, tf.distribute.get_strategy())
trainer.train_steps(ipl)  # compile + warm up
t = time.time(); done = 0
while done < steps:
    trainer.train_steps(ipl); done += ipl
seconds = time.time() - t
print(json.dumps({"examples_per_s": done * batch / seconds, "s_per_step": seconds / done,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# Median seconds per training step (one step per call), after 3 warm-up steps that compile.
OURS_XLA = """
import json, statistics, sys, time
from bioalbert_tf import pretraining
import tensorflow as tf
cfg_file, records, seq, batch, steps, jit, out = sys.argv[1:8]
seq, batch, steps = int(seq), int(batch), int(steps)
config = pretraining.PretrainingConfig(input_file=(records,), output_dir=out, albert_config_file=cfg_file,
    train_batch_size=batch, max_seq_length=seq, max_predictions_per_seq=20, num_train_steps=10**6, num_warmup_steps=0,
    iterations_per_loop=1, learning_rate=1e-4, jit_compile=jit == "1")
trainer = pretraining.Trainer(config, tf.distribute.get_strategy())
t = time.perf_counter(); trainer.train_steps(1); first = time.perf_counter() - t
trainer.train_steps(1); trainer.train_steps(1)
times = []
for _ in range(steps):
    t = time.perf_counter(); trainer.train_steps(1); times.append(time.perf_counter() - t)
median = statistics.median(times)
print(json.dumps({"median_s_per_step": median, "steps_per_s": 1 / median, "first_step_s": first,
                  "min_s_per_step": min(times), "max_s_per_step": max(times)}))
"""
XLA_CASES = [("tiny", 128, 32, 20), ("base", 128, 8, 20)]  # size, seq, batch, measured steps
XLA_REPEATS = 2  # on, off, on, off: a machine shared with other work drifts over minutes

KERAS_HUB = """
import json, resource, sys, time
import numpy as np, keras, keras_hub
from bioalbert_tf.config import AlbertConfig
cfg_file, seq, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = AlbertConfig.from_json_file(cfg_file)
backbone = keras_hub.models.AlbertBackbone(vocabulary_size=c.vocab_size, num_layers=c.num_hidden_layers,
    num_heads=c.num_attention_heads, embedding_dim=c.embedding_size, hidden_dim=c.hidden_size,
    intermediate_dim=c.intermediate_size, num_groups=c.num_hidden_groups, num_inner_repetitions=c.inner_group_num,
    max_sequence_length=c.max_position_embeddings)
model = keras_hub.models.AlbertMaskedLM(backbone=backbone, preprocessor=None)
model.compile(optimizer=keras.optimizers.Lamb(1e-4), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              weighted_metrics=["sparse_categorical_accuracy"])
rng = np.random.default_rng(0)
n = batch * (steps + 2)
x = {"token_ids": rng.integers(5, c.vocab_size, (n, seq)), "segment_ids": np.zeros((n, seq), "int32"),
     "padding_mask": np.ones((n, seq), "int32"), "mask_positions": np.sort(rng.integers(1, seq - 1, (n, 20)), axis=1)}
y = rng.integers(5, c.vocab_size, (n, 20)); w = np.ones((n, 20), "float32")
model.fit(x, y, sample_weight=w, batch_size=batch, steps_per_epoch=2, epochs=1, verbose=0)  # compile + warm up
t = time.time()
model.fit(x, y, sample_weight=w, batch_size=batch, steps_per_epoch=steps, epochs=1, verbose=0)
seconds = time.time() - t
print(json.dumps({"examples_per_s": steps * batch / seconds, "s_per_step": seconds / steps,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(args) -> dict:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _configs(work: str) -> dict:
    from bioalbert_tf.config import AlbertConfig

    configs = {}
    for name, values in (("tiny", TINY), ("base", BASE)):
        path = os.path.join(work, f"albert_{name}.json")
        AlbertConfig.from_dict({**AlbertConfig().to_dict(), **values}).to_json_file(path)
        configs[name] = path
    return configs


def xla_on_off(work: str, configs: dict) -> list[dict]:
    """Our training step with and without XLA: median steps/s of each, runs interleaved."""
    from bioalbert_tf.config import AlbertConfig

    rows = []
    for size, seq, batch, steps in XLA_CASES:
        records = _write_records(
            work, seq, 20, AlbertConfig.from_json_file(configs[size]).vocab_size
        )
        runs = {"1": [], "0": []}
        for r in range(XLA_REPEATS):
            for jit in ("1", "0"):
                out = os.path.join(work, f"xla-{size}-{jit}-{r}")
                args = [
                    OURS_XLA,
                    configs[size],
                    records,
                    str(seq),
                    str(batch),
                    str(steps),
                    jit,
                    out,
                ]
                runs[jit].append(_run(args))
        on = max(x["steps_per_s"] for x in runs["1"])  # the least disturbed run of each
        off = max(x["steps_per_s"] for x in runs["0"])
        rows.append(
            {"size": size, "seq": seq, "batch": batch, "xla": runs["1"], "no_xla": runs["0"]}
        )
        print(f"XLA {size} seq {seq} batch {batch}: on {on:.2f} steps/s, off {off:.2f} steps/s "
              f"({on / off:.2f}x; median of {steps} steps, best of {XLA_REPEATS} runs each)", flush=True)  # fmt: skip
    return rows


def main(argv: list[str]) -> None:
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(dir=OUT)
    configs = _configs(work)
    if argv[1:] == ["xla"]:
        with open(os.path.join(OUT, "pretraining_xla_bench.json"), "w") as f:
            json.dump(xla_on_off(work, configs), f, indent=2)
        return
    from bioalbert_tf.config import AlbertConfig

    rows = []
    print(
        f"{'size':<5} {'seq':>4} {'batch':>5}  {'ours ex/s':>10} {'keras-hub ex/s':>15} {'ours/keras-hub':>15}  {'ours RSS MB':>11} {'keras-hub RSS MB':>16}"
    )
    for size, seq, batch, steps in CASES:
        vocab = AlbertConfig.from_json_file(configs[size]).vocab_size
        records = _write_records(work, seq, 20, vocab)
        ours = _run(
            [
                OURS,
                configs[size],
                records,
                str(seq),
                str(batch),
                str(steps),
                "1",
                os.path.join(work, f"run-{size}-{seq}"),
            ]
        )
        hub = _run([KERAS_HUB, configs[size], str(seq), str(batch), str(steps)])
        rows.append({"size": size, "seq": seq, "batch": batch, "ours": ours, "keras_hub": hub})
        print(f"{size:<5} {seq:>4} {batch:>5}  {ours['examples_per_s']:>10.1f} {hub['examples_per_s']:>15.1f} "
              f"{ours['examples_per_s'] / hub['examples_per_s']:>14.2f}x  {ours['peak_rss_mb']:>11.0f} {hub['peak_rss_mb']:>16.0f}", flush=True)  # fmt: skip
    records = _write_records(work, 128, 20, TINY["vocab_size"])
    loop = {}
    for ipl in (1, 100):
        loop[ipl] = _run(
            [
                OURS,
                configs["tiny"],
                records,
                "128",
                "8",
                "200",
                str(ipl),
                os.path.join(work, f"ipl-{ipl}"),
            ]
        )
    print(f"\n--iterations_per_loop (tiny, seq 128, batch 8, 200 steps): 1 -> {loop[1]['examples_per_s']:.0f} ex/s, "
          f"100 -> {loop[100]['examples_per_s']:.0f} ex/s ({loop[100]['examples_per_s'] / loop[1]['examples_per_s']:.2f}x)")  # fmt: skip
    xla = xla_on_off(work, configs)
    with open(os.path.join(OUT, "pretraining_bench.json"), "w") as f:
        json.dump({"rows": rows, "iterations_per_loop": loop, "xla": xla}, f, indent=2)


if __name__ == "__main__":
    main(sys.argv)
