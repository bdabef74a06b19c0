"""The pretraining-data pipeline: corpus files -> TFRecord shards, on any Apache Beam runner.

Layout of the work, chosen so that memory stays flat as the corpus grows and the bytes do not
depend on the runner or its parallelism:
- Input files are expanded and sorted. They are split into *groups*; a group is one unit of
  Beam work and writes its own output shards (`num_shards` <= files: several files feed one
  shard; `num_shards` > files: one file's examples are dealt round-robin over several shards).
  A shard is never an empty file: a group with more shards than examples is an error naming
  both numbers, and a one-shard group that yields no example writes no shard.
- A group streams its files in chunks of `docs_per_chunk` documents. Each chunk is tokenized,
  packed into instances (`dupe_factor` passes), masked and serialised with an RNG seeded from
  (random_seed, file, chunk), then shuffled. Only one chunk is in memory at a time, and the
  random "other document" of a one-sentence chunk is drawn from the same chunk (the reference
  holds the whole corpus in memory to draw it; this is the only way our output differs from it
  in distribution).
- A group writes its shards under temporary names, then a sidecar with its statistics, then
  renames the shards. A rerun of the same command skips groups whose sidecar and shards exist
  with the same fingerprint (inputs, flags, vocabulary) and redoes the rest.
- `stats.json` merges the sidecars when all groups are done.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import random
import time

import numpy as np
from absl import logging

from bioalbert_tf import features, fileio
from bioalbert_tf.tokenization import Tokenizer
from tfrecords_builder import corpus, writer
from tfrecords_builder.instances import PackingConfig, create_instances_from_document
from tfrecords_builder.masking import KEPT, MASKED, RANDOM, MaskingConfig, mask_tokens

SIDE_DIR = ".build"  # per-group sidecars inside output_dir
LENGTH_BINS = 16


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    input_files: tuple[str, ...]
    output_dir: str
    spm_model_file: str
    max_seq_length: int = 512
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 40
    ngram: int = 3
    favor_shorter_ngram: bool = True
    random_seed: int = 12345
    num_shards: int = 0  # 0: one shard per input file
    do_lower_case: bool = True
    compression: str = ""  # "" or "GZIP"
    input_format: str = "auto"
    docs_per_chunk: int = 1000
    min_line_chars: int = corpus.MIN_LINE_CHARS
    skip_bad_files: bool = False
    output_prefix: str = "pretrain"

    def validate(self) -> None:
        checks = [
            (self.max_seq_length >= 5, "max_seq_length must be >= 5"),
            (self.max_predictions_per_seq >= 1, "max_predictions_per_seq must be >= 1"),
            (0.0 <= self.masked_lm_prob <= 1.0, "masked_lm_prob must be in [0, 1]"),
            (0.0 <= self.short_seq_prob <= 1.0, "short_seq_prob must be in [0, 1]"),
            (self.dupe_factor >= 1, "dupe_factor must be >= 1"),
            (self.ngram >= 1, "ngram must be >= 1"),
            (self.num_shards >= 0, "num_shards must be >= 0"),
            (self.docs_per_chunk >= 2, "docs_per_chunk must be >= 2"),
            (self.compression in ("", "GZIP"), "compression must be '' or GZIP"),
            (
                self.input_format in ("auto", *corpus.FORMATS),
                f"input_format must be auto or one of {corpus.FORMATS}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"{msg}; got {self}")


@dataclasses.dataclass(frozen=True)
class WorkGroup:
    index: int
    files: tuple[tuple[int, str], ...]  # (position in the sorted input list, path)
    shards: tuple[int, ...]  # output shard numbers this group writes


def expand_inputs(patterns) -> list[str]:
    """Comma lists and globs (local or gs://) -> sorted unique paths; a miss is an error."""
    if isinstance(patterns, str):
        patterns = [patterns]
    files = []
    for item in patterns:
        for pattern in (p.strip() for p in str(item).split(",")):
            if not pattern:
                continue
            if any(c in pattern for c in "*?["):
                matched = [m for m in fileio.glob(pattern) if not fileio.isdir(m)]
                if not matched:
                    raise FileNotFoundError(f"no input files match {pattern!r}")
                files.extend(matched)
            elif fileio.isdir(pattern):
                raise IsADirectoryError(
                    f"input {pattern!r} is a directory; pass a glob such as {pattern}/*"
                )
            elif not fileio.exists(pattern):
                raise FileNotFoundError(f"input file not found: {pattern}")
            else:
                files.append(pattern)
    if not files:
        raise ValueError("no input files given")
    return sorted(set(files))


def plan_groups(files: list[str], num_shards: int) -> tuple[list[WorkGroup], int]:
    """Splits sorted files into work groups; returns (groups, total shards)."""
    n = len(files)
    total = num_shards or n
    indexed = list(enumerate(files))
    if total <= n:
        groups = [WorkGroup(g, tuple(indexed[g::total]), (g,)) for g in range(total)]
    else:
        groups, next_shard = [], 0
        for f, path in indexed:
            k = total // n + (1 if f < total % n else 0)
            groups.append(WorkGroup(f, ((f, path),), tuple(range(next_shard, next_shard + k))))
            next_shard += k
    return groups, total


def shard_path(config: BuildConfig, shard: int, total: int) -> str:
    return fileio.join(
        config.output_dir, f"{config.output_prefix}-{shard:05d}-of-{total:05d}.tfrecord"
    )


def sidecar_path(config: BuildConfig, group: WorkGroup) -> str:
    return fileio.join(config.output_dir, SIDE_DIR, f"group-{group.index:05d}.json")


def fingerprint(config: BuildConfig, files: list[str]) -> str:
    """What the bytes depend on: flags, input names and sizes, the vocabulary's bytes."""
    h = hashlib.sha256()
    settings = dataclasses.asdict(config)
    for key in ("input_files", "output_dir"):
        settings.pop(key)
    h.update(json.dumps(settings, sort_keys=True).encode())
    for path in files:
        h.update(f"{fileio.basename(path)}:{fileio.size(path)}\n".encode())
    with fileio.open_file(config.spm_model_file, "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def chunk_seed(random_seed: int, file_position: int, path: str, chunk: int) -> int:
    key = f"{random_seed}/{file_position}/{fileio.basename(path)}/{chunk}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")


class ChunkStats:
    """Counters for the examples of a group; merged across groups into stats.json."""

    def __init__(self, max_seq_length: int):
        self.c: collections.Counter = collections.Counter()
        self.spans: collections.Counter = collections.Counter()
        self.lengths = [0] * LENGTH_BINS
        self.bin_width = -(-max_seq_length // LENGTH_BINS)

    def add_example(self, n_tokens: int, sop_label: int, random_b: bool, spans, kinds) -> None:
        c = self.c
        c["examples"] += 1
        c["tokens"] += n_tokens
        c["masked"] += len(kinds)
        c["masked_as_mask"] += kinds.count(MASKED)
        c["masked_kept"] += kinds.count(KEPT)
        c["masked_random"] += kinds.count(RANDOM)
        c["sop_label_1"] += sop_label
        c["single_segment_random_b"] += random_b
        self.spans.update(spans)
        self.lengths[min(n_tokens // self.bin_width, LENGTH_BINS - 1)] += 1


_TOKENIZERS: dict = {}


def _tokenizer(config: BuildConfig) -> Tokenizer:
    key = (config.spm_model_file, config.do_lower_case)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = Tokenizer(config.spm_model_file, config.do_lower_case)
    return _TOKENIZERS[key]


_ENCODERS: dict = {}


def _encoder(config: BuildConfig, vocab_size: int) -> writer.PretrainingExampleEncoder:
    key = (config.max_seq_length, config.max_predictions_per_seq, vocab_size)
    if key not in _ENCODERS:
        specs = features.pretraining_features(config.max_seq_length, config.max_predictions_per_seq)
        _ENCODERS[key] = writer.PretrainingExampleEncoder(specs, vocab_size)
    return _ENCODERS[key]


def process_chunk(
    docs: list[list[str]],
    tokenizer: Tokenizer,
    is_start: np.ndarray,
    config: BuildConfig,
    rng: random.Random,
    stats: ChunkStats,
) -> list[bytes]:
    """One chunk of documents -> shuffled serialized Examples (all dupe passes)."""
    flat = [s for d in docs for s in d]
    ids = tokenizer.encode(flat)
    documents, pos = [], 0
    for d in docs:
        sentences = [s for s in ids[pos : pos + len(d)] if s]
        pos += len(d)
        if sentences:
            documents.append(sentences)
    stats.c["documents"] += len(documents)
    stats.c["sentences"] += sum(len(d) for d in documents)
    if not documents:
        return []
    rng.shuffle(documents)
    packing = PackingConfig(config.max_seq_length, config.short_seq_prob)
    masking = MaskingConfig(
        config.max_predictions_per_seq,
        config.masked_lm_prob,
        config.ngram,
        config.favor_shorter_ngram,
    )
    cdf = masking.ngram_cdf()
    encoder = _encoder(config, tokenizer.vocab_size)
    records = []
    for _ in range(config.dupe_factor):
        for d in range(len(documents)):
            for inst in create_instances_from_document(documents, d, packing, rng):
                m = mask_tokens(inst.ids, is_start, masking, tokenizer.vocab_size, rng, cdf)
                records.append(
                    encoder.encode(
                        m.output_ids,
                        inst.len_a,
                        m.token_boundary,
                        m.positions,
                        m.labels,
                        inst.sop_label,
                    )
                )
                stats.add_example(
                    len(inst.ids), inst.sop_label, inst.random_b, m.span_words, m.kinds
                )
    rng.shuffle(records)
    return records


def _chunks(docs, size):
    batch = []
    for d in docs:
        batch.append(d)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_group(
    group: WorkGroup, config: BuildConfig, total_shards: int, print_fingerprint: str
) -> dict:
    """Writes one group's shards and sidecar; returns its statistics. Skips a finished group."""
    side = sidecar_path(config, group)
    paths = [shard_path(config, s, total_shards) for s in group.shards]
    if fileio.exists(side) and all(fileio.exists(p) for p in paths):
        with fileio.open_file(side, "r") as f:
            done = json.load(f)
        if done.get("fingerprint") == print_fingerprint:
            logging.info("group %d: already complete (%s), skipped", group.index, side)
            return done
    tokenizer = _tokenizer(config)
    is_start = np.array(tokenizer.start_piece_table(), dtype=bool)
    read = corpus.ReadStats()
    stats = ChunkStats(config.max_seq_length)
    token = f"{os.getpid()}-{random.getrandbits(32):08x}"
    writers = [writer.AtomicTFRecordWriter(p, config.compression, token) for p in paths]
    start, n_records = time.time(), 0
    try:
        for position, path in group.files:
            docs = corpus.iter_documents(
                path, read, config.input_format, config.min_line_chars, config.skip_bad_files
            )
            for chunk_index, chunk in enumerate(_chunks(docs, config.docs_per_chunk)):
                rng = random.Random(chunk_seed(config.random_seed, position, path, chunk_index))
                # Examples dealt one by one: the shards of a group differ by at most one example.
                for record in process_chunk(chunk, tokenizer, is_start, config, rng, stats):
                    writers[n_records % len(writers)].write(record)
                    n_records += 1
                elapsed = time.time() - start
                logging.info(
                    "group %d, %s chunk %d: %d documents, %d examples so far (%.0f examples/s)",
                    group.index,
                    fileio.basename(path),
                    chunk_index + 1,
                    stats.c["documents"],
                    stats.c["examples"],
                    stats.c["examples"] / max(elapsed, 1e-9),
                )
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
                group.index, ", ".join(names), fileio.basename(empty[0].path),
            )  # fmt: skip
            empty[0].abort()
            writers = []
        result = {
            "fingerprint": print_fingerprint,
            "group": group.index,
            "files": [p for _, p in group.files],
            "shards": {fileio.basename(w.path): w.records for w in writers},
            "read": read.to_dict(),
            "counts": dict(stats.c),
            "span_words": {str(k): v for k, v in sorted(stats.spans.items())},
            "length_histogram": stats.lengths,
            "seconds": round(time.time() - start, 3),
        }
        tmp = f"{side}.tmp-{token}"
        with fileio.open_file(tmp, "w") as f:
            json.dump(result, f, indent=1)
        for w in writers:
            w.commit()
        fileio.rename(tmp, side)
        return result
    except BaseException:
        for w in writers:
            w.abort()
        raise


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
    """Temporary files of killed runs; called once every group has committed."""
    for folder, prefix in (
        (config.output_dir, config.output_prefix + "-"),
        (fileio.join(config.output_dir, SIDE_DIR), "group-"),
    ):
        for name in fileio.listdir(folder):
            if name.startswith(prefix) and ".tmp-" in name:
                fileio.remove(fileio.join(folder, name))


def _runner(options):
    """Beam's FnApiRunner for DirectRunner (what DirectRunner falls back to anyway: its first choice,
    Prism, downloads a binary at run time); the named runner otherwise."""
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
    from apache_beam.options import pipeline_options as po

    # As PipelineOptions.get_all_options parses, but without abbreviations: `--runn` is no flag.
    parser = po._BeamArgumentParser(allow_abbrev=False)
    seen = set()
    for cls in po.PipelineOptions.__subclasses__():
        if str(cls) not in seen:
            seen.add(str(cls))
            cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(args)
    return unknown


def _beam_options(pipeline_args: list[str], n_groups: int):
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    options = PipelineOptions(pipeline_args)
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    options.view_as(StandardOptions).runner = runner
    direct = options.view_as(DirectOptions)
    if runner in ("DirectRunner", "direct") and not any(
        a.startswith("--direct_num_workers") for a in pipeline_args
    ):
        workers = max(1, min(n_groups, os.cpu_count() or 1))
        direct.direct_num_workers = workers
        direct.direct_running_mode = "multi_processing" if workers > 1 else "in_memory"
    return options


def run(config: BuildConfig, pipeline_args: list[str] | None = None) -> dict:
    """Builds all shards with Beam, writes `<output_dir>/stats.json`, returns its content."""
    import apache_beam as beam

    config.validate()
    files = expand_inputs(config.input_files)
    # Fails early, on the driver, for a bad vocabulary; its size goes to stats.json, where
    # run_pretraining checks it against the model's vocab_size.
    vocab_size = _tokenizer(config).vocab_size
    groups, total = plan_groups(files, config.num_shards)
    expected = {fileio.basename(shard_path(config, s, total)) for g in groups for s in g.shards}
    stale = _stale_shards(config, expected)
    if stale:
        raise FileExistsError(
            f"{config.output_dir} holds {len(stale)} shard(s) of a different build (e.g. {stale[0]}); "
            "use a new --output_dir or remove them, so that a glob over the folder reads one build"
        )
    fileio.makedirs(fileio.join(config.output_dir, SIDE_DIR))
    fp = fingerprint(config, files)
    logging.info(
        "%d input files -> %d shards in %d work groups (fingerprint %s)",
        len(files),
        total,
        len(groups),
        fp,
    )
    start = time.time()
    options = _beam_options(list(pipeline_args or []), len(groups))
    with beam.Pipeline(runner=_runner(options), options=options) as p:
        _ = (
            p
            | "Groups" >> beam.Create(groups)
            | "Spread" >> beam.Reshuffle()
            | "Build"
            >> beam.Map(build_group, config=config, total_shards=total, print_fingerprint=fp)
        )
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
    out = fileio.join(config.output_dir, "stats.json")
    with fileio.open_file(out + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    fileio.rename(out + ".tmp", out)
    return summary
