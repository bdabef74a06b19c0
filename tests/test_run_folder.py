"""A run folder's lifecycle: one run at a time (a lock, taken over from a dead holder), an
interrupted fine-tuning resumed to the same weights, a finished run skipped, a folder of another
kind never replaced, a checkpoint that does not fit refused before anything is written."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from bioalbert_tf import run_folder
from tests.conftest import ROOT, folder_bytes
from tests.finetuning_helpers import (
    _cli_flags,
    _data,
    _run_cli,
    _small,
    finetuning_setup,  # noqa: F401 (the fixture `setup`)
)

tf = pytest.importorskip("tensorflow")

HOLD = textwrap.dedent(
    """
    import sys, time
    from bioalbert_tf import run_folder
    try:
        with run_folder.hold(sys.argv[1], "run_finetuning"):
            print("held", flush=True)
            time.sleep(120)
    except KeyboardInterrupt:
        sys.exit(130)
    """
)


def _holder(folder) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_busy_folder_is_refused_and_a_dead_holders_lock_taken_over(setup, tiny_spm, tmp_path):
    data = _data("i2b2", tmp_path)
    out = tmp_path / "out"
    holder = _holder(out)
    proc = _run_cli(setup, tiny_spm, data, out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"error: {out} is in use by run_finetuning (pid {holder.pid} on " in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing of the refused run
    # SIGKILL: the lock stays, its process is gone; the next run takes it over.
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / ".lock").exists()
    with run_folder.hold(str(out), "test") as lock:
        assert json.loads((out / ".lock").read_text())["token"] == lock.token
    assert not (out / ".lock").exists()
    # SIGTERM ends a holder as SIGINT does: the lock is released on the way out.
    holder = _holder(out)
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(timeout=60) == 130
    assert not (out / ".lock").exists()


@pytest.mark.parametrize(
    "module, args",
    [
        (
            "tfrecords_builder.build_pretraining_data",
            ["--input_files={corpus}", "--output_dir={out}", "--spm_model_file={spm}"],
        ),
        ("tfrecords_builder.build_vocab", ["--input_files={corpus}", "--model_prefix={out}/v"]),
        ("bioalbert_tf.convert_checkpoint", ["--tf1_checkpoint={out}/none", "--output_dir={out}"]),
        (
            "bioalbert_tf.benchmark",
            ["--saved_model={out}/m", "--dataset=bc2gm", "--data_dir={out}", "--output_dir={out}"],
        ),
        ("bioalbert_tf.demo", ["--output_dir={out}"]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_command_that_writes_a_folder_is_refused_while_another_holds_it(
    module, args, small_text_corpus, tiny_spm, tmp_path
):
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        values = {"corpus": small_text_corpus, "spm": tiny_spm, "out": out}
        proc = subprocess.run(
            [sys.executable, "-m", module, *(a.format(**values) for a in args)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"error: {out} is in use by run_finetuning (pid {holder.pid} on " in proc.stderr
    assert not out.exists()  # the holder's lock released; nothing of the refused run


def test_a_lock_renewed_elsewhere_is_kept_until_its_lease_ends(tmp_path, monkeypatch):
    """A holder on another host cannot be asked whether it runs: its lease decides."""
    folder = tmp_path / "run"
    folder.mkdir()
    lock = {
        "host": "elsewhere",
        "pid": 1,
        "started": time.time(),
        "renewed": time.time(),
        "command": "run_pretraining",
        "token": "x",
    }
    (folder / ".lock").write_text(json.dumps(lock))
    busy = r"in use by run_pretraining \(pid 1 on elsewhere"
    with pytest.raises(run_folder.FolderBusyError, match=busy), run_folder.hold(str(folder), "t"):
        pass
    lock["renewed"] -= run_folder.LEASE_S + 1
    (folder / ".lock").write_text(json.dumps(lock))
    with run_folder.hold(str(folder), "test"):
        assert json.loads((folder / ".lock").read_text())["host"] != "elsewhere"


def test_a_refused_run_leaves_no_folder(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(ValueError), run_folder.hold(str(out), "test"):
        raise ValueError("refused")
    assert not out.exists()


class _Weights:
    """Captures the model's weights as training ends (the final weights, not the best)."""

    def __init__(self, monkeypatch):
        from bioalbert_tf.training import finetuning

        self.final = None
        catcher = self

        def on_train_end(self, logs=None):
            catcher.final = [w.numpy() for w in self.task.model.weights]

        monkeypatch.setattr(finetuning.DevEvaluation, "on_train_end", on_train_end, raising=False)


@pytest.mark.slow
def test_interrupted_finetuning_resumes_to_the_same_weights_and_a_finished_run_is_skipped(
    setup,
    tiny_spm,
    tmp_path,
    monkeypatch,
):
    from bioalbert_tf.training import finetuning

    data = _data("i2b2", tmp_path)
    config = _small(
        setup, tiny_spm, data, tmp_path / "whole", num_train_steps=6, eval_every_steps=2
    )
    weights = _Weights(monkeypatch)
    whole = finetuning.run(config)
    uninterrupted = weights.final

    # SIGINT in the middle of the second round (step 3): the checkpoint of step 2 is resumed.
    resumed_out = tmp_path / "resumed"
    cut = dataclasses.replace(config, output_dir=str(resumed_out))

    batch_end = finetuning.DevEvaluation.on_train_batch_end

    def stop_at_step_3(self, batch, logs=None):
        batch_end(self, batch, logs)
        if int(self.model.optimizer.iterations.numpy()) == 3:
            raise KeyboardInterrupt

    def interrupted_and_resumed(config, checkpoint):
        with monkeypatch.context() as m:
            m.setattr(finetuning.DevEvaluation, "on_train_batch_end", stop_at_step_3)
            with pytest.raises(KeyboardInterrupt):
                finetuning.run(config)
        out = tmp_path / config.output_dir
        assert sorted(p.name for p in (out / "resume").glob("*.index")) == [checkpoint]
        assert not (out / "metrics.json").exists() and not (out / ".lock").exists()
        weights.final = None
        resumed = finetuning.run(config)
        assert weights.final is not None
        for a, b in zip(uninterrupted, weights.final, strict=True):
            np.testing.assert_array_equal(a, b)  # bitwise: the same batches, dropout and updates
        assert resumed["best_dev"] == whole["best_dev"] and resumed["test"] == whole["test"]
        assert not (out / "resume").exists()  # removed once metrics.json is written
        return resumed

    resumed = interrupted_and_resumed(cut, "ckpt-2.index")
    assert resumed["history"] == whole["history"]
    # With --save_checkpoints_steps=1 the run resumes within the round, from step 3.
    every_step = dataclasses.replace(
        cut, output_dir=str(tmp_path / "every"), save_checkpoints_steps=1
    )
    resumed = interrupted_and_resumed(every_step, "ckpt-3.index")
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in whole["history"]]
    assert [h["dev"] for h in resumed["history"]] == [h["dev"] for h in whole["history"]]

    # An identical rerun is skipped; so is one whose paths are spelled otherwise or whose
    # eval batch size differs (neither changes what is trained).
    before = folder_bytes(resumed_out)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(finetuning, "run_one", no_training)
    relative = os.path.relpath(data, os.getcwd())
    again = dataclasses.replace(cut, data_dir=relative, eval_batch_size=7)
    assert finetuning.run(again) == json.loads((resumed_out / "metrics.json").read_text())
    assert folder_bytes(resumed_out) == before


def test_the_cli_ends_an_interrupt_in_one_line(setup, tiny_spm, tmp_path):
    data = _data("i2b2", tmp_path)
    script = textwrap.dedent(
        """
        import sys
        from absl import app
        from bioalbert_tf import run_finetuning
        from bioalbert_tf.training import finetuning
        def stop(self, logs=None):
            raise KeyboardInterrupt
        finetuning.DevEvaluation.on_train_begin = stop
        sys.exit(app.run(run_finetuning.main, argv=["run_finetuning", *sys.argv[1:]]))
        """
    )
    flags = _cli_flags(setup, tiny_spm, data, f"{tmp_path}/out")
    proc = subprocess.run(
        [sys.executable, "-c", script, *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("interrupted (SIGINT): rerun the same command to resume")
    )


def test_a_checkpoint_of_another_size_is_refused_before_anything_is_written(
    setup,
    tiny_spm,
    tmp_path,
):
    from bioalbert_tf import checkpoints
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.modeling import AlbertPretrainer
    from bioalbert_tf.training import finetuning

    tiny = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json"))
    checkpoints.save_keras_checkpoint(AlbertPretrainer(tiny), str(tmp_path / "pretrained"))
    out = tmp_path / "out"
    config = _small(
        setup, tiny_spm, _data("i2b2", tmp_path), out, init_checkpoint=str(tmp_path / "pretrained")
    )
    with pytest.raises(checkpoints.CheckpointMismatchError) as e:
        finetuning.run(config)
    message = str(e.value)
    assert f"--init_checkpoint={tmp_path}/pretrained" in message
    assert f"--albert_config_file={setup}/albert_config.json" in message
    # vocab_size 97 there, 1000 here; max_position_embeddings 64 there, 128 here
    assert (
        "model/encoder/embeddings/word_embeddings: (97, 5) in the checkpoint, (1000, 5)" in message
    )
    assert "position_embeddings: (64, 5) in the checkpoint, (128, 5)" in message
    assert not out.exists()


def test_export_never_replaces_a_run_folder(tmp_path):
    from bioalbert_tf import checkpoints
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.modeling import AlbertPretrainer

    tiny = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json"))
    run = tmp_path / "pretraining"
    checkpoints.save_keras_checkpoint(AlbertPretrainer(tiny), str(run))
    (run / "run_settings.json").write_text("{}")
    before = folder_bytes(tmp_path)
    for target in (run, tmp_path):  # the checkpoint's folder, and a parent of it
        cmd = [
            sys.executable,
            "-m",
            "bioalbert_tf.export_saved_model",
            f"--checkpoint={run}",
            f"--output_dir={target}",
            "--overwrite",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert f"error: {target} holds another kind of run (" in proc.stderr
        assert "even with --overwrite" in proc.stderr
    assert folder_bytes(tmp_path) == before


def test_a_held_lock_is_renewed_whole(tmp_path, monkeypatch):
    """The holder rewrites its lock's renewal time every LEASE_S / 4, by an atomic write (no
    temporary file is left beside it)."""
    monkeypatch.setattr(run_folder, "LEASE_S", 0.4)
    with run_folder.hold(str(tmp_path), "test"):
        first = json.loads((tmp_path / ".lock").read_text())
        time.sleep(0.5)
        later = json.loads((tmp_path / ".lock").read_text())
        assert later["renewed"] > first["renewed"] and later["token"] == first["token"]
        assert [p.name for p in tmp_path.iterdir()] == [".lock"]
    assert not (tmp_path / ".lock").exists()
