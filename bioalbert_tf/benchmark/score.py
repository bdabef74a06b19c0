r"""Scores a prediction file from any system against a gold file.

  python -m bioalbert_tf.benchmark.score --dataset=ncbi_disease \
      --gold=NCBI-disease/test.tsv --predictions=predictions.tsv [--output=metrics.json]
  python -m bioalbert_tf.benchmark.score --dataset=ncbi_disease --gold=test.tsv \
      --predictions=label_test.txt --tokens=token_test.txt          # BioBERT's output pair
  python -m bioalbert_tf.benchmark.score --dataset=bioasq6b \
      --gold='BioASQ/6B*_golden.json' --predictions=predictions.json

Prediction formats: see `predictions.py`. The output JSON holds every metric of the task
(NER: entity_f1 and token_f1, both defined in the file), the main metric under `main_score`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from absl import app, flags

from bioalbert_tf import fileio
from bioalbert_tf.benchmark import data, metrics, predictions, tasks
from bioalbert_tf.benchmark.data import Example, FormatError
from bioalbert_tf.benchmark.tasks import DatasetSpec

FLAGS = flags.FLAGS


def with_header(spec: DatasetSpec, scores: dict) -> dict:
    """Dataset, task and the main metric first, then every metric of the task."""
    return {
        "dataset": spec.name,
        "task": spec.task,
        "metric": spec.metric,
        "main_key": spec.main_key,
        "main_score": scores[spec.main_key],
        **scores,
    }


def score_examples(
    spec: DatasetSpec,
    gold: Sequence[Example],
    predicted: Sequence[str | float],
    where: Sequence[str] | None = None,
) -> dict:
    """Metrics of RE / HoC / NLI / STS predictions given in gold order.

    where: 'file:line' of each prediction, for errors about its value.
    """
    where = where or [f"prediction {i}" for i in range(len(predicted))]
    if spec.task == "re":
        return metrics.re_scores(
            [ex.label for ex in gold],
            [str(p) for p in predicted],
            spec.negative_labels,
            spec.positive_labels,
        )
    if spec.task == "doc_classification":
        for value, w in zip(predicted, where, strict=True):
            try:
                metrics.parse_hoc_labels(str(value))
            except ValueError as e:
                raise FormatError(
                    w, None, f"HoC labels like '0_1,1_0,...' ({e})", str(value)
                ) from None
        return metrics.hoc_scores([ex.id for ex in gold], [ex.label for ex in gold], predicted)
    if spec.task == "nli":
        return metrics.classification_scores([ex.label for ex in gold], [str(p) for p in predicted])
    if spec.task == "sts":
        values = []
        for value, w in zip(predicted, where, strict=True):
            try:
                values.append(float(value))
            except ValueError:
                raise FormatError(w, None, "a number", str(value)) from None
        return metrics.sts_scores([ex.score for ex in gold], values)
    raise ValueError(f"{spec.name}: {spec.task} is not scored from examples")


def expand_paths(paths: str | Sequence[str]) -> list[str]:
    """Comma-separated paths and glob patterns -> files, in order."""
    if isinstance(paths, str):
        paths = [p for p in paths.split(",") if p.strip()]
    out = []
    for p in paths:
        p = p.strip()
        matches = fileio.glob(p) if any(c in p for c in "*?[") else [p]
        if not matches:
            raise FileNotFoundError(f"no file matches {p}")
        out.extend(matches)
    return out


def batch_name(golden_path: str) -> str:
    """'.../4B1_golden.json' -> '4B1'."""
    name = fileio.basename(golden_path)
    return name[: -len("_golden.json")] if name.endswith("_golden.json") else name


def score_bioasq(golden_paths: Sequence[str], answers: dict[str, Sequence[str]]) -> dict:
    batches = {
        batch_name(g): metrics.bioasq_factoid_scores(data.read_bioasq_golden(g), answers)
        for g in golden_paths
    }
    return metrics.bioasq_year_scores(batches)


def score_files(
    dataset: str, gold: str | Sequence[str], predictions_path: str, tokens: str | None = None
) -> dict:
    """Reads the gold and prediction files of a dataset and returns its metrics."""
    spec = tasks.get(dataset)
    if tokens and spec.task != "ner":
        raise ValueError("--tokens is for NER prediction pairs only")
    if spec.task == "qa":
        return with_header(
            spec, score_bioasq(expand_paths(gold), predictions.read_bioasq(predictions_path))
        )
    if not isinstance(gold, str):
        raise ValueError(f"{dataset}: one gold file expected, got {gold}")
    if spec.task == "ner":
        sentences = data.read_ner(gold)
        stream = (
            predictions.read_biobert_pair(tokens, predictions_path)
            if tokens
            else predictions.read_ner_tokens(predictions_path)
        )
        tags = predictions.align_ner(sentences, stream, gold)
        return with_header(spec, metrics.ner_scores([s.tags for s in sentences], tags))
    examples = data.read_examples(spec.task, gold)
    matched = predictions.match_predictions(
        examples, predictions.read_id_predictions(predictions_path), predictions_path, gold
    )
    return with_header(
        spec,
        score_examples(
            spec, examples, [v for v, _ in matched], [f"{predictions_path}:{n}" for _, n in matched]
        ),
    )


def main(argv):
    del argv
    if not (FLAGS.dataset and FLAGS.gold and FLAGS.predictions):
        raise app.UsageError("--dataset, --gold and --predictions are required")
    try:
        result = score_files(FLAGS.dataset, FLAGS.gold, FLAGS.predictions, FLAGS.tokens)
    except (FormatError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if FLAGS.output:
        with fileio.open_file(FLAGS.output, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    print(json.dumps(result, indent=2))
    return 0


def define_flags() -> None:
    # Defined only when run as a program: the runner imports this module and has flags of its own.
    flags.DEFINE_enum("dataset", None, list(tasks.DATASETS), "Which dataset (sets the metric).")
    flags.DEFINE_string(
        "gold", None, "Gold file; BioASQ: golden file(s), comma-separated and/or glob patterns."
    )
    flags.DEFINE_string("predictions", None, "Prediction file (BioBERT NER: label_test.txt).")
    flags.DEFINE_string("tokens", None, "NER only: BioBERT's token_test.txt beside --predictions.")
    flags.DEFINE_string("output", None, "Where to write the metrics JSON (default: stdout only).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
