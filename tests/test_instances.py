"""Packing, segment split, SOP and truncation against the reference transcription."""

import random

import pytest

from tests import reference_albert as ref
from tfrecords_builder.instances import (
    PackingConfig,
    create_instances_from_document,
    truncate_seq_pair,
)


def _random_documents(rng, n_docs, max_sentences=12, max_len=60):
    docs = []
    for _ in range(n_docs):
        docs.append(
            [
                [rng.randrange(10, 1000) for _ in range(rng.randint(1, max_len))]
                for _ in range(rng.randint(1, max_sentences))
            ]
        )
    return docs


@pytest.mark.parametrize(
    "max_seq_length,short_seq_prob", [(512, 0.1), (64, 0.1), (16, 0.5), (8, 1.0)]
)
def test_instances_equal_reference_draw_for_draw(max_seq_length, short_seq_prob):
    docs = _random_documents(random.Random(1), 60)
    ours_rng, ref_rng = random.Random(42), random.Random(42)
    config = PackingConfig(max_seq_length, short_seq_prob)
    n = 0
    for _dupe in range(3):
        for d in range(len(docs)):
            ours = create_instances_from_document(docs, d, config, ours_rng)
            theirs = ref.create_instances_from_document(
                docs, d, max_seq_length, short_seq_prob, ref_rng
            )
            assert len(ours) == len(theirs)
            for inst, (tokens, segment_ids, is_random_next) in zip(ours, theirs, strict=True):
                assert inst.ids == tokens
                assert [0] * (inst.len_a + 2) + [1] * (len(tokens) - inst.len_a - 2) == segment_ids
                assert inst.sop_label == int(is_random_next)
                n += 1
    assert n > 150
    assert ours_rng.random() == ref_rng.random()  # same number of draws consumed


def test_truncation_counts_equal_list_deletion():
    rng = random.Random(0)
    for _ in range(300):
        la, lb, limit = rng.randint(1, 400), rng.randint(1, 400), rng.randint(2, 509)
        seed = rng.random()
        a, b = list(range(la)), list(range(1000, 1000 + lb))
        ref.truncate_seq_pair(a, b, limit, random.Random(seed))
        fa, ba, fb, bb = truncate_seq_pair(la, lb, limit, random.Random(seed))
        assert a == list(range(la))[fa : la - ba]
        assert b == list(range(1000, 1000 + lb))[fb : lb - bb]


def test_layout_and_sop_invariants():
    docs = _random_documents(random.Random(7), 300)
    rng = random.Random(3)
    config = PackingConfig(128, 0.1)
    swapped, single = [], []
    for d in range(len(docs)):
        for inst in create_instances_from_document(docs, d, config, rng):
            ids = inst.ids
            assert len(ids) <= 128
            assert ids[0] == 2 and ids[inst.len_a + 1] == 3 and ids[-1] == 3
            assert ids.count(2) == 1 and ids.count(3) == 2
            assert inst.len_a >= 1 and len(ids) - inst.len_a - 3 >= 1
            (single if inst.random_b else swapped).append(inst.sop_label)
    assert single and all(label == 1 for label in single)  # one-sentence chunks: B from elsewhere
    assert len(swapped) > 400
    assert abs(sum(swapped) / len(swapped) - 0.5) < 0.07  # A/B swapped half of the time


def test_single_sentence_document_takes_b_from_another_document():
    docs = [[[11, 12, 13]], [[21, 22], [23, 24]], [[31, 32, 33, 34]]]
    insts = create_instances_from_document(docs, 0, PackingConfig(32, 0.0), random.Random(5))
    assert len(insts) == 1
    inst = insts[0]
    assert inst.random_b and inst.sop_label == 1
    assert inst.ids[1 : inst.len_a + 1] == [11, 12, 13]
    b = inst.ids[inst.len_a + 2 : -1]
    assert not set(b) & {11, 12, 13}
