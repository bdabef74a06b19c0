"""Prediction files: what the runner writes and what `score` reads, from any system.

- NER: the gold layout, `word<TAB>tag` with a blank line between sentences (a further column
  is allowed: the predicted tag is the last one, so conlleval's `word gold pred` works too);
  or BioBERT's pair `token_test.txt` + `label_test.txt` (one token / label per line, blank line
  between sentences; WordPiece `##` pieces and [CLS]/[SEP] are allowed: pieces are joined back
  onto the gold words and a word takes its first piece's label, as BioBERT's detokenizer does).
- RE / HoC / MedNLI / STS: TSV `id<TAB>prediction`, optional header `id<TAB>prediction`; the
  id is the gold id (row number where the gold has none); HoC predictions are label strings
  in the gold format `0_1,1_0,...`.
- BioASQ: JSON `{question_id: [answer_1, ..., answer_5]}`, every question of the golden files
  present (`[]` for one without an answer), at most 5 answers each.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from absl import logging

from bioalbert_tf import fileio
from bioalbert_tf.evaluation.formats import Example, FormatError, NerSentence, lines_of, load_json

_SPECIAL_TOKENS = {"[CLS]", "[SEP]", "[PAD]"}
# BioBERT's label vocabulary has these besides B/I/O; on a word's first piece they mean O.
_NON_TAGS = {"X", "[CLS]", "[SEP]", "[PAD]"}
HEADER = "id\tprediction"
NUM_ANSWERS = 5  # BioASQ scores the top 5 factoid answers


# ---------------------------------------------------------------------------------------- NER


def write_ner(path: str, sentences: Iterable[tuple[Sequence[str], Sequence[str]]]) -> None:
    """[(words, tags)] -> `word<TAB>tag` lines, a blank line after each sentence."""
    with fileio.open_file(path, "w") as f:
        for words, tags in sentences:
            f.write("".join(f"{w}\t{t}\n" for w, t in zip(words, tags, strict=True)) + "\n")


@dataclasses.dataclass(frozen=True)
class _Token:
    text: str
    tag: str
    where: str  # "file:line" for error messages


def read_ner_tokens(path: str) -> list[_Token]:
    """A `word<TAB>tag` prediction file as a token stream (sentence breaks are not needed:
    tokens are aligned to the gold words)."""
    out = []
    for number, line in enumerate(lines_of(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) == 1:
            fields = line.split()
        if fields[0].startswith("-DOCSTART-"):
            continue
        if len(fields) < 2 or not fields[-1].strip():
            raise FormatError(path, number, "'word<TAB>tag' or a blank line", line)
        out.append(_Token(fields[0].strip(), fields[-1].strip(), f"{path}:{number}"))
    return out


def read_biobert_pair(tokens_path: str, labels_path: str) -> list[_Token]:
    """BioBERT's token_test.txt + label_test.txt, checked line by line."""
    tokens, labels = lines_of(tokens_path), lines_of(labels_path)
    out = []
    for i in range(max(len(tokens), len(labels))):
        if i >= len(tokens) or i >= len(labels):
            short, n = (
                (tokens_path, len(tokens)) if i >= len(tokens) else (labels_path, len(labels))
            )
            raise FormatError(
                short,
                n + 1,
                f"as many lines as the other file ({max(len(tokens), len(labels))})",
                "end of file",
            )
        tok, lab = tokens[i].strip(), labels[i].strip()
        if bool(tok) != bool(lab):
            blank, other = (tokens_path, labels_path) if not tok else (labels_path, tokens_path)
            raise FormatError(other, i + 1, f"a blank line, as on {blank}:{i + 1}", tok or lab)
        if tok:
            out.append(_Token(tok, lab, f"{tokens_path}:{i + 1} / {labels_path}:{i + 1}"))
    return out


def _norm(text: str) -> str:
    # Uncased WordPiece output is lowercased and accent-stripped; compare on that form.
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c) and not c.isspace())
    return text.lower()


def _piece(token: str) -> str:
    return _norm(token[2:] if token.startswith("##") else token)


def align_ner(
    gold: Sequence[NerSentence], tokens: Sequence[_Token], gold_path: str
) -> list[list[str]]:
    """Predicted tags per gold word: predicted tokens are joined until they spell the gold word
    (case- and accent-insensitive); a word takes its first token's tag."""
    stream = [t for t in tokens if t.text not in _SPECIAL_TOKENS]
    pos = 0
    out = []
    non_tags = 0
    for sentence in gold:
        tags = []
        for k, word in enumerate(sentence.words):
            where = f"{gold_path}:{sentence.line + k}"
            target = _norm(word)
            if pos >= len(stream):
                raise FormatError(where, None, f"a prediction for gold word {word!r}", "none left")
            if not target:
                # BERT tokenizers drop words that normalise to nothing (zero-width characters).
                if not _piece(stream[pos].text):
                    tags.append(stream[pos].tag)
                    pos += 1
                else:
                    tags.append("O")
                continue
            first = stream[pos]
            spelled = ""
            while spelled != target:
                if pos >= len(stream):
                    raise FormatError(where, None, f"the rest of gold word {word!r}", "none left")
                tok = stream[pos]
                if tok.text == "[UNK]":
                    spelled = _skip_unknown(target, spelled, stream, pos)
                else:
                    piece = _piece(tok.text)
                    if not piece or not target.startswith(spelled + piece):
                        expected = (
                            f"the next piece of gold word {word!r} ({where}) after {spelled!r}"
                            if spelled
                            else f"gold word {word!r} ({where}) or its first piece"
                        )
                        raise FormatError(tok.where, None, expected, tok.text)
                    spelled += piece
                pos += 1
            tag = first.tag
            if tag in _NON_TAGS:
                non_tags += 1
                tag = "O"
            tags.append(tag)
        out.append(tags)
    if pos < len(stream):
        raise FormatError(stream[pos].where, None, "no more tokens (gold ended)", stream[pos].text)
    if non_tags:
        logging.warning(
            "%d words had a non-tag label (X, [CLS], ...) on their first piece: O", non_tags
        )
    return out


def _skip_unknown(target: str, spelled: str, stream: Sequence[_Token], pos: int) -> str:
    """[UNK] stands for one or more characters: up to where the next piece fits, else to the end
    of the word."""
    rest = target[len(spelled) :]
    if pos + 1 < len(stream):
        nxt = _piece(stream[pos + 1].text)
        at = rest.find(nxt, 1) if nxt else -1
        if at > 0:
            return spelled + rest[:at]
    return target


# ------------------------------------------------------------------------------ id<TAB>value


def write_id_predictions(path: str, rows: Iterable[tuple[str, object]]) -> None:
    with fileio.open_file(path, "w") as f:
        f.write(HEADER + "\n")
        for ex_id, value in rows:
            if isinstance(value, float):
                value = repr(value)
            f.write(f"{ex_id}\t{value}\n")


def read_id_predictions(path: str) -> dict[str, tuple[str, int]]:
    """{id: (prediction, line)} of an `id<TAB>prediction` file."""
    out: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(lines_of(path), start=1):
        if not line.strip() or (number == 1 and line.strip().lower() == HEADER):
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip():
            raise FormatError(path, number, "'id<TAB>prediction'", line)
        ex_id = fields[0].strip()
        if ex_id in out:
            raise FormatError(
                path, number, f"one line per id ({ex_id!r} also on line {out[ex_id][1]})"
            )
        out[ex_id] = (fields[1].strip(), number)
    return out


def match_predictions(
    gold: Sequence[Example], predicted: Mapping[str, tuple[str, int]], path: str, gold_path: str
) -> list[tuple[str, int]]:
    """Predictions in gold order; every gold id needs one and no other id may appear."""
    gold_ids = {ex.id for ex in gold}
    missing = [ex.id for ex in gold if ex.id not in predicted]
    if missing:
        raise FormatError(
            path,
            None,
            f"a prediction for every id of {gold_path} ({len(missing)} missing, e.g. "
            f"{missing[:3]}; ids are the gold ids, or 0-based row numbers where it has none)",
        )
    extra = [(line, i) for i, (_, line) in predicted.items() if i not in gold_ids]
    if extra:
        line, ex_id = min(extra)
        raise FormatError(path, line, f"only ids of {gold_path}", ex_id)
    return [predicted[ex.id] for ex in gold]


def parse_float(value: str, path: str, line: int) -> float:
    try:
        return float(value)
    except ValueError:
        raise FormatError(path, line, "a number", value) from None


# ------------------------------------------------------------------------------------- BioASQ


def write_bioasq(path: str, answers: Mapping[str, Sequence[str]]) -> None:
    with fileio.open_file(path, "w") as f:
        json.dump({k: list(v) for k, v in answers.items()}, f, indent=1, ensure_ascii=False)
        f.write("\n")


def read_bioasq(path: str) -> dict[str, list[str]]:
    """{question id: its answers, best first} of a prediction file; at most NUM_ANSWERS each."""
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise FormatError(path, 1, '{"question_id": ["answer 1", ..., "answer 5"]}')
    for qid, answers in obj.items():
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise FormatError(
                path, None, f"a list of answer strings for question {qid!r}", str(answers)
            )
        if len(answers) > NUM_ANSWERS:
            raise FormatError(
                path,
                None,
                f"at most {NUM_ANSWERS} answers for question {qid!r} "
                f"(BioASQ scores the first {NUM_ANSWERS})",
                f"{len(answers)} answers",
            )
    return obj


# How a question's answers are merged over its snippets (`merge_answers`, `rule`).
MERGE_BIOBERT = "biobert"
MERGE_MAX = "max"
MERGE_RULES = {
    MERGE_BIOBERT: "BioBERT's transform_nbset2bioasqform.py: probabilities of the same answer "
    "(lowercased) summed over the snippets; empty answers and answers over 100 characters "
    "dropped; the spelling of the most probable occurrence kept",
    MERGE_MAX: "the highest probability of each answer (lowercased, stripped) over the snippets",
}
MAX_ANSWER_CHARS = 100  # BioBERT drops longer answers


def merge_answers(
    answers: Sequence[Sequence[str]],
    probabilities: Sequence[Sequence[float]],
    k: int = NUM_ANSWERS,
    rule: str = MERGE_BIOBERT,
) -> list[str]:
    """One question's top k answers from the answer lists of all its snippets.

    rule `biobert` (the default, the rule behind BioBERT's and the paper's BioASQ numbers): every
    snippet answer, most probable first (ties in snippet order); an empty answer or one over 100
    characters is dropped; answers equal after `str.lower()` are one answer, whose score is the
    sum of their probabilities and whose spelling is its most probable occurrence's; ranked by
    that sum, ties by first occurrence. Rule `max`: an answer's score is its best probability,
    answers compared lowercased and stripped.
    """
    if rule not in MERGE_RULES:
        raise ValueError(f"unknown answer merge rule {rule!r}; expected one of {list(MERGE_RULES)}")
    pooled = [
        (float(prob), text)
        for snippet_answers, snippet_probs in zip(answers, probabilities, strict=True)
        for text, prob in zip(snippet_answers, snippet_probs, strict=True)
    ]
    if rule == MERGE_BIOBERT:
        pooled.sort(key=lambda item: -item[0])  # stable: ties stay in snippet order
        total: dict[str, list] = {}  # insertion order = first (most probable) occurrence
        for prob, text in pooled:
            if not text or len(text) > MAX_ANSWER_CHARS:
                continue
            key = text.lower()
            if key in total:
                total[key][0] += prob
            else:
                total[key] = [prob, text]
        ranked = sorted(total.values(), key=lambda v: -v[0])
        return [text for _, text in ranked[:k]]
    best: dict[str, tuple[float, int, str]] = {}
    for prob, text in pooled:
        key = text.strip().lower()
        if not key:
            continue
        if key not in best or prob > best[key][0]:
            order = best[key][1] if key in best else len(best)
            best[key] = (prob, order, text.strip())
    ranked_max = sorted(best.values(), key=lambda v: (-v[0], v[1]))
    return [text for _, _, text in ranked_max[:k]]
