"""Chunks as the unit of work: on files of very different sizes, 1, 2 or 3 workers write the
bytes of a single-process specification of the build; chunks are planned from the bytes counted
while their documents were written and handed out costliest first; a damaged file's pieces send
it to be read whole."""

import gzip
import json
import os
import pathlib
import random
import re

import numpy as np
import pytest

from tests.conftest import medline_sample
from tests.pipeline_helpers import _config, _shard_bytes
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

pytest.importorskip("tensorflow")


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


@pytest.mark.slow
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
