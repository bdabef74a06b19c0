"""The runner on small SavedModels that serve the signature contract, over real shared files: each
dataset's predictions and metrics (NER, BioASQ with both answer merges, RE, HoC, STS, MedNLI) as
the models' rules mirrored in tests/benchmark_models.py give them, and every code path at tiny
size on files written here.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from bioalbert_tf.benchmark import runner
from bioalbert_tf.evaluation import formats, metrics, predictions, scoring
from tests.benchmark_models import (
    CHEMPROT_RULES,
    GAD_RULES,
    NCBI,
    QA,
    _need,
    _subset,
    _written,
    first_words_answers,
    gazetteer_tags,
    hallmark_labels,
    keyword_label,
    saved_models,  # noqa: F401 (the fixture `models`)
)
from tests.conftest import SHARED_DATA

tf = pytest.importorskip("tensorflow")


def test_ner_on_ncbi_disease_test_is_fast_and_scored_right(models, tmp_path):
    paths, gazetteer = models
    _need(NCBI / "test.tsv")
    config = runner.RunConfig(paths["ner"], "ncbi_disease", str(NCBI), str(tmp_path), batch_size=32)
    t0 = time.perf_counter()
    result = runner.run(config)
    seconds = time.perf_counter() - t0
    print(
        f"\nNCBI-disease test, 940 sentences: {seconds:.2f} s "
        f"({result['run']['examples_per_second']:.0f} sentences/s)"
    )
    assert seconds < 30, f"NCBI-disease test took {seconds:.1f} s"
    gold = formats.read_ner(str(NCBI / "test.tsv"))
    assert result["run"]["num_examples"] == len(gold) == 940
    # Predictions in the original sentence order (the runner batches by length).
    expected_tags = [gazetteer_tags(s.words, gazetteer) for s in gold]
    expected = metrics.ner_scores([s.tags for s in gold], expected_tags)
    assert result["entity_f1"] == expected["entity_f1"] > 0.3
    assert result["token_f1"] == expected["token_f1"]
    # metrics.json equals the scorer's numbers on the written prediction file.
    written = json.loads((tmp_path / "ncbi_disease" / "metrics.json").read_text())
    rescored = scoring.score_files("ncbi_disease", str(NCBI / "test.tsv"), _written(result))
    for key in ("entity_precision", "entity_recall", "entity_f1", "token_f1", "accuracy"):
        assert written[key] == rescored[key]
    assert written["run"]["data_files"] == {
        str(NCBI / "test.tsv"): formats.file_sha256(str(NCBI / "test.tsv"))
    }
    assert written["run"]["saved_model_sha256"] == runner.saved_model_sha256(paths["ner"])
    assert written["run"]["versions"]["tensorflow"] == tf.__version__


def test_all_bioasq_batches_are_fast_and_merged_right(models, tmp_path):
    paths, _ = models
    _need(QA / "BioASQ-test-factoid-4b-1.json")
    t0 = time.perf_counter()
    results = [
        runner.run(
            runner.RunConfig(paths["qa"], f"bioasq{y}", str(QA), str(tmp_path), batch_size=64)
        )
        for y in ("4b", "5b", "6b")
    ]
    seconds = time.perf_counter() - t0
    pairs_total = sum(r["run"]["num_examples"] for r in results)
    print(
        f"\nBioASQ 4b/5b/6b, 15 batches, {pairs_total} (question, snippet) pairs: {seconds:.2f} s"
    )
    assert seconds < 30, f"15 BioASQ batches took {seconds:.1f} s"
    for year, result in zip(("4b", "5b", "6b"), results, strict=True):
        batches = formats.bioasq_batches(str(QA), year)
        assert len(batches) == 5
        pairs = [p for _, test, _ in batches for p in formats.read_squad(test)]
        written = predictions.read_bioasq(_written(result))
        assert written == first_words_answers(pairs)
        assert all(len(a) <= 5 and len({x.lower() for x in a}) == len(a) for a in written.values())
        goldens = {scoring.batch_name(g): formats.read_bioasq_golden(g) for _, _, g in batches}
        assert set(written) == {q for g in goldens.values() for q in g}
        expected = metrics.bioasq_year_scores(
            {n: metrics.bioasq_factoid_scores(g, written) for n, g in goldens.items()}
        )
        for key in ("strict_accuracy", "lenient_accuracy", "mrr"):
            assert result[key] == expected[key]
        assert (
            result["main_key"] == "lenient_accuracy" and result["convention"] == "official BioASQ"
        )
        assert result["answer_merge"] == "biobert" and result["run"]["answer_merge"] == "biobert"
        assert result["per_batch"] == expected["per_batch"]
    # The max rule, asked for by name, merges as it says; the two rules differ on these files.
    result = runner.run(
        runner.RunConfig(
            paths["qa"],
            "bioasq6b",
            str(QA),
            str(tmp_path / "max"),
            batch_size=64,
            answer_merge="max",
        )
    )
    batches = formats.bioasq_batches(str(QA), "6b")
    pairs = [p for _, test, _ in batches for p in formats.read_squad(test)]
    written = predictions.read_bioasq(_written(result))
    assert written == first_words_answers(pairs, "max") != first_words_answers(pairs)
    assert result["answer_merge"] == "max"


def test_relation_extraction_gad_and_chemprot(models, tmp_path):
    paths, _ = models
    gad_dir = str(SHARED_DATA / "re" / "GAD")
    _need(SHARED_DATA / "re" / "GAD" / "test.tsv")
    result = runner.run(runner.RunConfig(paths["gad"], "gad", gad_dir, str(tmp_path / "out")))
    gold = formats.read_re(str(SHARED_DATA / "re" / "GAD" / "test.tsv"))
    values = [keyword_label(ex.text_a, GAD_RULES, "0") for ex in gold]
    assert result["micro_f1"] == metrics.re_scores([ex.label for ex in gold], values)["micro_f1"]
    rescored = scoring.score_files(
        "gad", str(SHARED_DATA / "re" / "GAD" / "test.tsv"), _written(result)
    )
    assert rescored["micro_f1"] == result["micro_f1"]
    # ChemProt (BLURB) has a dev split only here; the first 1500 rows keep the test quick.
    chem_dir = _subset(
        SHARED_DATA / "re" / "ChemProt-blurb" / "dev.tsv", tmp_path / "chemprot" / "dev.tsv", 1500
    )
    result = runner.run(
        runner.RunConfig(paths["re"], "chemprot", chem_dir, str(tmp_path / "out"), split="dev")
    )
    gold = formats.read_re(str(tmp_path / "chemprot" / "dev.tsv"))
    values = [keyword_label(ex.text_a, CHEMPROT_RULES, "false") for ex in gold]
    expected = metrics.re_scores(
        [ex.label for ex in gold], values, positive_labels=metrics.CHEMPROT_POSITIVE_LABELS
    )
    assert result["micro_f1"] == expected["micro_f1"] > 0
    assert result["per_class"] == expected["per_class"]


def test_a_label_outside_the_datasets_set_is_refused(models, tmp_path):
    """ChemProt's model on GAD answers CPR:3 / CPR:4: counted silently, they would be positives."""
    paths, _ = models
    _need(SHARED_DATA / "re" / "GAD" / "test.tsv")
    config = runner.RunConfig(paths["re"], "gad", str(SHARED_DATA / "re" / "GAD"), str(tmp_path))
    with pytest.raises(
        formats.FormatError, match=r"expected a gad label in \['0', '1'\]; got '(false|CPR:\d)'"
    ):
        runner.run(config)


def test_hoc_label_names_map_to_gold_indexes(models, tmp_path):
    paths, _ = models
    hoc_dir = SHARED_DATA / "classification" / "HoC"
    _need(hoc_dir / "test.tsv")
    result = runner.run(runner.RunConfig(paths["hoc"], "hoc", str(hoc_dir), str(tmp_path)))
    gold = formats.read_hoc(str(hoc_dir / "test.tsv"))
    written = predictions.read_id_predictions(_written(result))
    assert [written[ex.id][0] for ex in gold] == [hallmark_labels(ex.text_a) for ex in gold]
    expected = metrics.hoc_scores(
        [ex.id for ex in gold],
        [ex.label for ex in gold],
        [hallmark_labels(ex.text_a) for ex in gold],
    )
    assert result["micro_f1"] == expected["micro_f1"] > 0
    assert result["run"]["num_examples"] == 3547


def test_sts_on_biosses(models, tmp_path):
    paths, _ = models
    biosses = SHARED_DATA / "sts" / "BIOSSES"
    _need(biosses / "test.tsv")
    result = runner.run(runner.RunConfig(paths["sts"], "biosses", str(biosses), str(tmp_path)))
    gold = formats.read_sts(str(biosses / "test.tsv"))
    la = np.array([len(ex.text_a.encode()) for ex in gold], np.float32)
    lb = np.array([len(ex.text_b.encode()) for ex in gold], np.float32)
    expected = metrics.sts_scores(
        [ex.score for ex in gold], 4 * np.minimum(la, lb) / np.maximum(la, lb)
    )
    assert result["pearson"] == pytest.approx(expected["pearson"], abs=1e-6)
    assert result["spearman"] == pytest.approx(expected["spearman"], abs=1e-9)


def test_mednli_on_rows_in_its_documented_format(models, tmp_path):
    """MedNLI is credentialed: a few rows in its jsonl format stand in for it."""
    paths, _ = models
    mednli = tmp_path / "mednli"
    mednli.mkdir()
    rows = [
        ("Patient is afebrile today.", "No fever.", "entailment"),
        ("No fever.", "The patient has a documented fever of 39 C.", "contradiction"),
        ("Cough.", "Patient reports a cough since Monday.", "neutral"),
    ]
    (mednli / "mli_test_v1.jsonl").write_text(
        "".join(
            json.dumps({"sentence1": a, "sentence2": b, "gold_label": g, "pairID": f"p{i}"}) + "\n"
            for i, (a, b, g) in enumerate(rows)
        )
    )
    result = runner.run(runner.RunConfig(paths["nli"], "mednli", str(mednli), str(tmp_path)))
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert predictions.read_id_predictions(_written(result))["p2"][0] == "contradiction"


def test_tiny_ner_and_bioasq_files_without_shared_data(models, tmp_path):
    """Every code path at tiny size, on files written here."""
    paths, gazetteer = models
    ner_dir = tmp_path / "ner"
    ner_dir.mkdir()
    (ner_dir / "test.tsv").write_text(
        "-DOCSTART-\tO\n\nthe\tB\ncancer\tI\nwas\tO\n\nA\tO\ntumor\tB\n\n"
    )
    result = runner.run(runner.RunConfig(paths["ner"], "bc2gm", str(ner_dir), str(tmp_path)))
    # Predicted: O B O / O B; gold: (the cancer), (tumor): one of two found.
    assert not {"the", "was", "a"} & gazetteer
    assert (result["gold_entities"], result["predicted_entities"]) == (2, 2)
    assert result["correct_entities"] == 1 and result["entity_f1"] == 0.5
    qa_dir = tmp_path / "qa"
    qa_dir.mkdir()
    squad = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": "Zika belongs to Flaviviridae",
                        "qas": [{"id": "q1_000", "question": "?"}],
                    },
                    {
                        "context": "Flaviviridae zika is a family",
                        "qas": [{"id": "q1_001", "question": "?"}],
                    },
                ]
            }
        ]
    }
    golden = {"questions": [{"id": "q1", "type": "factoid", "exact_answer": [["flaviviridae"]]}]}
    for n in range(1, 6):
        (qa_dir / f"BioASQ-test-factoid-4b-{n}.json").write_text(json.dumps(squad))
        (qa_dir / f"4B{n}_golden.json").write_text(json.dumps(golden))
    result = runner.run(runner.RunConfig(paths["qa"], "bioasq4b", str(qa_dir), str(tmp_path)))
    # Probabilities (5 - rank) / (1 + bytes / 1000), summed per lowercased answer: "Zika"
    # (ranks 0 and 1: 4.86 + 3.89) beats "Flaviviridae" (ranks 3 and 0: 1.95 + 4.86), spelled as
    # its more probable, snippet-2 occurrence; then belongs, to, is (3.89, 2.92, 2.92).
    written = predictions.read_bioasq(_written(result))
    assert written == {"q1": ["Zika", "Flaviviridae", "belongs", "to", "is"]}
    assert (result["strict_accuracy"], result["lenient_accuracy"], result["mrr"]) == (0.0, 1.0, 0.5)
