"""ALBERT text normalisation and SentencePiece tokenization (Python side).

`preprocess_text` is ALBERT's normalisation (google-research/albert tokenization.py): collapse
whitespace, ``/'' -> ", NFKD, drop combining marks, lowercase. The ids come from SentencePiece
directly. The reference tokenizer's `encode_pieces` has a Python-3 bug in its digit+comma
special case (str compared with bytes, so the case never runs and an extra word-start piece
appears: `pif1,` -> `▁p if ▁1 ,`); we do not copy it: SentencePiece's own segmentation is used.
"""

from __future__ import annotations

import functools
import sys
import unicodedata

PAD, UNK, CLS, SEP, MASK = "<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"
# The ids ALBERT's 30k-clean.model assigns, which the model's embedding rows rely on.
SPECIAL_IDS = {PAD: 0, UNK: 1, CLS: 2, SEP: 3, MASK: 4}
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4


@functools.cache
def _combining_table() -> dict[int, None]:
    """str.translate table deleting every code point with a non-zero combining class."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.combining(chr(cp))}


def preprocess_text(text: str, lower: bool = True) -> str:
    """ALBERT's normalisation; ASCII text (most of PubMed) takes a fast path with the same
    result."""
    text = " ".join(text.split())
    text = text.replace("``", '"').replace("''", '"')
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).translate(_combining_table())
    return text.lower() if lower else text


# ALBERT create_pretraining_data's `_is_start_piece_sp` as it stands since December 2019: the
# first release spelt its English-letter set "...uvwhyz" (no "x"), which made every piece holding
# an "x" a word start; the reference fixed the typo (commit b67b0a0) and so do we. (It also adds
# "€" and "£" as UTF-8 bytes, which a str piece never equals under Python 3: nothing to copy.)
_REF_SPECIAL_PIECES = frozenset('!"#$%&"()*+,-./:;?@[\\]^_`{|}~')
_REF_ENGLISH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz")
_REF_ALLOWED = _REF_ENGLISH_CHARS | _REF_SPECIAL_PIECES


def is_start_piece(piece: str) -> bool:
    """Whether a SentencePiece piece starts a whole word, as the reference decides it: it starts
    with "▁" or "<", is one punctuation mark, or holds a character outside a-z/punctuation."""
    return (
        piece.startswith("\u2581")
        or piece.startswith("<")
        or piece in _REF_SPECIAL_PIECES
        or not all(c.lower() in _REF_ALLOWED for c in piece)
    )


class SpecialIdsError(ValueError):
    pass


def check_special_ids(sp, source: str = "SentencePiece model") -> None:
    """Raises SpecialIdsError naming each special piece whose id differs from ALBERT's."""
    problems = []
    for piece, want in SPECIAL_IDS.items():
        got = sp.piece_to_id(piece)  # unknown pieces map to the unk id
        if sp.id_to_piece(got) != piece:
            problems.append(f"{piece} is missing (ALBERT expects it at id {want})")
        elif got != want:
            problems.append(f"{piece} has id {got}, ALBERT expects {want}")
    if problems:
        raise SpecialIdsError(
            f"{source}: " + "; ".join(problems) + ". Train it with tfrecords_builder.build_vocab "
            "(pad 0, unk 1, control symbols [CLS] [SEP] [MASK], no BOS/EOS) "
            "or use ALBERT's 30k-clean.model."
        )


def load_sentencepiece(path: str, check: bool = True):
    """Loads a SentencePiece model from a local or gs:// path and checks ALBERT's special ids."""
    import sentencepiece as spm

    from bioalbert_tf import fileio

    if not fileio.exists(path):
        raise FileNotFoundError(f"SentencePiece model not found: {path}")
    with fileio.open_file(path, "rb") as f:
        proto = f.read()
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(proto)
    except Exception as e:  # sentencepiece raises RuntimeError/OSError with a terse message
        raise ValueError(f"{path}: not a SentencePiece model ({e})") from e
    if check:
        check_special_ids(sp, path)
    return sp


class Tokenizer:
    """Text -> ALBERT ids: `preprocess_text`, then SentencePiece."""

    def __init__(self, spm_model_file: str, do_lower_case: bool = True):
        self.spm_model_file = spm_model_file
        self.do_lower_case = do_lower_case
        self.sp = load_sentencepiece(spm_model_file)
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Ids for each text (one SentencePiece call for the whole batch, one thread)."""
        normed = [preprocess_text(t, self.do_lower_case) for t in texts]
        return self.sp.encode(normed, out_type=int, num_threads=1)

    def start_piece_table(self) -> list[bool]:
        """`is_start_piece` for every id of the vocabulary."""
        return [is_start_piece(self.sp.id_to_piece(i)) for i in range(self.vocab_size)]

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))
