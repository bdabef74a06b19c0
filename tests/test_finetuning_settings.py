"""A fine-tuning run's folder and settings: run_settings.json written before training starts, a
rerun with other flags, data or initial weights refused before anything is written (a single run,
a cross-validation, the command line), --overwrite starting the folder afresh, and an output
folder that cannot be written reported in one line."""

import dataclasses
import json
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, folder_bytes
from tests.finetuning_helpers import (
    _cli_flags,
    _data,
    _run_cli,
    _small,
    finetuning_setup,  # noqa: F401 (the fixture `setup`)
)

pytest.importorskip("tensorflow")


class Interrupted(Exception):
    """Raised as training starts: a run killed mid-training (without tracing a training step)."""


@pytest.fixture
def interrupted(monkeypatch):
    """Every fine-tuning run in the test stops as its training starts."""
    from bioalbert_tf.training import finetuning

    def stop(self, logs=None):
        raise Interrupted(self.config.output_dir)

    monkeypatch.setattr(finetuning.DevEvaluation, "on_train_begin", stop)


# run_finetuning's command line, stopped (exit code 3) as training starts.
STOPPED_AT_TRAINING = textwrap.dedent(
    """
    import sys
    from absl import app
    from bioalbert_tf import run_finetuning
    from bioalbert_tf.training import finetuning
    def stop(self, logs=None):
        print(f"jit_compile={self.model.jit_compile}")
        raise SystemExit(3)
    finetuning.DevEvaluation.on_train_begin = stop
    app.run(run_finetuning.main, argv=["run_finetuning", *sys.argv[1:]])
    """
)


def test_settings_are_recorded_before_training_and_a_rerun_with_others_is_refused(
    setup, tiny_spm, tmp_path, interrupted
):
    """run_settings.json is written before training starts, so a run killed mid-training (no
    metrics.json yet) is compared too: other flags, data files or initial weights are refused
    before anything is written, each named with both values; the same settings run again."""
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.manifest import SettingsMismatchError
    from bioalbert_tf.training import finetuning
    from tests.tf1_names import write_random_tf1_checkpoint

    data = _data("i2b2", tmp_path)
    albert = AlbertConfig.from_json_file(str(setup / "albert_config.json"))
    write_random_tf1_checkpoint(albert, str(tmp_path / "init" / "model.ckpt-best"))
    out = tmp_path / "out"
    settings_file = out / "run_settings.json"
    config = _small(setup, tiny_spm, data, out, init_checkpoint=str(tmp_path / "init"))
    with pytest.raises(Interrupted):
        finetuning.run(config)
    assert not (out / "metrics.json").exists()
    recorded = json.loads(settings_file.read_text())
    spm = pathlib.Path(tiny_spm)
    assert recorded["command"] == "run_finetuning" and recorded["cross_validation_folds"] is None
    assert "jit_compile" not in recorded  # round-off only: XLA or not, the same run
    assert (recorded["learning_rate"], recorded["max_seq_length"]) == (1e-3, 32)
    assert recorded["albert_config"] == albert.to_dict()
    assert recorded["data_files"] == [[p.name, p.stat().st_size] for p in sorted(data.iterdir())]
    assert recorded["spm_model"] == [[spm.name, spm.stat().st_size]]
    assert re.fullmatch(
        r"model\.ckpt-best \(\.index sha256 [0-9a-f]{16}\.\.\.\)", recorded["init_weights"]
    )
    # The same settings: trained again, as before run_settings.json.
    with pytest.raises(Interrupted):
        finetuning.run(config)
    assert json.loads(settings_file.read_text()) == recorded
    before = folder_bytes(out)
    train = (data / "train.tsv").read_bytes()
    (data / "train.tsv").write_bytes(
        train + b"40\tThe @treatment$ improved her @problem$ .\tfalse\n"
    )
    with pytest.raises(SettingsMismatchError) as e:
        finetuning.run(dataclasses.replace(config, learning_rate=5e-4, train_batch_size=4))
    message = str(e.value)
    assert message.startswith(
        f"{out} holds a fine-tuning run made with other settings; 3 differ:\n"
    )
    assert f"  --learning_rate: 0.001 in {settings_file}, 0.0005 now\n" in message
    assert f"  --train_batch_size: 8 in {settings_file}, 4 now\n" in message
    size = (data / "train.tsv").stat().st_size
    assert (
        f"  --data_dir: 3 file(s) in {settings_file}, 3 now; recorded but not given now: train.tsv "
        f"({len(train)} bytes); given now but not recorded: train.tsv ({size} bytes)\n"
    ) in message
    assert message.endswith(
        "Choose another --output_dir, or pass --overwrite to start this one afresh (the metrics, "
        "predictions, weights and SavedModel fine-tuning wrote there are removed)."
    )
    assert folder_bytes(out) == before
    # Other weights under the same name (a model.ckpt-best that pretraining rewrote).
    (data / "train.tsv").write_bytes(train)
    write_random_tf1_checkpoint(albert, str(tmp_path / "init" / "model.ckpt-best"), seed=1)
    with pytest.raises(SettingsMismatchError) as e:
        finetuning.run(config)
    assert re.search(
        r"1 differ:\n  --init_checkpoint weights: 'model.ckpt-best \(.index sha256 \w{16}...\)' "
        r"in .*run_settings.json, 'model.ckpt-best \(.index sha256 \w{16}...\)' now\n",
        str(e.value),
    )
    assert folder_bytes(out) == before


def _i2b2_folds(root: pathlib.Path, folds: int = 2) -> pathlib.Path:
    """Fold folders 1/ .. k/, each a copy of the written i2b2 splits."""
    splits = _data("i2b2", root)
    for k in range(1, folds + 1):
        (root / "folds" / str(k)).mkdir(parents=True)
        for f in splits.iterdir():
            (root / "folds" / str(k) / f.name).write_bytes(f.read_bytes())
    return root / "folds"


def test_a_cross_validation_and_a_single_run_do_not_share_a_folder(
    setup, tiny_spm, tmp_path, interrupted
):
    """A cross-validation into the folder of a single run (one killed before its metrics.json)
    is refused, and the reverse; each fold's folder is compared before any fold runs."""
    from bioalbert_tf.manifest import SettingsMismatchError
    from bioalbert_tf.training import finetuning

    fold_data = _i2b2_folds(tmp_path)
    single = _small(setup, tiny_spm, tmp_path / "i2b2", tmp_path / "single")
    with pytest.raises(Interrupted):
        finetuning.run(single)
    before = folder_bytes(tmp_path / "single")
    cv = _small(setup, tiny_spm, fold_data, tmp_path / "single")
    with pytest.raises(SettingsMismatchError) as e:
        finetuning.run(cv)
    source = tmp_path / "single" / "run_settings.json"
    assert f"  --data_dir: 3 file(s) in {source}, 0 now; recorded but not given" in str(e.value)
    assert f"  the run: 'a single run' in {source}, 'a cross-validation' now\n" in str(e.value)
    assert folder_bytes(tmp_path / "single") == before
    # The reverse: a cross-validation killed in its first fold, then a single run there.
    cv = dataclasses.replace(cv, output_dir=str(tmp_path / "cv"))
    with pytest.raises(Interrupted):
        finetuning.run(cv)
    cv_settings = json.loads((tmp_path / "cv" / "run_settings.json").read_text())
    assert cv_settings["cross_validation_folds"] == [1, 2]
    assert (tmp_path / "cv" / "fold-1" / "run_settings.json").exists()
    assert not (tmp_path / "cv" / "fold-2").exists()
    before = folder_bytes(tmp_path / "cv")
    with pytest.raises(
        SettingsMismatchError, match=r"  the run: 'a cross-validation' in .*, 'a single run' now\n"
    ):
        finetuning.run(dataclasses.replace(single, output_dir=str(tmp_path / "cv")))
    # Fold 1's data changed: refused before fold 1 (or any other) runs.
    with (fold_data / "1" / "test.tsv").open("a") as f:
        f.write("40\tThe @treatment$ improved her @problem$ .\tfalse\n")
    with pytest.raises(
        SettingsMismatchError,
        match=rf"{tmp_path}/cv/fold-1 holds a fine-tuning run made with other settings; 1 differ:\n"
        r"  --data_dir: 3 file\(s\) in .*fold-1/run_settings.json, 3 now; recorded but not",
    ):
        finetuning.run(cv)
    assert folder_bytes(tmp_path / "cv") == before
    # overwrite: what the cross-validation wrote goes (not a file of someone else's in fold-1/).
    (tmp_path / "cv" / "fold-1" / "notes.txt").write_text("mine")
    with pytest.raises(Interrupted):
        finetuning.run(dataclasses.replace(single, output_dir=str(tmp_path / "cv")), overwrite=True)
    assert sorted(folder_bytes(tmp_path / "cv")) == ["fold-1/notes.txt", "run_settings.json"]
    assert (
        json.loads((tmp_path / "cv" / "run_settings.json").read_text())["cross_validation_folds"]
        is None
    )


def test_run_finetuning_overwrite_starts_the_folder_afresh(setup, tiny_spm, tmp_path, interrupted):
    """Other settings are refused on the command line too; --overwrite removes what fine-tuning
    wrote there (even names this run would not write), keeps other files, and records the new
    settings before training starts."""
    from bioalbert_tf.training import finetuning

    data = _data("i2b2", tmp_path)
    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        finetuning.run(_small(setup, tiny_spm, data, out))
    (out / "notes.txt").write_text("mine")
    (out / "predictions.json").write_text("{}")  # a BioASQ run's
    (out / "saved_model").mkdir()
    (out / "saved_model" / "stale.pb").write_bytes(b"old")
    before = folder_bytes(out)
    other = ("--learning_rate=5e-4", "--train_batch_size=8", "--eval_every_steps=1")
    proc = _run_cli(setup, tiny_spm, data, out, *other)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        f"error: {out} holds a fine-tuning run made with other settings; 1 differ:\n"
        f"  --learning_rate: 0.001 in {out}/run_settings.json, 0.0005 now\n"
    ) in proc.stderr
    assert folder_bytes(out) == before
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            STOPPED_AT_TRAINING,
            *_cli_flags(setup, tiny_spm, data, out, *other),
            "--overwrite",
            "--nojit_compile",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "jit_compile=False" in proc.stdout  # the flag reaches Keras' compile
    assert sorted(folder_bytes(out)) == ["notes.txt", "run_settings.json"]
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "run_settings.json").read_text())["learning_rate"] == 5e-4


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_run_finetuning_output_faults_are_one_line(setup, tiny_spm, tmp_path, where):
    data = _data("i2b2", tmp_path)
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a folder\n")
    out, expected = {
        "under a file": (in_the_way / "out", (in_the_way, "a file is in the way")),
        "read-only": (
            "/sys/bioalbert_finetuning",
            ("/sys/bioalbert_finetuning", "permission denied"),
        ),
    }[where]
    proc = _run_cli(setup, tiny_spm, data, out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(f"error: {re.escape(str(expected[0]))}(/out)?: {expected[1]}", proc.stderr), (
        proc.stderr[-2000:]
    )
