"""The Beam pipeline end to end: bytes, schema, statistics, sharding, crash and rerun."""

import gzip
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bioalbert_tf import features
from tests.conftest import ROOT, medline_sample
from tfrecords_builder import (
    corpus,
    examples,
    pipeline,
    plan,
    stage_chunks,
    stage_parse,
    work,
    writer,
)

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def two_files(small_text_corpus, tmp_path_factory) -> str:
    """The 400-abstract sample split into two plain-text files (documents kept whole)."""
    docs = small_text_corpus.read_text(encoding="utf-8").split("\n\n")
    folder = tmp_path_factory.mktemp("two")
    (folder / "part-a.txt").write_text("\n\n".join(docs[:200]) + "\n", encoding="utf-8")
    (folder / "part-b.txt").write_text("\n\n".join(docs[200:]), encoding="utf-8")
    return str(folder / "part-*.txt")


def _config(inputs, out, spm, **kw):
    settings = dict(
        max_seq_length=128, max_predictions_per_seq=20, dupe_factor=2, docs_per_chunk=50
    )
    settings.update(kw)
    return pipeline.BuildConfig(
        input_files=(inputs,), output_dir=str(out), spm_model_file=spm, **settings
    )


def _shard_bytes(out) -> dict:
    return {p.name: p.read_bytes() for p in sorted(pathlib.Path(out).glob("*.tfrecord"))}


@pytest.fixture(scope="module")
def built(two_files, tiny_spm, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    stats = pipeline.run(_config(two_files, out, tiny_spm), ["--direct_num_workers=1"])
    return out, stats


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


def test_more_shards_than_files(small_text_corpus, tiny_spm, tmp_path):
    stats = pipeline.run(
        _config(str(small_text_corpus), tmp_path, tiny_spm, num_shards=3),
        ["--direct_num_workers=1"],
    )
    assert sorted(stats["shards"]) == [f"pretrain-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert all(n > 50 for n in stats["shards"].values())


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


def _reference(config: pipeline.BuildConfig) -> tuple[dict, dict]:
    """The specification, in one process and without Beam or pieces: each group reads its
    files in order, whole; documents [k * docs_per_chunk, (k + 1) * docs_per_chunk) of a file
    are chunk k, processed with the RNG of (seed, file, chunk); the group's records, in order,
    are dealt round-robin into its shards. Returns (shard bytes by name, statistics)."""
    files = pipeline.expand_inputs(config.input_files)
    groups, total = plan.plan_groups(files, config.num_shards)
    tokenizer = examples._tokenizer(config)
    is_start = np.array(tokenizer.start_piece_table(), dtype=bool)
    stats, read, shards = examples.ChunkStats(config.max_seq_length), corpus.ReadStats(), {}
    size = config.docs_per_chunk
    for group in groups:
        records = []
        for position, path in group.files:
            docs = list(
                corpus.iter_documents(
                    path, read, config.input_format, config.min_line_chars, config.skip_bad_files
                )
            )
            for k in range(0, len(docs), size):
                seed = examples.chunk_seed(config.random_seed, position, path, k // size)
                records += examples.process_chunk(
                    docs[k : k + size], tokenizer, is_start, config, random.Random(seed), stats
                )
        for i, shard in enumerate(group.shards):
            name = pathlib.Path(plan.shard_path(config, shard, total)).name
            mine = records[i :: len(group.shards)]
            if mine:
                shards[name] = b"".join(writer.tfrecord_frame(r) for r in mine)
    return shards, {"stats": stats, "read": read}


def _comparable(stats: dict) -> dict:
    """stats.json without its timings and output folder."""
    out = {k: v for k, v in stats.items() if k not in ("seconds", "examples_per_second")}
    out["flags"] = {k: v for k, v in stats["flags"].items() if k != "output_dir"}
    return out


@pytest.fixture(scope="module")
def uneven(tmp_path_factory, small_text_corpus) -> str:
    """Files of very different sizes: a MEDLINE sample cut into many pieces, a large and a
    small text file (two groups: the first and the third file share one)."""
    folder = tmp_path_factory.mktemp("uneven")
    (folder / "a.xml.gz").write_bytes(gzip.compress(medline_sample(300)))
    docs = small_text_corpus.read_text(encoding="utf-8").split("\n\n")
    (folder / "b.txt").write_text("\n\n".join(docs[:250]) + "\n", encoding="utf-8")
    (folder / "c.txt").write_text("\n\n".join(docs[250:280]) + "\n", encoding="utf-8")
    return str(folder / "*")


def test_chunks_as_the_unit_of_work_give_the_same_bytes_for_1_2_3_workers(
    uneven, tiny_spm, tmp_path, monkeypatch
):
    settings = dict(
        max_seq_length=64,
        max_predictions_per_seq=10,
        dupe_factor=1,
        docs_per_chunk=16,
        num_shards=2,
    )
    expected, reference = _reference(_config(uneven, tmp_path / "ref", tiny_spm, **settings))
    pieces, read_piece = [], corpus.read_piece
    monkeypatch.setattr(corpus, "read_piece", lambda *a: pieces.append(1) or read_piece(*a))
    runs = {}
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}"
        mode = "in_memory" if workers == 1 else "multi_processing"
        args = [f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"]
        # 25 chunks (7 + 16 + 2) from pieces of 100 kB; the small text file is read whole
        stats = pipeline.run(_config(uneven, out, tiny_spm, **settings), args, piece_bytes=100_000)
        runs[workers] = (_shard_bytes(out), _comparable(stats))
        if workers == 1:  # in-process: the counter sees stage 2
            assert len(pieces) >= 18  # the MEDLINE file (~1.7 MB) and b.txt (~0.2 MB) were cut
    assert runs[1][0] == expected  # the single-process specification, byte for byte
    assert runs[2] == runs[1] and runs[3] == runs[1]
    stats, counts = runs[1][1], reference["stats"].c
    assert stats["documents"] == counts["documents"] == 101 + 250 + 30
    assert (stats["examples"], stats["tokens"]) == (counts["examples"], counts["tokens"])
    assert stats["masked_tokens"] == counts["masked"]
    assert stats["read"] == dict(sorted(reference["read"].counts.items()))
    assert stats["ngram_span_histogram"] == {
        str(k): v for k, v in sorted(reference["stats"].spans.items())
    }


def test_chunks_are_handed_out_costliest_first_across_files(
    uneven, tiny_spm, tmp_path, monkeypatch
):
    """The plan gives each chunk the bytes of its documents, counted while they were written
    (no file is stat'ed to plan); the chunks of all files go out costliest first, ties in
    (file, chunk) order, then the files' FileDone."""
    config = _config(uneven, tmp_path / "out", tiny_spm, docs_per_chunk=16)
    files = pipeline.expand_inputs(config.input_files)
    work_dir = str(tmp_path / "work")
    planned, stats = [], []
    for position, path in enumerate(files):
        task = work.FileTask(0, position, path)
        pieces = stage_parse.split_file(task, config, work_dir, 100_000)
        parsed = [stage_parse.parse_piece(p, config, work_dir)[1] for p in pieces]
        assert [p.docs_bytes for p in parsed] == [os.path.getsize(p.docs) for p in parsed]
        with monkeypatch.context() as m:
            m.setattr(pipeline.fileio, "size", lambda p: stats.append(p) or os.path.getsize(p))
            plan = stage_chunks.plan_file((position, parsed), config, work_dir)
        assert not stats
        planned += plan
    order = [v for _, v in stage_chunks.largest_first(planned)]
    chunks = [v for v in order if isinstance(v, work.ChunkTask)]
    assert len(chunks) == 25 and [type(v) for v in order[25:]] == [work.FileDone] * 3
    for position in range(3):  # a file's chunk sizes add up to the bytes of its documents
        mine = [t for t in chunks if t.position == position]
        docs = {path for t in mine for path, _, _ in t.segments}
        total = sum(os.path.getsize(path) for path in docs)
        assert abs(sum(t.size for t in mine) - total) <= len(mine)
    for t in chunks:  # each one about its documents' bytes (the average of its pieces)
        text = sum(len(json.dumps(d)) + 1 for d in stage_chunks._load_docs(t.segments))
        assert 0.5 * text <= t.size <= 2 * text
    keys = [(-t.size, t.position, t.chunk) for t in chunks]
    assert keys == sorted(keys)
    assert [t.position for t in chunks] != sorted(t.position for t in chunks)  # not file order


def test_pieces_that_do_not_parse_alone_send_their_file_to_be_read_whole(
    tiny_spm, tmp_path, caplog
):
    """Damaged files, with --skip_bad_files: what is kept and listed is what reading the
    file whole keeps and lists."""
    xml = medline_sample(300)
    folder = tmp_path / "in"
    folder.mkdir()
    # a mismatched tag in a middle piece: that piece fails, then the whole file stops there
    at = xml.index(b"</ArticleTitle>", len(xml) // 2)
    (folder / "a-malformed.xml").write_bytes(xml[:at] + b"</ArticleTitel>" + xml[at + 15 :])
    # a gzip stream cut short: cutting it into pieces fails, the file is read whole
    (folder / "b-truncated.xml.gz").write_bytes(gzip.compress(xml)[: len(xml) // 20])
    (folder / "c-fine.xml.gz").write_bytes(gzip.compress(xml))
    config = _config(
        f"{folder}/*",
        tmp_path / "out",
        tiny_spm,
        max_seq_length=64,
        dupe_factor=1,
        docs_per_chunk=16,
        skip_bad_files=True,
    )
    expected, reference = _reference(config)
    with caplog.at_level("WARNING"):
        stats = pipeline.run(config, ["--direct_num_workers=1"], piece_bytes=100_000)
    assert re.search(r"a-malformed.xml: piece [1-9]\d* does not parse alone", caplog.text)
    assert _shard_bytes(tmp_path / "out") == expected
    assert stats["bad_files"] == reference["read"].bad_files and len(stats["bad_files"]) == 2
    assert stats["read"] == dict(sorted(reference["read"].counts.items()))
    assert stats["documents"] == reference["stats"].c["documents"]


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
