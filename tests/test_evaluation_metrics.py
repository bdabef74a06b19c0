"""Benchmark metrics against independent numbers: seqeval (conlleval mode), sklearn, scipy,
and hand-computed cases."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bioalbert_tf.evaluation import datasets, formats, metrics
from tests.conftest import SHARED_DATA

NCBI_TEST = SHARED_DATA / "ner" / "NCBI-disease" / "test.tsv"


def _need(path):
    if not path.exists():
        pytest.skip(f"shared benchmark data missing ({path}); CI provides ../shared/data")
    return str(path)


# ------------------------------------------------------------------------------------ NER


def _perturb(sentences, rng, rate, tags):
    out = []
    for s in sentences:
        out.append([rng.choice(tags) if rng.random() < rate else t for t in s])
    return out


@pytest.mark.parametrize("typed", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ner_entity_scores_match_seqeval_on_ncbi_disease(typed, seed):
    """seqeval's default mode ports conlleval's chunk rules; on the real test file with
    perturbed predictions (I- without B-, broken and shifted spans, type changes) both agree."""
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities

    gold = [list(s.tags) for s in formats.read_ner(_need(NCBI_TEST))]
    assert len(gold) == 940
    rng = random.Random(seed)
    if typed:
        # Two entity types, so type changes inside spans are exercised too.
        gold = [
            [t if t == "O" else f"{t}-{'Chemical' if i % 3 == 0 else 'Disease'}" for t in s]
            for i, s in enumerate(gold)
        ]
        choices = ["O", "B-Disease", "I-Disease", "B-Chemical", "I-Chemical"]
    else:
        choices = ["O", "B", "I"]
    pred = _perturb(gold, rng, 0.08 + 0.04 * seed, choices)
    got = metrics.ner_scores(gold, pred)
    assert got["entity_precision"] == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-12)
    assert got["entity_recall"] == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-12)
    assert got["entity_f1"] == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)
    assert got["gold_entities"] == len(get_entities(gold))
    assert got["predicted_entities"] == len(get_entities(pred))
    assert 0.2 < got["entity_f1"] < 0.9  # the perturbation is neither trivial nor total
    # The chunks conlleval counts, sentence by sentence ('_' is seqeval's name for no type).
    for s in gold[:200] + pred[:200]:
        ours = metrics.entities(s)
        theirs = [("" if t == "_" else t, a, b) for t, a, b in get_entities(s)]
        assert ours == theirs, s
    if typed:
        for t in ("Disease", "Chemical"):
            assert got["per_type"][t]["f1"] == pytest.approx(
                seqeval.classification_report(gold, pred, output_dict=True)[t]["f1-score"]
            )


def _ner(gold, pred):
    return metrics.ner_scores([gold], [pred])


def test_ner_all_o_predictions_score_zero_not_nan():
    m = _ner(["B", "I", "O", "B"], ["O", "O", "O", "O"])
    assert (m["entity_precision"], m["entity_recall"], m["entity_f1"]) == (0.0, 0.0, 0.0)
    assert (m["gold_entities"], m["predicted_entities"], m["correct_entities"]) == (2, 0, 0)
    assert (m["token_precision"], m["token_recall"], m["token_f1"]) == (0.0, 0.0, 0.0)
    assert m["accuracy"] == pytest.approx(1 / 4)


def test_ner_all_wrong():
    m = _ner(["B", "I", "O", "O"], ["O", "O", "B", "I"])
    assert (m["gold_entities"], m["predicted_entities"], m["correct_entities"]) == (1, 1, 0)
    assert m["entity_f1"] == 0.0 and m["token_f1"] == 0.0 and m["accuracy"] == 0.0


def test_ner_adjacent_entities_entity_vs_token_level():
    """Gold has two adjacent entities (B B I); the prediction merges them (B I I): no entity is
    right, every entity token is: the token-level trap the recipe warns about."""
    m = _ner(["B", "B", "I", "O"], ["B", "I", "I", "O"])
    assert (m["gold_entities"], m["predicted_entities"], m["correct_entities"]) == (2, 1, 0)
    assert m["entity_f1"] == 0.0
    assert m["token_f1"] == 1.0


def test_ner_nested_span_found_inside_a_longer_gold_span_is_wrong():
    m = _ner(["B", "I", "I", "O"], ["B", "I", "O", "O"])
    assert (m["entity_precision"], m["entity_recall"]) == (0.0, 0.0)
    # Tokens: gold 3, predicted 2, both correct -> P 1, R 2/3, F1 0.8.
    assert m["token_precision"] == 1.0
    assert m["token_recall"] == pytest.approx(2 / 3)
    assert m["token_f1"] == pytest.approx(0.8)


def test_ner_i_without_b_starts_a_chunk():
    """conlleval: I after O starts a chunk (IOB1), so I-only spans equal B-I spans."""
    m = _ner(["O", "I", "I", "O", "B"], ["O", "B", "I", "O", "I"])
    assert (m["gold_entities"], m["predicted_entities"], m["correct_entities"]) == (2, 2, 2)
    assert m["entity_f1"] == 1.0
    assert m["accuracy"] == pytest.approx(3 / 5)  # the tags themselves differ twice


def test_ner_typed_iob1_type_change_starts_a_chunk():
    gold = ["I-Disease", "I-Disease", "I-Chemical", "O"]
    pred = ["B-Disease", "I-Disease", "B-Chemical", "O"]
    m = _ner(gold, pred)
    assert (m["gold_entities"], m["correct_entities"]) == (2, 2)
    assert m["entity_f1"] == 1.0
    assert m["per_type"]["Chemical"]["gold"] == 1


def test_ner_typed_wrong_type_is_wrong_at_both_levels():
    m = _ner(["B-Disease", "I-Disease", "O"], ["B-Chemical", "I-Chemical", "O"])
    assert m["entity_f1"] == 0.0
    assert m["per_type"]["Disease"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "gold": 1,
        "predicted": 0,
        "correct": 0,
    }
    assert (m["gold_entity_tokens"], m["predicted_entity_tokens"]) == (2, 2)
    assert m["correct_entity_tokens"] == 0 and m["token_f1"] == 0.0


def test_ner_mixed_hand_count():
    gold = ["B", "I", "O", "B", "O", "B", "I", "I"]
    pred = ["B", "I", "O", "B", "I", "O", "B", "I"]
    m = _ner(gold, pred)
    # Chunks: gold (0,1) (3,3) (5,7); predicted (0,1) (3,4) (6,7); only (0,1) matches.
    assert (m["gold_entities"], m["predicted_entities"], m["correct_entities"]) == (3, 3, 1)
    assert m["entity_f1"] == pytest.approx(1 / 3)
    # Tokens: gold {0,1,3,5,6,7}, predicted {0,1,3,4,6,7}, both {0,1,3,6,7}.
    assert m["token_f1"] == pytest.approx(5 / 6)


def test_ner_sentence_boundary_ends_chunks():
    gold = [["B", "I"], ["I", "O"]]
    m = metrics.ner_scores(gold, gold)
    assert m["gold_entities"] == 2  # not 1: the I after a sentence break starts a new chunk
    assert m["entity_f1"] == 1.0 and m["num_tokens"] == 4


def test_ner_misaligned_input_is_an_error():
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        metrics.ner_scores([["B", "O"]], [["B"]])


def test_split_tag_follows_conlleval():
    assert metrics.split_tag("B-Disease") == ("B", "Disease")
    assert metrics.split_tag("I-Gene-or-protein") == ("I", "Gene-or-protein")
    assert metrics.split_tag("O") == ("O", "")
    assert metrics.split_tag("B") == ("B", "")


# ------------------------------------------------------------------------------------- RE


@pytest.mark.parametrize("seed", [0, 1])
def test_re_micro_f1_matches_sklearn(seed):
    from sklearn.metrics import f1_score, precision_recall_fscore_support, precision_score

    rng = np.random.default_rng(seed)
    labels = ["false", *metrics.CHEMPROT_POSITIVE_LABELS]
    gold = list(rng.choice(labels, size=800, p=[0.6, 0.1, 0.1, 0.05, 0.05, 0.1]))
    pred = [g if rng.random() < 0.6 else str(rng.choice(labels)) for g in gold]
    pred[:5] = ["CPR:10"] * 5  # not a counted class: ignored, as sklearn's labels= does
    m = metrics.re_scores(gold, pred, positive_labels=metrics.CHEMPROT_POSITIVE_LABELS)
    pos = list(metrics.CHEMPROT_POSITIVE_LABELS)
    assert m["micro_f1"] == pytest.approx(f1_score(gold, pred, average="micro", labels=pos))
    assert m["micro_precision"] == pytest.approx(
        precision_score(gold, pred, average="micro", labels=pos)
    )
    p, r, f, support = precision_recall_fscore_support(gold, pred, labels=pos, zero_division=0)
    for k, label in enumerate(pos):
        row = m["per_class"][label]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[k], r[k], f[k]))
        assert row["gold"] == support[k]


def test_re_on_real_ddi_labels_matches_sklearn():
    from sklearn.metrics import f1_score

    gold = [
        ex.label for ex in formats.read_re(_need(SHARED_DATA / "re" / "DDI-blurb" / "test.tsv"))
    ]
    rng = random.Random(3)
    classes = sorted(set(gold))
    pred = [g if rng.random() < 0.7 else rng.choice(classes) for g in gold]
    m = metrics.re_scores(gold, pred)  # positives: every label but DDI-false
    assert m["positive_labels"] == ["DDI-advise", "DDI-effect", "DDI-int", "DDI-mechanism"]
    expected = f1_score(gold, pred, average="micro", labels=m["positive_labels"])
    assert m["micro_f1"] == pytest.approx(expected)


def test_re_binary_gad_is_positive_class_f1():
    from sklearn.metrics import f1_score

    gold = ["1", "0", "1", "1", "0", "0"]
    pred = ["1", "1", "0", "1", "0", "1"]
    m = metrics.re_scores(gold, pred, datasets.get("gad").negative_labels)
    assert m["micro_f1"] == pytest.approx(f1_score(gold, pred, pos_label="1"))
    # TP 2, predicted 4, gold 3: P 1/2, R 2/3, F1 4/7.
    assert m["micro_f1"] == pytest.approx(4 / 7)


# ------------------------------------------------------------------------------------ HoC


def test_hoc_groups_sentences_into_abstracts_by_hand():
    ids = ["111_s0", "111_s1", "222_s0"]
    gold = ["0_1,1_0,2_0", "0_0,1_1,2_0", "0_0,1_0,2_0"]
    pred = ["0_0,1_1,2_0", "0_0,1_0,2_1", "0_1,1_0,2_0"]
    m = metrics.hoc_scores(ids, gold, pred)
    # Abstract 111: gold {0, 1}, predicted {1, 2}; abstract 222: gold {}, predicted {0}.
    assert m["num_abstracts"] == 2
    assert m["micro_precision"] == pytest.approx(1 / 3)
    assert m["micro_recall"] == pytest.approx(1 / 2)
    assert m["micro_f1"] == pytest.approx(0.4)
    assert [m["per_label"][k]["f1"] for k in "012"] == [0.0, 1.0, 0.0]
    assert m["macro_f1"] == pytest.approx(1 / 3)
    # BLUE's example-based F1: 111 has P = R = 1/2; 222 (no gold label, one predicted) P 0, R 1.
    assert (m["example_precision"], m["example_recall"]) == pytest.approx((1 / 4, 3 / 4))
    assert m["example_f1"] == pytest.approx(2 * (1 / 4) * (3 / 4) / (1 / 4 + 3 / 4))
    assert m["num_abstracts_without_labels"] == 1
    # An abstract without labels and without predictions is right: P = R = 1.
    empty = metrics.hoc_scores(["9_s0"], ["0_0,1_0"], ["0_0,1_0"])
    assert (empty["example_f1"], empty["micro_f1"], empty["macro_f1"]) == (1.0, 0.0, 0.0)


def test_hoc_on_real_test_file_matches_sklearn_micro_on_abstract_matrices():
    from sklearn.metrics import f1_score

    rows = formats.read_hoc(_need(SHARED_DATA / "classification" / "HoC" / "test.tsv"))
    rng = np.random.default_rng(0)
    gold_vecs = [[v for _, v in sorted(metrics.parse_hoc_labels(r.label).items())] for r in rows]
    pred_vecs = [[int(v) ^ int(rng.random() < 0.1) for v in g] for g in gold_vecs]
    pred = [metrics.format_hoc_labels(v) for v in pred_vecs]
    m = metrics.hoc_scores([r.id for r in rows], [r.label for r in rows], pred)
    # Independent: abstract-level indicator matrices (max over sentences), sklearn micro F1.
    docs = sorted({r.id.split("_")[0] for r in rows})
    at = {d: k for k, d in enumerate(docs)}
    g_mat = np.zeros((len(docs), 10), int)
    p_mat = np.zeros((len(docs), 10), int)
    for r, g, p in zip(rows, gold_vecs, pred_vecs, strict=True):
        g_mat[at[r.id.split("_")[0]]] |= np.asarray(g)
        p_mat[at[r.id.split("_")[0]]] |= np.asarray(p)
    assert m["num_abstracts"] == len(docs) == 371
    assert m["micro_f1"] == pytest.approx(f1_score(g_mat, p_mat, average="micro"))
    per = f1_score(g_mat, p_mat, average=None, zero_division=0)
    assert [m["per_label"][str(j)]["f1"] for j in range(10)] == pytest.approx(list(per))
    assert m["macro_f1"] == pytest.approx(f1_score(g_mat, p_mat, average="macro", zero_division=0))
    # BLUE's example-based scores: sklearn's per-sample averages where the gold has labels (an
    # empty prediction has precision 0 there, as in BLUE); where it has none, recall 1 and
    # precision 1 only if nothing is predicted.
    from sklearn.metrics import precision_score, recall_score

    has = g_mat.sum(axis=1) > 0
    n, n_has = len(docs), int(has.sum())
    assert 0 < n_has < n  # the test file has abstracts without a label
    p_sum = n_has * precision_score(g_mat[has], p_mat[has], average="samples", zero_division=0)
    p_sum += int((p_mat[~has].sum(axis=1) == 0).sum())
    r_sum = n_has * recall_score(g_mat[has], p_mat[has], average="samples") + (n - n_has)
    assert m["example_precision"] == pytest.approx(p_sum / n)
    assert m["example_recall"] == pytest.approx(r_sum / n)
    ep, er = p_sum / n, r_sum / n
    assert m["example_f1"] == pytest.approx(2 * ep * er / (ep + er))


def test_hoc_label_strings():
    assert metrics.parse_hoc_labels("0_0,1_1,2_0") == {0: 0, 1: 1, 2: 0}
    assert metrics.format_hoc_labels([0, 1, 0]) == "0_0,1_1,2_0"
    assert metrics.abstract_id("22239943_s0") == "22239943"
    for bad in ("0_2", "x_1", "0-1", "0_1,0_0"):
        with pytest.raises(ValueError):
            metrics.parse_hoc_labels(bad)


# ------------------------------------------------------------------------- NLI, STS, BioASQ


def test_accuracy():
    assert metrics.accuracy(["a", "b", "c", "a"], ["a", "c", "c", "b"]) == 0.5


def test_sts_matches_scipy_on_biosses():
    from scipy import stats

    gold = [
        ex.score for ex in formats.read_sts(_need(SHARED_DATA / "sts" / "BIOSSES" / "test.tsv"))
    ]
    assert len(gold) == 20
    rng = np.random.default_rng(0)
    pred = list(np.asarray(gold) + rng.normal(0, 1, len(gold)))
    m = metrics.sts_scores(gold, pred)
    assert m["pearson"] == pytest.approx(stats.pearsonr(gold, pred)[0])
    assert m["spearman"] == pytest.approx(stats.spearmanr(gold, pred)[0])
    assert metrics.sts_scores(gold, [1.0] * 20)["pearson"] is None  # constant: undefined


def test_bioasq_factoid_by_hand():
    """The official evaluator's semantics: Java toLowerCase on both sides, String.equals, no
    stripping; strict = first answer, lenient = any, MRR = 1 / first matching rank."""
    golden = {
        "q1": ["Flaviviridae"],
        "q2": metrics.golden_synonyms([["neural crest cells"], ["NCC"]]),
        "q3": ["Early"],
        "q4": ["x"],
        "q5": [" fewer than 100"],  # padded as in 4B4's 57090c33cf1c325851000013
    }
    preds = {
        "q1": ["FLAVIVIRIDAE", "b"],  # rank 1: case is ignored
        "q2": ["a", "b", "ncc", "d", "e"],  # rank 3
        "q3": [" early", "Early "],  # padding is not: no match
        "q4": [],  # no answer
        "q5": ["fewer than 100", " Fewer than 100"],  # only the padded spelling matches: rank 2
    }
    m = metrics.bioasq_factoid_scores(golden, preds)
    assert m["strict_accuracy"] == pytest.approx(1 / 5)
    assert m["lenient_accuracy"] == pytest.approx(3 / 5)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 5)
    assert (m["num_questions"], m["num_answered"]) == (5, 4)
    with pytest.raises(ValueError, match="question q3: 6 answers; at most 5"):
        metrics.bioasq_factoid_scores(golden, {**preds, "q3": ["a"] * 5 + ["Early"]})
    year = metrics.bioasq_year_scores(
        {"b1": m, "b2": metrics.bioasq_factoid_scores({"q": ["a"]}, {"q": ["A"]})}
    )
    assert year["strict_accuracy"] == pytest.approx((1 / 5 + 1) / 2)
    assert year["lenient_accuracy"] == pytest.approx((3 / 5 + 1) / 2)
    assert year["mrr"] == pytest.approx(((1 + 1 / 3 + 1 / 2) / 5 + 1) / 2)
    assert year["num_questions"] == 6 and set(year["per_batch"]) == {"b1", "b2"}


def test_bioasq_padded_golden_answers_behave_as_in_the_official_evaluator():
    """The three padded synonyms of the published golden files: an unpadded correct answer does
    not match them, and an empty answer does not match the blank one (its lowercase is '')."""
    cases = [
        ("4B4", "57090c33cf1c325851000013", " fewer than 100", "fewer than 100"),
        ("4B5", "571e4523bb137a4b0c00000c", " ", ""),
        (
            "6B5",
            "5abc9ecffcf4565872000021",
            "Near mitochondrial G-rich sequences ",
            "near mitochondrial g-rich sequences",
        ),
    ]
    for batch, qid, padded, unpadded in cases:
        golden = formats.read_bioasq_golden(
            _need(SHARED_DATA / "qa" / "BioASQ" / f"{batch}_golden.json")
        )
        assert golden[qid] == [padded]
        one = {qid: golden[qid]}
        hit = metrics.bioasq_factoid_scores(one, {qid: [padded.upper()]})
        assert hit["strict_accuracy"] == hit["lenient_accuracy"] == 1.0
        miss = metrics.bioasq_factoid_scores(one, {qid: [unpadded]})
        assert miss["lenient_accuracy"] == miss["mrr"] == 0.0, batch


def test_golden_synonyms_and_real_golden_file():
    assert metrics.golden_synonyms([["a"], ["b", "c"]]) == ["a", "b", "c"]
    assert metrics.golden_synonyms(["a", "b"]) == ["a", "b"]
    assert metrics.golden_synonyms("a") == ["a"]
    golden = formats.read_bioasq_golden(_need(SHARED_DATA / "qa" / "BioASQ" / "5B2_golden.json"))
    assert len(golden) == 31
    assert golden["58b56fe422d3005309000007"] == ["neural crest cells", "NCC"]


# ------------------------------------------------------------------------------- aggregates


def test_task_averages_and_blurb_style_score():
    scores = {"ncbi_disease": 0.8, "bc5cdr_chem": 0.9, "gad": 0.7, "biosses": 0.5}
    per_task = metrics.task_averages(scores, datasets.dataset_tasks())
    assert per_task == pytest.approx({"ner": 0.85, "re": 0.7, "sts": 0.5})
    assert metrics.blurb_score(scores, datasets.dataset_tasks()) == pytest.approx(
        (0.85 + 0.7 + 0.5) / 3
    )
    with pytest.raises(KeyError, match="no task"):
        metrics.task_averages({"unknown": 1.0}, datasets.dataset_tasks())


def test_dataset_table_is_complete():
    names = set(datasets.REGISTRY)
    assert len(names) == 20
    assert {s.task for s in datasets.REGISTRY.values()} == set(datasets.TASK_TITLES)
    assert datasets.get("chemprot").positive_labels == ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")
    assert all(
        "entity" in s.main_key and "f1" in s.main_key
        for s in datasets.REGISTRY.values()
        if s.task == "ner"
    )
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.get("squad")
