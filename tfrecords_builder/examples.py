"""ALBERT's example logic for one chunk of documents: tokenize, pack into instances
(`dupe_factor` passes), mask, serialise, shuffle, with an RNG seeded from (seed, file, chunk);
and the statistics of the examples made."""

from __future__ import annotations

import collections
import functools
import hashlib
import random

import numpy as np

from bioalbert_tf import features, fileio
from bioalbert_tf.tokenization import Tokenizer
from tfrecords_builder import writer
from tfrecords_builder.instances import PackingConfig, create_instances_from_document
from tfrecords_builder.masking import KEPT, MASKED, RANDOM, MaskingConfig, mask_tokens
from tfrecords_builder.plan import BuildConfig

LENGTH_BINS = 16  # bins of the example-length histogram in stats.json


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


def _tokenizer(config: BuildConfig) -> Tokenizer:
    return _tokenizer_of(config.spm_model_file, config.do_lower_case)


@functools.cache
def _tokenizer_of(spm_model_file: str, do_lower_case: bool) -> Tokenizer:
    return Tokenizer(spm_model_file, do_lower_case)


def _is_start(config: BuildConfig) -> np.ndarray:
    """The whole-word start flag of every vocabulary id (once per process and vocabulary)."""
    return _start_table(config.spm_model_file, config.do_lower_case)


@functools.cache
def _start_table(spm_model_file: str, do_lower_case: bool) -> np.ndarray:
    table = _tokenizer_of(spm_model_file, do_lower_case).start_piece_table()
    return np.array(table, dtype=bool)


@functools.cache
def _encoder_of(max_seq_length: int, predictions: int, vocab_size: int):
    specs = features.pretraining_features(max_seq_length, predictions)
    return writer.PretrainingExampleEncoder(specs, vocab_size)


def _encoder(config: BuildConfig, vocab_size: int) -> writer.PretrainingExampleEncoder:
    return _encoder_of(config.max_seq_length, config.max_predictions_per_seq, vocab_size)


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
