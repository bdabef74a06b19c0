"""Stage 3: a file's documents are planned into chunks, handed out costliest first, and each
chunk is built into shuffled records (`examples.process_chunk`)."""

from __future__ import annotations

import dataclasses
import json
import random
import time

from absl import logging

from bioalbert_tf import fileio
from tfrecords_builder import corpus, writer
from tfrecords_builder.examples import ChunkStats, _is_start, _tokenizer, chunk_seed, process_chunk
from tfrecords_builder.plan import BuildConfig
from tfrecords_builder.stage_parse import _parse_whole
from tfrecords_builder.work import (
    ChunkDone,
    ChunkTask,
    FileDone,
    _file_dir,
    _write_json,
)


def plan_file(item, config: BuildConfig, work: str) -> list[tuple[int, ChunkTask | FileDone]]:
    """Between stages 2 and 3: one file's pieces -> its chunks, and its counts for stage 4."""
    position, parsed = item
    pieces = sorted(parsed, key=lambda p: p.index)
    first = pieces[0]
    folder = _file_dir(work, position)
    failed = [p for p in pieces if p.failed]
    if failed:
        logging.warning(
            "%s: piece %d does not parse alone (%s); reading the file whole",
            first.path,
            failed[0].index,
            failed[0].failed,
        )
        pieces = _parse_whole(first.group, position, first.path, config, folder, "whole")
    read = corpus.ReadStats()
    for p in pieces:
        read.add(p.read)
    # Documents [k * size, (k + 1) * size) of the file, wherever the pieces end.
    size, out, segments, have, chunk = config.docs_per_chunk, [], [], 0, 0
    doc_bytes = {p.docs: p.docs_bytes / max(p.n_docs, 1) for p in pieces}

    def task() -> ChunkTask:
        cost = round(sum((end - begin) * doc_bytes[docs] for docs, begin, end in segments))
        return ChunkTask(first.group, position, first.path, chunk, tuple(segments), cost)

    for p in pieces:
        line = 0
        while line < p.n_docs:
            take = min(size - have, p.n_docs - line)
            segments.append((p.docs, line, line + take))
            line, have = line + take, have + take
            if have == size:
                out.append(task())
                segments, have, chunk = [], 0, chunk + 1
    if segments:
        out.append(task())
    seconds = sum(p.seconds for p in pieces)
    done = FileDone(first.group, position, read.to_dict(), folder, seconds)
    return [(t.group, t) for t in out] + [(first.group, done)]


def largest_first(items: list) -> list:
    """All chunk tasks (and the files' FileDone), the costliest chunks first.

    A runner that deals a stage's elements out in order (Beam's local runner deals them round
    robin) then gives every worker about the same work. In file order, the two MEDLINE files
    (chunks of one cost 1.5x those of the other) left one of two workers idle for 0.9 s at the
    end of the stage at dupe factor 1; costliest first, 0.3 s. Ties keep (file, chunk) order, so
    the plan is the same on every run; which worker builds a chunk never changes its bytes.
    """
    tasks = sorted(
        (v for _, v in items if isinstance(v, ChunkTask)),
        key=lambda t: (-t.size, t.position, t.chunk),
    )
    done = sorted((v for _, v in items if isinstance(v, FileDone)), key=lambda v: v.position)
    return [(t.group, t) for t in tasks] + [(d.group, d) for d in done]


def _load_docs(segments) -> list[list[str]]:
    docs = []
    for path, first, end in segments:
        with fileio.open_file(path, "r") as f:
            for i, line in enumerate(f):
                if i >= end:
                    break
                if i >= first:
                    docs.append(json.loads(line))
    return docs


def build_chunk(item, config: BuildConfig, work: str) -> tuple[int, ChunkDone | FileDone]:
    """Stage 3, the unit of work: one chunk -> its shuffled records in a chunk file."""
    group, task = item
    if isinstance(task, FileDone):
        return group, task
    records = fileio.join(_file_dir(work, task.position), f"chunk-{task.chunk:06d}.tfrecord")
    meta = records[: -len(".tfrecord")] + ".json"
    if fileio.exists(meta):
        return group, ChunkDone(**fileio.read_json(meta))
    start = time.time()
    docs = _load_docs(task.segments)
    tokenizer, is_start = _tokenizer(config), _is_start(config)
    stats = ChunkStats(config.max_seq_length)
    rng = random.Random(chunk_seed(config.random_seed, task.position, task.path, task.chunk))
    out = writer.AtomicTFRecordWriter(records)
    try:
        for record in process_chunk(docs, tokenizer, is_start, config, rng, stats):
            out.write(record)
    except BaseException:
        out.abort()
        raise
    out.commit()
    seconds = round(time.time() - start, 3)
    done = ChunkDone(task.position, task.chunk, records, out.records, stats.to_dict(), seconds)
    _write_json(meta, dataclasses.asdict(done))
    logging.info(
        "%s chunk %d: %d documents -> %d examples (%.1f s)",
        fileio.basename(task.path),
        task.chunk,
        len(docs),
        out.records,
        seconds,
    )
    return group, done
