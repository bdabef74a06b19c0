"""Console scripts (setup.cfg's entry points): `bioalbert-pretrain` runs what
`python -m bioalbert_tf.run_pretraining` runs, with the same flags, and so on for each command."""

from __future__ import annotations

import functools
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


# The entry points setup.cfg names, one per command.
build_vocab = functools.partial(_run, "bioalbert-build-vocab")
build_tfrecords = functools.partial(_run, "bioalbert-build-tfrecords")
pretrain = functools.partial(_run, "bioalbert-pretrain")
convert = functools.partial(_run, "bioalbert-convert")
finetune = functools.partial(_run, "bioalbert-finetune")
export = functools.partial(_run, "bioalbert-export")
benchmark = functools.partial(_run, "bioalbert-benchmark")
score = functools.partial(_run, "bioalbert-score")
report = functools.partial(_run, "bioalbert-report")
