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
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import time

import numpy as np
from absl import logging

from bioalbert_tf import features, fileio, manifest, run_folder
from bioalbert_tf.settings import setting
from bioalbert_tf.tokenization import Tokenizer
from tfrecords_builder import corpus, writer
from tfrecords_builder.instances import PackingConfig, create_instances_from_document
from tfrecords_builder.masking import KEPT, MASKED, RANDOM, MaskingConfig, mask_tokens

SIDE_DIR = ".build"  # per-group sidecars and the work files, inside output_dir
# Decompressed bytes per piece of a MEDLINE or text file: ~1,000 abstracts, a few seconds of
# parsing. It only decides who parses what; the output does not depend on it.
PIECE_BYTES = 8 << 20
LENGTH_BINS = 16


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """build_pretraining_data's settings (its flags are generated from these fields)."""

    input_files: tuple[str, ...] = setting(
        help="Comma list of files or globs (local or gs://): MEDLINE .xml(.gz), PMC .nxml / "
        ".tar.gz, MIMIC NOTEEVENTS.csv(.gz), or plain text."
    )
    output_dir: str = setting(
        help="Where the *.tfrecord shards and stats.json go (local or gs://)."
    )
    spm_model_file: str = setting(
        help="SentencePiece model with ALBERT's special ids (e.g. 30k-clean.model)."
    )
    max_seq_length: int = setting(512, "Maximum tokens per example, [CLS] and [SEP]s included.")
    max_predictions_per_seq: int = setting(20, "Maximum masked-LM predictions per example.")
    masked_lm_prob: float = setting(
        0.15, "Share of tokens to mask (before the max_predictions cap)."
    )
    short_seq_prob: float = setting(0.1, "Probability of a shorter random target length.")
    dupe_factor: int = setting(40, "Passes over each document, each with different masks.")
    ngram: int = setting(3, "Maximum n-gram (in whole words) of a masked span.")
    favor_shorter_ngram: bool = setting(
        True, "n-gram length n has probability proportional to 1/n."
    )
    random_seed: int = setting(12345, "Seed: same inputs, flags and seed give identical bytes.")
    num_shards: int = setting(0, "Output shards; 0 = one per input file.")
    do_lower_case: bool = setting(True, "Lowercase in normalisation (BioALBERT: true).")
    compression: str = setting(
        "", "TFRecord compression; the original readers expect none.", choices=("", "GZIP")
    )
    input_format: str = setting(
        "auto", "Corpus format; auto = by file extension.", choices=("auto", *corpus.FORMATS)
    )
    docs_per_chunk: int = setting(
        1000,
        "Documents per chunk: the unit of parallel work, held in memory at once per worker, and "
        "the pool for random segment B.",
    )
    min_line_chars: int = setting(
        corpus.MIN_LINE_CHARS, "Lines shorter than this are removed (the paper's cleaning)."
    )
    skip_bad_files: bool = setting(
        False, "Keep what was read of a truncated/malformed file, count it in stats, and go on."
    )
    output_prefix: str = setting("pretrain", "Shard names: <prefix>-<i>-of-<n>.tfrecord.")

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


def build_settings(config: BuildConfig, files: list[str]) -> dict:
    """The build's manifest, what the bytes depend on: the flags, the input files by name and
    size, the vocabulary's sha256. Its `manifest.digest` is the fingerprint in every sidecar."""
    settings = dataclasses.asdict(config)
    for key in ("input_files", "output_dir"):
        settings.pop(key)
    settings["input_files"] = manifest.files_of(files)
    with fileio.open_file(config.spm_model_file, "rb") as f:
        settings["vocabulary"] = hashlib.sha256(f.read()).hexdigest()
    return settings


def chunk_seed(random_seed: int, file_position: int, path: str, chunk: int) -> int:
    key = f"{random_seed}/{file_position}/{fileio.basename(path)}/{chunk}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")


class ChunkStats:
    """Counters for the examples of a chunk; summed per group, then into stats.json."""

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

    def to_dict(self) -> dict:
        return {
            "counts": dict(self.c),
            "span_words": {str(k): v for k, v in sorted(self.spans.items())},
            "length_histogram": self.lengths,
        }

    def add(self, other: dict) -> None:
        """Adds another ChunkStats' `to_dict()`."""
        self.c.update(other["counts"])
        self.spans.update({int(k): v for k, v in other["span_words"].items()})
        self.lengths = [a + b for a, b in zip(self.lengths, other["length_histogram"], strict=True)]


_TOKENIZERS: dict = {}


def _tokenizer(config: BuildConfig) -> Tokenizer:
    key = (config.spm_model_file, config.do_lower_case)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = Tokenizer(config.spm_model_file, config.do_lower_case)
    return _TOKENIZERS[key]


_START_TABLES: dict = {}


def _is_start(config: BuildConfig) -> np.ndarray:
    """The whole-word start flag of every vocabulary id (~0.07 s to compute: once per process)."""
    key = (config.spm_model_file, config.do_lower_case)
    if key not in _START_TABLES:
        _START_TABLES[key] = np.array(_tokenizer(config).start_piece_table(), dtype=bool)
    return _START_TABLES[key]


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


@dataclasses.dataclass(frozen=True)
class FileTask:
    group: int
    position: int  # in the sorted input list
    path: str


@dataclasses.dataclass(frozen=True)
class Piece:
    """A stretch of a file to parse (`raw`), or one already parsed by stage 1 (`raw` None)."""

    group: int
    position: int
    path: str
    index: int
    fmt: str
    raw: str | None
    read: dict | None  # file-level counts of stage 1 (on piece 0 of a cut file)


@dataclasses.dataclass(frozen=True)
class ParsedPiece:
    group: int
    position: int
    path: str
    index: int
    docs: str  # JSON lines, one document (list of sentences) per line
    n_docs: int
    read: dict  # corpus.ReadStats.to_dict()
    failed: str | None  # why the piece did not parse alone
    seconds: float
    # Bytes of `docs`, counted while writing it: the plan costs chunks without a stat per piece
    # (a round trip each on gs://). None in piece records written before it was counted.
    docs_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class ChunkTask:
    group: int
    position: int
    path: str
    chunk: int
    segments: tuple[tuple[str, int, int], ...]  # (docs file, first line, end line)
    size: int = 0  # estimated bytes of its documents: what it costs to build


@dataclasses.dataclass(frozen=True)
class ChunkDone:
    position: int
    chunk: int
    records: str  # uncompressed TFRecord file of the chunk's shuffled records
    n_records: int
    stats: dict  # ChunkStats.to_dict()
    seconds: float


@dataclasses.dataclass(frozen=True)
class FileDone:
    group: int
    position: int
    read: dict
    folder: str  # the file's work files
    seconds: float


def work_dir(config: BuildConfig, print_fingerprint: str) -> str:
    return fileio.join(config.output_dir, SIDE_DIR, f"work-{print_fingerprint}")


def _file_dir(work: str, position: int) -> str:
    return fileio.join(work, f"file-{position:05d}")


def _tmp_token() -> str:
    return f"{os.getpid()}-{random.getrandbits(32):08x}"


def _write_json(path: str, value) -> None:
    """Written whole under a temporary name, then renamed: its existence marks work as done."""
    tmp = f"{path}.tmp-{_tmp_token()}"
    with fileio.open_file(tmp, "w") as f:
        json.dump(value, f)
    fileio.rename(tmp, path)


class _DocsWriter:
    """Documents as JSON lines, in files of `per_file` documents (0: all in one file), each
    renamed into place when complete."""

    def __init__(self, folder: str, stem: str, per_file: int):
        self.folder, self.stem, self.per_file = folder, stem, per_file
        self.files: list[tuple[str, int, int]] = []  # (path, documents, bytes)
        self._f, self._n, self._bytes = None, 0, 0

    def _path(self, index: int) -> str:
        return fileio.join(self.folder, f"{self.stem}-{index:05d}.jsonl")

    def write(self, doc: list[str]) -> None:
        if self._f is None:
            self._tmp = f"{self._path(len(self.files))}.tmp-{_tmp_token()}"
            self._f, self._n, self._bytes = fileio.open_file(self._tmp, "w"), 0, 0
        line = json.dumps(doc) + "\n"  # ASCII (json.dumps escapes the rest): 1 byte a character
        self._f.write(line)
        self._n += 1
        self._bytes += len(line)
        if self._n == self.per_file:
            self.close()

    def close(self) -> list[tuple[str, int]]:
        """Completes the current file; returns all files (at least one, maybe empty)."""
        if self._f is None and not self.files:
            self._tmp = f"{self._path(0)}.tmp-{_tmp_token()}"
            self._f, self._n, self._bytes = fileio.open_file(self._tmp, "w"), 0, 0
        if self._f is not None:
            self._f.close()
            path = self._path(len(self.files))
            fileio.rename(self._tmp, path)
            self.files.append((path, self._n, self._bytes))
            self._f = None
        return self.files


def _parse_whole(
    group: int, position: int, path: str, config: BuildConfig, folder: str, stem: str
) -> list[ParsedPiece]:
    """A file read whole by `corpus.iter_documents` (its error handling and counts), written as
    files of `docs_per_chunk` documents; the first carries the file's counts."""
    start, read = time.time(), corpus.ReadStats()
    out = _DocsWriter(folder, stem, config.docs_per_chunk)
    for doc in corpus.iter_documents(
        path, read, config.input_format, config.min_line_chars, config.skip_bad_files
    ):
        out.write(doc)
    files, seconds = out.close(), round(time.time() - start, 3)
    pieces = []
    for i, (docs, n, size) in enumerate(files):
        first = i == 0  # carries the file's counts and time
        counts = read.to_dict() if first else corpus.ReadStats().to_dict()
        seconds_here = seconds if first else 0.0
        pieces.append(
            ParsedPiece(group, position, path, i, docs, n, counts, None, seconds_here, size)
        )
    return pieces


def _piece_meta(folder: str, index: int) -> str:
    return fileio.join(folder, f"piece-{index:05d}.json")


def split_file(task: FileTask, config: BuildConfig, work: str, piece_bytes: int) -> list[Piece]:
    """Stage 1: cuts a MEDLINE or text file into raw pieces; parses any other file whole."""
    folder = _file_dir(work, task.position)
    manifest = fileio.join(folder, "split.json")
    if fileio.exists(manifest):
        return [Piece(**p) for p in fileio.read_json(manifest)]
    fmt = corpus.resolve_format(task.path, config.input_format)
    pieces = []
    try:
        if corpus.can_split(task.path, fmt):
            pieces = _write_raw_pieces(task, fmt, folder, piece_bytes)
    except (corpus.NotSplittable, *corpus.READ_ERRORS) as e:
        # Read whole, as before pieces existed: a damaged file fails or is skipped the same way.
        logging.info("%s: read whole (%s: %s)", task.path, type(e).__name__, e)
    if not pieces:
        for p in _parse_whole(task.group, task.position, task.path, config, folder, "piece"):
            _write_json(_piece_meta(folder, p.index), dataclasses.asdict(p))
            pieces.append(Piece(task.group, task.position, task.path, p.index, fmt, None, None))
    _write_json(manifest, [dataclasses.asdict(p) for p in pieces])
    return pieces


def _write_raw_pieces(task: FileTask, fmt: str, folder: str, piece_bytes: int) -> list[Piece]:
    """The pieces of `corpus.split_stream` as files; [] for a file that fits in one piece (it
    is parsed whole instead). Piece 0 stays in memory until the first cut."""
    token = _tmp_token()

    def name(i: int) -> str:
        return fileio.join(folder, f"piece-{i:05d}.raw")

    done, head, out = [], [], None
    try:
        for part in corpus.split_stream(task.path, fmt, piece_bytes):
            if part is None:  # a cut: the current piece is complete
                if out is None:
                    out = fileio.open_file(f"{name(0)}.tmp-{token}", "wb")
                    for block in head:  # (a GFile has no writelines)
                        out.write(block)
                out.close()
                fileio.rename(f"{name(len(done))}.tmp-{token}", name(len(done)))
                done.append(name(len(done)))
                out = fileio.open_file(f"{name(len(done))}.tmp-{token}", "wb")
            elif out is None:
                head.append(part)
                if sum(map(len, head)) > 2 * piece_bytes:
                    raise corpus.NotSplittable(f"no cut point in the first {2 * piece_bytes} bytes")
            else:
                out.write(part)
        if out is None:
            return []
        out.close()
        fileio.rename(f"{name(len(done))}.tmp-{token}", name(len(done)))
        done.append(name(len(done)))
    except BaseException:
        if out is not None:
            out.close()
            fileio.remove(f"{name(len(done))}.tmp-{token}")
        for path in done:
            fileio.remove(path)
        raise
    file_read = {"counts": {"files": 1}, "bad_files": []}
    return [
        Piece(task.group, task.position, task.path, i, fmt, path, file_read if i == 0 else None)
        for i, path in enumerate(done)
    ]


def parse_piece(piece: Piece, config: BuildConfig, work: str) -> tuple[int, ParsedPiece]:
    """Stage 2: a raw piece -> its documents as JSON lines (keyed by file position)."""
    folder = _file_dir(work, piece.position)
    meta = _piece_meta(folder, piece.index)
    if fileio.exists(meta):
        return piece.position, ParsedPiece(**fileio.read_json(meta))
    if piece.raw is None:
        raise FileNotFoundError(f"{meta}: missing; stage 1 writes it for a file parsed whole")
    start, read, failed = time.time(), corpus.ReadStats(), None
    if piece.read:
        read.add(piece.read)
    out = _DocsWriter(folder, f"piece-{piece.index:05d}", 0)
    try:
        with fileio.open_file(piece.raw, "rb") as f:
            for doc in corpus.read_piece(f, piece.fmt, read, config.min_line_chars):
                out.write(doc)
    except corpus.READ_ERRORS as e:
        failed = f"{type(e).__name__}: {e}"
    ((docs, n, size),) = out.close()
    seconds = round(time.time() - start, 3)
    parsed = ParsedPiece(
        piece.group, piece.position, piece.path, piece.index, docs, n, read.to_dict(), failed,
        seconds, size,
    )  # fmt: skip
    _write_json(meta, dataclasses.asdict(parsed))
    fileio.remove(piece.raw)
    return piece.position, parsed


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
            first.path, failed[0].index, failed[0].failed,
        )  # fmt: skip
        pieces = _parse_whole(first.group, position, first.path, config, folder, "whole")
    read = corpus.ReadStats()
    for p in pieces:
        read.add(p.read)
    # Documents [k * size, (k + 1) * size) of the file, wherever the pieces end.
    size, out, segments, have, chunk = config.docs_per_chunk, [], [], 0, 0
    doc_bytes = {
        p.docs: (fileio.size(p.docs) if p.docs_bytes is None else p.docs_bytes) / max(p.n_docs, 1)
        for p in pieces
    }

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
    out = writer.AtomicTFRecordWriter(records, "", _tmp_token())
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
        fileio.basename(task.path), task.chunk, len(docs), out.records, seconds,
    )  # fmt: skip
    return group, done


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
    token = _tmp_token()
    writers = [writer.AtomicTFRecordWriter(p, config.compression, token) for p in paths]
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
                group.index, ", ".join(names), fileio.basename(empty[0].path),
            )  # fmt: skip
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
        side = sidecar_path(config, group)
        tmp = f"{side}.tmp-{token}"
        with fileio.open_file(tmp, "w") as f:
            json.dump(result, f, indent=1)
        for w in writers:
            w.commit()
        fileio.rename(tmp, side)
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
            if name.startswith(prefix) and ".tmp-" in name:
                fileio.remove(fileio.join(folder, name))
    for name in fileio.listdir(side):
        if name.rstrip("/").startswith("work-"):
            fileio.rmtree(fileio.join(side, name))


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
            f"{config.output_dir} holds {len(stale)} shard(s) of a different build (e.g. {stale[0]}); "
            "use a new --output_dir or remove them, so that a glob over the folder reads one build"
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
    out = fileio.join(config.output_dir, "stats.json")
    with fileio.open_file(out + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    fileio.rename(out + ".tmp", out)
    return summary
