"""The builder's command line, and the inputs and shard counts it refuses or handles at the
edges: a run that reports, a missing input, a truncated file, a misspelt flag, more shards than
files or than examples, a file without examples, and Beam's own options passed through."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.pipeline_helpers import (
    _config,
    two_text_files,  # noqa: F401 (the fixture `two_files`)
)
from tfrecords_builder import pipeline

pytest.importorskip("tensorflow")


def test_more_shards_than_files(small_text_corpus, tiny_spm, tmp_path):
    stats = pipeline.run(
        _config(str(small_text_corpus), tmp_path, tiny_spm, num_shards=3),
        ["--direct_num_workers=1"],
    )
    assert sorted(stats["shards"]) == [f"pretrain-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert all(n > 50 for n in stats["shards"].values())


def test_cli_runs_and_reports(two_files, tiny_spm, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_pretraining_data",
        f"--input_files={two_files}",
        f"--output_dir={tmp_path}",
        f"--spm_model_file={tiny_spm}",
        "--max_seq_length=64",
        "--dupe_factor=1",
        "--num_shards=1",
        "--direct_num_workers=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"examples":' in proc.stdout and f"to {tmp_path}" in proc.stdout
    assert (tmp_path / "pretrain-00000-of-00001.tfrecord").exists()


def test_cli_names_a_missing_input(tiny_spm, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_pretraining_data",
        f"--input_files={tmp_path}/none-*.xml.gz",
        f"--output_dir={tmp_path}/out",
        f"--spm_model_file={tiny_spm}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    assert "no input files match" in proc.stderr and "none-*.xml.gz" in proc.stderr


def test_cli_truncated_file_error_names_it(tiny_spm, tmp_path):
    from tests.conftest import medline_path

    bad = tmp_path / "pubmed_cut.xml.gz"
    bad.write_bytes(medline_path().read_bytes()[:200_000])
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_pretraining_data",
        f"--input_files={bad}",
        f"--output_dir={tmp_path}/out",
        f"--spm_model_file={tiny_spm}",
        "--dupe_factor=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1
    assert (
        "pubmed_cut.xml.gz: unreadable after" in proc.stderr and "--skip_bad_files" in proc.stderr
    )
    assert not list((tmp_path / "out").glob("*.tfrecord"))


def test_more_shards_than_examples_is_refused_and_writes_nothing(
    small_text_corpus, tiny_spm, tmp_path
):
    one = tmp_path / "one.txt"  # three documents: a handful of examples
    one.write_text("\n\n".join(small_text_corpus.read_text(encoding="utf-8").split("\n\n")[:3]))
    out = tmp_path / "out"
    with pytest.raises(
        Exception,
        match=r"--num_shards=40 is more than the work: one.txt gave \d+ "
        r"example\(s\) for its 40 shards, so \d+ shard\(s\) would be empty",
    ):
        pipeline.run(
            _config(str(one), out, tiny_spm, dupe_factor=1, num_shards=40),
            ["--direct_num_workers=1"],
        )
    assert list(out.glob("*.tfrecord*")) == []


def test_a_file_without_examples_writes_no_empty_shard(small_text_corpus, tiny_spm, tmp_path):
    (tmp_path / "a.txt").write_text(small_text_corpus.read_text(encoding="utf-8"))
    (tmp_path / "b.txt").write_text("too short\n\nshort too\n")  # no line of 20 characters
    out = tmp_path / "out"
    stats = pipeline.run(
        _config(f"{tmp_path}/*.txt", out, tiny_spm, dupe_factor=1), ["--direct_num_workers=1"]
    )
    assert sorted(p.name for p in out.glob("*.tfrecord")) == ["pretrain-00000-of-00002.tfrecord"]
    assert list(stats["shards"]) == ["pretrain-00000-of-00002.tfrecord"]


def test_cli_refuses_a_misspelt_flag_before_building(two_files, tiny_spm, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_pretraining_data",
        f"--input_files={two_files}",
        f"--output_dir={tmp_path}/out",
        f"--spm_model_file={tiny_spm}",
        "--max_seq_lenght=128",
        "--dupe_factor=1",
        "--direct_num_workers=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1
    assert "--max_seq_lenght=128 (did you mean --max_seq_length?)" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_beam_pipeline_options_are_not_unknown():
    dataflow = [
        "--runner=DataflowRunner",
        "--project=x",
        "--region=y",
        "--temp_location=gs://b/t",
        "--requirements_file=requirements.txt",
        "--num_workers",
        "4",
    ]
    direct = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert pipeline.unknown_pipeline_args(dataflow + direct) == []
    assert pipeline.unknown_pipeline_args(["--max_seq_lenght=128", "--runn=x", "stray"]) == [
        "--max_seq_lenght=128",
        "--runn=x",
        "stray",
    ]
