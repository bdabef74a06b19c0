"""Whole-word n-gram masking: invariants, degenerate goldens, and distributions vs the reference."""

import collections
import random

import numpy as np
import pytest

from tests import reference_albert as ref
from tfrecords_builder.masking import KEPT, MASKED, RANDOM, MaskingConfig, mask_tokens

VOCAB = 500
CLS, SEP, MASK = 2, 3, 4


def _table(seed=0, start_share=0.6):
    rng = np.random.default_rng(seed)
    table = rng.random(VOCAB) < start_share
    table[:5] = [True, True, False, False, False]
    return table


def _instance(rng, len_a, len_b):
    return (
        [CLS]
        + [rng.randrange(5, VOCAB) for _ in range(len_a)]
        + [SEP]
        + [rng.randrange(5, VOCAB) for _ in range(len_b)]
        + [SEP]
    )


def test_ngram_probabilities_are_one_over_n():
    np.testing.assert_allclose(MaskingConfig().ngram_cdf(), [6 / 11, 9 / 11, 1.0])
    np.testing.assert_allclose(
        MaskingConfig(favor_shorter_ngram=False).ngram_cdf(), [2 / 11, 5 / 11, 1.0]
    )


def test_invariants_over_many_instances():
    table = _table()
    rng = random.Random(0)
    config = MaskingConfig(max_predictions_per_seq=20, masked_lm_prob=0.15)
    for _ in range(500):
        ids = _instance(rng, rng.randint(1, 300), rng.randint(1, 200))
        m = mask_tokens(ids, table, config, VOCAB, rng)
        n = len(ids)
        want = min(20, max(1, int(round(n * 0.15))))
        assert len(m.positions) <= want
        assert m.positions == sorted(set(m.positions))  # unique, sorted
        assert all(ids[p] not in (CLS, SEP) for p in m.positions)
        restored = list(m.output_ids)
        for p, label in zip(m.positions, m.labels, strict=True):
            restored[p] = label
        assert restored == ids  # labels restore the input
        changed = [i for i in range(n) if m.output_ids[i] != ids[i]]
        assert set(changed) <= set(m.positions)
        assert sum(m.span_words) >= 1 and len(m.kinds) == len(m.positions)
        boundary = list(m.token_boundary)
        assert boundary[0] == 1 and boundary[-1] == 1
        assert boundary == [1 if t in (CLS, SEP) else int(table[t]) for t in ids]
        # Whole words: the pieces that continue a masked piece's word are masked too.
        for p in m.positions:
            q = p + 1
            while q < n and ids[q] not in (CLS, SEP) and not table[ids[q]]:
                assert q in m.positions, (ids, m.positions, p, q)
                q += 1


def test_fills_the_quota_when_words_allow():
    table = np.ones(VOCAB, bool)  # every piece is a word: any n-gram size fits
    rng = random.Random(1)
    for _ in range(200):
        ids = _instance(rng, 120, 100)
        m = mask_tokens(ids, table, MaskingConfig(), VOCAB, rng)
        assert len(m.positions) == 20


def test_golden_all_masked():
    # Mask rate 1.0, 100% [MASK]: every non-special token becomes [MASK], in order.
    ids = [CLS, 10, 11, 12, SEP, 13, 14, SEP]
    config = MaskingConfig(max_predictions_per_seq=100, masked_lm_prob=1.0, mask_prob=1.0)
    m = mask_tokens(ids, _table(), config, VOCAB, random.Random(9))
    assert m.output_ids == [CLS, MASK, MASK, MASK, SEP, MASK, MASK, SEP]
    assert m.positions == [1, 2, 3, 5, 6]
    assert m.labels == [10, 11, 12, 13, 14]
    assert set(m.kinds) == {MASKED}


def test_golden_zero_rate():
    ids = [CLS, 10, 11, SEP, 13, SEP]
    m = mask_tokens(ids, _table(), MaskingConfig(masked_lm_prob=0.0), VOCAB, random.Random(0))
    assert m.output_ids == ids and m.positions == [] and m.labels == []


def test_golden_minimum_one_prediction():
    # round(6 * 0.01) = 0 -> at least 1 prediction; with one-piece words exactly one position.
    ids = [CLS, 10, 11, SEP, 13, SEP]
    m = mask_tokens(
        ids,
        np.ones(VOCAB, bool),
        MaskingConfig(masked_lm_prob=0.01, mask_prob=1.0),
        VOCAB,
        random.Random(0),
    )
    assert len(m.positions) == 1 and m.output_ids[m.positions[0]] == MASK


def test_word_continuation_crosses_sep_like_the_reference():
    # A non-start piece right after [SEP] belongs to the last word of A (reference behaviour).
    table = np.zeros(VOCAB, bool)
    table[10] = True  # 10 starts words; 20 never does
    ids = [CLS, 10, 20, SEP, 20, 20, SEP]
    m = mask_tokens(
        ids,
        table,
        MaskingConfig(max_predictions_per_seq=10, masked_lm_prob=1.0, ngram=1),
        VOCAB,
        random.Random(0),
    )
    assert m.positions == [1, 2, 4, 5]  # one word spanning the [SEP]
    assert m.span_words == [1]


def test_same_seed_same_masks_other_seed_differs():
    table = _table()
    ids = _instance(random.Random(3), 200, 200)
    a = mask_tokens(ids, table, MaskingConfig(), VOCAB, random.Random(123))
    b = mask_tokens(ids, table, MaskingConfig(), VOCAB, random.Random(123))
    c = mask_tokens(ids, table, MaskingConfig(), VOCAB, random.Random(124))
    assert (a.output_ids, a.positions) == (b.output_ids, b.positions)
    assert a.positions != c.positions


def test_distributions_match_the_reference_transcription():
    """Same inputs through ours and the reference's algorithm: the same distributions."""
    table = _table(seed=4)
    gen = random.Random(11)
    instances = [_instance(gen, gen.randint(50, 300), gen.randint(20, 200)) for _ in range(1500)]
    ours_rng, ref_rng = random.Random(1), random.Random(2)
    stats = {"ours": collections.Counter(), "ref": collections.Counter()}
    spans = {"ours": collections.Counter(), "ref": collections.Counter()}
    positions = {"ours": np.zeros(600), "ref": np.zeros(600)}
    for ids in instances:
        m = mask_tokens(ids, table, MaskingConfig(), VOCAB, ours_rng)
        out, pos, labels, boundary, sp = ref.reference_masked_lm(
            ids, table, 0.15, 20, VOCAB, ref_rng
        )
        assert boundary == list(m.token_boundary)
        for name, output, p_list, s in (
            ("ours", m.output_ids, m.positions, m.span_words),
            ("ref", out, pos, sp),
        ):
            stats[name]["predictions"] += len(p_list)
            stats[name]["mask"] += sum(output[p] == MASK for p in p_list)
            stats[name]["kept"] += sum(output[p] == ids[p] for p in p_list)
            spans[name].update(s)
            for p in p_list:
                positions[name][p] += 1
    for key in ("predictions", "mask", "kept"):
        assert stats["ours"][key] == pytest.approx(stats["ref"][key], rel=0.03), key
    n_ours, n_ref = sum(spans["ours"].values()), sum(spans["ref"].values())
    for k in (1, 2, 3):
        assert spans["ours"][k] / n_ours == pytest.approx(spans["ref"][k] / n_ref, abs=0.02), k
    assert stats["ours"]["mask"] / stats["ours"]["predictions"] == pytest.approx(0.8, abs=0.015)
    # where in the sequence predictions fall: same profile (first 300 positions, 30-token bins)
    prof_ours = positions["ours"][:300].reshape(10, 30).sum(1) / stats["ours"]["predictions"]
    prof_ref = positions["ref"][:300].reshape(10, 30).sum(1) / stats["ref"]["predictions"]
    np.testing.assert_allclose(prof_ours, prof_ref, atol=0.01)


def test_replacement_shares_80_10_10():
    table = np.ones(VOCAB, bool)
    rng = random.Random(5)
    kinds = collections.Counter()
    for _ in range(1500):
        kinds.update(
            mask_tokens(_instance(rng, 200, 200), table, MaskingConfig(), VOCAB, rng).kinds
        )
    total = sum(kinds.values())
    assert kinds[MASKED] / total == pytest.approx(0.8, abs=0.01)
    assert kinds[KEPT] / total == pytest.approx(0.1, abs=0.01)
    assert kinds[RANDOM] / total == pytest.approx(0.1, abs=0.01)


def test_span_shares_near_one_over_n_when_nothing_is_capped():
    # Long sequences of one-piece words and a quota far from binding: accepted spans keep 6:3:2.
    table = np.ones(VOCAB, bool)
    rng = random.Random(8)
    spans = collections.Counter()
    config = MaskingConfig(max_predictions_per_seq=1000, masked_lm_prob=0.02)
    for _ in range(400):
        spans.update(mask_tokens(_instance(rng, 2000, 2000), table, config, VOCAB, rng).span_words)
    total = sum(spans.values())
    assert spans[1] / total == pytest.approx(6 / 11, abs=0.03)
    assert spans[2] / total == pytest.approx(3 / 11, abs=0.03)
    assert spans[3] / total == pytest.approx(2 / 11, abs=0.03)


def test_a_piece_with_x_continues_its_word():
    # "▁ex" "xyl" "ene" is one word, as "▁ab" "cyl" "ene" is: with room for 3 predictions and
    # whole-word masking, either that whole word or "▁the" is chosen, never part of it. (With the
    # first release's letter set, which lacked "x", "xyl" started a word of its own.)
    from bioalbert_tf.tokenization import is_start_piece

    pieces = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]", "\u2581ex", "xyl", "ene", "\u2581the"]
    pieces += ["\u2581ab", "cyl"]
    table = np.array([is_start_piece(p) for p in pieces])
    assert table[6] == table[10] == False  # noqa: E712
    config = MaskingConfig(max_predictions_per_seq=3, masked_lm_prob=1.0, ngram=1)
    for word in ([5, 6, 7], [9, 10, 7]):
        ids = [CLS, *word, SEP, 8, SEP]
        seen = set()
        for seed in range(40):
            m = mask_tokens(ids, table, config, len(pieces), random.Random(seed))
            assert list(m.token_boundary) == [1, 1, 0, 0, 1, 1, 1]
            seen.add(tuple(m.positions))
        assert seen == {(1, 2, 3), (5,)}, word
