r"""Writes the benchmark report of a runner's output folder (see `reporting.py`).

  python -m bioalbert_tf.benchmark.report --output_dir=<runner output> \
      [--references=configs/reference_scores.json]
"""

from __future__ import annotations

import sys

from absl import app

from bioalbert_tf import fileio, settings
from bioalbert_tf.benchmark.reporting import ReportConfig, build_report, render_markdown

settings.define_flags(ReportConfig)


def main(argv):
    del argv
    config = settings.from_flags(ReportConfig)
    try:
        report = build_report(config.output_dir, config.references)
    except (FileNotFoundError, ValueError, *fileio.fault_types()) as e:
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    app.run(main)
