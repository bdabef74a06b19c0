"""The build's plan: its settings (BuildConfig), the input files, the work groups and the
names of their shards and sidecars."""

from __future__ import annotations

import dataclasses
import hashlib

from bioalbert_tf import fileio, manifest
from bioalbert_tf.settings import setting
from tfrecords_builder import corpus

SIDE_DIR = ".build"  # per-group sidecars and the work files, inside output_dir
# Decompressed bytes per piece of a MEDLINE or text file: ~1,000 abstracts, a few seconds of
# parsing. It only decides who parses what; the output does not depend on it.
PIECE_BYTES = 8 << 20


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
class BuildOptions:
    """build_pretraining_data's flags beside its settings: how it runs, not what it writes."""

    overwrite: bool = setting(
        False,
        "Replace the shards of a finished build with other inputs, flags or vocabulary in "
        "--output_dir.",
    )
    runner: str = setting(
        "DirectRunner", "Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...)."
    )


@dataclasses.dataclass(frozen=True)
class WorkGroup:
    index: int
    files: tuple[tuple[int, str], ...]  # (position in the sorted input list, path)
    shards: tuple[int, ...]  # output shard numbers this group writes


def expand_inputs(patterns) -> list[str]:
    """The corpus files: sorted, unique (`fileio.expand`)."""
    return fileio.expand(patterns, "input files")


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
