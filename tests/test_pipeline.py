"""The Beam pipeline end to end: bytes, schema, statistics, reruns, crash and rerun, and the Dask
runner writing the DirectRunner's bytes."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bioalbert_tf import features
from tests.conftest import ROOT
from tests.pipeline_helpers import (
    _config,
    _shard_bytes,
    two_text_files,  # noqa: F401 (the fixture `two_files`)
)
from tfrecords_builder import pipeline, stage_chunks

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def built(two_files, tiny_spm, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    stats = pipeline.run(_config(two_files, out, tiny_spm), ["--direct_num_workers=1"])
    return out, stats


@pytest.mark.slow
def test_same_seed_same_bytes_whatever_the_parallelism(built, two_files, tiny_spm, tmp_path):
    out, _ = built
    again = tmp_path / "two_workers"
    pipeline.run(
        _config(two_files, again, tiny_spm),
        ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    first, second = _shard_bytes(out), _shard_bytes(again)
    assert list(first) == ["pretrain-00000-of-00002.tfrecord", "pretrain-00001-of-00002.tfrecord"]
    assert first == second


def test_another_seed_gives_other_masks(built, two_files, tiny_spm, tmp_path):
    out, _ = built
    other = tmp_path / "seed2"
    pipeline.run(_config(two_files, other, tiny_spm, random_seed=2), ["--direct_num_workers=1"])
    for a, b in zip(_shard_bytes(out).values(), _shard_bytes(other).values(), strict=True):
        assert a != b


def _parsed(out, seq=128, pred=20):
    files = sorted(str(p) for p in pathlib.Path(out).glob("*.tfrecord"))
    ds = tf.data.TFRecordDataset(files).batch(10_000)
    return [features.parse_pretraining_examples(batch, seq, pred) for batch in ds]


def test_examples_parse_with_the_schema_and_hold_the_invariants(built):
    out, stats = built
    batches = _parsed(out)
    n = sum(int(b["input_ids"].shape[0]) for b in batches)
    assert n == stats["examples"] == sum(stats["shards"].values())
    for b in batches:
        ids = b["input_ids"].numpy()
        mask = b["input_mask"].numpy()
        seg = b["segment_ids"].numpy()
        pos = b["masked_lm_positions"].numpy()
        w = b["masked_lm_weights"].numpy()
        assert (
            ids.shape[1] == 128 and pos.shape[1] == 20 and b["next_sentence_labels"].shape[1] == 1
        )
        assert b["masked_lm_weights"].dtype == tf.float32
        for i in range(ids.shape[0]):
            length = int(mask[i].sum())
            k = int(w[i].sum())
            # A random replacement may draw any id, [SEP] included (as in the reference):
            # restore the labels before checking the layout.
            original = ids[i].copy()
            original[pos[i, :k]] = b["masked_lm_ids"].numpy()[i, :k]
            assert mask[i, :length].all() and not mask[i, length:].any()
            assert original[0] == 2 and original[length - 1] == 3 and not ids[i, length:].any()
            seps = np.flatnonzero(original[:length] == 3)
            assert len(seps) == 2
            assert not seg[i, : seps[0] + 1].any() and seg[i, seps[0] + 1 : length].all()
            assert 1 <= k <= min(20, max(1, round(length * 0.15)))
            assert (
                (np.diff(pos[i, :k]) > 0).all()
                and pos[i, :k].min() > 0
                and pos[i, :k].max() < length
            )
            assert not np.isin(pos[i, :k], seps).any()


def test_stats_json(built):
    out, stats = built
    on_disk = json.loads((pathlib.Path(out) / "stats.json").read_text())
    assert on_disk["examples"] == stats["examples"] > 300
    assert on_disk["documents"] == 400
    assert on_disk["flags"]["max_seq_length"] == 128 and on_disk["flags"]["dupe_factor"] == 2
    assert 0.4 < on_disk["sop_label_1_share"] < 0.65
    shares = on_disk["masked_replacement_shares"]
    assert abs(shares["mask"] - 0.8) < 0.03 and abs(shares["kept"] - 0.1) < 0.03
    assert set(on_disk["ngram_span_histogram"]) <= {"1", "2", "3"}
    assert sum(on_disk["length_histogram"].values()) == on_disk["examples"]
    assert on_disk["read"]["files"] == 2


def test_dupe_passes_mask_differently(two_files, tiny_spm, tmp_path):
    one = pipeline.run(
        _config(two_files, tmp_path / "d1", tiny_spm, dupe_factor=1), ["--direct_num_workers=1"]
    )
    three = pipeline.run(
        _config(two_files, tmp_path / "d3", tiny_spm, dupe_factor=3), ["--direct_num_workers=1"]
    )
    assert 2.5 * one["examples"] < three["examples"] < 3.5 * one["examples"]
    records = {
        r.numpy()
        for r in tf.data.TFRecordDataset([str(p) for p in (tmp_path / "d3").glob("*.tfrecord")])
    }
    assert len(records) == three["examples"]  # no two passes produced the same example


def test_stale_shards_of_another_build_are_refused(built, two_files, tiny_spm):
    out, _ = built
    with pytest.raises(FileExistsError, match="different build"):
        pipeline.run(_config(two_files, out, tiny_spm, num_shards=3), ["--direct_num_workers=1"])


def test_another_finished_build_is_replaced_only_with_overwrite(
    built, two_files, tiny_spm, tmp_path
):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(built[0], out)
    before = _shard_bytes(out)
    other = _config(two_files, out, tiny_spm, random_seed=7)  # same shard names, other bytes
    with pytest.raises(FileExistsError, match="finished build made with other settings") as e:
        pipeline.run(other, ["--direct_num_workers=1"])
    assert "pretrain-00000-of-00002.tfrecord" in str(e.value) and "--overwrite" in str(e.value)
    assert "1 differ:\n  random_seed: 12345 in " in str(e.value) and ".json, 7 now\n" in str(
        e.value
    )
    assert _shard_bytes(out) == before  # refused before anything was written
    pipeline.run(other, ["--direct_num_workers=1"], overwrite=True)
    after = _shard_bytes(out)
    assert after.keys() == before.keys() and after != before
    pipeline.run(other, ["--direct_num_workers=1"])  # now its own build: a plain rerun skips
    assert _shard_bytes(out) == after


def test_rerun_skips_finished_groups(built, two_files, tiny_spm, caplog):
    out, _ = built
    before = _shard_bytes(out)
    mtimes = {p: p.stat().st_mtime_ns for p in pathlib.Path(out).glob("*.tfrecord")}
    pipeline.run(_config(two_files, out, tiny_spm), ["--direct_num_workers=1"])
    assert _shard_bytes(out) == before
    assert {p: p.stat().st_mtime_ns for p in pathlib.Path(out).glob("*.tfrecord")} == mtimes


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from tfrecords_builder import pipeline, stage_chunks, writer
    inputs, out, spm, stage, n = sys.argv[1:6]

    def dying_at(n, function):
        calls = [0]
        def dying(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a preempted machine
            return function(*args, **kwargs)
        return dying

    if stage == "chunk":  # in stage 3, before the n-th chunk
        stage_chunks.process_chunk = dying_at(int(n), stage_chunks.process_chunk)
    else:  # in stage 4, at the second chunk file the n-th group appends to its one shard
        write_group, calls = pipeline.write_group, [0]
        def writing(*args, **kwargs):
            calls[0] += 1
            if calls[0] == int(n):
                copy = writer.AtomicTFRecordWriter.copy_frames
                writer.AtomicTFRecordWriter.copy_frames = dying_at(2, copy)
            return write_group(*args, **kwargs)
        pipeline.write_group = writing
    config = pipeline.BuildConfig(input_files=(inputs,), output_dir=out, spm_model_file=spm,
                                  max_seq_length=128, dupe_factor=2, docs_per_chunk=50)
    pipeline.run(config, ["--direct_num_workers=1"])
    """
)


def _kill(two_files, tiny_spm, tmp_path, stage: str, n: int):
    out = tmp_path / "killed"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(script), two_files, str(out), tiny_spm, stage, str(n)],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert not (out / "stats.json").exists()
    return out


def _counting_chunks(monkeypatch) -> list:
    calls = []
    original = stage_chunks.process_chunk

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(stage_chunks, "process_chunk", counting)  # in-process runner: seen by Beam
    return calls


def test_killed_while_building_chunks_rerun_redoes_only_the_missing_chunks(
    built, two_files, tiny_spm, tmp_path, monkeypatch
):
    clean, _ = built
    # 2 files x 4 chunks; the kill lands before the 6th: 5 chunk files are complete.
    out = _kill(two_files, tiny_spm, tmp_path, "chunk", 6)
    assert not list(out.glob("*.tfrecord*"))  # no group has reached stage 4
    assert len(list(out.glob(".build/work-*/file-*/chunk-*.json"))) == 5
    calls = _counting_chunks(monkeypatch)
    pipeline.run(_config(two_files, out, tiny_spm), ["--direct_num_workers=1"])
    assert len(calls) == 3
    assert _shard_bytes(out) == _shard_bytes(clean)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name or p.name.startswith("work-")]


def test_killed_while_writing_shards_leaves_no_partial_shard_and_rerun_completes(
    built, two_files, tiny_spm, tmp_path, monkeypatch
):
    clean, _ = built
    out = _kill(two_files, tiny_spm, tmp_path, "group", 2)
    names = sorted(p.name for p in out.iterdir())
    finished = [n for n in names if n.endswith(".tfrecord")]
    assert len(finished) == 1  # the first group committed, the second did not
    assert any(".tmp-" in n for n in names)  # the killed group's temporary file, never renamed
    calls = _counting_chunks(monkeypatch)
    pipeline.run(_config(two_files, out, tiny_spm), ["--direct_num_workers=1"])
    assert not calls  # every chunk of the unfinished group was already built
    assert _shard_bytes(out) == _shard_bytes(clean)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name or p.name.startswith("work-")]


@pytest.mark.slow
def test_dask_runner_writes_the_directrunners_bytes(built, two_files, tiny_spm, tmp_path):
    """Beam's Dask runner (pip install -e '.[dask]'): on a local cluster it starts itself, and on
    one named by --dask_client_address, the shards are byte-identical to the DirectRunner's."""
    distributed = pytest.importorskip("distributed", reason="the [dask] extra is not installed")
    out, _ = built
    runner = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"
    own = tmp_path / "dask_own_cluster"
    pipeline.run(_config(two_files, own, tiny_spm), [runner])
    assert _shard_bytes(own) == _shard_bytes(out)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        named = tmp_path / "dask_named_cluster"
        pipeline.run(
            _config(two_files, named, tiny_spm),
            [runner, f"--dask_client_address={cluster.scheduler_address}"],
        )
    assert _shard_bytes(named) == _shard_bytes(out)
