r"""Benchmark report: `<output_dir>/report.md`, `report.json` and a bar chart per task.

(`python -m bioalbert_tf.benchmark.report` is its command line; the runner writes it too.)

Reads every `metrics.json` the runner wrote under output_dir. One row per dataset, split and
convention: our score (mean ± sd over seeds or cross-validation folds when there are several;
"undefined" where a run's metric is), the metric, the convention that computed it, which
direction is better, and the published scores of the references file (a column for each model
with at least one score; none beside a row of another convention). Scores are x100, as the
papers print them. Run metadata: SavedModel hashes, data file hashes, seeds, dates, TensorFlow
and Python versions.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import platform

import numpy as np
from absl import logging

from bioalbert_tf import fileio
from bioalbert_tf.benchmark.runner import DEFAULT_REFERENCES, METRICS_FILE
from bioalbert_tf.evaluation import datasets, formats, metrics
from bioalbert_tf.settings import setting

REFERENCE_MODELS = ("BioBERT", "PubMedBERT", "BioALBERT")
# Secondary metrics worth a glance beside the main one (NER: token-level F1, which papers
# sometimes report as if it were entity-level).
SECONDARY = {
    "ner": ("token_f1",),
    "doc_classification": ("example_f1", "macro_f1"),
    "qa": ("strict_accuracy", "mrr"),
    "sts": ("spearman",),
}


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """The report command line's settings (its flags are generated from these fields)."""

    output_dir: str = setting(help="The runner's output folder (<dataset>/metrics.json).")
    references: str = setting(str(DEFAULT_REFERENCES), "Published scores (JSON).")


def collect_runs(output_dir: str) -> list[dict]:
    runs = []
    for rel in fileio.walk_files(output_dir):
        if rel.rsplit("/", 1)[-1] == METRICS_FILE:
            with fileio.open_file(fileio.join(output_dir, rel), "r") as f:
                result = json.load(f)
            if "dataset" in result and "main_score" in result:
                runs.append(result)
    return runs


def load_references(path: str | None) -> dict:
    if not path or not fileio.exists(str(path)):
        logging.warning("no reference scores (%s): the report shows ours only", path)
        return {}
    return json.loads(formats.read_text(str(path))).get("scores", {})


def _mean_sd(values: list[float | None]) -> tuple[float | None, float]:
    # Sample sd (ddof=1) across seeds or folds; 0 for a single run. A run whose metric is
    # undefined (None: STS on constant predictions) makes the mean undefined too.
    if not values or any(v is None for v in values):
        return None, 0.0
    mean, sd = metrics.mean_sd(values)
    return mean, sd or 0.0


def _x100(value) -> float | None:
    return None if value is None else 100.0 * value


def convention_of(result: dict) -> str:
    """The convention a metrics.json was scored with (the registry's for files without one)."""
    return result.get("convention") or datasets.get(result["dataset"]).convention.name


_RUN_KEYS = (
    "seed",
    "fold",
    "split",
    "saved_model",
    "saved_model_sha256",
    "data_files",
    "num_examples",
    "examples_per_second",
    "predict_seconds",
    "total_seconds",
    "date",
    "versions",
)


def _run_order(r: dict) -> tuple:
    order = list(datasets.REGISTRY)
    name, run = r["dataset"], r["run"]
    seed = run.get("seed")
    return (
        order.index(name) if name in order else len(order),
        run.get("split") != "test",
        str(run.get("split")),
        seed is None,
        seed or 0,
        run.get("fold") or 0,
    )


def summarize(runs: list[dict], references: dict) -> dict:
    """One row per (dataset, split, convention): seeds and cross-validation folds of one split
    are averaged; splits, and files scored by different conventions (ChemProt's BLURB and
    SciBERT files), are never mixed."""
    groups: dict[tuple[str, str, str], list[dict]] = collections.defaultdict(list)
    for r in sorted(runs, key=_run_order):
        groups[(r["dataset"], r["run"].get("split", "test"), convention_of(r))].append(r)
    rows = []
    for (name, split, convention), group in groups.items():
        spec = datasets.get(name)
        # The registry's main metric, read from each run's full metrics.
        scores = [_x100(r.get(spec.main_key, r["main_score"])) for r in group]
        mean, sd = _mean_sd(scores)
        secondary = {}
        for key in SECONDARY.get(spec.task, ()):
            vals = [_x100(r[key]) for r in group if key in r]
            if vals:
                secondary[key] = _mean_sd(vals)[0]
        refs = {m: references[name][m] for m in REFERENCE_MODELS if m in references.get(name, {})}
        rows.append(
            {
                "dataset": name,
                "split": split,
                "title": spec.title if split == "test" else f"{spec.title} ({split})",
                "task": spec.task,
                "metric": group[0].get("metric", spec.metric),
                "main_key": spec.main_key,
                "convention": convention,
                "direction": "higher is better" if spec.higher_is_better else "lower is better",
                "scores": scores,
                "seeds": [r["run"].get("seed") for r in group],
                "folds": [r["run"].get("fold") for r in group],
                "mean": mean,
                "sd": sd,
                "n": len(scores),
                "secondary": secondary,
                # Published numbers are test-set numbers of the registry's convention.
                "references": refs
                if split == "test" and convention == spec.convention.name
                else {},
                "answer_merge": sorted({r["answer_merge"] for r in group if r.get("answer_merge")}),
            }
        )
    # Task averages and the BLURB-style score: test-split rows only.
    means = {
        row["dataset"]: row["mean"]
        for row in rows
        if row["split"] == "test"
        and row["convention"] == datasets.get(row["dataset"]).convention.name
    }
    return {
        "rows": rows,
        "task_averages": metrics.task_averages(means, datasets.dataset_tasks()),
        # None, not NaN, when no test row has a defined score.
        "blurb_style_score": metrics.blurb_score(defined, datasets.dataset_tasks())
        if (defined := {k: v for k, v in means.items() if v is not None})
        else None,
        "runs": [
            {"dataset": r["dataset"], "main_score": r["main_score"]}
            | {k: r["run"].get(k) for k in _RUN_KEYS}
            for group in groups.values()
            for r in group
        ],
    }


def _fmt(value: float | None, sd: float | None = None) -> str:
    if value is None:
        return "undefined"
    return f"{value:.2f} ± {sd:.2f}" if sd else f"{value:.2f}"


def reference_columns(report: dict) -> list[str]:
    """The published models that have a score in at least one row: empty columns are left out."""
    return [m for m in REFERENCE_MODELS if any(m in row["references"] for row in report["rows"])]


def render_markdown(report: dict) -> str:
    models = reference_columns(report)
    lines = [
        "# Benchmark report",
        "",
        f"Generated {report['generated']}. Scores x100; ours = mean ± sample sd over seeds or "
        "cross-validation folds when there are several (n = number of runs). Each row names the "
        "convention its metric follows (see the table below). NER: entity-level F1 is the "
        "conlleval exact-match score; token-level F1 (shown under 'also') is a different, "
        "higher-running number.",
        "",
        "| Task | Dataset | Metric | Convention | Better | Ours | n | "
        + "".join(f"{m} | " for m in models)
        + "Also |",
        "|---|---|---|---|---|---|---|" + "---|" * len(models) + "---|",
    ]
    for row in report["rows"]:
        refs = [
            _fmt(row["references"][m]["score"]) if m in row["references"] else "–" for m in models
        ]
        also = ", ".join(f"{k} {_fmt(v)}" for k, v in row["secondary"].items())
        merge = (
            f" (answers merged: {', '.join(row['answer_merge'])})" if row["answer_merge"] else ""
        )
        lines.append(
            f"| {datasets.TASK_TITLES[row['task']]} | {row['title']} | {row['metric']} | "
            f"{row['convention']}{merge} | {row['direction']} | {_fmt(row['mean'], row['sd'])} | "
            f"{row['n']} | " + "".join(f"{r} | " for r in refs) + f"{also} |"
        )
    lines += ["", "## Conventions", "", "| Dataset | Convention | Matches |", "|---|---|---|"]
    for row in report["rows"]:
        spec = datasets.get(row["dataset"])
        known = [spec.convention, *(v.convention for _, v in spec.variants)]
        matches = next((c.matches for c in known if c.name == row["convention"]), "")
        lines.append(f"| {row['title']} | {row['convention']} | {matches} |")
    lines += [
        "",
        "## Task averages (test split)",
        "",
        "| Task | Mean of its datasets |",
        "|---|---|",
    ]
    for task, value in report["task_averages"].items():
        lines.append(f"| {datasets.TASK_TITLES[task]} | {value:.2f} |")
    if report["blurb_style_score"] is not None:
        lines += [
            "",
            f"BLURB-style score (mean over tasks of the mean over each task's datasets, "
            f"over the datasets run here): **{report['blurb_style_score']:.2f}**",
        ]
    used = sorted(
        {ref.get("source", "") for row in report["rows"] for ref in row["references"].values()}
    )
    if used:
        known = report.get("reference_sources", {})
        lines += ["", "## Reference sources", ""]
        lines += [f"- {key}: {known.get(key, key)}" for key in used]
    lines += [
        "",
        "## Runs",
        "",
        "| Dataset | Seed | Fold | Split | SavedModel sha256 | Data files (sha256) | Examples | "
        "Examples/s | Predict s | Date | TensorFlow | Python |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        files = "<br>".join(
            f"{fileio.basename(p)} {h[:12]}" for p, h in (r.get("data_files") or {}).items()
        )
        v = r.get("versions") or {}
        lines.append(
            f"| {r['dataset']} | {r.get('seed')} | {r.get('fold')} | {r.get('split')} | "
            f"{(r.get('saved_model_sha256') or '')[:16]} | {files} | {r.get('num_examples')} | "
            f"{r.get('examples_per_second') or 0:.1f} | {r.get('predict_seconds') or 0:.2f} | "
            f"{r.get('date')} | {v.get('tensorflow', '')} | {v.get('python', '')} |"
        )
    charts = report.get("charts") or []
    if charts:
        lines += ["", "## Charts", ""] + [f"![{c}]({c})" for c in charts]
    return "\n".join(lines) + "\n"


def plot_task(report: dict, task: str, path: str) -> bool:
    """A grouped bar chart of our score vs the references for one task's datasets."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; no display
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no charts")
        return False
    rows = [r for r in report["rows"] if r["task"] == task]
    if not rows:
        return False
    series = ["Ours"] + [m for m in REFERENCE_MODELS if any(m in r["references"] for r in rows)]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(rows) * len(series) / 2 + 2), 3.6))
    x = np.arange(len(rows))
    for k, name in enumerate(series):
        if name == "Ours":
            values = [np.nan if r["mean"] is None else r["mean"] for r in rows]
            errors = [r["sd"] for r in rows] if any(r["sd"] for r in rows) else None
        else:
            values = [r["references"].get(name, {}).get("score", np.nan) for r in rows]
            errors = None
        ax.bar(
            x + (k - (len(series) - 1) / 2) * width,
            values,
            width,
            yerr=errors,
            label=name,
            capsize=3,
        )
    ax.set_xticks(x, [r["title"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel(f"{rows[0]['main_key']} x100")
    ax.set_title(datasets.TASK_TITLES[task])
    ax.legend(fontsize=8)
    fig.tight_layout()
    with fileio.open_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return True


def build_report(output_dir: str, references_path: str | None = str(DEFAULT_REFERENCES)) -> dict:
    """Writes report.md, report.json and chart_<task>.png into output_dir; returns the report."""
    runs = collect_runs(output_dir)
    if not runs:
        raise FileNotFoundError(f"no {METRICS_FILE} under {output_dir}")
    references = load_references(references_path)
    report = summarize(runs, references)
    report["generated"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report["report_python"] = platform.python_version()
    if references_path and fileio.exists(str(references_path)):
        report["reference_sources"] = json.loads(formats.read_text(str(references_path))).get(
            "sources", {}
        )
    charts = []
    for task in datasets.TASK_TITLES:
        name = f"chart_{task}.png"
        if plot_task(report, task, fileio.join(output_dir, name)):
            charts.append(name)
    report["charts"] = charts
    with fileio.open_file(fileio.join(output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2, allow_nan=False)
        f.write("\n")
    with fileio.open_file(fileio.join(output_dir, "report.md"), "w") as f:
        f.write(render_markdown(report))
    return report
