"""The runner's run folders, suites and command line, on the small SavedModels of
tests/benchmark_models.py: another run's results refused (not replaced), contract errors named,
a suite of seeds written with its report, a model scored only on the dataset it was trained for,
a suite checked whole before its first run, and output faults reported in one line.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from bioalbert_tf.benchmark import runner
from bioalbert_tf.evaluation import formats
from tests.benchmark_models import (
    NCBI,
    _need,
    _subset,
    saved_models,  # noqa: F401 (the fixture `models`)
)
from tests.conftest import ROOT, SHARED_DATA

pytest.importorskip("tensorflow")


def _benchmark(*flags: str) -> subprocess.CompletedProcess:
    """`python -m bioalbert_tf.benchmark` with these flags, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "bioalbert_tf.benchmark", *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_another_runs_results_are_refused_not_replaced(models, tmp_path):
    """A run folder is named by dataset and seed only: another split (or SavedModel, data folder,
    batch size) there is refused before anything is written, unless --overwrite; a rerun of the
    same run replaces its own result, and two runs of one suite may not share a folder."""
    paths, _ = models
    ner_dir = tmp_path / "ner"
    ner_dir.mkdir()
    for split in ("test", "dev"):
        (ner_dir / f"{split}.tsv").write_text("the\tB\ncancer\tI\nwas\tO\n\n")
    out = tmp_path / "out"
    first = runner.RunConfig(paths["ner"], "bc2gm", str(ner_dir), str(out))
    runner.run(first)
    runner.run(first)
    folder = out / "bc2gm"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    dev = dataclasses.replace(first, split="dev")
    message = (
        rf"{folder} holds the result of another run made with other settings; 1 differ:\n"
        rf"  split: 'test' in {folder}/metrics.json, 'dev' now\n"
        r"Use another --output_dir \(or --seed\), or pass --overwrite"
    )
    with pytest.raises(ValueError, match=message):
        runner.run(dev)
    with pytest.raises(ValueError, match=r"  saved_model: '.*/ner' in .*, '.*/re' now"):
        runner.run_suite([dataclasses.replace(first, saved_model=paths["re"])], progress=False)
    with pytest.raises(ValueError, match=rf"would both write {tmp_path}/other/bc2gm; give them"):
        runner.run_suite(
            [dataclasses.replace(c, output_dir=str(tmp_path / "other")) for c in (first, dev)],
            progress=False,
        )
    flags = [
        f"--saved_model={paths['ner']}",
        "--dataset=bc2gm",
        f"--data_dir={ner_dir}",
        f"--output_dir={out}",
        "--split=dev",
    ]
    proc = _benchmark(*flags)
    assert proc.returncode == 1 and re.search("error: " + message, proc.stderr), proc.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (tmp_path / "other").exists()
    proc = _benchmark(*flags, "--overwrite")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((folder / "metrics.json").read_text())["run"]["split"] == "dev"


def test_contract_errors_are_clear(models, tmp_path):
    paths, _ = models
    _need(NCBI / "test.tsv")
    with pytest.raises(
        ValueError, match=r"has no signature 'tag_words'; it has \['serving_default'\]"
    ):
        runner.run(runner.RunConfig(paths["re"], "ncbi_disease", str(NCBI), str(tmp_path)))
    with pytest.raises(ValueError, match=r"expected inputs \['text_a', 'text_b'\]"):
        runner.run(
            runner.RunConfig(
                paths["re"], "biosses", str(SHARED_DATA / "sts" / "BIOSSES"), str(tmp_path)
            )
        )
    with pytest.raises(FileNotFoundError, match="not a SavedModel"):
        runner.run(runner.RunConfig(str(tmp_path), "ncbi_disease", str(NCBI), str(tmp_path)))
    with pytest.raises(FileNotFoundError, match=r"no train file \(looked for train.tsv, train.txt"):
        runner.run(
            runner.RunConfig(
                paths["ner"], "ncbi_disease", str(tmp_path), str(tmp_path), split="train"
            )
        )


def test_suite_cli_with_seeds_writes_the_report(models, tmp_path):
    """The command line over a suite: two seeds of BIOSSES and one NER run; report.md shows
    mean ± sd, references, and the run metadata; a chart per task."""
    paths, _ = models
    biosses = SHARED_DATA / "sts" / "BIOSSES"
    _need(biosses / "test.tsv")
    ner_dir = _subset(NCBI / "test.tsv", tmp_path / "ncbi" / "test.tsv", 2000)
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            [
                {
                    "dataset": "biosses",
                    "saved_model": paths["sts"],
                    "data_dir": str(biosses),
                    "seed": 1,
                },
                {
                    "dataset": "biosses",
                    "saved_model": paths["sts2"],
                    "data_dir": str(biosses),
                    "seed": 2,
                },
                {
                    "dataset": "biosses",
                    "saved_model": paths["sts"],
                    "data_dir": str(biosses),
                    "seed": 3,
                    "split": "dev",
                },
                {
                    "dataset": "ncbi_disease",
                    "saved_model": paths["ner"],
                    "data_dir": ner_dir,
                    "seed": 1,
                },
            ]
        )
    )
    out = tmp_path / "out"
    flags = [
        f"--suite={suite}",
        f"--output_dir={out}",
    ]
    proc = _benchmark(*flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "biosses" in proc.stdout and "ex/s" in proc.stdout
    runs = [
        json.loads((out / "biosses" / f"seed_{s}" / "metrics.json").read_text()) for s in (1, 2, 3)
    ]
    assert [r["run"]["split"] for r in runs] == ["test", "test", "dev"]
    rep = json.loads((out / "report.json").read_text())
    # Seeds of the test split are averaged; the dev run is a row of its own, without references.
    row, dev_row = (r for r in rep["rows"] if r["dataset"] == "biosses")
    scores = [100 * r["pearson"] for r in runs[:2]]
    assert row["n"] == 2 and row["seeds"] == [1, 2] and row["split"] == "test"
    assert row["mean"] == pytest.approx(np.mean(scores))
    assert row["sd"] == pytest.approx(np.std(scores, ddof=1))
    assert row["sd"] > 0
    assert row["references"]["PubMedBERT"]["score"] == 92.30
    assert (dev_row["split"], dev_row["n"], dev_row["references"]) == ("dev", 1, {})
    assert rep["task_averages"]["sts"] == pytest.approx(row["mean"])
    md = (out / "report.md").read_text()
    assert f"{np.mean(scores):.2f} ± {np.std(scores, ddof=1):.2f}" in md
    assert runs[0]["run"]["saved_model_sha256"][:16] in md
    assert formats.file_sha256(str(biosses / "test.tsv"))[:12] in md
    for task in ("sts", "ner"):
        assert (out / f"chart_{task}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"\| ncbi_disease \| 1 \| None \| test \|", md)
    # A broken suite entry is an error naming the file.
    suite.write_text(json.dumps([{"dataset": "biosses"}]))
    proc = _benchmark(*flags)
    assert proc.returncode == 1 and f"error: {suite}" in proc.stderr


def test_a_model_is_scored_on_the_dataset_it_was_trained_for(models, tmp_path):
    """assets/task.json names the dataset: a GAD model on EU-ADR (same task and labels) only
    with --allow_other_dataset; on ChemProt (other labels) never; nothing written when refused."""
    import shutil

    paths, _ = models
    _need(SHARED_DATA / "re" / "GAD" / "test.tsv")
    model = tmp_path / "gad_model"
    shutil.copytree(paths["gad"], model)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "task.json").write_text(
        json.dumps({"dataset": "gad", "task": "re", "labels": ["0", "1"]})
    )
    data = str(SHARED_DATA / "re" / "GAD")  # EU-ADR's files have GAD's format
    out = tmp_path / "out"
    euadr = runner.RunConfig(str(model), "euadr", data, str(out))
    with pytest.raises(
        ValueError,
        match=r"fine-tuned on gad \(.*task\.json\), not euadr; pass "
        r"--allow_other_dataset",
    ):
        runner.run_suite([euadr], progress=False)
    with pytest.raises(ValueError, match=r"cannot be scored on chemprot \(re, labels \['CPR:3'"):
        runner.run(dataclasses.replace(euadr, dataset="chemprot", allow_other_dataset=True))
    assert not out.exists()
    assert runner.run(dataclasses.replace(euadr, dataset="gad"))["main_score"] > 0
    flags = [
        f"--saved_model={model}",
        "--dataset=euadr",
        f"--data_dir={data}",
        f"--output_dir={out}",
        "--noreport",
    ]
    proc = _benchmark(*flags)
    assert (
        proc.returncode == 1
        and "error: " in proc.stderr
        and "euadr" not in {p.name for p in out.iterdir()}
    ), proc.stderr[-2000:]
    proc = _benchmark(*flags, "--allow_other_dataset")
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = json.loads((out / "euadr" / "metrics.json").read_text())
    assert written["dataset"] == "euadr" and written["convention"] == "BioBERT re_eval (binary)"


def test_a_suite_is_checked_whole_before_its_first_run(models, tmp_path):
    """A broken suite file is named (file, line or entry); an entry whose SavedModel or data is
    missing stops the suite before its first run, not after two runs and without a report."""
    paths, _ = models
    _need(SHARED_DATA / "sts" / "BIOSSES" / "test.tsv")
    suite = tmp_path / "suite.json"
    out = tmp_path / "out"
    suite.write_text('[{"dataset": "biosses",\n "saved_model": }]')
    with pytest.raises(formats.FormatError, match=rf"^{suite}:2: expected valid JSON"):
        runner.read_suite(str(suite), str(out))
    good = {
        "dataset": "biosses",
        "saved_model": paths["sts"],
        "data_dir": str(SHARED_DATA / "sts" / "BIOSSES"),
    }
    for bad, message in (
        ({**good, "seed": "one"}, r"run 1: seed as a JSON int; got '\"one\"'"),
        ({**good, "batch_size": True}, r"run 1: batch_size as a JSON int; got 'true'"),
        ({**good, "dataset": "biosses2"}, r"run 1: a dataset among .*; got 'biosses2'"),
        ({**good, "answer_merge": "sum"}, r"run 1: answer_merge among \['biobert', 'max'\]"),
    ):
        suite.write_text(json.dumps([bad]))
        with pytest.raises(formats.FormatError, match=rf"^{suite}: expected {message}"):
            runner.read_suite(str(suite), str(out))
    runs = [
        {**good, "seed": 1},
        {**good, "seed": 2},
        {**good, "seed": 3, "saved_model": str(tmp_path / "gone")},
    ]
    suite.write_text(json.dumps(runs))
    flags = [
        f"--suite={suite}",
        f"--output_dir={out}",
    ]
    proc = _benchmark(*flags)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"error: {tmp_path / 'gone'} is not a SavedModel folder" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_runner_output_faults_are_one_line(models, tmp_path, where):
    paths, _ = models
    _need(SHARED_DATA / "re" / "GAD" / "test.tsv")
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a folder\n")
    out, expected = {
        "under a file": (in_the_way / "out", (in_the_way, "a file is in the way")),
        "read-only": ("/sys/bioalbert_bench", ("/sys/bioalbert_bench", "permission denied")),
    }[where]
    flags = [
        f"--saved_model={paths['gad']}",
        "--dataset=gad",
        f"--data_dir={SHARED_DATA / 're' / 'GAD'}",
        f"--output_dir={out}",
    ]
    proc = _benchmark(*flags)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(f"error: {re.escape(str(expected[0]))}(/out)?: {expected[1]}", proc.stderr), (
        proc.stderr[-2000:]
    )
