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

from absl import app

from bioalbert_tf import fileio, settings
from bioalbert_tf.evaluation.formats import FormatError
from bioalbert_tf.evaluation.scoring import ScoreConfig, score_files

settings.define_flags(ScoreConfig)


def main(argv):
    del argv
    config = settings.from_flags(ScoreConfig)
    try:
        result = score_files(config.dataset, config.gold, config.predictions, config.tokens)
        if config.output:
            fileio.write_text(config.output, json.dumps(result, indent=2, allow_nan=False) + "\n")
    except (FormatError, FileNotFoundError, ValueError, *fileio.fault_types()) as e:
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, allow_nan=False))
    return 0


if __name__ == "__main__":
    app.run(main)
