"""Segment pairing, packing and the sentence-order (SOP) label, as ALBERT does it.

From google-research/albert create_instances_from_document (random_next_sentence=False):
- max_num_tokens = max_seq_length - 3; target = max_num_tokens, or with probability
  short_seq_prob a uniform integer in [2, max_num_tokens].
- Sentences accumulate into a chunk until it reaches the target or the document ends.
- A chunk of >= 2 sentences is split at a_end ~ U[1, len-1]; with probability 0.5 A and B are
  swapped (label 1), else kept (label 0).
- A chunk of one sentence takes B from a random other document, starting at a random sentence,
  up to the remaining target length (label 1).
- The pair is truncated to max_num_tokens, one token at a time from the longer segment, from its
  front or back with probability 0.5 each.
Documents are drawn from the chunk of documents being processed (the reference draws from the
whole corpus it holds in memory; we stream, see pipeline.py).
"""

from __future__ import annotations

import dataclasses
import random

from bioalbert_tf.tokenization import CLS_ID, SEP_ID


@dataclasses.dataclass(frozen=True)
class PackingConfig:
    max_seq_length: int = 512
    short_seq_prob: float = 0.1


@dataclasses.dataclass
class Instance:
    ids: list[int]  # [CLS] A [SEP] B [SEP]
    len_a: int  # tokens in A; segment ids are 0 through the first [SEP] (index len_a + 1)
    sop_label: int  # 1 = swapped or B from another document
    random_b: bool  # B came from another document


def truncate_seq_pair(
    len_a: int, len_b: int, max_num_tokens: int, rng: random.Random
) -> tuple[int, int, int, int]:
    """The reference's one-token-at-a-time truncation, as counts.

    Returns (front_a, back_a, front_b, back_b): tokens to drop from each end of each segment.
    Same draws and result as deleting from lists, in O(excess) without list shifting.
    """
    fa = ba = fb = bb = 0
    while len_a + len_b > max_num_tokens:
        if len_a > len_b:
            len_a -= 1
            if rng.random() < 0.5:
                fa += 1
            else:
                ba += 1
        else:
            len_b -= 1
            if rng.random() < 0.5:
                fb += 1
            else:
                bb += 1
    return fa, ba, fb, bb


def _flatten(segments: list[list[int]]) -> list[int]:
    out: list[int] = []
    for s in segments:
        out.extend(s)
    return out


def create_instances_from_document(
    documents: list[list[list[int]]],
    doc_index: int,
    config: PackingConfig,
    rng: random.Random,
) -> list[Instance]:
    """All instances of one document (a list of sentences, each a list of ids)."""
    document = documents[doc_index]
    max_num_tokens = config.max_seq_length - 3
    target = max_num_tokens
    if rng.random() < config.short_seq_prob:
        target = rng.randint(2, max_num_tokens)

    instances = []
    chunk: list[list[int]] = []
    length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        chunk.append(segment)
        length += len(segment)
        if i == len(document) - 1 or length >= target:
            if chunk:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = _flatten(chunk[:a_end])
                random_b = False
                if len(chunk) == 1:
                    random_b = True
                    sop_label = 1
                    target_b = target - len(tokens_a)
                    other = doc_index
                    for _ in range(10):
                        other = rng.randint(0, len(documents) - 1)
                        if other != doc_index:
                            break
                    random_doc = documents[other]
                    tokens_b = []
                    for j in range(rng.randint(0, len(random_doc) - 1), len(random_doc)):
                        tokens_b.extend(random_doc[j])
                        if len(tokens_b) >= target_b:
                            break
                    i -= len(chunk) - a_end  # always 0 here; kept as in the reference
                elif rng.random() < 0.5:
                    sop_label = 1
                    tokens_a, tokens_b = _flatten(chunk[a_end:]), tokens_a
                else:
                    sop_label = 0
                    tokens_b = _flatten(chunk[a_end:])
                fa, ba, fb, bb = truncate_seq_pair(
                    len(tokens_a), len(tokens_b), max_num_tokens, rng
                )
                tokens_a = tokens_a[fa : len(tokens_a) - ba]
                tokens_b = tokens_b[fb : len(tokens_b) - bb]
                if (
                    tokens_a and tokens_b
                ):  # the reference asserts this; it holds for non-empty sentences
                    ids = [CLS_ID, *tokens_a, SEP_ID, *tokens_b, SEP_ID]
                    instances.append(Instance(ids, len(tokens_a), sop_label, random_b))
            chunk = []
            length = 0
        i += 1
    return instances
