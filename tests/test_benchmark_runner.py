"""The runner on small SavedModels that serve the signature contract, over real shared files.

Each model's rule is mirrored in plain Python here, so the predictions the runner writes are
checked against independently computed ones, and the metrics it writes against the metrics of
those predictions.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from bioalbert_tf.benchmark import runner
from bioalbert_tf.evaluation import formats, metrics, predictions, scoring
from tests.conftest import ROOT, SHARED_DATA

tf = pytest.importorskip("tensorflow")

NCBI = SHARED_DATA / "ner" / "NCBI-disease"
QA = SHARED_DATA / "qa" / "BioASQ"
HOC_KEYWORDS = [
    "tumor",
    "cell",
    "growth",
    "apoptosis",
    "angiogen",
    "invasi",
    "immune",
    "dna",
    "inflamm",
    "metabol",
]
CHEMPROT_RULES = [("inhibit", "CPR:4"), ("activat", "CPR:3")]
GAD_RULES = [("associat", "1")]


def _need(path):
    if not path.exists():
        pytest.skip(f"shared benchmark data missing ({path}); CI provides ../shared/data")
    return str(path)


# --------------------------------------------------------------------------- the models


class GazetteerTagger(tf.Module):
    """NER: a word in the gazetteer is B (I after another gazetteer word), else O."""

    def __init__(self, words):
        super().__init__()
        keys = tf.constant(sorted(words))
        init = tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.int64))
        self.table = tf.lookup.StaticHashTable(init, default_value=0)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None], tf.string), tf.TensorSpec([None], tf.int32)]
    )
    def tag_words(self, words, num_words):
        hit = self.table.lookup(tf.strings.lower(words)) > 0  # [batch, max_words]
        prev = tf.pad(hit[:, :-1], [[0, 0], [1, 0]])
        tags = tf.where(hit, tf.where(prev, "I", "B"), "O")
        valid = tf.sequence_mask(num_words, tf.shape(words)[1])
        return {"tags": tf.where(valid, tags, "")}


def gazetteer_tags(words, gazetteer):
    hits = [w.encode().lower().decode() in gazetteer for w in words]
    return [("I" if k and hits[k - 1] else "B") if h else "O" for k, h in enumerate(hits)]


class KeywordClassifier(tf.Module):
    """RE: the label of the first rule whose keyword the text contains, else the default."""

    def __init__(self, rules, default, labels):
        super().__init__()
        self.rules, self.default, self.labels = rules, default, labels

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, text):
        lower = tf.strings.lower(text)
        label = tf.fill(tf.shape(text), self.default)
        for keyword, value in reversed(self.rules):  # the first rule wins
            label = tf.where(tf.strings.regex_full_match(lower, f"(?s).*{keyword}.*"), value, label)
        probabilities = tf.cast(
            tf.equal(label[:, None], tf.constant(self.labels)[None, :]), tf.float32
        )
        return {"label": label, "probabilities": probabilities}


def keyword_label(text, rules, default):
    lower = text.encode().lower()  # tf.strings.lower is ASCII-only; so is bytes.lower
    return next((v for k, v in rules if k.encode() in lower), default)


class HallmarkTagger(tf.Module):
    """HoC: hallmark j is active when keyword j occurs; label names in reverse order, so the
    runner must map names to indexes."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, text):
        lower = tf.strings.lower(text)
        order = list(reversed(range(len(HOC_KEYWORDS))))
        active = tf.stack(
            [
                tf.cast(tf.strings.regex_full_match(lower, f"(?s).*{HOC_KEYWORDS[j]}.*"), tf.int32)
                for j in order
            ],
            axis=1,
        )
        names = tf.tile(tf.constant([[str(j) for j in order]]), [tf.shape(text)[0], 1])
        return {
            "active": active,
            "label_names": names,
            "probabilities": tf.cast(active, tf.float32),
        }


def hallmark_labels(text):
    lower = text.encode().lower()
    return metrics.format_hoc_labels([int(k.encode() in lower) for k in HOC_KEYWORDS])


class PairModel(tf.Module):
    """STS: 4 * (shorter / longer byte length) ** power; NLI: entailment when text_b is
    shorter."""

    def __init__(self, power=1.0):
        super().__init__()
        self.power = power

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def sts(self, text_a, text_b):
        la = tf.cast(tf.strings.length(text_a), tf.float32)
        lb = tf.cast(tf.strings.length(text_b), tf.float32)
        ratio = tf.minimum(la, lb) / tf.maximum(tf.maximum(la, lb), 1.0)
        return {"score": 4.0 * ratio**self.power}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def nli(self, text_a, text_b):
        shorter = tf.strings.length(text_b) < tf.strings.length(text_a)
        label = tf.where(shorter, "entailment", "contradiction")
        return {"label": label, "probabilities": tf.one_hot(tf.cast(shorter, tf.int32), 3)}


class FirstWordsReader(tf.Module):
    """QA: the first 5 space-separated tokens of the snippet, probability (5 - rank) / (1 +
    snippet bytes / 1000), so snippets and ranks compete when answers are merged."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def serve(self, question, context):
        answers = tf.strings.split(context, sep=" ").to_tensor("", shape=[None, 5])
        weight = 1.0 + tf.cast(tf.strings.length(context), tf.float32) / 1000.0
        probs = tf.constant([5.0, 4.0, 3.0, 2.0, 1.0])[None, :] / weight[:, None]
        return {"answers": answers, "answer_probabilities": probs}


def first_words_answers(pairs, rule="biobert"):
    """The runner's merge, restated. biobert: probabilities of each lowercased answer summed over
    the snippets, spelled as its most probable occurrence, ranked by the sum (ties: first in
    probability order); max: best probability per stripped, lowercased answer (ties: first
    seen); top 5 either way."""
    best = collections.defaultdict(dict)
    pooled = collections.defaultdict(list)
    for p in pairs:
        words = (p.context.split(" ") + [""] * 5)[:5]
        weight = np.float32(1) + np.float32(len(p.context.encode())) / np.float32(1000)
        for k, w in enumerate(words):
            prob = float(np.float32(5 - k) / weight)
            if w:
                pooled[p.question_id].append((prob, w))
            key = w.strip().lower()
            if not key:
                continue
            seen = best[p.question_id]
            if key not in seen:
                seen[key] = (prob, len(seen), w.strip())
            elif prob > seen[key][0]:
                seen[key] = (prob, seen[key][1], w.strip())
    if rule == "max":
        return {
            qid: [t for _, _, t in sorted(d.values(), key=lambda v: (-v[0], v[1]))[:5]]
            for qid, d in best.items()
        }
    out = {}
    for qid, items in pooled.items():
        sums, spelling, first = collections.Counter(), {}, {}
        for rank, (prob, w) in enumerate(sorted(items, key=lambda x: -x[0])):
            if len(w) > 100:
                continue
            sums[w.lower()] += prob
            spelling.setdefault(w.lower(), w)
            first.setdefault(w.lower(), rank)
        ranked = sorted(sums, key=lambda key: (-sums[key], first[key]))
        out[qid] = [spelling[key] for key in ranked[:5]]
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    gazetteer = {"cancer", "tumor", "tumors", "carcinoma", "ataxia", "telangiectasia"}
    if (NCBI / "train.tsv").exists():
        counts = collections.Counter()
        for s in formats.read_ner(str(NCBI / "train.tsv")):
            for w, t in zip(s.words, s.tags, strict=True):
                counts[(w.lower(), t != "O")] += 1
        # Words seen inside entities more often than outside them.
        gazetteer |= {
            w for (w, ent), n in counts.items() if ent and n > counts[(w, False)] and len(w) > 2
        }
    paths = {}

    def save(name, module, signatures):
        paths[name] = str(root / name)
        tf.saved_model.save(module, paths[name], signatures=signatures)

    tagger = GazetteerTagger(gazetteer)
    save("ner", tagger, {"tag_words": tagger.tag_words.get_concrete_function()})
    re_model = KeywordClassifier(CHEMPROT_RULES, "false", ["false", "CPR:3", "CPR:4"])
    save("re", re_model, {"serving_default": re_model.serve.get_concrete_function()})
    gad_model = KeywordClassifier(GAD_RULES, "0", ["0", "1"])
    save("gad", gad_model, {"serving_default": gad_model.serve.get_concrete_function()})
    hoc = HallmarkTagger()
    save("hoc", hoc, {"serving_default": hoc.serve.get_concrete_function()})
    pair = PairModel()
    save("sts", pair, {"serving_default": pair.sts.get_concrete_function()})
    save("nli", pair, {"serving_default": pair.nli.get_concrete_function()})
    pair2 = PairModel(power=2.0)
    save("sts2", pair2, {"serving_default": pair2.sts.get_concrete_function()})
    qa = FirstWordsReader()
    save("qa", qa, {"serving_default": qa.serve.get_concrete_function()})
    return paths, gazetteer


def _written(result):
    return result["run"]["predictions"]


# ---------------------------------------------------------------------------------- tests


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


def _subset(src, dst, rows, header=False):
    lines = src.read_text(encoding="utf-8").split("\n")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(lines[: rows + header]) + "\n", encoding="utf-8")
    return str(dst.parent)


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


def test_another_runs_results_are_refused_not_replaced(models, tmp_path):
    """A run folder is named by dataset and seed only: another split (or SavedModel, data folder,
    batch size) there is refused before anything is written, unless --overwrite; a rerun of the
    same run replaces its own result, and two runs of one suite may not share a folder."""
    paths, _ = models
    ner_dir = tmp_path / "ner"
    ner_dir.mkdir()
    for split in ("test", "dev"):
        (ner_dir / f"{split}.tsv").write_text("the\tB\ncancer\tI\nwas\tO\n\n")
    out = tmp_path / "out"
    first = runner.RunConfig(paths["ner"], "bc2gm", str(ner_dir), str(out))
    runner.run(first)
    runner.run(first)
    folder = out / "bc2gm"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    dev = dataclasses.replace(first, split="dev")
    message = (
        rf"{folder} holds the result of another run made with other settings; 1 differ:\n"
        rf"  split: 'test' in {folder}/metrics.json, 'dev' now\n"
        r"Use another --output_dir \(or --seed\), or pass --overwrite"
    )
    with pytest.raises(ValueError, match=message):
        runner.run(dev)
    with pytest.raises(ValueError, match=r"  saved_model: '.*/ner' in .*, '.*/re' now"):
        runner.run_suite([dataclasses.replace(first, saved_model=paths["re"])], progress=False)
    with pytest.raises(ValueError, match=rf"would both write {tmp_path}/other/bc2gm; give them"):
        runner.run_suite(
            [dataclasses.replace(c, output_dir=str(tmp_path / "other")) for c in (first, dev)],
            progress=False,
        )
    cmd = [
        sys.executable,
        "-m",
        "bioalbert_tf.benchmark",
        f"--saved_model={paths['ner']}",
        "--dataset=bc2gm",
        f"--data_dir={ner_dir}",
        f"--output_dir={out}",
        "--split=dev",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and re.search("error: " + message, proc.stderr), proc.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (tmp_path / "other").exists()
    proc = subprocess.run(
        cmd + ["--overwrite"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((folder / "metrics.json").read_text())["run"]["split"] == "dev"


def test_contract_errors_are_clear(models, tmp_path):
    paths, _ = models
    _need(NCBI / "test.tsv")
    with pytest.raises(
        ValueError, match=r"has no signature 'tag_words'; it has \['serving_default'\]"
    ):
        runner.run(runner.RunConfig(paths["re"], "ncbi_disease", str(NCBI), str(tmp_path)))
    with pytest.raises(ValueError, match=r"expected inputs \['text_a', 'text_b'\]"):
        runner.run(
            runner.RunConfig(
                paths["re"], "biosses", str(SHARED_DATA / "sts" / "BIOSSES"), str(tmp_path)
            )
        )
    with pytest.raises(FileNotFoundError, match="not a SavedModel"):
        runner.run(runner.RunConfig(str(tmp_path), "ncbi_disease", str(NCBI), str(tmp_path)))
    with pytest.raises(FileNotFoundError, match=r"no train file \(looked for train.tsv, train.txt"):
        runner.run(
            runner.RunConfig(
                paths["ner"], "ncbi_disease", str(tmp_path), str(tmp_path), split="train"
            )
        )


def test_suite_cli_with_seeds_writes_the_report(models, tmp_path):
    """The command line over a suite: two seeds of BIOSSES and one NER run; report.md shows
    mean ± sd, references, and the run metadata; a chart per task."""
    paths, _ = models
    biosses = SHARED_DATA / "sts" / "BIOSSES"
    _need(biosses / "test.tsv")
    ner_dir = _subset(NCBI / "test.tsv", tmp_path / "ncbi" / "test.tsv", 2000)
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            [
                {
                    "dataset": "biosses",
                    "saved_model": paths["sts"],
                    "data_dir": str(biosses),
                    "seed": 1,
                },
                {
                    "dataset": "biosses",
                    "saved_model": paths["sts2"],
                    "data_dir": str(biosses),
                    "seed": 2,
                },
                {
                    "dataset": "biosses",
                    "saved_model": paths["sts"],
                    "data_dir": str(biosses),
                    "seed": 3,
                    "split": "dev",
                },
                {
                    "dataset": "ncbi_disease",
                    "saved_model": paths["ner"],
                    "data_dir": ner_dir,
                    "seed": 1,
                },
            ]
        )
    )
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "bioalbert_tf.benchmark",
        f"--suite={suite}",
        f"--output_dir={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "biosses" in proc.stdout and "ex/s" in proc.stdout
    runs = [
        json.loads((out / "biosses" / f"seed_{s}" / "metrics.json").read_text()) for s in (1, 2, 3)
    ]
    assert [r["run"]["split"] for r in runs] == ["test", "test", "dev"]
    rep = json.loads((out / "report.json").read_text())
    # Seeds of the test split are averaged; the dev run is a row of its own, without references.
    row, dev_row = (r for r in rep["rows"] if r["dataset"] == "biosses")
    scores = [100 * r["pearson"] for r in runs[:2]]
    assert row["n"] == 2 and row["seeds"] == [1, 2] and row["split"] == "test"
    assert row["mean"] == pytest.approx(np.mean(scores))
    assert row["sd"] == pytest.approx(np.std(scores, ddof=1))
    assert row["sd"] > 0
    assert row["references"]["PubMedBERT"]["score"] == 92.30
    assert (dev_row["split"], dev_row["n"], dev_row["references"]) == ("dev", 1, {})
    assert rep["task_averages"]["sts"] == pytest.approx(row["mean"])
    md = (out / "report.md").read_text()
    assert f"{np.mean(scores):.2f} ± {np.std(scores, ddof=1):.2f}" in md
    assert runs[0]["run"]["saved_model_sha256"][:16] in md
    assert formats.file_sha256(str(biosses / "test.tsv"))[:12] in md
    for task in ("sts", "ner"):
        assert (out / f"chart_{task}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"\| ncbi_disease \| 1 \| None \| test \|", md)
    # A broken suite entry is an error naming the file.
    suite.write_text(json.dumps([{"dataset": "biosses"}]))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and f"error: {suite}" in proc.stderr


def _modules_loaded_by(imports: str, top: tuple, prefixes: tuple) -> list[str]:
    """Modules of `top` packages or under `prefixes` that a fresh process loads for `imports`."""
    code = (
        f"import sys, pkgutil, importlib\n{imports}\n"
        "print([m for m in sys.modules "
        f"if m.split('.')[0] in {top!r} or m.startswith({prefixes!r})])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return eval(proc.stdout.strip().splitlines()[-1])


def test_benchmark_imports_no_modeling_code_and_no_tensorflow():
    downstream = (
        "bioalbert_tf.modeling",
        "bioalbert_tf.checkpoints",
        "bioalbert_tf.tasks",
        "bioalbert_tf.training.pretraining",
        "bioalbert_tf.training.finetuning",
    )
    # the library, and each command line in a process of its own (each defines its flags)
    for imports in (
        "import bioalbert_tf.benchmark.runner, bioalbert_tf.benchmark.reporting",
        "import bioalbert_tf.benchmark.__main__",
        "import bioalbert_tf.benchmark.score",
        "import bioalbert_tf.benchmark.report",
    ):
        assert _modules_loaded_by(imports, ("tensorflow",), downstream) == [], imports


def test_the_evaluation_core_imports_nothing_downstream():
    """Fine-tuning and the runner import the evaluation core, never the other way round."""
    imports = (
        "import bioalbert_tf.evaluation as ev\nfor m in pkgutil.iter_modules(ev.__path__):\n"
        "    importlib.import_module('bioalbert_tf.evaluation.' + m.name)"
    )
    downstream = (
        "bioalbert_tf.benchmark",
        "bioalbert_tf.training.finetuning",
        "bioalbert_tf.tasks",
        "bioalbert_tf.modeling",
        "bioalbert_tf.run_",
    )
    loaded = _modules_loaded_by(imports, ("tensorflow", "keras"), downstream)
    assert loaded == []
    # the check sees what it should: the runner does load the evaluation core
    assert "bioalbert_tf.evaluation.scoring" in _modules_loaded_by(
        "import bioalbert_tf.benchmark.runner", (), ("bioalbert_tf.evaluation",)
    )


def test_a_model_is_scored_on_the_dataset_it_was_trained_for(models, tmp_path):
    """assets/task.json names the dataset: a GAD model on EU-ADR (same task and labels) only
    with --allow_other_dataset; on ChemProt (other labels) never; nothing written when refused."""
    import shutil

    paths, _ = models
    _need(SHARED_DATA / "re" / "GAD" / "test.tsv")
    model = tmp_path / "gad_model"
    shutil.copytree(paths["gad"], model)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "task.json").write_text(
        json.dumps({"dataset": "gad", "task": "re", "labels": ["0", "1"]})
    )
    data = str(SHARED_DATA / "re" / "GAD")  # EU-ADR's files have GAD's format
    out = tmp_path / "out"
    euadr = runner.RunConfig(str(model), "euadr", data, str(out))
    with pytest.raises(
        ValueError,
        match=r"fine-tuned on gad \(.*task\.json\), not euadr; pass "
        r"--allow_other_dataset",
    ):
        runner.run_suite([euadr], progress=False)
    with pytest.raises(ValueError, match=r"cannot be scored on chemprot \(re, labels \['CPR:3'"):
        runner.run(dataclasses.replace(euadr, dataset="chemprot", allow_other_dataset=True))
    assert not out.exists()
    assert runner.run(dataclasses.replace(euadr, dataset="gad"))["main_score"] > 0
    cmd = [
        sys.executable,
        "-m",
        "bioalbert_tf.benchmark",
        f"--saved_model={model}",
        "--dataset=euadr",
        f"--data_dir={data}",
        f"--output_dir={out}",
        "--noreport",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert (
        proc.returncode == 1
        and "error: " in proc.stderr
        and "euadr" not in {p.name for p in out.iterdir()}
    ), proc.stderr[-2000:]
    proc = subprocess.run(
        cmd + ["--allow_other_dataset"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = json.loads((out / "euadr" / "metrics.json").read_text())
    assert written["dataset"] == "euadr" and written["convention"] == "BioBERT re_eval (binary)"


def test_a_suite_is_checked_whole_before_its_first_run(models, tmp_path):
    """A broken suite file is named (file, line or entry); an entry whose SavedModel or data is
    missing stops the suite before its first run, not after two runs and without a report."""
    paths, _ = models
    _need(SHARED_DATA / "sts" / "BIOSSES" / "test.tsv")
    suite = tmp_path / "suite.json"
    out = tmp_path / "out"
    suite.write_text('[{"dataset": "biosses",\n "saved_model": }]')
    with pytest.raises(formats.FormatError, match=rf"^{suite}:2: expected valid JSON"):
        runner.read_suite(str(suite), str(out))
    good = {
        "dataset": "biosses",
        "saved_model": paths["sts"],
        "data_dir": str(SHARED_DATA / "sts" / "BIOSSES"),
    }
    for bad, message in (
        ({**good, "seed": "one"}, r"run 1: seed as a JSON int; got '\"one\"'"),
        ({**good, "batch_size": True}, r"run 1: batch_size as a JSON int; got 'true'"),
        ({**good, "dataset": "biosses2"}, r"run 1: a dataset among .*; got 'biosses2'"),
        ({**good, "answer_merge": "sum"}, r"run 1: answer_merge among \['biobert', 'max'\]"),
    ):
        suite.write_text(json.dumps([bad]))
        with pytest.raises(formats.FormatError, match=rf"^{suite}: expected {message}"):
            runner.read_suite(str(suite), str(out))
    runs = [
        {**good, "seed": 1},
        {**good, "seed": 2},
        {**good, "seed": 3, "saved_model": str(tmp_path / "gone")},
    ]
    suite.write_text(json.dumps(runs))
    cmd = [
        sys.executable,
        "-m",
        "bioalbert_tf.benchmark",
        f"--suite={suite}",
        f"--output_dir={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"error: {tmp_path / 'gone'} is not a SavedModel folder" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_runner_output_faults_are_one_line(models, tmp_path, where):
    paths, _ = models
    _need(SHARED_DATA / "re" / "GAD" / "test.tsv")
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a folder\n")
    out, expected = {
        "under a file": (in_the_way / "out", (in_the_way, "a file is in the way")),
        "read-only": ("/sys/bioalbert_bench", ("/sys/bioalbert_bench", "permission denied")),
    }[where]
    cmd = [
        sys.executable,
        "-m",
        "bioalbert_tf.benchmark",
        f"--saved_model={paths['gad']}",
        "--dataset=gad",
        f"--data_dir={SHARED_DATA / 're' / 'GAD'}",
        f"--output_dir={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(f"error: {re.escape(str(expected[0]))}(/out)?: {expected[1]}", proc.stderr), (
        proc.stderr[-2000:]
    )
