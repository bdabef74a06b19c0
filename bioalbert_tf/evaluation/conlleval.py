"""NER metrics: entity-level exact-match P/R/F1 exactly as conlleval computes it (IOB1 and IOB2,
typed `B-Disease` or untyped `B`/`I`/`O` tags), and a token-level P/R/F1 (`ner_scores`). Part
of `metrics`, which re-exports these names."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

TOKEN_F1_DEFINITION = (
    "micro P/R/F1 over tokens: a token is gold-positive when its gold tag is not O and "
    "predicted-positive when its predicted tag is not O; it is correct when both are not O and "
    "their entity types (tag without the B-/I-/E- prefix) are equal"
)


def _prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    # conlleval's convention: 0 (not NaN) when a denominator is 0.
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def split_tag(tag: str) -> tuple[str, str]:
    """conlleval's `/^([^-]*)-(.*)$/`: prefix before the first '-', type after it.

    "B-Disease" -> ("B", "Disease"); "O" -> ("O", ""); "B" -> ("B", ""). A type of "0" becomes
    "" as in conlleval, where Perl treats the string "0" as false.
    """
    prefix, sep, type_ = tag.partition("-")
    if not sep:
        return tag, ""
    return prefix, ("" if type_ == "0" else type_)


def end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """conlleval's endOfChunk: did a chunk end between the previous and the current token?"""
    if (prev_tag, tag) in {
        ("B", "B"),
        ("B", "O"),
        ("I", "B"),
        ("I", "O"),
        ("E", "E"),
        ("E", "I"),
        ("E", "O"),
    }:
        return True
    if prev_tag not in ("O", ".") and prev_type != type_:
        return True
    # conlleval 1998-12-22: bracket chunks have length 1.
    return prev_tag in ("[", "]")


def start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """conlleval's startOfChunk: does a chunk start at the current token?

    Covers IOB1 (I-X after O or after another type starts a chunk) and IOB2 (B-X starts one).
    """
    if (prev_tag, tag) in {
        ("B", "B"),
        ("I", "B"),
        ("O", "B"),
        ("O", "I"),
        ("E", "E"),
        ("E", "I"),
        ("O", "E"),
    }:
        return True
    if tag not in ("O", ".") and prev_type != type_:
        return True
    return tag in ("[", "]")


@dataclasses.dataclass
class ConllCounts:
    """conlleval's counters (same names)."""

    correct_chunk: int = 0
    found_correct: int = 0
    found_guessed: int = 0
    correct_tags: int = 0
    token_counter: int = 0
    correct_chunk_by_type: collections.Counter = dataclasses.field(
        default_factory=collections.Counter
    )
    found_correct_by_type: collections.Counter = dataclasses.field(
        default_factory=collections.Counter
    )
    found_guessed_by_type: collections.Counter = dataclasses.field(
        default_factory=collections.Counter
    )


def _check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted sentences")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted tags")


def conlleval_counts(
    gold_sentences: Sequence[Sequence[str]], pred_sentences: Sequence[Sequence[str]]
) -> ConllCounts:
    """conlleval's main loop over sentences of (gold tag, predicted tag) pairs.

    conlleval reads a blank line as a boundary token tagged O/O that is not counted as a token;
    the same happens here after every sentence, so no chunk runs across sentences.
    """
    _check_aligned(gold_sentences, pred_sentences)
    c = ConllCounts()
    last_correct, last_correct_type = "O", ""
    last_guessed, last_guessed_type = "O", ""
    in_correct = False

    def steps():
        for gold, pred in zip(gold_sentences, pred_sentences, strict=True):
            for g, p in zip(gold, pred, strict=True):
                yield g, p, False
            yield "O", "O", True

    for gold_tag, pred_tag, boundary in steps():
        correct, correct_type = split_tag(gold_tag)
        guessed, guessed_type = split_tag(pred_tag)
        end_c = end_of_chunk(last_correct, correct, last_correct_type, correct_type)
        end_g = end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        start_c = start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        start_g = start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if in_correct:
            if end_c and end_g and last_guessed_type == last_correct_type:
                in_correct = False
                c.correct_chunk += 1
                c.correct_chunk_by_type[last_correct_type] += 1
            elif end_c != end_g or guessed_type != correct_type:
                in_correct = False
        if start_c and start_g and guessed_type == correct_type:
            in_correct = True
        if start_c:
            c.found_correct += 1
            c.found_correct_by_type[correct_type] += 1
        if start_g:
            c.found_guessed += 1
            c.found_guessed_by_type[guessed_type] += 1
        if not boundary:
            if correct == guessed and guessed_type == correct_type:
                c.correct_tags += 1
            c.token_counter += 1
        last_correct, last_correct_type = correct, correct_type
        last_guessed, last_guessed_type = guessed, guessed_type
    if in_correct:  # conlleval's end-of-file case; the boundary after each sentence closes it
        c.correct_chunk += 1
        c.correct_chunk_by_type[last_correct_type] += 1
    return c


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks conlleval counts in one sentence, as (type, first, last) token indexes."""
    chunks = []
    prev_tag, prev_type, begin, in_chunk = "O", "", 0, False
    for i, tag in enumerate([*tags, "O"]):
        t, type_ = split_tag(tag)
        start = start_of_chunk(prev_tag, t, prev_type, type_)
        if in_chunk and (start or end_of_chunk(prev_tag, t, prev_type, type_)):
            chunks.append((prev_type, begin, i - 1))
            in_chunk = False
        if start:
            begin, in_chunk = i, True
        prev_tag, prev_type = t, type_
    return chunks


def _token_type(tag: str) -> str | None:
    """Entity type of a token (None for O); untyped B/I tags give the type ""."""
    prefix, type_ = split_tag(tag)
    return None if prefix == "O" else type_


def ner_scores(
    gold_sentences: Sequence[Sequence[str]], pred_sentences: Sequence[Sequence[str]]
) -> dict:
    """Entity-level (conlleval) and token-level P/R/F1, with counts and a per-type table.

    Token level (see TOKEN_F1_DEFINITION): micro over non-O tokens, comparing the entity type
    with the B-/I- prefix stripped; for untyped tags every non-O token has the same type.
    `accuracy` is conlleval's token accuracy (full tags equal, O tokens included).
    """
    c = conlleval_counts(gold_sentences, pred_sentences)
    ep, er, ef = _prf(c.correct_chunk, c.found_guessed, c.found_correct)
    tok_gold = tok_pred = tok_correct = 0
    for gold, pred in zip(gold_sentences, pred_sentences, strict=True):
        for g, p in zip(gold, pred, strict=True):
            gt, pt = _token_type(g), _token_type(p)
            tok_gold += gt is not None
            tok_pred += pt is not None
            tok_correct += gt is not None and gt == pt
    tp, tr, tf = _prf(tok_correct, tok_pred, tok_gold)
    types = sorted(set(c.found_correct_by_type) | set(c.found_guessed_by_type))
    per_type = {}
    for t in types:
        p, r, f = _prf(
            c.correct_chunk_by_type[t], c.found_guessed_by_type[t], c.found_correct_by_type[t]
        )
        per_type[t] = {
            "precision": p,
            "recall": r,
            "f1": f,
            "gold": c.found_correct_by_type[t],
            "predicted": c.found_guessed_by_type[t],
            "correct": c.correct_chunk_by_type[t],
        }
    return {
        "entity_precision": ep,
        "entity_recall": er,
        "entity_f1": ef,
        "token_precision": tp,
        "token_recall": tr,
        "token_f1": tf,
        "accuracy": c.correct_tags / c.token_counter if c.token_counter else 0.0,
        "gold_entities": c.found_correct,
        "predicted_entities": c.found_guessed,
        "correct_entities": c.correct_chunk,
        "gold_entity_tokens": tok_gold,
        "predicted_entity_tokens": tok_pred,
        "correct_entity_tokens": tok_correct,
        "num_tokens": c.token_counter,
        "num_sentences": len(gold_sentences),
        "per_type": per_type,
        "entity_f1_definition": "exact-match chunks as conlleval (startOfChunk/endOfChunk)",
        "token_f1_definition": TOKEN_F1_DEFINITION,
    }
