"""The datasets' files as fine-tuning reads them: the registry of the paper's 20 datasets, each
format converted into examples, a malformed file named with its line and what was expected, and
splits or a vocabulary that cannot serve a run refused before training starts."""

import json

import pytest

from bioalbert_tf.evaluation import datasets
from tests.conftest import ROOT
from tests.finetuning_helpers import finetuning_setup  # noqa: F401 (the fixture `setup`)

pytest.importorskip("tensorflow")


def test_registry_has_the_papers_20_datasets():
    assert len(datasets.REGISTRY) == 20
    counts = {}
    for spec in datasets.REGISTRY.values():
        counts[spec.task] = counts.get(spec.task, 0) + 1
        assert spec.max_seq_length == (512 if spec.task == datasets.NER else 128)
        assert (ROOT / "configs" / "finetuning" / f"{spec.name}.flags").exists()
        assert set(spec.negative_labels) <= set(spec.labels), spec.name
        if spec.positive_labels is not None:
            assert set(spec.positive_labels) == set(spec.labels) - set(spec.negative_labels)
    assert counts == {"ner": 8, "re": 5, "doc_classification": 1, "nli": 1, "sts": 2, "qa": 3}
    assert [s.name for s in datasets.REGISTRY.values() if s.folds] == ["euadr", "gad"]


def test_read_split_converts_each_format(tmp_path):
    (tmp_path / "train.tsv").write_text(
        "labels\tsentence\tindex\n0_0,1_1,2_0,3_1\t A sentence. \tdoc_1\n"
    )
    (hoc,) = datasets.read_split(datasets.get("hoc"), str(tmp_path), "train")
    assert (hoc.id, hoc.text_a, hoc.text_b, hoc.label) == (
        "doc_1",
        " A sentence. ",
        None,
        "0_0,1_1,2_0,3_1",
    )
    (tmp_path / "train.tsv").write_text("p1\tOne.\tTwo.\t3.25\n")
    (sts,) = datasets.read_split(datasets.get("biosses"), str(tmp_path), "train")
    assert (sts.id, sts.text_a, sts.text_b, sts.score) == ("p1", "One.", "Two.", 3.25)
    (tmp_path / "train.tsv").unlink()
    (tmp_path / "train.txt").write_text('{"text": "<< a >> binds [[ b ]]", "label": "INHIBITOR"}\n')
    (chem,) = datasets.read_split(datasets.get("chemprot"), str(tmp_path), "train")
    assert (chem.id, chem.label) == ("0", "INHIBITOR")  # SciBERT's classes: not the registry's
    assert datasets.labels_for(datasets.get("chemprot"), str(tmp_path)) == ("INHIBITOR",)


@pytest.mark.parametrize(
    "dataset,filename,content,message",
    [
        ("ncbi_disease", "train.tsv", "Word\tO\nbad\tX-Thing\n", r"train.tsv:2: expected an IOB"),
        (
            "gad",
            "train.tsv",
            "index\tsentence\tlabel\n1\ta fine row\t1\n2\ta\tb\tc\td\n",
            r"train.tsv:3: expected 3 tab-separated columns \(as many as the header\)",
        ),
        (
            "gad",
            "train.tsv",
            "a\tb\t1\nc\td\t2\n",
            r"train.tsv:2: expected a label in \['0', '1'\]",
        ),
        (
            "mednli",
            "mli_train_v1.jsonl",
            '{"sentence1": "a"}\n',
            r"mli_train_v1.jsonl:1: expected a JSON object with \"sentence1\"",
        ),
        (
            "biosses",
            "train.tsv",
            "pair_id\tsent1\tsent2\tscore\n1\ta\tb\thigh\n",
            r"train.tsv:2: expected a numeric score in the last column; got 'high'",
        ),
        (
            "hoc",
            "train.tsv",
            "labels\tsentence\tindex\n0_1,1_2\ts\t1\n",
            r"train.tsv:2: expected HoC",
        ),
    ],
)
def test_malformed_files_name_file_line_and_expectation(
    tmp_path, dataset, filename, content, message
):
    (tmp_path / filename).write_text(content)
    with pytest.raises(datasets.DatasetError, match=message):
        datasets.read_split(datasets.get(dataset), str(tmp_path), "train")


@pytest.mark.parametrize(
    "files,message",
    [
        (
            {"train.tsv": "a\tB\nb\tO\n", "test.tsv": ""},
            r"test.tsv: expected at least one row \(the test split\)",
        ),
        (
            {"train.tsv": "a\tB\nb\tO\n", "test.tsv": "a\tO\nb\tB-XYZ\n"},
            r"test.tsv:2: expected a tag of the training file \(O, B\); got 'B-XYZ'",
        ),
        (
            {"train.tsv": "a\tB\nb\tO\n", "dev.tsv": "a\tI-XYZ\n", "test.tsv": "a\tB\n"},
            r"dev.tsv:1: expected a tag of the training file",
        ),
    ],
)
def test_splits_that_cannot_be_scored_are_refused_before_training(
    setup, tiny_spm, tmp_path, files, message
):
    from bioalbert_tf.training import finetuning

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    config = finetuning.FinetuningConfig(
        "ncbi_disease",
        str(tmp_path),
        str(tmp_path / "out"),
        str(setup / "albert_config.json"),
        tiny_spm,
    )
    with pytest.raises(datasets.DatasetError, match=message):
        finetuning.run(config)
    assert not (tmp_path / "out").exists()


def test_a_vocabulary_larger_than_the_model_is_refused_before_training(setup, tiny_spm, tmp_path):
    from bioalbert_tf.training import finetuning
    from bioalbert_tf.training.run_settings import InputMismatchError

    values = json.loads((setup / "albert_config.json").read_text())
    (tmp_path / "small.json").write_text(json.dumps({**values, "vocab_size": 500}))
    (tmp_path / "train.tsv").write_text("a\tB\n")
    (tmp_path / "test.tsv").write_text("a\tB\n")
    config = finetuning.FinetuningConfig(
        "ncbi_disease", str(tmp_path), str(tmp_path / "out"), str(tmp_path / "small.json"), tiny_spm
    )
    with pytest.raises(
        InputMismatchError,
        match=r"the vocabulary has 1000 pieces, but vocab_size in .*small.json is 500",
    ):
        finetuning.run(config)
    assert not (tmp_path / "out").exists()
