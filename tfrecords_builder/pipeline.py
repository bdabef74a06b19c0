"""The pretraining-data pipeline: corpus files -> TFRecord shards, on any Apache Beam runner.

Layout of the work, chosen so that memory stays flat as the corpus grows, one large file keeps
every worker busy, and the bytes do not depend on the runner or its parallelism:
- Input files are expanded and sorted. They are split into *groups*; a group writes its own
  output shards (`num_shards` <= files: several files feed one shard; `num_shards` > files: one
  file's examples are dealt round-robin over several shards). A shard is never an empty file: a
  group with more shards than examples is an error naming both numbers, and a one-shard group
  that yields no example writes no shard.
- The documents of a file, in order, form *chunks* of `docs_per_chunk` documents. Each chunk is
  tokenized, packed into instances (`dupe_factor` passes), masked and serialised with an RNG
  seeded from (random_seed, file, chunk), then shuffled. Only one chunk is in memory at a time,
  and the random "other document" of a one-sentence chunk is drawn from the same chunk (the
  reference holds the whole corpus in memory to draw it; this is the only way our output differs
  from it in distribution).
- Four Beam stages, each spread over the workers, with files under `<output_dir>/.build/work-*/`
  in between (so nothing large travels through the runner):
  1. per file: a MEDLINE or text file is decompressed and cut into *pieces* of about
     `PIECE_BYTES` that parse on their own (`corpus.split_stream`); any other file, a small one
     or one that cannot be cut is parsed whole here, as before.
  2. per piece: parsed into documents (JSON lines). A piece that does not parse alone sends its
     file back to be read whole, with the error handling of `corpus.iter_documents`.
  3. per chunk, the unit of work: documents [k * docs_per_chunk, (k + 1) * docs_per_chunk) of
     its file -> shuffled records in a chunk file, plus the chunk's statistics. The chunks of
     all files are handed out costliest first (bytes of text), so that the workers finish
     together.
  4. per group: the chunk files, in (file, chunk) order, are dealt round-robin into the shards,
     exactly as one process reading the files in order would (a group with one shard, the
     default, appends its chunk files whole); the shards are written under
     temporary names, then a sidecar with the group's statistics, then the shards are renamed
     and the group's work files removed.
  Pieces only change who parses what: the documents, and so the chunks, are those of the whole
  file; the shards are byte-identical for any number of workers.
- A rerun of the same command skips groups whose sidecar and shards exist with the same
  fingerprint (inputs, flags, vocabulary) and, within the others, every piece and chunk already
  done; leftover temporary and work files are removed once all groups are done.
- `stats.json` merges the sidecars when all groups are done.

Where each part is: `plan` (BuildConfig, input files, groups, shard names), `examples` (ALBERT's
example logic for a chunk), `work` (what travels between stages, the work files), `stage_parse`
(stages 1-2), `stage_chunks` (stage 3), `stage_write` (stage 4, sidecars); this module runs them
on Beam and merges the statistics. `pipeline.run(BuildConfig(...))` is the library's entry.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import time

from absl import logging

from bioalbert_tf import fileio, manifest, run_folder
from tfrecords_builder.examples import LENGTH_BINS, _tokenizer
from tfrecords_builder.plan import (
    PIECE_BYTES,
    SIDE_DIR,
    BuildConfig,
    WorkGroup,
    build_settings,
    expand_inputs,
    plan_groups,
    shard_path,
    sidecar_path,
)
from tfrecords_builder.stage_chunks import build_chunk, largest_first, plan_file
from tfrecords_builder.stage_parse import parse_piece, split_file
from tfrecords_builder.stage_write import _finished, _other_builds, write_group
from tfrecords_builder.work import FileTask, work_dir


def _merge(results: list[dict]) -> dict:
    counts: collections.Counter = collections.Counter()
    read: collections.Counter = collections.Counter()
    spans: collections.Counter = collections.Counter()
    lengths = [0] * LENGTH_BINS
    bad_files, shards = [], {}
    for r in results:
        counts.update(r["counts"])
        read.update(r["read"]["counts"])
        bad_files.extend(r["read"]["bad_files"])
        spans.update({int(k): v for k, v in r["span_words"].items()})
        lengths = [a + b for a, b in zip(lengths, r["length_histogram"], strict=True)]
        shards.update(r["shards"])
    return {
        "counts": counts,
        "read": read,
        "spans": spans,
        "lengths": lengths,
        "bad_files": bad_files,
        "shards": shards,
    }


def summarize(config: BuildConfig, results: list[dict], seconds: float, input_bytes: int) -> dict:
    """The content of stats.json."""
    m = _merge(results)
    c = m["counts"]
    examples, masked = c["examples"], c["masked"]
    n_spans = sum(m["spans"].values())
    width = -(-config.max_seq_length // LENGTH_BINS)

    def share(a, b):
        return round(a / b, 4) if b else None

    return {
        "documents": c["documents"],
        "sentences": c["sentences"],
        "examples": examples,
        "tokens": c["tokens"],
        "mean_tokens_per_example": share(c["tokens"], examples),
        "masked_tokens": masked,
        "masked_share_of_tokens": share(masked, c["tokens"]),
        "masked_replacement_shares": {
            "mask": share(c["masked_as_mask"], masked),
            "kept": share(c["masked_kept"], masked),
            "random": share(c["masked_random"], masked),
        },
        "ngram_span_histogram": {str(k): v for k, v in sorted(m["spans"].items())},
        "ngram_span_shares": {str(k): share(v, n_spans) for k, v in sorted(m["spans"].items())},
        "sop_label_1_share": share(c["sop_label_1"], examples),
        "single_segment_random_b_share": share(c["single_segment_random_b"], examples),
        "length_histogram": {
            f"{i * width}-{(i + 1) * width - 1}": n for i, n in enumerate(m["lengths"])
        },
        "read": dict(sorted(m["read"].items())),
        "bad_files": m["bad_files"],
        "shards": dict(sorted(m["shards"].items())),
        "seconds": round(seconds, 2),
        "examples_per_second": round(examples / seconds, 1) if seconds > 0 else None,
        "input_megabytes": round(input_bytes / 1e6, 3),
        "flags": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(config).items()
        },
    }


def _stale_shards(config: BuildConfig, expected: set[str]) -> list[str]:
    if not fileio.isdir(config.output_dir):
        return []
    return [
        name
        for name in fileio.listdir(config.output_dir)
        if name.startswith(config.output_prefix + "-")
        and name.endswith(".tfrecord")
        and name not in expected
    ]


def _remove_leftovers(config: BuildConfig) -> None:
    """Temporary and work files of killed runs; called once every group has committed."""
    side = fileio.join(config.output_dir, SIDE_DIR)
    for folder, prefix in ((config.output_dir, config.output_prefix + "-"), (side, "group-")):
        for name in fileio.listdir(folder):
            if name.startswith(prefix) and fileio.TMP_MARK in name:
                fileio.remove(fileio.join(folder, name))
    for name in fileio.listdir(side):
        if name.rstrip("/").startswith("work-"):
            fileio.rmtree(fileio.join(side, name))


def _runner(options):
    """Beam's FnApiRunner for DirectRunner (what DirectRunner falls back to anyway: its first
    choice, Prism, downloads a binary at run time); the named runner otherwise."""
    from apache_beam.options.pipeline_options import StandardOptions

    if options.view_as(StandardOptions).runner in ("DirectRunner", "direct"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    return None


def unknown_pipeline_args(args: list[str]) -> list[str]:
    """The arguments no Beam PipelineOptions class (any runner's) defines.

    Beam itself only warns about them ("Discarding unparseable args") and goes on, so a misspelt
    builder flag would silently leave its default in place.
    """
    import argparse

    from apache_beam.options import pipeline_options as po
    from apache_beam.runners.runner import create_runner

    # A runner's module may define options of its own (DaskRunner: DaskOptions): import it first.
    runner = argparse.ArgumentParser(add_help=False)
    runner.add_argument("--runner")
    name = runner.parse_known_args(args)[0].runner
    if name:  # an unknown or uninstalled runner: Beam names it itself when the pipeline starts
        with contextlib.suppress(ImportError, ValueError):
            create_runner(name)
    # As PipelineOptions.get_all_options parses, but without abbreviations: `--runn` is no flag.
    parser = po._BeamArgumentParser(allow_abbrev=False)
    seen = set()
    for cls in po.PipelineOptions.__subclasses__():
        if str(cls) not in seen:
            seen.add(str(cls))
            cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(args)
    return unknown


# Input bytes (as stored) worth starting one more local worker process for: a process takes
# ~1-2 s to start (it imports Beam), about what 4 MB of MEDLINE .xml.gz take to build.
BYTES_PER_LOCAL_WORKER = 4 << 20


def _beam_options(pipeline_args: list[str], input_bytes: int):
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    options = PipelineOptions(pipeline_args)
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    options.view_as(StandardOptions).runner = runner
    direct = options.view_as(DirectOptions)
    if runner in ("DirectRunner", "direct") and not any(
        a.startswith("--direct_num_workers") for a in pipeline_args
    ):
        # Chunks, not files, are the unit of work: one file keeps every core busy.
        workers = max(1, min(os.cpu_count() or 1, input_bytes // BYTES_PER_LOCAL_WORKER))
        direct.direct_num_workers = workers
        direct.direct_running_mode = "multi_processing" if workers > 1 else "in_memory"
    return options


def _run_stages(
    config: BuildConfig,
    pending: list[WorkGroup],
    total: int,
    settings: dict,
    pipeline_args: list[str],
    piece_bytes: int,
) -> None:
    """The four stages (module docstring) over the groups not yet complete."""
    import apache_beam as beam

    work = work_dir(config, manifest.digest(settings))
    tasks = [FileTask(g.index, pos, path) for g in pending for pos, path in g.files]
    options = _beam_options(pipeline_args, sum(fileio.size(t.path) for t in tasks))
    with beam.Pipeline(runner=_runner(options), options=options) as p:
        _ = (
            p
            | "Files" >> beam.Create(tasks)  # spread over the workers (Create reshuffles)
            | "Split" >> beam.FlatMap(split_file, config=config, work=work, piece_bytes=piece_bytes)
            | "SpreadPieces" >> beam.Reshuffle()
            | "Parse" >> beam.Map(parse_piece, config=config, work=work)
            | "ByFile" >> beam.GroupByKey()
            | "Plan" >> beam.FlatMap(plan_file, config=config, work=work)
            | "AllChunks" >> beam.combiners.ToList()
            | "LargestFirst" >> beam.FlatMap(largest_first)
            | "SpreadChunks" >> beam.Reshuffle()
            | "Chunks" >> beam.Map(build_chunk, config=config, work=work)
            | "ByGroup" >> beam.GroupByKey()
            | "Write"
            >> beam.Map(
                write_group,
                config=config,
                groups={g.index: g for g in pending},
                total_shards=total,
                settings=settings,
            )
        )


def run(
    config: BuildConfig,
    pipeline_args: list[str] | None = None,
    piece_bytes: int = PIECE_BYTES,
    overwrite: bool = False,
) -> dict:
    """Builds all shards with Beam, writes `<output_dir>/stats.json`, returns its content.

    piece_bytes: the size of the pieces MEDLINE and text files are cut into for parsing; it
    changes who parses what, never the output. overwrite: replace the shards of a finished build
    with other inputs, flags or vocabulary in output_dir (refused otherwise, before any work).
    The build holds output_dir's lock (`run_folder.hold`) from start to end.
    """
    config.validate()
    files = expand_inputs(config.input_files)
    with run_folder.hold(config.output_dir, "build_pretraining_data"):
        return _build(config, files, pipeline_args, piece_bytes, overwrite)


def _build(config, files, pipeline_args, piece_bytes, overwrite) -> dict:
    # Fails early, on the driver, for a bad vocabulary; its size goes to stats.json, where
    # run_pretraining checks it against the model's vocab_size.
    vocab_size = _tokenizer(config).vocab_size
    groups, total = plan_groups(files, config.num_shards)
    expected = {fileio.basename(shard_path(config, s, total)) for g in groups for s in g.shards}
    stale = _stale_shards(config, expected)
    if stale:
        raise FileExistsError(
            f"{config.output_dir} holds {len(stale)} shard(s) of a different build "
            f"(e.g. {stale[0]}); use a new --output_dir or remove them, so that a glob over the "
            "folder reads one build"
        )
    settings = build_settings(config, files)
    fp = manifest.digest(settings)
    others, rows = _other_builds(config, groups, fp, settings)
    if others and not overwrite:
        raise FileExistsError(
            f"{config.output_dir} holds a finished build made with other settings; "
            f"{len(rows)} differ:\n" + "\n".join(rows) + f"\nChoose a new --output_dir, or pass "
            f"--overwrite to replace its {len(others)} shard(s) ({', '.join(others[:3])}"
            + (", ..." if len(others) > 3 else "")
            + ")."
        )
    fileio.makedirs(fileio.join(config.output_dir, SIDE_DIR))
    logging.info(
        "%d input files -> %d shards in %d work groups (fingerprint %s)",
        len(files),
        total,
        len(groups),
        fp,
    )
    start = time.time()
    pending = [g for g in groups if not _finished(config, g, fp)]
    if len(pending) < len(groups):
        logging.info(
            "%d of %d groups already complete: skipped", len(groups) - len(pending), len(groups)
        )
    if pending:
        _run_stages(config, pending, total, settings, list(pipeline_args or []), piece_bytes)
    _remove_leftovers(config)
    results = []
    for g in groups:
        with fileio.open_file(sidecar_path(config, g), "r") as f:
            results.append(json.load(f))
    input_bytes = sum(fileio.size(p) for p in files)
    summary = summarize(config, results, time.time() - start, input_bytes)
    summary["vocab_size"] = vocab_size
    if summary["examples"] == 0:
        raise ValueError(
            f"no examples were produced from {len(files)} input file(s); stats: {summary['read']}"
        )
    fileio.write_json_atomic(fileio.join(config.output_dir, run_folder.STATS_NAME), summary)
    return summary
