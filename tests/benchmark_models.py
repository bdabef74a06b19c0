"""Small SavedModels that serve the signature contract, for the benchmark runner's tests: a
gazetteer tagger (NER), keyword classifiers (RE, HoC), length-ratio pair models (STS, NLI) and a
first-words reader (QA), saved by the `models` fixture.

Each model's rule is mirrored in plain Python here, so the predictions the runner writes are
checked against independently computed ones, and the metrics it writes against the metrics of
those predictions.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from bioalbert_tf.evaluation import formats, metrics
from tests.conftest import SHARED_DATA

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


@pytest.fixture(scope="module", name="models")
def saved_models(tmp_path_factory):
    """(SavedModel folder by name, the NER gazetteer): each model above, saved once per module
    that uses it (a second or two)."""
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


def _subset(src, dst, rows, header=False):
    lines = src.read_text(encoding="utf-8").split("\n")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(lines[: rows + header]) + "\n", encoding="utf-8")
    return str(dst.parent)
