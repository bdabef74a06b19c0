"""Ordinary faults end a command with one line naming the path and the cause, not a traceback:
a file where a folder is needed, a read-only file system (/sys, even for root), a full disk
(/dev/full); and describe_fault's wording of TensorFlow's remote-store errors."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from bioalbert_tf import fileio
from tests.conftest import ROOT, SHARED_DATA

NCBI_TEST = SHARED_DATA / "ner" / "NCBI-disease" / "test.tsv"


def _fails_in_one_line(cmd: list[str], expected: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"error: {expected}" in proc.stderr, proc.stderr[-2000:]


@pytest.fixture()
def in_the_way(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a folder\n")
    return path


def test_scorer_output_faults(in_the_way):
    if not NCBI_TEST.exists():
        pytest.skip(f"shared benchmark data missing ({NCBI_TEST}); CI provides ../shared/data")
    base = [
        sys.executable,
        "-m",
        "bioalbert_tf.benchmark.score",
        "--dataset=ncbi_disease",
        f"--gold={NCBI_TEST}",
        f"--predictions={NCBI_TEST}",
    ]
    _fails_in_one_line(
        base + [f"--output={in_the_way}/m.json"],
        f"{in_the_way}: a file is in the way where a folder is needed",
    )
    _fails_in_one_line(
        base + ["--output=/sys/bioalbert_metrics.json"],
        "/sys/bioalbert_metrics.json: permission denied",
    )
    _fails_in_one_line(base + ["--output=/dev/full"], "/dev/full: no space left on the device")


def test_vocabulary_output_faults(small_text_corpus, in_the_way):
    base = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_vocab",
        f"--input_files={small_text_corpus}",
        "--vocab_size=300",
    ]
    _fails_in_one_line(
        base + [f"--model_prefix={in_the_way}/v"],
        f"{in_the_way}: a file is in the way where a folder is needed",
    )
    _fails_in_one_line(
        base + ["--model_prefix=/sys/bioalbert_vocab"],
        "/sys/.lock: permission denied",  # the first write, before any training
    )


def test_describe_fault_wording():
    tf = pytest.importorskip("tensorflow")
    full = OSError(errno.ENOSPC, "No space left on device", "/data/ckpt-5.index")
    assert fileio.describe_fault(full).startswith("/data/ckpt-5.index: no space left")
    assert fileio.describe_fault(FileExistsError("2 output file(s) already exist")) == (
        "2 output file(s) already exist"
    )
    assert fileio.describe_fault(ValueError("could not resolve x")) == "could not resolve x"
    denied = tf.errors.PermissionDeniedError(None, None, "gs://b/out/ckpt-1.index: 403 Forbidden")
    assert (
        fileio.describe_fault(denied)
        == "gs://b/out/ckpt-1.index: 403 Forbidden (permission denied)"
    )
    down = tf.errors.UnavailableError(
        None, None, "Error executing an HTTP request: Couldn't resolve host name"
    )
    assert fileio.describe_fault(down).endswith("(the remote store cannot be reached (network))")


def test_an_unreachable_remote_folder_is_not_called_missing():
    """gs:// with no network: TensorFlow's isdir says False; the runner and fine-tuning said
    "data folder not found". fileio.isdir raises the reason instead."""
    tf = pytest.importorskip("tensorflow")
    from bioalbert_tf.evaluation import datasets

    try:
        datasets.find_folds("gs://bioalbert-tf-no-such-bucket/data")
    except tf.errors.OpError as e:
        message = fileio.describe_fault(e)
        assert "the remote store cannot be reached" in message or "credentials" in message, message
    except FileNotFoundError:
        pytest.skip("this machine reaches the Google Cloud Storage API (the bucket is missing)")
    else:
        raise AssertionError("a missing or unreachable bucket was read as a folder")


def test_builder_names_the_unreachable_gs_path(tiny_spm, tmp_path):
    """The builder's error for an unreachable gs:// input keeps the path TensorFlow names on its
    second line ("when reading metadata of gs://...") and the cause."""
    url = "gs://bioalbert-tf-no-such-bucket/pubmed/a.txt"
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_pretraining_data",
        f"--input_files={url}",
        f"--output_dir={tmp_path}/out",
        f"--spm_model_file={tiny_spm}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("error: "))
    if "cannot be reached" not in line and "credentials" not in line:
        pytest.skip(f"this machine reaches the Google Cloud Storage API: {line}")
    assert url in line, line


def test_builder_on_a_full_disk_is_one_line(small_text_corpus, tiny_spm, small_disk):
    out = small_disk(96) / "tfrecords"
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_pretraining_data",
        f"--input_files={small_text_corpus}",
        f"--output_dir={out}",
        f"--spm_model_file={tiny_spm}",
        "--max_seq_length=128",
        "--dupe_factor=2",
        "--direct_num_workers=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]  # not even Beam's own log of it
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {out}/") and "no space left on the device" in line, line


def test_checkpoint_conversion_output_faults(tmp_path, in_the_way, small_disk):
    from bioalbert_tf.config import AlbertConfig
    from tests.tf1_names import write_random_tf1_checkpoint

    tiny = ROOT / "configs" / "albert_tiny.json"
    src = tmp_path / "google" / "model.ckpt-best"
    write_random_tf1_checkpoint(AlbertConfig.from_json_file(str(tiny)), str(src))
    base = [
        sys.executable,
        "-m",
        "bioalbert_tf.convert_checkpoint",
        f"--tf1_checkpoint={src}",
        f"--albert_config_file={tiny}",
    ]
    _fails_in_one_line(
        base + [f"--output_dir={in_the_way}/converted"],
        f"{in_the_way}/converted: a file is in the way where a folder is needed",
    )
    _fails_in_one_line(base + ["--output_dir=/sys/bioalbert_converted"], "/sys/bioalbert_converted")
    full = small_disk(4) / "converted"  # smaller than the tiny checkpoint
    _fails_in_one_line(base + [f"--output_dir={full}"], str(full))
