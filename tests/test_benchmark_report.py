"""The benchmark report (reporting.py; report.py is its command line) on metrics.json files
written here (no TensorFlow), and the references file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bioalbert_tf.benchmark import reporting
from bioalbert_tf.evaluation import datasets
from tests.conftest import ROOT


def _write_run(out, dataset, seed, scores, split="test"):
    spec = datasets.get(dataset)
    folder = out / dataset / f"seed_{seed}"
    folder.mkdir(parents=True)
    result = {
        "dataset": dataset,
        "task": spec.task,
        "metric": spec.metric,
        "main_key": spec.main_key,
        "main_score": scores[spec.main_key],
        "convention": spec.convention.name,
        **scores,
        "run": {
            "seed": seed,
            "split": split,
            "saved_model": f"/models/{dataset}/{seed}",
            "saved_model_sha256": f"{seed:064x}",
            "data_files": {f"/data/{dataset}/{split}.tsv": "ab" * 32},
            "num_examples": 10,
            "examples_per_second": 100.0,
            "predict_seconds": 0.1,
            "total_seconds": 0.2,
            "date": "2025-01-01T00:00:00+00:00",
            "versions": {"python": "3.11.7", "tensorflow": "2.21.0"},
        },
    }
    (folder / "metrics.json").write_text(json.dumps(result))


@pytest.fixture()
def output_dir(tmp_path):
    out = tmp_path / "bench"
    for seed, f1 in ((1, 0.80), (2, 0.84), (3, 0.82)):
        _write_run(out, "ncbi_disease", seed, {"entity_f1": f1, "token_f1": f1 + 0.05})
    _write_run(out, "gad", 1, {"micro_f1": 0.70})
    _write_run(out, "biosses", 1, {"pearson": 0.90, "spearman": 0.88})
    _write_run(out, "bioasq6b", 1, {"mrr": 0.4, "strict_accuracy": 0.3, "lenient_accuracy": 0.5})
    return out


def test_report_rows_aggregates_and_files(output_dir):
    refs = output_dir / "refs.json"
    refs.write_text(
        json.dumps(
            {
                "sources": {"x2020": "Someone et al. 2020"},
                "scores": {
                    "ncbi_disease": {"BioBERT": {"score": 89.0, "source": "x2020", "year": 2020}}
                },
            }
        )
    )
    rep = reporting.build_report(str(output_dir), str(refs))
    rows = {r["dataset"]: r for r in rep["rows"]}
    assert list(rows) == ["ncbi_disease", "gad", "biosses", "bioasq6b"]  # the paper's order
    ncbi = rows["ncbi_disease"]
    assert ncbi["n"] == 3 and ncbi["seeds"] == [1, 2, 3]
    assert ncbi["mean"] == pytest.approx(82.0)
    assert ncbi["sd"] == pytest.approx(np.std([80.0, 84.0, 82.0], ddof=1))
    assert ncbi["secondary"]["token_f1"] == pytest.approx(87.0)
    assert ncbi["references"] == {"BioBERT": {"score": 89.0, "source": "x2020", "year": 2020}}
    assert rep["task_averages"] == pytest.approx({"ner": 82.0, "re": 70.0, "sts": 90.0, "qa": 50.0})
    assert rep["blurb_style_score"] == pytest.approx((82 + 70 + 90 + 50) / 4)
    md = (output_dir / "report.md").read_text()
    assert "| Named entity recognition | NCBI-disease | entity-level F1" in md
    # Only the published models with a score get a column; each row names its convention.
    assert "| Ours | n | BioBERT | Also |" in md and "PubMedBERT" not in md
    assert (
        "| conlleval (BioBERT) | higher is better | 82.00 ± 2.00 | 3 | 89.00 | token_f1 87.00 |"
        in md
    )
    assert "| BioASQ 6b | lenient accuracy" in md and "strict_accuracy 30.00, mrr 40.00" in md
    assert "| BIOSSES | BLUE | BLUE / BLURB: Pearson correlation" in md
    assert "- x2020: Someone et al. 2020" in md
    assert f"{1:064x}"[:16] in md and "2.21.0" in md
    assert json.loads((output_dir / "report.json").read_text())["rows"] == rep["rows"]
    for task in ("ner", "re", "sts", "qa"):
        assert (output_dir / f"chart_{task}.png").read_bytes()[:4] == b"\x89PNG"
    assert not (output_dir / "chart_nli.png").exists()


def test_report_cli_and_missing_runs(output_dir, tmp_path):
    cmd = [sys.executable, "-m", "bioalbert_tf.benchmark.report", f"--output_dir={output_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "# Benchmark report" in proc.stdout
    assert "87.82" in proc.stdout  # PubMedBERT's published NCBI-disease F1, from configs/
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        reporting.build_report(str(empty))


def test_reference_scores_file_is_well_formed():
    path = ROOT / "configs" / "reference_scores.json"
    refs = json.loads(path.read_text())
    assert set(refs["models"]) == set(reporting.REFERENCE_MODELS)
    for dataset, by_model in refs["scores"].items():
        assert dataset in datasets.REGISTRY, dataset
        for model, entry in by_model.items():
            assert model in reporting.REFERENCE_MODELS, model
            assert 0 < entry["score"] <= 100
            assert entry["source"] in refs["sources"] and isinstance(entry["year"], int)


def test_undefined_scores_and_conventions_are_kept_apart(tmp_path):
    """An undefined STS score (null) makes its row 'undefined', not 0; ChemProt runs scored on
    SciBERT's files (all-class micro F1) are a row of their own, never averaged with BLURB's nor
    compared with published numbers of another convention."""
    out = tmp_path / "bench"
    _write_run(out, "biosses", 1, {"pearson": None, "spearman": None})
    _write_run(out, "chemprot", 1, {"micro_f1": 0.6})
    _write_run(
        out,
        "chemprot",
        2,
        {"micro_f1": 0.9, "convention": "SciBERT", "metric": "micro F1 over all classes"},
    )
    refs = tmp_path / "refs.json"
    refs.write_text(
        json.dumps(
            {
                "sources": {"s": "S"},
                "scores": {"chemprot": {"BioBERT": {"score": 76.0, "source": "s", "year": 2020}}},
            }
        )
    )
    rep = reporting.build_report(str(out), str(refs))
    rows = {(r["dataset"], r["convention"]): r for r in rep["rows"]}
    assert set(rows) == {("biosses", "BLUE"), ("chemprot", "BLURB"), ("chemprot", "SciBERT")}
    assert rows[("biosses", "BLUE")]["mean"] is None
    assert rows[("chemprot", "BLURB")]["mean"] == pytest.approx(60.0)
    assert rows[("chemprot", "BLURB")]["references"]["BioBERT"]["score"] == 76.0
    assert rows[("chemprot", "SciBERT")]["references"] == {}
    assert rep["task_averages"] == pytest.approx({"re": 60.0})
    md = (out / "report.md").read_text()
    assert "| BLUE | higher is better | undefined | 1 |" in md
    assert (
        "| ChemProt | micro F1 over all classes | SciBERT | higher is better | 90.00 | 1 | – |"
        in md
    )
    assert "NaN" not in (out / "report.json").read_text()
