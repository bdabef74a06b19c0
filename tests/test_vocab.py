"""Vocabulary training and adoption with ALBERT's special ids."""

import io
import json
import pathlib

import pytest
import sentencepiece as spm

from bioalbert_tf import tokenization
from tests import reference_albert as ref
from tfrecords_builder import vocab


def test_trained_model_has_albert_ids(tiny_spm):
    sp = tokenization.load_sentencepiece(tiny_spm)
    assert [sp.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert sp.bos_id() == -1 and sp.eos_id() == -1
    assert sp.get_piece_size() == 1000
    # ALBERT's user-defined symbols are always single pieces
    assert sp.encode("(x)", out_type=str)[-1] == ")"
    vocab_file = tiny_spm[: -len(".model")] + ".vocab"
    lines = pathlib.Path(vocab_file).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000 and lines[2].startswith("[CLS]\t")


def test_training_is_deterministic(small_text_corpus, tiny_spm, tmp_path):
    again = tmp_path / "again"
    vocab.train(
        vocab.VocabConfig(
            input_files=(str(small_text_corpus),),
            model_prefix=str(again),
            vocab_size=1000,
            num_threads=1,
        )
    )
    assert pathlib.Path(tiny_spm).read_bytes() == (tmp_path / "again.model").read_bytes()


def test_vocab_too_large_for_corpus_says_what_to_do(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("a small corpus sentence that repeats.\n" * 50, encoding="utf-8")
    with pytest.raises(ValueError, match="lower --vocab_size"):
        vocab.train(
            vocab.VocabConfig(
                input_files=(str(text),),
                model_prefix=str(tmp_path / "m"),
                vocab_size=5000,
                num_threads=1,
            )
        )


def test_adopting_a_model_with_wrong_ids_is_refused(small_text_corpus, tmp_path):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        input=str(small_text_corpus), model_writer=model, vocab_size=300, minloglevel=2
    )
    bad = tmp_path / "default_ids.model"
    bad.write_bytes(model.getvalue())  # sentencepiece defaults: <unk>=0, <s>=1, </s>=2
    with pytest.raises(
        tokenization.SpecialIdsError,
        match=(
            r"<pad> is missing \(ALBERT expects it at id 0\); <unk> has id 0, ALBERT expects 1; "
            r"\[CLS\] is missing"
        ),
    ):
        vocab.adopt_existing(str(bad), str(tmp_path / "adopted"))


def test_adopting_a_good_model_copies_it(tiny_spm, tmp_path):
    summary = vocab.adopt_existing(tiny_spm, str(tmp_path / "copy"))
    assert (tmp_path / "copy.model").read_bytes() == pathlib.Path(tiny_spm).read_bytes()
    assert summary["vocab_size"] == 1000


def test_preprocess_text_is_albert_normalisation():
    assert tokenization.preprocess_text("  Café  ``Naïve''\tTNF-α  ") == 'cafe "naive" tnf-α'
    assert tokenization.preprocess_text("Keep Case", lower=False) == "Keep Case"


def test_start_piece_rule_is_the_reference_head_one(tiny_spm):
    assert tokenization.is_start_piece("\u2581the")
    assert tokenization.is_start_piece(",") and tokenization.is_start_piece("<unk>")
    assert tokenization.is_start_piece("12")  # digits are not English letters
    assert tokenization.is_start_piece("\u00e9t")  # nor accented ones
    assert not tokenization.is_start_piece("ing")
    # "x" is a letter like the others (the first release's "...uvwhyz" lacked it; fixed at HEAD)
    assert not tokenization.is_start_piece("ox")
    assert not tokenization.is_start_piece("xyl") and not tokenization.is_start_piece("X")
    # Every piece of a real vocabulary, plus hand-picked edge cases, as the transcribed reference.
    pieces = [tokenization.load_sentencepiece(tiny_spm).id_to_piece(i) for i in range(1000)]
    pieces += ["x", "xx", "ex", "-x", "x-", "<x", "[MASK]", "", "\u2581"]
    pieces += ["\u20ac", "\u00a3", "a\u20ac"]  # the reference adds these as bytes: no effect
    assert sum("x" in p for p in pieces) > 5
    for piece in pieces:
        assert tokenization.is_start_piece(piece) == ref.is_start_piece_sp(piece), piece


def test_empty_corpus_is_named_not_a_sentencepiece_traceback(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "short.txt").write_text("too short\n\nshort too\n", encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_vocab",
        f"--input_files={tmp_path}/*.txt",
        f"--model_prefix={tmp_path}/v",
        "--vocab_size=100",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert (
        f"error: no sentences to train a vocabulary on in {tmp_path}/empty.txt, "
        f"{tmp_path}/short.txt: expected text with lines of at least 20 characters"
    ) in proc.stderr
    assert "'lines_short': 2" in proc.stderr


def test_cli_refuses_to_replace_a_vocabulary_without_overwrite(tiny_spm, tmp_path):
    """TFRecords built with a vocabulary must not see it change under them: an existing .model
    or .vocab is named and left alone; --overwrite replaces both."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    prefix = tmp_path / "vocab" / "bio"
    prefix.parent.mkdir()
    (tmp_path / "vocab" / "bio.model").write_bytes(b"an earlier model")
    (tmp_path / "vocab" / "bio.vocab").write_text("an earlier piece list\n")
    before = {p.name: p.read_bytes() for p in prefix.parent.iterdir()}
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_vocab",
        f"--existing_model={tiny_spm}",
        f"--model_prefix={prefix}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        f"error: 2 output file(s) already exist and would be replaced: {prefix}.model, "
        f"{prefix}.vocab. Choose another --model_prefix, or pass --overwrite"
    ) in proc.stderr
    assert {p.name: p.read_bytes() for p in prefix.parent.iterdir()} == before
    proc = subprocess.run(
        cmd + ["--overwrite"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "vocab" / "bio.model").read_bytes() == pathlib.Path(tiny_spm).read_bytes()
    assert (tmp_path / "vocab" / "bio.vocab").read_text().startswith("<pad>\t")


def test_a_damaged_input_file_stops_the_vocabulary_or_is_skipped_as_advised(
    small_text_corpus, tmp_path
):
    """The error's advice is a flag build_vocab has: --skip_bad_files keeps the sentences read
    before the damage and lists the file in the summary."""
    import subprocess
    import sys

    from tests.conftest import ROOT, medline_path

    data = medline_path("pubmed20n0014.xml.gz").read_bytes()
    bad = tmp_path / "pubmed_cut.xml.gz"
    bad.write_bytes(data[: len(data) // 50])
    cmd = [
        sys.executable,
        "-m",
        "tfrecords_builder.build_vocab",
        f"--input_files={small_text_corpus},{bad}",
        f"--model_prefix={tmp_path}/v",
        "--vocab_size=300",
        "--input_sentence_size=5000",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"error: {bad}: unreadable after" in proc.stderr and "--skip_bad_files" in proc.stderr
    proc = subprocess.run(
        cmd + ["--skip_bad_files"], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert len(summary["bad_files"]) == 1 and str(bad) in summary["bad_files"][0]
    assert (tmp_path / "v.model").exists()
