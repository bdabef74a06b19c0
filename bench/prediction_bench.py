r"""`make bench` for in-process prediction: the dev and test predictions of fine-tuning.

A task at ALBERT-base size (configs/albert_base.json with an 8000-piece MEDLINE vocabulary,
random weights: speed does not depend on them) predicts real MEDLINE sentences (pubmed21n1298)
at --max_seq_length and --batch_size (fine-tuning's eval batch). Modes:

  eager      the Keras model called eagerly on each batch at max_seq_length (the old path)
  graph      Task.raw_outputs, a traced tf.function, each batch cut to its PREDICT_WIDTHS bucket
  xla        the same, XLA-compiled (predict_jit_compile, the default)
  ner_eager  NER word tagging (windows, chunks cut to their longest window), run eagerly
  ner_graph  the same through NERTask.predict's traced function

Each mode runs in its own process: one untimed first pass (tracing, compiling), then --passes
timed passes over the same sentences; the figure is the median pass. Also printed: the first
pass's seconds, which is what a short dev set pays once per run.

  python -m bench.prediction_bench [--sentences=128 --passes=3 --max_seq_length=128 \
      --batch_size=64 --modes=eager,graph,xla,ner_eager,ner_graph]
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
class PredictionBenchConfig:
    """This script's settings (its flags are generated from these fields)."""

    output_dir: str = setting("output/bench/prediction", "Vocabulary and results.")
    sentences: int = setting(128, "Sentences predicted per pass.")
    passes: int = setting(3, "Timed passes after the first one.")
    max_seq_length: int = setting(128, "The task's max_seq_length (paper: 128, NER 512).")
    batch_size: int = setting(64, "Prediction batch (run_finetuning's --eval_batch_size).")
    modes: tuple[str, ...] = setting(
        ("eager", "graph", "xla", "ner_eager", "ner_graph"), "Modes to run."
    )


FLAGS = flags.FLAGS
settings.define_flags(PredictionBenchConfig)
common.define_mode_flags()


def _task(name: str, labels: tuple[str, ...], spm: str):
    import keras

    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.evaluation import datasets
    from bioalbert_tf.tasks import create_task

    config = AlbertConfig.from_json_file("configs/albert_base.json")
    config = AlbertConfig.from_dict({**config.to_dict(), "vocab_size": FLAGS.vocab_size})
    keras.utils.set_random_seed(0)
    with open(spm, "rb") as f:
        return create_task(datasets.get(name), labels, config, f.read(), FLAGS.max_seq_length)


def _predictor(mode: str, sentences: list[str], spm: str):
    """A function that predicts every sentence once, for `mode`."""
    import numpy as np
    import tensorflow as tf

    from bioalbert_tf.evaluation import formats

    if mode.startswith("ner"):
        task = _task("ncbi_disease", ("O", "B", "I"), spm)
        rows = [formats.NerSentence(tuple(s.split()), ("O",) * len(s.split())) for s in sentences]
        if mode == "ner_graph":
            return lambda: task.predict(rows, FLAGS.batch_size)

        def eager():
            for i in range(0, len(rows), FLAGS.batch_size):
                words = [r.words for r in rows[i : i + FLAGS.batch_size]]
                task.tag_words_ragged(tf.ragged.constant(words, dtype=tf.string))[0].to_list()

        return eager
    task = _task("gad", ("0", "1"), spm)
    rows = [formats.Example(str(i), s) for i, s in enumerate(sentences)]
    if mode in ("graph", "xla"):
        task.predict_jit_compile = mode == "xla"
        return lambda: task.raw_outputs(rows, FLAGS.batch_size)
    texts = tf.constant(sentences)

    def eager_full_length():
        ds = tf.data.Dataset.from_tensor_slices(texts).batch(FLAGS.batch_size)
        ds = ds.map(task.encode_texts)
        return np.concatenate([np.asarray(task.model(b, training=False)) for b in ds])

    return eager_full_length


def measure(mode: str, spm: str, sentences: list[str]) -> dict:
    predict = _predictor(mode, sentences, spm)
    start = time.perf_counter()
    predict()
    first = time.perf_counter() - start
    passes = []
    for _ in range(FLAGS.passes):
        start = time.perf_counter()
        predict()
        passes.append(time.perf_counter() - start)
    median = statistics.median(passes)
    return {
        "mode": mode,
        "first_pass_s": round(first, 2),
        "median_pass_s": round(median, 3),
        "sentences_per_s": round(len(sentences) / median, 2),
        "passes": passes,
    }


def main(argv: list[str]) -> None:
    del argv
    sentences = common.mode_sentences(
        FLAGS.output_dir, FLAGS.sentences, measuring=bool(FLAGS.measure)
    )
    if FLAGS.measure:
        print(json.dumps(measure(FLAGS.measure, FLAGS.spm, sentences)))
        return
    spm = common.medline_spm(FLAGS.output_dir, FLAGS.vocab_size)
    print(
        f"{common.cpu()}; ALBERT-base, random weights, {FLAGS.sentences} MEDLINE sentences, "
        f"max_seq_length {FLAGS.max_seq_length}, batch {FLAGS.batch_size}, "
        f"median of {FLAGS.passes} passes after a first one",
        flush=True,
    )
    print("| mode | sentences/s | first pass (s) | vs eager |\n|---|---|---|---|", flush=True)
    results = {}
    for mode in FLAGS.modes:
        r = results[mode] = common.run_mode("bench.prediction_bench", mode, spm)
        base = results.get("ner_eager" if mode.startswith("ner") else "eager")
        ratio = f"{r['sentences_per_s'] / base['sentences_per_s']:.2f}x" if base else "-"
        print(f"| {mode} | {r['sentences_per_s']} | {r['first_pass_s']} | {ratio} |", flush=True)
    common.write_results(os.path.join(FLAGS.output_dir, "prediction_bench.json"), results)


if __name__ == "__main__":
    app.run(main)
