"""Cross-validation on BioBERT's GAD fold folders: every fold fine-tuned and scored on its test
split, mean and sd reported, finished folds skipped on a rerun, other settings refused, and the
benchmark runner scoring the folds' SavedModels the same way."""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from tests.finetuning_helpers import (
    _shared,
    finetuning_setup,  # noqa: F401 (the fixture `setup`)
)

pytest.importorskip("tensorflow")


def _gad_folds(root: pathlib.Path, folds=3) -> pathlib.Path:
    """BioBERT's GAD layout: folders 1/ .. k/, train.tsv without header, test.tsv with one, and an
    empty dev.tsv; rows are slices of the real GAD file."""
    rows = _shared("re", "GAD", "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    for k in range(1, folds + 1):
        fold = root / str(k)
        fold.mkdir(parents=True)
        part = rows[(k - 1) * 90 : k * 90]
        (fold / "train.tsv").write_text("".join(r.split("\t", 1)[1] + "\n" for r in part[:60]))
        (fold / "test.tsv").write_text(
            "index\tsentence\tlabel\n" + "".join(r + "\n" for r in part[60:])
        )
        (fold / "dev.tsv").write_text("")
    return root


def test_cross_validation_runs_every_fold_and_reports_mean_and_sd(setup, tiny_spm, tmp_path):
    from bioalbert_tf.benchmark import reporting, runner
    from bioalbert_tf.training import finetuning

    data = _gad_folds(tmp_path / "GAD")
    config = finetuning.FinetuningConfig(
        dataset="gad",
        data_dir=str(data),
        output_dir=str(tmp_path / "out"),
        albert_config_file=str(setup / "albert_config.json"),
        spm_model_file=tiny_spm,
        learning_rate=1e-3,
        train_batch_size=8,
        num_train_steps=4,
        num_warmup_steps=1,
        max_seq_length=64,
        eval_every_steps=2,
        jit_compile=False,
    )
    result = finetuning.run(config)
    cv = result["cross_validation"]
    assert sorted(cv["folds"]) == ["1", "2", "3"]
    f1 = [cv["folds"][k]["micro_f1"] for k in ("1", "2", "3")]
    assert cv["mean"]["micro_f1"] == pytest.approx(np.mean(f1))
    assert cv["sd"]["micro_f1"] == pytest.approx(np.std(f1, ddof=1))
    for k in ("1", "2", "3"):
        fold = tmp_path / "out" / f"fold-{k}"
        metrics = json.loads((fold / "metrics.json").read_text())
        assert metrics["dev_selection"] is False and "dev" not in metrics["history"][-1]
        assert metrics["test"] == cv["folds"][k]
        assert (fold / "saved_model" / "saved_model.pb").exists()
        assert (fold / "test_predictions.tsv").exists()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())[
        "cross_validation"
    ] == json.loads(json.dumps(cv))
    # A rerun skips finished folds; other settings in the same folder are refused.
    stamp = (tmp_path / "out" / "fold-2" / "metrics.json").stat().st_mtime_ns
    again = finetuning.run(dataclasses.replace(config, folds="2,3"))
    assert (tmp_path / "out" / "fold-2" / "metrics.json").stat().st_mtime_ns == stamp
    assert sorted(again["cross_validation"]["folds"]) == ["2", "3"]
    with pytest.raises(
        ValueError,
        match=rf"{tmp_path}/out holds a fine-tuning run made with other settings; 1 differ:\n"
        r"  --learning_rate: 0.001 in .*, 0.0005 now",
    ):
        finetuning.run(dataclasses.replace(config, learning_rate=5e-4))
    with pytest.raises(ValueError, match=r"--folds=4: fold '4' is not among the folds"):
        finetuning.run(dataclasses.replace(config, folds="4"))
    # The benchmark runner scores the folder of fold SavedModels the same way: mean ± sd.
    results = runner.run_suite(
        [runner.RunConfig(str(tmp_path / "out"), "gad", str(data), str(tmp_path / "bench"))],
        progress=False,
    )
    assert [r["run"]["fold"] for r in results] == [1, 2, 3]
    assert [r["micro_f1"] for r in results] == f1
    summary = reporting.build_report(str(tmp_path / "bench"), None)
    (row,) = summary["rows"]
    assert row["n"] == 3 and row["folds"] == [1, 2, 3]
    assert row["mean"] == pytest.approx(100 * np.mean(f1))
    assert row["sd"] == pytest.approx(100 * np.std(f1, ddof=1))
