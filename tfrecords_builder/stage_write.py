"""Stage 4: a group's chunk records are dealt into its shards, its sidecar written, and both
committed; and what the sidecars of earlier builds say."""

from __future__ import annotations

import json
import time

from absl import logging

from bioalbert_tf import fileio, manifest
from tfrecords_builder import corpus, writer
from tfrecords_builder.examples import ChunkStats
from tfrecords_builder.plan import BuildConfig, WorkGroup, shard_path, sidecar_path
from tfrecords_builder.work import ChunkDone, FileDone


def write_group(item, config: BuildConfig, groups: dict, total_shards: int, settings: dict) -> dict:
    """Stage 4: deals a group's chunk records, in (file, chunk) order, round-robin into its
    shards; writes its sidecar; commits; removes its work files. Returns its statistics."""
    index, values = item
    group = groups[index]
    print_fingerprint = manifest.digest(settings)
    if _finished(config, group, print_fingerprint):  # a runner's retry of a completed bundle
        return fileio.read_json(sidecar_path(config, group))
    values = list(values)
    files = sorted((v for v in values if isinstance(v, FileDone)), key=lambda v: v.position)
    chunks = sorted(
        (v for v in values if isinstance(v, ChunkDone)), key=lambda v: (v.position, v.chunk)
    )
    read, stats = corpus.ReadStats(), ChunkStats(config.max_seq_length)
    for f in files:
        read.add(f.read)
    for c in chunks:
        stats.add(c.stats)
    paths = [shard_path(config, s, total_shards) for s in group.shards]
    writers = [writer.AtomicTFRecordWriter(p, config.compression) for p in paths]
    start, n_records = time.time(), 0
    try:
        for c in chunks:
            if len(writers) == 1:  # the shard is the chunk files end to end
                writers[0].copy_frames(c.records, c.n_records)
                n_records += c.n_records
                continue
            # Examples dealt one by one: the shards of a group differ by at most one example.
            for frame in writer.read_frames(c.records):
                writers[n_records % len(writers)].write_frame(frame)
                n_records += 1
        empty = [w for w in writers if w.records == 0]
        names = [fileio.basename(p) for _, p in group.files]
        if empty and len(writers) > 1:
            raise ValueError(
                f"--num_shards={total_shards} is more than the work: {', '.join(names)} gave "
                f"{n_records} example(s) for its {len(writers)} shards, so {len(empty)} shard(s) "
                f"would be empty files (e.g. {fileio.basename(empty[0].path)}); use a smaller "
                "--num_shards"
            )
        if empty:
            logging.warning(
                "group %d: %s gave no examples: %s is not written",
                group.index,
                ", ".join(names),
                fileio.basename(empty[0].path),
            )
            empty[0].abort()
            writers = []
        work_seconds = sum(f.seconds for f in files) + sum(c.seconds for c in chunks)
        result = {
            "fingerprint": print_fingerprint,
            "settings": settings,
            "group": group.index,
            "files": [p for _, p in group.files],
            "shards": {fileio.basename(w.path): w.records for w in writers},
            "read": read.to_dict(),
            **stats.to_dict(),
            # CPU work of the group over all stages (its parts ran on several workers)
            "seconds": round(work_seconds + time.time() - start, 3),
        }
        for w in writers:
            w.commit()
        # written last: its existence marks the group done
        fileio.write_atomic(sidecar_path(config, group), json.dumps(result, indent=1))
    except BaseException:
        for w in writers:
            w.abort()
        raise
    for f in files:
        fileio.rmtree(f.folder)
    logging.info("group %d: %d examples in %d shard(s)", group.index, n_records, len(writers))
    return result


def _other_builds(
    config: BuildConfig, groups: list[WorkGroup], print_fingerprint: str, settings: dict
) -> tuple[list[str], list[str]]:
    """The shards that a finished build with other settings left here and that this build would
    replace (a sidecar with another fingerprint names them), and how its settings differ."""
    found, rows = [], []
    for g in groups:
        side = sidecar_path(config, g)
        if fileio.exists(side):
            done = fileio.read_json(side)
            if done.get("fingerprint") != print_fingerprint:
                found += [fileio.join(config.output_dir, name) for name in done.get("shards", {})]
                rows = rows or manifest.differences(done.get("settings", {}), settings, side)
    return found, rows


def _finished(config: BuildConfig, group: WorkGroup, print_fingerprint: str) -> bool:
    """Whether a previous run completed this group with the same fingerprint."""
    side = sidecar_path(config, group)
    if not fileio.exists(side):
        return False
    done = fileio.read_json(side)
    return done.get("fingerprint") == print_fingerprint and all(
        fileio.exists(fileio.join(config.output_dir, name)) for name in done["shards"]
    )
