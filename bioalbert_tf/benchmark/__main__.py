r"""Runs SavedModels on benchmark datasets, scores them and writes the report.

  python -m bioalbert_tf.benchmark --saved_model=<dir or gs://> --dataset=ncbi_disease \
      --data_dir=<folder with train/devel/test.tsv> --output_dir=<dir> [--split=test] \
      [--batch_size=32] [--seed=1]
  python -m bioalbert_tf.benchmark --suite=suite.json --output_dir=<dir>

A suite file is a JSON list of {"dataset", "saved_model", "data_dir", "seed"} runs (optional
"split", "batch_size", "answer_merge", "allow_other_dataset"); several seeds of one dataset give
mean ± sd in the report. Every entry is checked before the first runs.
A run folder (<output_dir>/<dataset>[/seed_<seed>]) holding another run's metrics.json is left
alone unless --overwrite.
"""

from __future__ import annotations

import sys

from absl import app, flags

from bioalbert_tf import fileio, run_folder, settings
from bioalbert_tf.benchmark import reporting, runner
from bioalbert_tf.evaluation import datasets, formats

FLAGS = flags.FLAGS
settings.define_flags(
    runner.RunConfig, choices={"dataset": list(datasets.REGISTRY)}, exclude=("fold",)
)
settings.define_flags(runner.SuiteOptions)


def _score(value: float | None) -> str:
    return "undef" if value is None else f"{100 * value:.2f}"


def main(argv):
    del argv
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    options = settings.from_flags(runner.SuiteOptions)
    try:
        if options.suite:
            configs = runner.read_suite(
                options.suite,
                FLAGS.output_dir,
                {
                    "split": FLAGS.split,
                    "batch_size": FLAGS.batch_size,
                    "answer_merge": FLAGS.answer_merge,
                    "allow_other_dataset": FLAGS.allow_other_dataset,
                },
            )
        else:
            if not (FLAGS.saved_model and FLAGS.dataset and FLAGS.data_dir):
                raise app.UsageError("--saved_model, --dataset and --data_dir (or --suite) needed")
            configs = [settings.from_flags(runner.RunConfig)]
        with run_folder.hold(FLAGS.output_dir, "bioalbert_tf.benchmark"):
            results = runner.run_suite(configs, overwrite=options.overwrite)
            if options.report:
                reporting.build_report(FLAGS.output_dir, options.references)
    except KeyboardInterrupt as e:
        then = "the runs scored so far keep their metrics.json; rerun the same command for all"
        print(run_folder.interrupted(e, then), file=sys.stderr)
        return 130
    except (
        formats.FormatError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        *fileio.fault_types(),
    ) as e:
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    print(
        f"{'dataset':<16} {'seed':>4} {'fold':>4} {'metric':<18} {'score':>8} {'examples':>9} "
        f"{'ex/s':>9} {'seconds':>8}"
    )
    for r in results:
        run = r["run"]
        print(
            f"{r['dataset']:<16} {str(run['seed']):>4} {str(run.get('fold')):>4} "
            f"{r['main_key']:<18} {_score(r['main_score']):>8} {run['num_examples']:>9} "
            f"{run['examples_per_second'] or 0:>9.1f} {run['predict_seconds']:>8.2f}"
        )
    if options.report:
        print(f"report: {FLAGS.output_dir}/report.md")
    return 0


if __name__ == "__main__":
    app.run(main)
