"""Whole-word n-gram masking, as ALBERT's create_masked_lm_predictions does it.

Rules (google-research/albert create_pretraining_data.py, defaults):
- [CLS]/[SEP] are never candidates. A piece starts a new word if `is_start_piece` says so, and
  the first non-special piece always starts one (even across [SEP], as in the reference).
- num_to_predict = min(max_predictions, max(1, round(len(tokens) * masked_lm_prob))).
- Candidate n-grams start at each word, in random order; n in 1..ngram with probability
  proportional to 1/n (favor_shorter_ngram; reversed otherwise); an n-gram that would exceed
  num_to_predict is shortened one word at a time, then skipped; one overlapping a chosen word
  is skipped. Near the end of the sequence an n-gram holds the words that are left.
- Each chosen token: 80% [MASK], 10% kept, 10% a uniformly random vocabulary id.
- Positions are returned sorted.
Unlike the reference (which draws n from numpy's unseeded global RNG), every draw comes from
the `rng` argument, so the same seed gives the same masks.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np

from bioalbert_tf.tokenization import CLS_ID, MASK_ID, SEP_ID

MASKED, KEPT, RANDOM = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    ngram: int = 3
    favor_shorter_ngram: bool = True
    mask_prob: float = 0.8  # of chosen tokens -> [MASK]; the rest split evenly keep/random

    def ngram_cdf(self) -> list[float]:
        weights = [1.0 / n for n in range(1, self.ngram + 1)]
        if not self.favor_shorter_ngram:
            weights = weights[::-1]
        total = sum(weights)
        cdf, acc = [], 0.0
        for w in weights:
            acc += w / total
            cdf.append(acc)
        cdf[-1] = 1.0
        return cdf


@dataclasses.dataclass
class MaskedLm:
    output_ids: list[int]  # the ids fed to the model
    positions: list[int]  # sorted
    labels: list[int]  # original ids at `positions`
    token_boundary: bytes  # one 0/1 byte per token: 1 where a word (or [CLS]/[SEP]) starts
    span_words: list[int]  # words per chosen n-gram, for statistics
    kinds: list[int]  # MASKED / KEPT / RANDOM per chosen token, in choice order


def mask_tokens(
    ids: list[int],
    is_start: np.ndarray,
    config: MaskingConfig,
    vocab_size: int,
    rng: random.Random,
    ngram_cdf: list[float] | None = None,
) -> MaskedLm:
    """Chooses and applies the masked-LM predictions for one instance.

    ids: token ids of `[CLS] A [SEP] B [SEP]`; is_start: [vocab] bool table (`is_start_piece`).
    """
    arr = np.asarray(ids, dtype=np.int64)
    special = (arr == CLS_ID) | (arr == SEP_ID)
    boundary = (is_start[arr] | special).view(np.uint8).tobytes()
    output = list(ids)
    cand = np.flatnonzero(~special)  # candidate positions, in order
    if config.masked_lm_prob == 0 or cand.size == 0:
        return MaskedLm(output, [], [], boundary, [], [])
    starts = is_start[arr[cand]]
    starts[0] = True
    # word w covers positions cand[word_start[w]:word_start[w + 1]]
    word_start = np.flatnonzero(starts).tolist()
    n_words = len(word_start)
    word_start.append(int(cand.size))
    cand_list = cand.tolist()

    num_to_predict = min(
        config.max_predictions_per_seq, max(1, int(round(len(ids) * config.masked_lm_prob)))
    )
    cdf = ngram_cdf or config.ngram_cdf()
    order = list(range(n_words))
    covered = bytearray(n_words)
    chosen: list[int] = []
    spans: list[int] = []
    kinds: list[int] = []
    randrange, uniform = rng.randrange, rng.random
    for k in range(n_words):  # lazy Fisher-Yates: n-gram starts in uniformly random order
        if len(chosen) >= num_to_predict:
            break
        j = randrange(k, n_words)
        order[k], order[j] = order[j], order[k]
        w = order[k]
        r = uniform()
        n = 1
        while r >= cdf[n - 1]:
            n += 1
        while True:  # shorten the n-gram until it fits, down to one word
            end = min(w + n, n_words)
            count = word_start[end] - word_start[w]
            if len(chosen) + count <= num_to_predict or n == 1:
                break
            n -= 1
        if len(chosen) + count > num_to_predict or any(covered[w:end]):
            continue
        covered[w:end] = b"\x01" * (end - w)
        spans.append(end - w)
        for pos in cand_list[word_start[w] : word_start[end]]:
            chosen.append(pos)
            if uniform() < config.mask_prob:
                output[pos] = MASK_ID
                kinds.append(MASKED)
            elif uniform() < 0.5:
                kinds.append(KEPT)
            else:
                output[pos] = randrange(vocab_size)
                kinds.append(RANDOM)
    positions = sorted(chosen)
    labels = [ids[p] for p in positions]
    return MaskedLm(output, positions, labels, boundary, spans, kinds)
