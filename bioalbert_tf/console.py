"""Console scripts (setup.cfg's entry points): `bioalbert-pretrain` runs what
`python -m bioalbert_tf.run_pretraining` runs, with the same flags, and so on for each command."""

from __future__ import annotations

import importlib

from absl import app

COMMANDS = {
    "bioalbert-build-vocab": "tfrecords_builder.build_vocab",
    "bioalbert-build-tfrecords": "tfrecords_builder.build_pretraining_data",
    "bioalbert-pretrain": "bioalbert_tf.run_pretraining",
    "bioalbert-convert": "bioalbert_tf.convert_checkpoint",
    "bioalbert-finetune": "bioalbert_tf.run_finetuning",
    "bioalbert-export": "bioalbert_tf.export_saved_model",
    "bioalbert-benchmark": "bioalbert_tf.benchmark.__main__",
    "bioalbert-score": "bioalbert_tf.benchmark.score",
    "bioalbert-report": "bioalbert_tf.benchmark.report",
}


def _run(command: str) -> None:
    module = importlib.import_module(COMMANDS[command])
    parser = getattr(module, "_parse", None)  # the builder hands unknown flags to Beam
    app.run(module.main, **({"flags_parser": parser} if parser else {}))


def build_vocab():
    _run("bioalbert-build-vocab")


def build_tfrecords():
    _run("bioalbert-build-tfrecords")


def pretrain():
    _run("bioalbert-pretrain")


def convert():
    _run("bioalbert-convert")


def finetune():
    _run("bioalbert-finetune")


def export():
    _run("bioalbert-export")


def benchmark():
    _run("bioalbert-benchmark")


def score():
    _run("bioalbert-score")


def report():
    _run("bioalbert-report")
