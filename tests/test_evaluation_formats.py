"""Gold readers: the public layouts (with and without headers / id columns) and clear errors."""

from __future__ import annotations

import json

import pytest

from bioalbert_tf.evaluation import datasets, formats
from bioalbert_tf.evaluation.formats import FormatError
from tests.conftest import SHARED_DATA


def _need(path):
    if not path.exists():
        pytest.skip(f"shared benchmark data missing ({path}); CI provides ../shared/data")
    return str(path)


def test_real_files_read_with_expected_sizes():
    sizes = {
        ("ner", SHARED_DATA / "ner" / "NCBI-disease" / "test.tsv"): 940,
        ("re", SHARED_DATA / "re" / "GAD" / "test.tsv"): 534,
        ("re", SHARED_DATA / "re" / "DDI-blurb" / "test.tsv"): 5716,
        ("re", SHARED_DATA / "re" / "ChemProt-blurb" / "dev.tsv"): 11268,
        ("re", SHARED_DATA / "re" / "ChemProt-scibert" / "test.txt"): 3469,
        ("hoc", SHARED_DATA / "classification" / "HoC" / "test.tsv"): 3547,
        ("sts", SHARED_DATA / "sts" / "BIOSSES" / "test.tsv"): 20,
    }
    readers = {
        "ner": formats.read_ner,
        "re": formats.read_re,
        "hoc": formats.read_hoc,
        "sts": formats.read_sts,
    }
    for (kind, path), n in sizes.items():
        assert len(readers[kind](_need(path))) == n, path
    ddi = formats.read_re(str(SHARED_DATA / "re" / "DDI-blurb" / "test.tsv"))
    assert ddi[0].id == "DDI-DrugBank.d700.s0.p0" and ddi[0].label == "DDI-false"
    assert "@DRUG$" in ddi[0].text_a
    hoc = formats.read_hoc(str(SHARED_DATA / "classification" / "HoC" / "test.tsv"))
    assert hoc[1].id == "12553062_s1" and hoc[1].label.startswith("0_0,1_0")
    sts = formats.read_sts(str(SHARED_DATA / "sts" / "BIOSSES" / "test.tsv"))
    assert sts[0].id == "59" and 0 <= sts[0].score <= 4


def test_split_files(tmp_path):
    (tmp_path / "dev.tsv").write_text("a\tO\n")
    (tmp_path / "test.tsv").write_text("a\tO\n")
    assert formats.split_file(str(tmp_path), "dev").endswith("dev.tsv")
    (tmp_path / "devel.tsv").write_text("a\tO\n")
    assert formats.split_file(str(tmp_path), "dev").endswith("devel.tsv")
    assert formats.split_file(str(tmp_path), "test").endswith("test.tsv")
    for name, split in (
        ("mli_dev_v1.jsonl", "dev"),
        ("train.txt", "train"),
        ("train_dev.tsv", "train_dev"),
    ):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_text("")
        assert formats.split_file(str(folder), split) == str(folder / name)
    with pytest.raises(ValueError, match="unknown split"):
        formats.split_file(str(tmp_path), "validation")
    with pytest.raises(FileNotFoundError, match=r"no train file \(looked for train.tsv, train.txt"):
        formats.split_file(str(tmp_path), "train")


def test_ner_layouts(tmp_path):
    f = tmp_path / "ner.tsv"
    # -DOCSTART- skipped, CoNLL-style extra columns (the tag is the last), several blank lines.
    f.write_text("-DOCSTART- -X- O O\n\nIL-2 NN B-NP B-Gene\ngene NN I-NP I-Gene\n\n\nx\tO\n")
    sentences = formats.read_ner(str(f))
    assert [s.words for s in sentences] == [("IL-2", "gene"), ("x",)]
    assert [s.tags for s in sentences] == [("B-Gene", "I-Gene"), ("O",)]
    assert [s.line for s in sentences] == [3, 7]
    f.write_text("a\tO\nb\n")
    with pytest.raises(FormatError, match=r"ner\.tsv:2: expected 'word<TAB>tag'"):
        formats.read_ner(str(f))


def test_re_layouts(tmp_path):
    f = tmp_path / "re.tsv"
    f.write_text("sentence one\t1\nsentence two\t0\n")  # BioBERT train.tsv: no header, no id
    assert [(e.id, e.label) for e in formats.read_re(str(f))] == [("0", "1"), ("1", "0")]
    f.write_text("index\tsentence\tlabel\n7\ts\t1\n9\tt\t0\n")
    assert [(e.id, e.text_a) for e in formats.read_re(str(f))] == [("7", "s"), ("9", "t")]
    f.write_text("a.b\ts\tfalse\nc.d\tt\tCPR:3\n")
    assert [(e.id, e.label) for e in formats.read_re(str(f))] == [
        ("a.b", "false"),
        ("c.d", "CPR:3"),
    ]
    f.write_text("a.b\ts\tfalse\nc.d\tt\n")
    with pytest.raises(FormatError, match=r"re\.tsv:2: expected 3 tab-separated columns"):
        formats.read_re(str(f))
    f.write_text("a\ts\t1\na\tt\t0\n")
    with pytest.raises(
        FormatError, match=r"re\.tsv:2: expected unique ids \(id 'a' also on line 1\)"
    ):
        formats.read_re(str(f))
    f.write_text(json.dumps({"text": "<< a >> [[ b ]]", "label": "INHIBITOR"}) + "\n{bad\n")
    with pytest.raises(FormatError, match=r"re\.tsv:2: expected a JSON object"):
        formats.read_re(str(f))


def test_sts_and_hoc_layouts(tmp_path):
    f = tmp_path / "sts.tsv"
    f.write_text("a\tb\t3.5\nc\td\t1\n")  # MedSTS style: no header, no id
    assert [(e.id, e.score) for e in formats.read_sts(str(f))] == [("0", 3.5), ("1", 1.0)]
    f.write_text("pair_id\tsent1\tsent2\tscore\n1\ta\tb\thigh\n")
    with pytest.raises(FormatError, match=r"sts\.tsv:2: expected a numeric score"):
        formats.read_sts(str(f))
    h = tmp_path / "hoc.tsv"
    h.write_text("labels\tsentence\tindex\n0_1,1_0\ts\t1_s0\n0_1,1_x\tt\t1_s1\n")
    with pytest.raises(FormatError, match=r"hoc\.tsv:3: expected HoC labels"):
        formats.read_hoc(str(h))


def test_bioasq_test_and_golden(tmp_path):
    folder = SHARED_DATA / "qa" / "BioASQ"
    pairs = formats.read_squad(_need(folder / "BioASQ-test-factoid-4b-1.json"))
    assert len(pairs) == 167
    assert pairs[0].question_id == "56c073fcef6e394741000020"
    assert pairs[0].pair_id == "56c073fcef6e394741000020_000"
    assert len({p.question_id for p in pairs}) == 39
    batches = formats.bioasq_batches(str(folder), "5b")
    assert [b[0] for b in batches] == ["5b-1", "5b-2", "5b-3", "5b-4", "5b-5"]
    assert batches[0][2].endswith("5B1_golden.json")
    (tmp_path / "BioASQ-test-factoid-4b-1.json").write_text('{"data": []}')
    with pytest.raises(FileNotFoundError, match="has no golden file"):
        formats.bioasq_batches(str(tmp_path), "4b")
    (tmp_path / "x.json").write_text('{"data": [{"paragraphs": [{"qas": [{"id": "q_000"}]}]}]}')
    with pytest.raises(FormatError, match="SQuAD format"):
        formats.read_squad(str(tmp_path / "x.json"))


def test_ner_file_without_blank_lines_is_warned_about(tmp_path, caplog):
    """A file whose sentences are not separated reads as one long sentence: the warning names
    the file, the count, the longest and where it starts."""
    rows = [f"w{k}\t{'B' if k % 7 == 0 else 'O'}" for k in range(300)]
    flat = tmp_path / "train.tsv"
    flat.write_text("-DOCSTART-\tO\n\n" + "\n".join(rows) + "\n")
    sentences = formats.read_ner(str(flat))
    message = datasets.warn_long_sentences(sentences, 126, str(flat))
    assert message.startswith(
        f"{flat}: 1 sentence(s) have more words than a window of 126 "
        "pieces (the longest, 300 words, starts at line 3)"
    )
    assert message in caplog.text
    split = tmp_path / "split.tsv"
    split.write_text("\n\n".join("\n".join(rows[k : k + 20]) for k in range(0, 300, 20)) + "\n")
    assert datasets.warn_long_sentences(formats.read_ner(str(split)), 126, str(split)) is None
