"""score.py: every prediction format, scored equal to the metric functions, and clear errors."""

from __future__ import annotations

import json
import pathlib
import random
import subprocess
import sys

import pytest

from bioalbert_tf.evaluation import formats, metrics, predictions, scoring
from bioalbert_tf.evaluation.formats import FormatError
from tests.conftest import ROOT, SHARED_DATA

NCBI_TEST = SHARED_DATA / "ner" / "NCBI-disease" / "test.tsv"
GAD_TEST = SHARED_DATA / "re" / "GAD" / "test.tsv"


def _need(path):
    if not path.exists():
        pytest.skip(f"shared benchmark data missing ({path}); CI provides ../shared/data")
    return str(path)


def _perturbed_tags(sentences, seed=0, rate=0.1):
    rng = random.Random(seed)
    return [[rng.choice("BIO") if rng.random() < rate else t for t in s.tags] for s in sentences]


# ------------------------------------------------------------------------------------ NER


@pytest.fixture(scope="module")
def ncbi():
    gold_path = _need(NCBI_TEST)
    sentences = formats.read_ner(gold_path)
    return gold_path, sentences, _perturbed_tags(sentences)


def test_ner_tsv_predictions_score_like_the_metric(tmp_path, ncbi):
    gold_path, sentences, tags = ncbi
    pred_path = str(tmp_path / "predictions.tsv")
    predictions.write_ner(pred_path, ((s.words, t) for s, t in zip(sentences, tags, strict=True)))
    got = scoring.score_files("ncbi_disease", gold_path, pred_path)
    expected = metrics.ner_scores([s.tags for s in sentences], tags)
    assert got["entity_f1"] == expected["entity_f1"] and got["token_f1"] == expected["token_f1"]
    assert got["main_key"] == "entity_f1" and got["main_score"] == expected["entity_f1"]
    assert got["num_sentences"] == 940


def _wordpieces(word: str) -> list[str]:
    # A stand-in for WordPiece: uncased, long words split into a head and '##' pieces.
    w = word.lower()
    return [w] if len(w) <= 4 else [w[:4]] + [f"##{w[i : i + 3]}" for i in range(4, len(w), 3)]


def _write_biobert_pair(tmp_path, sentences, tags):
    tok_lines, lab_lines = [], []
    for s, t in zip(sentences, tags, strict=True):
        tok_lines.append("[CLS]")
        lab_lines.append("[CLS]")
        for word, tag in zip(s.words, t, strict=True):
            pieces = _wordpieces(word)
            tok_lines += pieces
            lab_lines += [tag] + ["X"] * (len(pieces) - 1)
        tok_lines += ["[SEP]", ""]
        lab_lines += ["[SEP]", ""]
    tokens, labels = tmp_path / "token_test.txt", tmp_path / "label_test.txt"
    tokens.write_text("\n".join(tok_lines) + "\n")
    labels.write_text("\n".join(lab_lines) + "\n")
    return str(tokens), str(labels)


def test_ner_biobert_token_label_pair_is_joined_onto_gold_words(tmp_path, ncbi):
    gold_path, sentences, tags = ncbi
    tokens, labels = _write_biobert_pair(tmp_path, sentences, tags)
    got = scoring.score_files("ncbi_disease", gold_path, labels, tokens=tokens)
    expected = metrics.ner_scores([s.tags for s in sentences], tags)
    assert got["entity_f1"] == expected["entity_f1"]
    assert got["token_f1"] == expected["token_f1"]


def test_ner_biobert_pair_misalignment_names_file_and_line(tmp_path, ncbi):
    gold_path, sentences, tags = ncbi
    tokens, labels = _write_biobert_pair(tmp_path, sentences[:3], tags[:3])
    lines = pathlib.Path(labels).read_text().split("\n")
    del lines[5]  # one label fewer: the blank lines no longer line up
    pathlib.Path(labels).write_text("\n".join(lines))
    with pytest.raises(FormatError, match=r"(label|token)_test\.txt:\d+: expected a blank line"):
        predictions.read_biobert_pair(tokens, labels)
    # A token that is not the gold word: both the prediction and the gold line are named.
    tokens, labels = _write_biobert_pair(tmp_path, sentences, tags)
    lines = pathlib.Path(tokens).read_text().split("\n")
    lines[3] = "zzzz"
    pathlib.Path(tokens).write_text("\n".join(lines))
    with pytest.raises(FormatError) as e:
        scoring.score_files("ncbi_disease", gold_path, labels, tokens=tokens)
    # Line 4 is the third piece of the first word (after [CLS], "clus", "##ter").
    assert "token_test.txt:4" in str(e.value) and f"{gold_path}:1)" in str(e.value)


def test_ner_malformed_lines_name_file_and_line(tmp_path, ncbi):
    gold_path, sentences, tags = ncbi
    bad = tmp_path / "bad.tsv"
    bad.write_text("Clustering\tO\nof\n")
    with pytest.raises(FormatError, match=r"bad\.tsv:2: expected 'word<TAB>tag'"):
        scoring.score_files("ncbi_disease", gold_path, str(bad))
    short = tmp_path / "short.tsv"
    predictions.write_ner(str(short), [(sentences[0].words, tags[0])])
    with pytest.raises(FormatError, match="a prediction for gold word"):
        scoring.score_files("ncbi_disease", gold_path, str(short))


# ------------------------------------------------------------------------ id<TAB>prediction


def test_re_predictions_by_id(tmp_path):
    gold_path = _need(GAD_TEST)
    gold = formats.read_re(gold_path)
    assert len(gold) == 534 and gold[0].id == "0"
    rng = random.Random(1)
    values = [ex.label if rng.random() < 0.7 else rng.choice("01") for ex in gold]
    pred_path = str(tmp_path / "pred.tsv")
    predictions.write_id_predictions(
        pred_path, [(ex.id, v) for ex, v in zip(gold, values, strict=True)]
    )
    got = scoring.score_files("gad", gold_path, pred_path)
    assert got["micro_f1"] == metrics.re_scores([ex.label for ex in gold], values)["micro_f1"]
    # Shuffled lines and no header score the same: rows are matched by id.
    lines = pathlib.Path(pred_path).read_text().split("\n")[1:-1]
    rng.shuffle(lines)
    pathlib.Path(pred_path).write_text("\n".join(lines) + "\n")
    assert scoring.score_files("gad", gold_path, pred_path)["micro_f1"] == got["micro_f1"]


def test_re_prediction_errors(tmp_path):
    gold_path = _need(GAD_TEST)
    p = tmp_path / "p.tsv"
    p.write_text("id\tprediction\n0\t1\n1\t0\textra\n")
    with pytest.raises(FormatError, match=r"p\.tsv:3: expected 'id<TAB>prediction'"):
        scoring.score_files("gad", gold_path, str(p))
    p.write_text("0\t1\n0\t0\n")
    with pytest.raises(FormatError, match=r"p\.tsv:2: expected one line per id"):
        scoring.score_files("gad", gold_path, str(p))
    p.write_text("0\t1\n")
    with pytest.raises(FormatError, match=r"533 missing"):
        scoring.score_files("gad", gold_path, str(p))
    rows = "".join(f"{i}\t0\n" for i in range(534)) + "9999\t1\n"
    p.write_text(rows)
    with pytest.raises(FormatError, match=r"p\.tsv:535: expected only ids of"):
        scoring.score_files("gad", gold_path, str(p))


def test_chemprot_counts_only_cpr_classes(tmp_path):
    gold_path = _need(SHARED_DATA / "re" / "ChemProt-blurb" / "dev.tsv")
    gold = formats.read_re(gold_path)
    values = ["CPR:4" if "inhibit" in ex.text_a.lower() else "false" for ex in gold]
    pred_path = str(tmp_path / "pred.tsv")
    predictions.write_id_predictions(
        pred_path, [(ex.id, v) for ex, v in zip(gold, values, strict=True)]
    )
    got = scoring.score_files("chemprot", gold_path, pred_path)
    expected = metrics.re_scores(
        [ex.label for ex in gold], values, positive_labels=metrics.CHEMPROT_POSITIVE_LABELS
    )
    assert got["micro_f1"] == expected["micro_f1"] > 0
    assert list(got["per_class"]) == list(metrics.CHEMPROT_POSITIVE_LABELS)


def test_hoc_predictions(tmp_path):
    gold_path = _need(SHARED_DATA / "classification" / "HoC" / "test.tsv")
    gold = formats.read_hoc(gold_path)
    pred_path = str(tmp_path / "pred.tsv")
    predictions.write_id_predictions(pred_path, [(ex.id, ex.label) for ex in gold])
    assert scoring.score_files("hoc", gold_path, pred_path)["micro_f1"] == 1.0
    lines = pathlib.Path(pred_path).read_text().split("\n")
    lines[2] = lines[2].split("\t")[0] + "\t0_1,1_7"
    pathlib.Path(pred_path).write_text("\n".join(lines))
    with pytest.raises(FormatError, match=r"pred\.tsv:3: expected HoC labels"):
        scoring.score_files("hoc", gold_path, pred_path)


def test_sts_predictions_and_bad_number(tmp_path):
    gold_path = _need(SHARED_DATA / "sts" / "BIOSSES" / "test.tsv")
    gold = formats.read_sts(gold_path)
    pred_path = str(tmp_path / "pred.tsv")
    values = [len(ex.text_a) / max(len(ex.text_b), 1) for ex in gold]
    predictions.write_id_predictions(
        pred_path, [(ex.id, v) for ex, v in zip(gold, values, strict=True)]
    )
    got = scoring.score_files("biosses", gold_path, pred_path)
    assert got["pearson"] == pytest.approx(
        metrics.sts_scores([ex.score for ex in gold], values)["pearson"]
    )
    lines = pathlib.Path(pred_path).read_text().split("\n")
    lines[4] = lines[4].split("\t")[0] + "\thigh"
    pathlib.Path(pred_path).write_text("\n".join(lines))
    with pytest.raises(FormatError, match=r"pred\.tsv:5: expected a number; got 'high'"):
        scoring.score_files("biosses", gold_path, pred_path)


def test_mednli_jsonl_gold(tmp_path):
    # MedNLI is credentialed; a few rows in its documented format stand in for it.
    gold_path = tmp_path / "mli_test_v1.jsonl"
    rows = [
        {
            "sentence1": "No fever.",
            "sentence2": "Afebrile.",
            "gold_label": "entailment",
            "pairID": "a1",
        },
        {
            "sentence1": "Has fever.",
            "sentence2": "Afebrile.",
            "gold_label": "contradiction",
            "pairID": "a2",
        },
        {
            "sentence1": "Has cough.",
            "sentence2": "Has flu.",
            "gold_label": "neutral",
            "pairID": "a3",
        },
    ]
    gold_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pred_path = tmp_path / "pred.tsv"
    pred_path.write_text("a1\tentailment\na2\tneutral\na3\tneutral\n")
    got = scoring.score_files("mednli", str(gold_path), str(pred_path))
    assert got["accuracy"] == pytest.approx(2 / 3) and got["main_key"] == "accuracy"
    gold_path.write_text('{"sentence1": "x"}\n')
    with pytest.raises(FormatError, match=r"mli_test_v1\.jsonl:1: expected a JSON object"):
        scoring.score_files("mednli", str(gold_path), str(pred_path))


# ------------------------------------------------------------------------------------- BioASQ


def test_bioasq_predictions_per_batch(tmp_path):
    folder = SHARED_DATA / "qa" / "BioASQ"
    _need(folder / "4B1_golden.json")
    answers = {}
    goldens = {}
    for n in range(1, 6):
        goldens[f"4B{n}"] = formats.read_bioasq_golden(str(folder / f"4B{n}_golden.json"))
        for k, (qid, synonyms) in enumerate(goldens[f"4B{n}"].items()):
            # Every other question right at rank 2; the rest wrong.
            answers[qid] = ["wrong", synonyms[0].upper()] if k % 2 == 0 else ["wrong"]
    pred_path = tmp_path / "predictions.json"
    pred_path.write_text(json.dumps(answers))
    got = scoring.score_files("bioasq4b", str(folder / "4B*_golden.json"), str(pred_path))
    assert set(got["per_batch"]) == {"4B1", "4B2", "4B3", "4B4", "4B5"}
    for name, golden in goldens.items():
        expected = metrics.bioasq_factoid_scores(golden, answers)
        assert got["per_batch"][name] == expected
        assert expected["strict_accuracy"] == 0.0
        assert expected["lenient_accuracy"] == pytest.approx(((len(golden) + 1) // 2) / len(golden))
    assert got["mrr"] == pytest.approx(sum(b["mrr"] for b in got["per_batch"].values()) / 5)
    pred_path.write_text('{"q": "not a list"}')
    with pytest.raises(FormatError, match="a list of answer strings"):
        scoring.score_files("bioasq4b", str(folder / "4B1_golden.json"), str(pred_path))


# ---------------------------------------------------------------------------------------- CLI


def test_cli_writes_metrics_and_reports_errors(tmp_path, ncbi):
    gold_path, sentences, tags = ncbi
    pred_path = tmp_path / "predictions.tsv"
    predictions.write_ner(
        str(pred_path), ((s.words, t) for s, t in zip(sentences, tags, strict=True))
    )
    out = tmp_path / "metrics.json"
    cmd = [
        sys.executable,
        "-m",
        "bioalbert_tf.benchmark.score",
        "--dataset=ncbi_disease",
        f"--gold={gold_path}",
        f"--predictions={pred_path}",
        f"--output={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result
    assert any("entity" in k and "f1" in k for k in result)
    assert result["entity_f1"] == metrics.ner_scores([s.tags for s in sentences], tags)["entity_f1"]
    pred_path.write_text("Clustering\n")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert f"error: {pred_path}:1: expected 'word<TAB>tag'" in proc.stderr


def _bioasq_answers(*goldens):
    return {q: [s[0]] for g in goldens for q, s in formats.read_bioasq_golden(str(g)).items()}


def test_bioasq_wrong_files_are_refused_not_scored(tmp_path):
    folder = SHARED_DATA / "qa" / "BioASQ"
    _need(folder / "6B1_golden.json")
    b1, b2 = folder / "6B1_golden.json", folder / "6B2_golden.json"
    pred = tmp_path / "predictions.json"

    def score(answers, gold=b2, dataset="bioasq6b"):
        pred.write_text(json.dumps(answers))
        return scoring.score_files(dataset, str(gold), str(pred))

    assert score(_bioasq_answers(b2))["main_score"] == 1.0
    with pytest.raises(FormatError, match=r"answers for every factoid question of .*6B2_golden"):
        score(_bioasq_answers(b1))  # another batch's predictions
    dropped = _bioasq_answers(b2)
    for qid in list(dropped)[:3]:
        del dropped[qid]
    with pytest.raises(FormatError, match=r"\(3 of \d+ missing, e\.g\. .*write \[\] for a"):
        score(dropped)
    with pytest.raises(FormatError, match=r"expected only question ids of .*; got 'nope'"):
        score({**_bioasq_answers(b2), "nope": ["x"]})
    with pytest.raises(ValueError, match=r"6B2_golden\.json is a golden file of BioASQ 6b, not "):
        score(_bioasq_answers(b2), dataset="bioasq4b")
    # A question without answers is an explicit empty list, scored 0.
    explicit = {**_bioasq_answers(b2), next(iter(_bioasq_answers(b2))): []}
    got = score(explicit)
    assert got["lenient_accuracy"] == pytest.approx(1 - 1 / got["num_questions"])
    with pytest.raises(FormatError, match=r"at most 5 answers for question"):
        score({q: ["a"] * 6 for q in _bioasq_answers(b2)})


def test_merge_rules_by_hand():
    """BioBERT's transform_nbset2bioasqform.py, restated: answers of all snippets sorted by
    probability; '' and answers over 100 characters dropped; text.lower() equal answers summed,
    spelled as their most probable occurrence; ranked by the sum; top 5."""
    long = "x" * 101
    # Probabilities are sums of powers of 2, so every sum below is exact.
    snippets = [
        [("Flaviviridae", 0.5), ("virus", 0.25), ("", 0.875), (long, 0.9375)],
        [("flaviviridae", 0.125), ("VIRUS", 0.375), (" virus", 0.3125)],
        [("dengue", 0.5625), ("a", 0.0625), ("b", 0.03125), ("c", 0.015625), ("d", 0.0078125)],
    ]
    texts = [[t for t, _ in s] for s in snippets]
    probs = [[p for _, p in s] for s in snippets]
    # flaviviridae 0.5 + 0.125 and virus 0.375 + 0.25 tie at 0.625: Flaviviridae comes first in
    # the probability order (0.5 > 0.375), and VIRUS is spelled as its most probable occurrence;
    # then dengue 0.5625, ' virus' 0.3125 (not stripped: another answer), a 0.0625.
    merged = predictions.merge_answers(texts, probs)
    assert merged == ["Flaviviridae", "VIRUS", "dengue", " virus", "a"]
    # The max rule: best probability per stripped, lowercased answer; '' dropped, long kept.
    assert predictions.merge_answers(texts, probs, rule="max") == [
        long,
        "dengue",
        "Flaviviridae",
        "VIRUS",
        "a",
    ]
    with pytest.raises(ValueError, match="unknown answer merge rule 'sum'"):
        predictions.merge_answers(texts, probs, rule="sum")


def test_sts_non_finite_predictions_are_refused_and_constant_ones_undefined(tmp_path):
    gold_path = _need(SHARED_DATA / "sts" / "BIOSSES" / "test.tsv")
    gold = formats.read_sts(gold_path)
    pred = tmp_path / "pred.tsv"
    for bad in ("nan", "inf", "-Infinity"):
        rows = [f"{ex.id}\t{bad if k == 3 else 2.0 + k / 10}" for k, ex in enumerate(gold)]
        pred.write_text("\n".join(rows) + "\n")
        with pytest.raises(
            FormatError, match=rf"pred\.tsv:4: expected a finite number; got '{bad}'"
        ):
            scoring.score_files("biosses", gold_path, str(pred))
    pred.write_text("".join(f"{ex.id}\t2.0\n" for ex in gold))
    out = tmp_path / "metrics.json"
    cmd = [
        sys.executable,
        "-m",
        "bioalbert_tf.benchmark.score",
        "--dataset=biosses",
        f"--gold={gold_path}",
        f"--predictions={pred}",
        f"--output={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Pearson and Spearman are undefined (the predictions are constant)" in proc.stderr
    text = out.read_text()
    assert "NaN" not in text
    result = json.loads(text)
    assert result["main_score"] is None and result["pearson"] is None
