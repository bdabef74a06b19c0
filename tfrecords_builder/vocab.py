"""SentencePiece vocabulary with ALBERT's special ids.

Training settings are those of ALBERT's 30k-clean.model (google-research/albert README):
unigram, pad 0, unk 1, control symbols [CLS] [SEP] [MASK] (ids 2, 3, 4), no BOS/EOS,
`character_coverage=0.99995`, user-defined symbols ( ) " - . – £ €, shuffled input sentences.
Sentences are normalised with `preprocess_text` first, exactly as they are at encoding time.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Iterator

from absl import logging

from bioalbert_tf import fileio
from bioalbert_tf.settings import setting
from bioalbert_tf.tokenization import load_sentencepiece, preprocess_text
from tfrecords_builder import corpus

ALBERT_USER_DEFINED_SYMBOLS = ["(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac"]


@dataclasses.dataclass(frozen=True)
class VocabConfig:
    """build_vocab's settings (its flags are generated from these fields)."""

    input_files: tuple[str, ...] = setting(help="Comma list of files or globs, any corpus format.")
    model_prefix: str = setting(help="Writes <model_prefix>.model and <model_prefix>.vocab.")
    vocab_size: int = setting(30000, "Pieces, specials included (ALBERT/BioALBERT: 30000).")
    model_type: str = setting("unigram", "SentencePiece model type (ALBERT's: unigram).")
    character_coverage: float = setting(
        0.99995, "SentencePiece character coverage (ALBERT's value)."
    )
    input_sentence_size: int = setting(10_000_000, "Sentences sampled for training, as ALBERT did.")
    do_lower_case: bool = setting(True, "Lowercase in normalisation, as at encoding time.")
    input_format: str = setting(
        "auto", "Corpus format; auto = by extension.", choices=("auto", *corpus.FORMATS)
    )
    hard_vocab_limit: bool = setting(
        True, "If false, a small corpus may give fewer pieces than vocab_size."
    )
    random_seed: int = setting(12345, "Seed of SentencePiece's sentence sampling.")
    skip_bad_files: bool = setting(
        False,
        "Keep what was read before the damage of a damaged input file and list it in the "
        "summary, instead of stopping (as the TFRecord builder's flag).",
    )
    num_threads: int = setting(os.cpu_count() or 1, "SentencePiece training threads.")


@dataclasses.dataclass(frozen=True)
class VocabOptions:
    """build_vocab's flags beside its settings: adopt a model instead of training, overwrite."""

    existing_model: str | None = setting(
        None,
        "Instead of training: check this model's ids (e.g. ALBERT's 30k-clean.model) and copy "
        "it to model_prefix.",
    )
    overwrite: bool = setting(
        False,
        "Replace an existing <model_prefix>.model / .vocab (by default such a run is refused).",
    )


def iter_sentences(
    files: Iterable[str],
    stats: corpus.ReadStats,
    input_format: str,
    lower: bool,
    skip_bad_files: bool = False,
) -> Iterator[str]:
    for path in files:
        for doc in corpus.iter_documents(path, stats, input_format, skip_bad_files=skip_bad_files):
            for sentence in doc:
                yield preprocess_text(sentence, lower)


def train(config: VocabConfig) -> dict:
    """Trains `<model_prefix>.model` and `.vocab`; returns a summary."""
    import sentencepiece as spm

    if config.vocab_size <= 5 + len(ALBERT_USER_DEFINED_SYMBOLS):
        raise ValueError(
            f"vocab_size must exceed the {5 + len(ALBERT_USER_DEFINED_SYMBOLS)} special pieces, "
            f"got {config.vocab_size}"
        )
    stats = corpus.ReadStats()
    counted = {"sentences": 0}
    failed: list[corpus.CorpusError] = []  # SentencePiece wraps it in a RuntimeError

    def sentences():
        try:
            for s in iter_sentences(
                config.input_files,
                stats,
                config.input_format,
                config.do_lower_case,
                config.skip_bad_files,
            ):
                counted["sentences"] += 1
                if counted["sentences"] % 100_000 == 0:
                    logging.info("vocab: read %d sentences", counted["sentences"])
                yield s
        except corpus.CorpusError as e:
            failed.append(e)
            raise  # stops the trainer at once; re-raised below as itself

    spm.set_random_generator_seed(config.random_seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            control_symbols=["[CLS]", "[SEP]", "[MASK]"],
            user_defined_symbols=ALBERT_USER_DEFINED_SYMBOLS,
            input_sentence_size=config.input_sentence_size,
            shuffle_input_sentence=True,
            hard_vocab_limit=config.hard_vocab_limit,
            num_threads=config.num_threads,
            minloglevel=2,
        )
    except RuntimeError as e:
        if failed:
            raise failed[0] from None
        if counted["sentences"] == 0:  # SentencePiece says only "[!sentences_.empty()]"
            raise ValueError(_no_sentences(config, stats)) from None
        msg = str(e)
        if "Vocabulary size too high" in msg or "vocab_size" in msg:
            raise ValueError(
                f"{msg}: the corpus ({counted['sentences']} sentences) is too small for "
                f"vocab_size={config.vocab_size}; lower --vocab_size or pass --nohard_vocab_limit"
            ) from e
        raise
    if failed:
        raise failed[0]
    if counted["sentences"] == 0:
        raise ValueError(_no_sentences(config, stats))
    return _write_model(
        model.getvalue(),
        config.model_prefix,
        {"sentences": counted["sentences"], **stats.to_dict()},
    )


def _no_sentences(config: VocabConfig, stats: corpus.ReadStats) -> str:
    return (
        f"no sentences to train a vocabulary on in {', '.join(config.input_files)}: expected text "
        f"with lines of at least {corpus.MIN_LINE_CHARS} characters "
        f"(format {config.input_format}); read: {stats.to_dict()['counts']}"
    )


def adopt_existing(model_file: str, model_prefix: str) -> dict:
    """Checks an existing model (e.g. ALBERT's 30k-clean.model) and installs it under
    model_prefix."""
    load_sentencepiece(model_file)  # raises with the offending ids if it is not ALBERT-compatible
    with fileio.open_file(model_file, "rb") as f:
        proto = f.read()
    return _write_model(proto, model_prefix, {"adopted_from": model_file})


def output_files(model_prefix: str) -> tuple[str, str]:
    """The files `train` and `adopt_existing` write: the model and its piece list."""
    return model_prefix + ".model", model_prefix + ".vocab"


def _write_model(proto: bytes, model_prefix: str, summary: dict) -> dict:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(proto)
    model_path, vocab_path = output_files(model_prefix)
    for path, data in ((model_path, proto), (vocab_path, _vocab_text(sp).encode("utf-8"))):
        fileio.write_atomic(path, data)
    load_sentencepiece(model_path)
    return {"model": model_path, "vocab": vocab_path, "vocab_size": sp.get_piece_size(), **summary}


def _vocab_text(sp) -> str:
    # The .vocab layout spm_train writes: piece<TAB>score, one per line, in id order.
    return "".join(
        f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size())
    )
