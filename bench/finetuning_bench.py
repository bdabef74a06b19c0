r"""`make bench` for the fine-tuning training step: XLA-compiled (the default) against the graph.

A task at ALBERT-base size (configs/albert_base.json with an 8000-piece MEDLINE vocabulary,
random weights: speed does not depend on them) trains on real MEDLINE sentences (pubmed21n1298)
with random labels, through `finetuning.compile_task` and Keras `fit`, exactly as run_finetuning
does: the reference's AdamW, clipping, warm-up. Modes, each in its own process:

  gad_graph, gad_xla   sentence classification (GAD, the RE datasets, HoC, NLI and STS share it)
  ner_graph, ner_xla   NER token classification (NCBI-disease)

The first --warmup steps (tracing, compiling) are not timed; the figure is the median of the
next --steps step times. Also printed: the seconds until the first step was done.

  python -m bench.finetuning_bench [--max_seq_length=128 --batch_size=8 --steps=8 \
      --modes=gad_graph,gad_xla,ner_graph,ner_xla]
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time

from absl import app, flags

from bench import common
from bioalbert_tf import settings
from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class FinetuningBenchConfig:
    """This script's settings (its flags are generated from these fields)."""

    output_dir: str = setting("output/bench/finetuning", "Vocabulary and results.")
    steps: int = setting(8, "Timed training steps.")
    warmup: int = setting(2, "Untimed first steps (tracing, compiling).")
    max_seq_length: int = setting(128, "The task's max_seq_length (paper: 128, NER 512).")
    batch_size: int = setting(8, "Training batch (paper: 32).")
    modes: tuple[str, ...] = setting(
        ("gad_graph", "gad_xla", "ner_graph", "ner_xla"), "Modes to run."
    )


FLAGS = flags.FLAGS
settings.define_flags(FinetuningBenchConfig)
common.define_mode_flags()


def measure(mode: str, spm: str, sentences: list[str]) -> dict:
    import keras
    import numpy as np

    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.evaluation import datasets, formats
    from bioalbert_tf.tasks import create_task
    from bioalbert_tf.training import finetuning

    name, compiler = mode.split("_")
    rng = np.random.default_rng(0)
    if name == "ner":
        dataset, labels = "ncbi_disease", ("O", "B", "I")
        rows = [
            formats.NerSentence(tuple(s.split()), tuple(rng.choice(labels, len(s.split()))))
            for s in sentences
        ]
    else:
        dataset, labels = "gad", ("0", "1")
        rows = [
            formats.Example(str(i), s, label=str(rng.integers(2))) for i, s in enumerate(sentences)
        ]
    config = AlbertConfig.from_json_file("configs/albert_base.json")
    config = AlbertConfig.from_dict({**config.to_dict(), "vocab_size": FLAGS.vocab_size})
    keras.utils.set_random_seed(0)
    with open(spm, "rb") as f:
        task = create_task(datasets.get(dataset), labels, config, f.read(), FLAGS.max_seq_length)
    steps = FLAGS.warmup + FLAGS.steps
    settings = finetuning.FinetuningConfig(
        dataset=dataset,
        data_dir="",
        output_dir="",
        albert_config_file="",
        spm_model_file=spm,
        num_train_steps=steps,
        num_warmup_steps=1,
        train_batch_size=FLAGS.batch_size,
        jit_compile=compiler == "xla",
    )
    finetuning.compile_task(task, settings)
    ends = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # the step is done
            ends.append(time.perf_counter())

    start = time.perf_counter()
    task.model.fit(
        task.train_dataset(rows, FLAGS.batch_size, 0),
        steps_per_epoch=steps,
        epochs=1,
        callbacks=[Clock()],
        verbose=0,
    )
    times = np.diff(ends[FLAGS.warmup - 1 :]).tolist()
    median = statistics.median(times)
    return {
        "mode": mode,
        "first_step_s": round(ends[0] - start, 1),
        "median_step_s": round(median, 3),
        "examples_per_s": round(FLAGS.batch_size / median, 3),
        "steps_s": [round(t, 3) for t in times],
    }


def main(argv: list[str]) -> None:
    del argv
    sentences = common.mode_sentences(FLAGS.output_dir, 256, measuring=bool(FLAGS.measure))
    if FLAGS.measure:
        print(json.dumps(measure(FLAGS.measure, FLAGS.spm, sentences)))
        return
    spm = common.medline_spm(FLAGS.output_dir, FLAGS.vocab_size)
    print(
        f"{common.cpu()}; ALBERT-base, random weights, MEDLINE sentences, max_seq_length "
        f"{FLAGS.max_seq_length}, batch {FLAGS.batch_size}, median of {FLAGS.steps} steps after "
        f"{FLAGS.warmup}",
        flush=True,
    )
    print(
        "| mode | examples/s | median step (s) | first step (s) | XLA / graph |\n"
        "|---|---|---|---|---|",
        flush=True,
    )
    results = {}
    for mode in FLAGS.modes:
        r = results[mode] = common.run_mode("bench.finetuning_bench", mode, spm)
        base = results.get(mode.replace("_xla", "_graph")) if mode.endswith("_xla") else None
        ratio = f"{r['examples_per_s'] / base['examples_per_s']:.2f}x" if base else "-"
        print(
            f"| {mode} | {r['examples_per_s']} | {r['median_step_s']} | {r['first_step_s']} | "
            f"{ratio} |",
            flush=True,
        )
    common.write_results(os.path.join(FLAGS.output_dir, "finetuning_bench.json"), results)


if __name__ == "__main__":
    app.run(main)
