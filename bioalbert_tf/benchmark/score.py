r"""Scores a prediction file from any system against a gold file.

  python -m bioalbert_tf.benchmark.score --dataset=ncbi_disease \
      --gold=NCBI-disease/test.tsv --predictions=predictions.tsv [--output=metrics.json]
  python -m bioalbert_tf.benchmark.score --dataset=ncbi_disease --gold=test.tsv \
      --predictions=label_test.txt --tokens=token_test.txt          # BioBERT's output pair
  python -m bioalbert_tf.benchmark.score --dataset=bioasq6b \
      --gold='BioASQ/6B*_golden.json' --predictions=predictions.json

Prediction formats: see `bioalbert_tf/evaluation/predictions.py`. The output JSON holds every
metric of the task (NER: entity_f1 and token_f1, both defined in the file), the main metric under
`main_score`.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from bioalbert_tf import fileio
from bioalbert_tf.evaluation import datasets
from bioalbert_tf.evaluation.formats import FormatError
from bioalbert_tf.evaluation.scoring import score_files

FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not (FLAGS.dataset and FLAGS.gold and FLAGS.predictions):
        raise app.UsageError("--dataset, --gold and --predictions are required")
    try:
        result = score_files(FLAGS.dataset, FLAGS.gold, FLAGS.predictions, FLAGS.tokens)
        if FLAGS.output:
            fileio.write_text(FLAGS.output, json.dumps(result, indent=2, allow_nan=False) + "\n")
    except (FormatError, FileNotFoundError, ValueError, *fileio.fault_types()) as e:
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, allow_nan=False))
    return 0


def define_flags() -> None:
    # Defined only when run as a program: the runner imports this module and has flags of its own.
    flags.DEFINE_enum("dataset", None, list(datasets.REGISTRY), "Which dataset (sets the metric).")
    flags.DEFINE_string(
        "gold", None, "Gold file; BioASQ: golden file(s), comma-separated and/or glob patterns."
    )
    flags.DEFINE_string("predictions", None, "Prediction file (BioBERT NER: label_test.txt).")
    flags.DEFINE_string("tokens", None, "NER only: BioBERT's token_test.txt beside --predictions.")
    flags.DEFINE_string("output", None, "Where to write the metrics JSON (default: stdout only).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
