"""Pretraining's clear failures: an unreachable TPU, settings or inputs that cannot feed the run,
empty or truncated input files, an output folder under a file and a full disk each end the run
with the cause named (in one line on the command line), before training where they can be
found then."""

import json
import re
import socket
import subprocess
import time

import pytest

from tests.conftest import ROOT
from tests.pretraining_helpers import (
    _cmd,
    _config,
    _pretrain,
    pretraining_data,  # noqa: F401 (the fixture `data`)
)

pytest.importorskip("tensorflow")


def test_unreachable_tpu_fails_within_bounded_time(data, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.time()
    proc = subprocess.run(
        _cmd(data, tmp_path, f"--tpu=grpc://127.0.0.1:{port}", "--tpu_connect_timeout=5"),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert time.time() - start < 120
    assert f"--tpu='grpc://127.0.0.1:{port}'" in proc.stderr


def test_bad_batch_and_missing_input_are_named(data, tmp_path):
    proc = subprocess.run(
        _cmd(data, tmp_path, "--num_train_steps=1", "--num_warmup_steps=0", "--max_seq_length=128"),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (
        proc.returncode == 1
        and "--max_seq_length=128 exceeds max_position_embeddings=64" in proc.stderr
    )
    cmd = _cmd(data, tmp_path, "--num_train_steps=1", "--num_warmup_steps=0")
    cmd[3] = f"--input_file={tmp_path}/none-*.tfrecord"
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "no TFRecord files match" in proc.stderr


def test_inputs_that_cannot_feed_the_run_are_refused(data, tiny_spm, tmp_path):
    import shutil

    from bioalbert_tf.training.run_settings import InputMismatchError

    records = f"{data}/tfrecords"
    with pytest.raises(
        InputMismatchError,
        match=rf"{records}/stats.json: the TFRecords were built with "
        r"--max_seq_length=64, this run has --max_seq_length=32",
    ):
        _pretrain(_config(data, tmp_path / "a", max_seq_length=32))
    values = json.loads((data / "albert_config.json").read_text())
    (tmp_path / "small_vocab.json").write_text(json.dumps({**values, "vocab_size": 500}))
    small_vocab = str(tmp_path / "small_vocab.json")
    with pytest.raises(
        InputMismatchError,
        match=r"stats.json \(vocab_size\): the vocabulary has 1000 pieces, "
        r"but vocab_size in .*small_vocab.json is 500",
    ):
        _pretrain(_config(data, tmp_path / "b", albert_config_file=small_vocab))
    # Without the builder's stats.json: the first record and --spm_model_file are checked.
    bare = tmp_path / "bare"
    bare.mkdir()
    shard = sorted((data / "tfrecords").glob("*.tfrecord"))[0]
    shutil.copy(shard, bare / shard.name)
    bare_input = (f"{bare}/*.tfrecord",)
    with pytest.raises(
        InputMismatchError,
        match=rf"{bare}/{shard.name}: its examples have "
        r"max_predictions_per_seq 10, this run has --max_predictions_per_seq=5",
    ):
        _pretrain(_config(data, tmp_path / "c", input_file=bare_input, max_predictions_per_seq=5))
    with pytest.raises(InputMismatchError, match=rf"{tiny_spm}: the vocabulary has 1000 pieces"):
        _pretrain(
            _config(
                data,
                tmp_path / "d",
                input_file=bare_input,
                albert_config_file=small_vocab,
                spm_model_file=tiny_spm,
            )
        )


def test_empty_input_fails_with_the_files_named(data, tmp_path):
    (tmp_path / "empty-0.tfrecord").write_bytes(b"")
    (tmp_path / "empty-1.tfrecord").write_bytes(b"")
    cmd = _cmd(data, tmp_path / "run", "--num_train_steps=2", "--num_warmup_steps=0")
    cmd[3] = f"--input_file={tmp_path}/empty-*.tfrecord"
    # Before: an endless loop over a repeated empty dataset, with no message.
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 1
    assert (
        f"--input_file: no records in any of the 2 file(s): {tmp_path}/empty-0.tfrecord, "
        f"{tmp_path}/empty-1.tfrecord"
    ) in proc.stderr


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(learning_rate=0.0), "--learning_rate must be > 0, got 0.0"),
        (dict(learning_rate=-1e-4), "--learning_rate must be > 0, got -0.0001"),
        (
            dict(num_warmup_steps=5000, num_train_steps=1000),
            "--num_warmup_steps=5000 exceeds --num_train_steps=1000",
        ),
    ],
)
def test_settings_that_cannot_train_are_refused(kw, message):
    from bioalbert_tf.training.pretraining import PretrainingConfig

    config = PretrainingConfig(input_file=("x",), output_dir="o", albert_config_file="c", **kw)
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()


def test_a_truncated_shard_is_refused_before_step_1(data, tmp_path):
    """A shard cut short (a copy that did not finish) is named, with the offset, before training
    starts and before anything is written, instead of failing at the record mid-run."""
    shards = tmp_path / "shards"
    shards.mkdir()
    for shard in sorted((data / "tfrecords").glob("*.tfrecord")):
        (shards / shard.name).write_bytes(shard.read_bytes())
    cut = sorted(shards.glob("*.tfrecord"))[-1]
    cut.write_bytes(cut.read_bytes()[:-100])
    out = tmp_path / "out"
    cmd = _cmd(data, out, "--num_train_steps=4")
    cmd[3] = f"--input_file={shards}/*.tfrecord"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1
    assert re.search(rf"error: {cut}: the file ends inside record \d+ \(at byte \d+", proc.stderr)
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not list(out.glob("ckpt-*"))


def test_an_output_dir_under_a_file_is_one_line(data, tmp_path):
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a folder\n")
    proc = subprocess.run(
        _cmd(data, in_the_way / "out", "--num_train_steps=4"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"error: {in_the_way}" in proc.stderr and "a file is in the way" in proc.stderr


def test_a_full_disk_at_a_checkpoint_save_is_one_line(data, small_disk):
    """A checkpoint that does not fit ends the run with one line naming the file and the cause;
    what was saved before stays, so the rerun (with space) resumes."""
    out = small_disk(64) / "out"
    proc = subprocess.run(
        _cmd(data, out, "--num_train_steps=4", "--save_checkpoints_steps=2"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("error: "))
    assert f"{out}/ckpt-2" in line and "No space left on device (no space left" in line, line
    assert "function_node" not in line and "[Op:" not in line
