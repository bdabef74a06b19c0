"""The scorer's invariant: a gold file written back as predictions scores a main score of exactly
1.0, and lower once one prediction is changed; for every dataset of the registry, in every
format it reads (files written here), and for every gold file in ../shared/data."""

from __future__ import annotations

import json
import pathlib

import pytest

from bioalbert_tf.evaluation import datasets, formats, metrics, predictions, scoring
from tests.conftest import SHARED_DATA

# --------------------------------------------------------------------------- gold -> predictions


def _write_predictions(spec, gold_path: str, out: pathlib.Path, change_one: bool) -> str:
    """The gold of gold_path in the prediction format `score` reads; change_one: one prediction
    made wrong (a positive one, so every metric of the task sees it)."""
    if spec.task == datasets.NER:
        sentences = formats.read_ner(gold_path)
        tags = [list(s.tags) for s in sentences]
        if change_one:
            n, k = next((n, k) for n, t in enumerate(tags) for k, tag in enumerate(t) if tag != "O")
            tags[n][k] = "O"
        pred = out / "predictions.tsv"
        predictions.write_ner(
            str(pred), ((s.words, t) for s, t in zip(sentences, tags, strict=True))
        )
        return str(pred)
    rows = formats.read_examples(spec.task, gold_path)
    values: list = [ex.score if spec.task == datasets.STS else ex.label for ex in rows]
    if change_one:
        scored = datasets.for_file(spec, gold_path)
        if spec.task == datasets.STS:
            values[0] = values[0] + 1.7
        elif spec.task == datasets.DOC:
            # every hallmark on one sentence: its abstract gains labels it does not have
            values[0] = metrics.format_hoc_labels([1] * len(metrics.parse_hoc_labels(values[0])))
        else:
            negative = set(scored.negative_labels)
            k = next(k for k, v in enumerate(values) if v not in negative)
            labels = scored.labels or sorted(set(values))
            values[k] = next(v for v in labels if v != values[k])
    pred = out / "predictions.tsv"
    predictions.write_id_predictions(
        str(pred), ((ex.id, v) for ex, v in zip(rows, values, strict=True))
    )
    return str(pred)


def _check_gold_scores_one(dataset: str, gold_path: str, tmp_path: pathlib.Path) -> dict:
    spec = datasets.get(dataset)
    exact = scoring.score_files(
        dataset, gold_path, _write_predictions(spec, gold_path, tmp_path, False)
    )
    # Pearson of a vector with itself is 1 up to scipy's rounding (0.9999999999999999).
    one = pytest.approx(1.0, abs=1e-12) if spec.task == datasets.STS else 1.0
    assert exact["main_score"] == one, (dataset, gold_path, exact["main_key"], exact["main_score"])
    changed = scoring.score_files(
        dataset, gold_path, _write_predictions(spec, gold_path, tmp_path, True)
    )
    assert changed["main_score"] < 1.0, (dataset, gold_path, changed["main_score"])
    return exact


def _bioasq_predictions(golden_paths, change_one: bool) -> dict[str, list[str]]:
    answers = {}
    for path in golden_paths:
        for qid, synonyms in formats.read_bioasq_golden(str(path)).items():
            answers[qid] = [synonyms[0]]
    if change_one:
        answers[next(iter(answers))] = ["not an answer of any question"]
    return answers


def _check_bioasq_gold_scores_one(dataset, golden_paths, tmp_path) -> dict:
    pred = tmp_path / "predictions.json"
    gold = ",".join(str(p) for p in golden_paths)
    pred.write_text(json.dumps(_bioasq_predictions(golden_paths, False)))
    exact = scoring.score_files(dataset, gold, str(pred))
    assert exact["main_score"] == 1.0 and exact["strict_accuracy"] == exact["mrr"] == 1.0
    pred.write_text(json.dumps(_bioasq_predictions(golden_paths, True)))
    assert scoring.score_files(dataset, gold, str(pred))["main_score"] < 1.0
    return exact


# ----------------------------------------------------------------- files in every documented format


def _lines(path: pathlib.Path, lines: list[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


NER_TSV = [
    "Ataxia\tB",
    "telangiectasia\tI",
    "is\tO",
    "rare\tO",
    "",
    "BRCA1\tO",
    "breast\tB",
    "cancer\tI",
    "and\tO",
    "ovarian\tB",
    "cancer\tI",
    ".\tO",
]
NER_TYPED_CONLL = [
    "-DOCSTART- -X- O O",
    "",
    "Aspirin NN O B-Chemical",
    "caused NN O O",
    "gastric NN O B-Disease",
    "bleeding NN O I-Disease",
    "",
    "No DT O O",
    "naloxone NN O B-Chemical",
    "effect NN O O",
]


def _written_files(root: pathlib.Path) -> list[tuple[str, str]]:
    """(dataset, gold file) for every dataset of the registry, in each format it reads."""
    out = []
    for name, spec in datasets.REGISTRY.items():
        if spec.task == datasets.NER:
            out.append((name, _lines(root / name / "iob" / "test.tsv", NER_TSV)))
            out.append((name, _lines(root / name / "conll" / "test.tsv", NER_TYPED_CONLL)))
    labelled = {
        "ddi": ["DDI-mechanism", "DDI-false", "DDI-effect", "DDI-advise", "DDI-int", "DDI-false"],
        "chemprot": ["CPR:4", "false", "CPR:3", "CPR:9", "false", "CPR:6", "CPR:5"],
        "i2b2": ["TrAP", "false", "TeRP", "PIP", "TrCP", "TrIP", "TrNAP", "TrWP", "TeCP"],
        "gad": ["1", "0", "1", "1", "0"],
        "euadr": ["0", "1", "1", "0", "1"],
    }
    for name, labels in labelled.items():
        # BLURB / BLUE: id<TAB>sentence<TAB>label, no header
        rows = [
            f"{name}.{k}\t@GENE$ and @DISEASE$ in sentence {k} .\t{v}" for k, v in enumerate(labels)
        ]
        out.append((name, _lines(root / name / "blurb" / "test.tsv", rows)))
    for name in ("gad", "euadr"):
        labels = labelled[name]
        rows = [f"{k}\t@GENE$ variant and @DISEASE$ {k} .\t{v}" for k, v in enumerate(labels)]
        out.append(
            (name, _lines(root / name / "header" / "test.tsv", ["index\tsentence\tlabel", *rows]))
        )
        rows = [f"@GENE$ variant and @DISEASE$ {k} .\t{v}" for k, v in enumerate(labels)]
        out.append((name, _lines(root / name / "biobert" / "test.tsv", rows)))  # no id, no header
    scibert = ["INHIBITOR", "ACTIVATOR", "SUBSTRATE", "INHIBITOR", "PRODUCT-OF", "AGONIST"]
    rows = [
        json.dumps({"text": f"<< drug{k} >> acts on [[ gene{k} ]] .", "label": v, "metadata": []})
        for k, v in enumerate(scibert)
    ]
    out.append(("chemprot", _lines(root / "chemprot" / "scibert" / "test.txt", rows)))
    hoc = ["labels\tsentence\tindex"] + [
        f"{labels}\tSentence {k} of an abstract.\t{pmid}_s{k}"
        for k, (labels, pmid) in enumerate(
            [
                ("0_1,1_0,2_0,3_0,4_0,5_0,6_0,7_0,8_0,9_0", "111"),
                ("0_0,1_0,2_0,3_1,4_0,5_0,6_0,7_0,8_0,9_1", "111"),
                ("0_0,1_0,2_0,3_0,4_0,5_0,6_0,7_0,8_0,9_0", "222"),  # an abstract without a label
                ("0_0,1_1,2_1,3_0,4_0,5_0,6_0,7_0,8_0,9_0", "333"),
            ]
        )
    ]
    out.append(("hoc", _lines(root / "hoc" / "test.tsv", hoc)))
    nli = [("a1", "entailment"), ("a2", "contradiction"), ("a3", "neutral"), ("a4", "entailment")]
    out.append(
        (
            "mednli",
            _lines(
                root / "mednli" / "mli_test_v1.jsonl",
                [
                    json.dumps(
                        {
                            "sentence1": f"Premise {i}.",
                            "sentence2": f"Hypothesis {i}.",
                            "gold_label": label,
                            "pairID": i,
                        }
                    )
                    for i, label in nli
                ],
            ),
        )
    )
    scores = [0.0, 1.5, 4.0, 2.25, 3.0]
    for name in ("biosses", "medsts"):
        rows = [
            f"{k}\tFirst sentence {k}.\tSecond sentence {k}.\t{v}" for k, v in enumerate(scores)
        ]
        out.append(
            (
                name,
                _lines(
                    root / name / "header" / "test.tsv", ["pair_id\tsent1\tsent2\tscore", *rows]
                ),
            )
        )
        rows = [f"First sentence {k}.\tSecond sentence {k}.\t{v}" for k, v in enumerate(scores)]
        out.append((name, _lines(root / name / "plain" / "test.tsv", rows)))  # no id, no header
    return out


def test_gold_as_predictions_scores_one_in_every_format(tmp_path):
    written = _written_files(tmp_path / "gold")
    for k, (dataset, gold_path) in enumerate(written):
        _check_gold_scores_one(dataset, gold_path, tmp_path / f"pred{k}")
    covered = {name for name, _ in written}
    for year in ("4b", "5b", "6b"):
        golden = tmp_path / "bioasq" / f"{year.upper()}1_golden.json"
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(
            json.dumps(
                {
                    "questions": [
                        {
                            "id": f"{year}q1",
                            "type": "factoid",
                            "exact_answer": [["neural crest cells"], ["NCC"]],
                        },
                        {
                            "id": f"{year}q2",
                            "type": "factoid",
                            "exact_answer": ["TNF-alpha", "TNF"],
                        },
                        {
                            "id": f"{year}q3",
                            "type": "factoid",
                            "exact_answer": [[" padded answer "]],
                        },
                        {"id": f"{year}q4", "type": "yesno", "exact_answer": "yes"},
                    ]
                }
            )
        )
        exact = _check_bioasq_gold_scores_one(f"bioasq{year}", [golden], tmp_path)
        assert exact["num_questions"] == 3  # the yes/no question is not a factoid one
        covered.add(f"bioasq{year}")
    assert covered == set(datasets.REGISTRY)


def test_chemprot_files_in_scibert_format_score_their_own_classes(tmp_path):
    """ChemProt's SciBERT files have 13 named classes and no negative one: scored over all of
    them (micro F1 = accuracy), not over CPR:3/4/5/6/9, which they never use."""
    written = dict((p, d) for d, p in _written_files(tmp_path))
    path = next(p for p in written if p.endswith("scibert/test.txt"))
    exact = _check_gold_scores_one("chemprot", path, tmp_path / "pred")
    assert exact["convention"] == "SciBERT" and exact["micro_f1"] == exact["accuracy"] == 1.0
    blurb = next(p for p in written if p.endswith("chemprot/blurb/test.tsv"))
    assert (
        scoring.score_files(
            "chemprot", blurb, _write_predictions(datasets.get("chemprot"), blurb, tmp_path, False)
        )["convention"]
        == "BLURB"
    )


# -------------------------------------------------------------------------- files in shared/data


def _shared_gold_files() -> list[tuple[str, pathlib.Path]]:
    files = []
    for folder, dataset in (
        ("ner/NCBI-disease", "ncbi_disease"),
        ("ner/BC5CDR-chem", "bc5cdr_chem"),
        ("ner/BC5CDR-disease", "bc5cdr_disease"),
        ("re/GAD", "gad"),
        ("re/ChemProt-scibert", "chemprot"),
        ("re/ChemProt-blurb", "chemprot"),
        ("re/DDI-blurb", "ddi"),
        ("classification/HoC", "hoc"),
        ("sts/BIOSSES", "biosses"),
    ):
        for path in sorted((SHARED_DATA / folder).glob("*.t*")):
            if path.suffix in (".tsv", ".txt"):
                files.append((dataset, path))
    return files


@pytest.mark.slow
def test_every_gold_file_in_shared_data_scores_one_as_its_own_predictions(tmp_path):
    files = _shared_gold_files()
    if not files:
        pytest.skip(f"shared benchmark data missing ({SHARED_DATA}); CI provides ../shared/data")
    assert len(files) >= 25, [str(p) for _, p in files]
    for k, (dataset, path) in enumerate(files):
        _check_gold_scores_one(dataset, str(path), tmp_path / f"pred{k}")
    goldens = sorted((SHARED_DATA / "qa" / "BioASQ").glob("*_golden.json"))
    assert len(goldens) == 15
    for year in ("4b", "5b", "6b"):
        batch = [g for g in goldens if g.name.startswith(year.upper())]
        exact = _check_bioasq_gold_scores_one(f"bioasq{year}", batch, tmp_path)
        assert len(exact["per_batch"]) == 5


def test_chemprot_scibert_dev_selection_sees_a_real_score():
    """Fine-tuning selects its checkpoint on scoring.evaluate over the dev Gold: on SciBERT's
    ChemProt files that score moves with the predictions instead of being a constant 0."""
    folder = SHARED_DATA / "re" / "ChemProt-scibert"
    if not (folder / "dev.txt").exists():
        pytest.skip(f"shared benchmark data missing ({folder}); CI provides ../shared/data")
    spec = datasets.get("chemprot")
    assert len(datasets.labels_for(spec, str(folder))) == 13
    dev = scoring.load_gold(spec, str(folder), "dev")
    right = scoring.evaluate(dev, lambda rows: [r.label for r in rows]).scores
    assert right["main_score"] == 1.0 and right["convention"] == "SciBERT"
    half = scoring.evaluate(
        dev, lambda rows: [r.label if k % 2 else "INHIBITOR" for k, r in enumerate(rows)]
    ).scores
    expected = sum(
        r.label == ("INHIBITOR" if k % 2 == 0 else r.label) for k, r in enumerate(dev.rows)
    )
    assert half["main_score"] == pytest.approx(expected / len(dev.rows))
    assert 0 < half["main_score"] < 1
