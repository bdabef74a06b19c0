"""Fine-tuning every task at tiny size on real shared files (subsets) and on written fixtures for
the datasets that are not public; the exported SavedModels serve the same predictions. Each
dataset is fine-tuned once per module (`trained`), so every test of a trained model is here."""

import dataclasses
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bioalbert_tf.evaluation import datasets, formats
from tests.conftest import ROOT, folder_bytes
from tests.finetuning_helpers import (
    _data,
    finetuning_setup,  # noqa: F401 (the fixture `setup`)
)

tf = pytest.importorskip("tensorflow")

TASKS = [
    "ncbi_disease",
    "share_clefe",
    "gad",
    "chemprot",
    "i2b2",
    "hoc",
    "mednli",
    "biosses",
    "bioasq4b",
]

# Task types whose training step the XLA/graph agreement test (test_finetuning_tasks.py) does
# not compile: their runs here keep the default XLA step, so that every task type trains under
# XLA somewhere; the others train with the plain graph (compiling costs 10-30 s per run at this
# size).
XLA_RUNS = (datasets.DOC, datasets.STS, datasets.QA)


@pytest.fixture(scope="module")
def trained(setup, tiny_spm):
    """Each dataset fine-tuned for 6 steps (dev evaluated twice), once per module."""
    from bioalbert_tf.training import finetuning

    cache = {}

    def get(name):
        if name not in cache:
            out = setup / "runs" / name
            config = finetuning.FinetuningConfig(
                dataset=name,
                data_dir=str(_data(name, setup)),
                output_dir=str(out),
                albert_config_file=str(setup / "albert_config.json"),
                spm_model_file=tiny_spm,
                learning_rate=1e-3,
                train_batch_size=8,
                eval_batch_size=32,
                num_train_steps=6,
                num_warmup_steps=1,
                max_seq_length=64,
                eval_every_steps=3,
                jit_compile=datasets.get(name).task in XLA_RUNS,
            )
            cache[name] = (finetuning.run(config), out)
        return cache[name]

    return get


@pytest.mark.parametrize("name", TASKS)
def test_finetunes_predicts_scores_and_exports(trained, name):
    result, out = trained(name)
    spec = datasets.get(name)
    assert (out / "saved_model" / "saved_model.pb").exists()
    assert (out / "saved_model" / "assets" / "spm.model").exists()
    assert json.loads((out / "saved_model" / "assets" / "task.json").read_text())["dataset"] == name
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["test"]["main_key"]
        == {
            "ner": "entity_f1",
            "re": "micro_f1",
            "doc_classification": "micro_f1",
            "nli": "accuracy",
            "sts": "pearson",
            "qa": "lenient_accuracy",
        }[spec.task]
    )
    assert -1.0 <= metrics["test"]["main_score"] <= 1.0
    assert [h["step"] for h in metrics["history"]] == [3, 6]
    if spec.task == datasets.QA:
        answers = json.loads((out / "predictions.json").read_text())
        assert answers and all(len(v) <= 5 for v in answers.values())
    else:
        assert (out / "test_predictions.tsv").stat().st_size > 0
    if spec.task == datasets.NER:
        assert "token_f1" in metrics["test"] and "entity_f1" in metrics["test"]


SERVE = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    from bioalbert_tf.serving import export
    model = export.load(sys.argv[1])
    args = json.loads(sys.argv[3])
    out = model.signatures[sys.argv[2]](**{k: tf.constant(v) for k, v in args.items()})
    print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}, default=lambda b: b.decode("utf-8")))
    """  # noqa: E501
)


def _serve(path, signature, args):
    proc = subprocess.run(
        [sys.executable, "-c", SERVE, str(path), signature, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _task(name, setup, tiny_spm, out):
    """The Keras task with the fine-tuned best weights, to compare with its SavedModel."""
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.tasks import create_task

    labels = json.loads((out / "saved_model" / "assets" / "task.json").read_text())["labels"]
    config = AlbertConfig.from_json_file(str(setup / "albert_config.json"))
    task = create_task(datasets.get(name), labels, config, pathlib.Path(tiny_spm).read_bytes(), 64)
    task.model.load_weights(str(out / "best.weights.h5"))
    return task


def test_ner_saved_model_in_a_fresh_process_matches_keras(trained, setup, tiny_spm):
    _, out = trained("ncbi_disease")
    task = _task("ncbi_disease", setup, tiny_spm, out)
    sentences = datasets.read_split(
        datasets.get("ncbi_disease"), str(setup / "ncbi_disease"), "test"
    )[:6]
    sentences.append(
        formats.NerSentence(sentences[0].words * 6, sentences[0].tags * 6)
    )  # > 64 pieces: windows
    keras_tags = task.predict(sentences)
    width = max(len(s.words) for s in sentences)
    served = _serve(
        out / "saved_model",
        "tag_words",
        {
            "words": [list(s.words) + [""] * (width - len(s.words)) for s in sentences],
            "num_words": [len(s.words) for s in sentences],
        },
    )
    assert [
        row[: len(s.words)] for row, s in zip(served["tags"], sentences, strict=True)
    ] == keras_tags


@pytest.mark.parametrize("name", ["gad", "biosses", "mednli"])
def test_sentence_saved_models_match_keras(trained, setup, tiny_spm, name):
    _, out = trained(name)
    task = _task(name, setup, tiny_spm, out)
    examples = datasets.read_split(datasets.get(name), str(setup / name), "test")[:5]
    keras_pred = task.predict(examples)
    if task.pair:
        served = _serve(
            out / "saved_model",
            "serving_default",
            {"text_a": [e.text_a for e in examples], "text_b": [e.text_b for e in examples]},
        )
    else:
        served = _serve(
            out / "saved_model", "serving_default", {"text": [e.text_a for e in examples]}
        )
    if name == "biosses":
        np.testing.assert_allclose(served["score"], keras_pred, atol=1e-5)
    else:
        assert served["label"] == keras_pred
        np.testing.assert_allclose(np.sum(served["probabilities"], axis=1), 1.0, atol=1e-5)


def test_raw_text_ner_edge_cases_and_offsets(trained, setup, tiny_spm, tmp_path):
    """Empty strings, 100k characters, non-ASCII text and mixed lengths in one batch: no crash;
    every entity's offsets index the original string (characters, not bytes)."""
    from bioalbert_tf.serving import export

    _, out = trained("ncbi_disease")
    task = _task("ncbi_disease", setup, tiny_spm, out)
    # Make every word the start of an entity ("B"), so that offsets are exercised everywhere.
    bias = task.model.get_layer("token_classifier").bias
    bias.assign(np.where(np.array(task.labels) == "B", 50.0, 0.0).astype(np.float32))
    export.export_task(task, str(tmp_path / "sm"))
    texts = [
        "",
        "Tumour of the βcell in Müller's glia — 5 µm.",
        "word " * 20000,
        "APC2",
        "breast cancer\x00ovarian cancer",
    ]
    result = _serve(tmp_path / "sm", "serving_default", {"text": texts})
    assert result["num_entities"][0] == 0
    assert result["num_entities"][2] == 20000
    for row, text in enumerate(texts):
        for k in range(result["num_entities"][row]):
            s, e = result["entity_starts"][row][k], result["entity_ends"][row][k]
            assert 0 <= s < e <= len(text) and text[s:e] == result["entity_texts"][row][k]
    assert (
        result["entity_texts"][1][:3] == ["Tumour", "of", "the"]
        and "Müller" in result["entity_texts"][1]
    )
    # Text after a NUL is tagged too (the NUL is a separator), not silently dropped.
    assert result["entity_texts"][4][: result["num_entities"][4]] == [
        "breast",
        "cancer",
        "ovarian",
        "cancer",
    ]


def test_saved_model_cli_show_and_run_on_strings(trained):
    _, out = trained("gad")
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    # saved_model_cli has no hook to import tensorflow_text: a wrapper registers the ops first
    wrapper = (
        "import sys, tensorflow_text; from tensorflow.python.tools import saved_model_cli; "
        "sys.argv[0] = 'saved_model_cli'; saved_model_cli.main()"
    )
    show = subprocess.run(
        [sys.executable, "-c", wrapper, "show", "--dir", str(out / "saved_model"), "--all"],
        capture_output=True,
        text=True,
    )
    assert show.returncode == 0, show.stderr[-2000:]
    assert "inputs['text']" in show.stdout and "outputs['label']" in show.stdout
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            "run",
            "--dir",
            str(out / "saved_model"),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            "text=['@GENE$ variants raise @DISEASE$ risk .']",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Result for output key label" in run.stdout
    assert cli.exists()


def test_qa_saved_model_answers_from_the_snippet(trained):
    from bioalbert_tf.tasks import qa

    _, out = trained("bioasq4b")
    context = "Spermidine protects against alpha-synuclein neurotoxicity in flies and worms."
    result = _serve(
        out / "saved_model",
        "serving_default",
        {"question": ["What protects?", ""], "context": [context, ""]},
    )
    assert len(result["answers"][0]) == qa.N_BEST and all(
        a in context.lower() for a in result["answers"][0] if a
    )
    assert result["answers"][1] == [""] * qa.N_BEST
    probs = result["answer_probabilities"][0]
    assert probs == sorted(probs, reverse=True)


def test_a_finished_run_with_other_settings_is_refused_not_replaced(trained, tmp_path):
    """A single run into a folder holding a finished run: other settings are refused before
    anything is written (the folder may have been moved: output_dir is not compared). A
    metrics.json without run_settings.json beside it is not taken for a fine-tuning run's."""
    import shutil

    from bioalbert_tf.training import finetuning

    result, out = trained("i2b2")
    folder = tmp_path / "moved"
    shutil.copytree(out, folder)
    before = folder_bytes(folder)
    config = finetuning.FinetuningConfig(**{**result["config"], "output_dir": str(folder)})
    other = dataclasses.replace(config, learning_rate=5e-4)
    with pytest.raises(
        ValueError,
        match=rf"{folder} holds a fine-tuning run made with other settings; 1 differ:\n"
        rf"  --learning_rate: 0.001 in {folder}/run_settings.json, 0.0005 now\n"
        r"Choose another --output_dir, or pass --overwrite",
    ):
        finetuning.run(other)
    assert folder_bytes(folder) == before
    assert finetuning.finished_run(config) == json.loads((folder / "metrics.json").read_text())
    (folder / "run_settings.json").unlink()  # metrics.json alone: not a fine-tuning run's folder
    with pytest.raises(ValueError, match=rf"{folder}/metrics.json is not a fine-tuning run's"):
        finetuning.run(other)


def test_qa_answers_of_a_batch_equal_those_of_each_pair_alone(trained, setup, tiny_spm):
    """In a batch of 40 (question, snippet) pairs, every row's answers and their probabilities
    are those the pair gets on its own (the old sort key collapsed scores after the first row)."""
    _, out = trained("bioasq4b")
    task = _task("bioasq4b", setup, tiny_spm, out)
    pairs = formats.read_squad(str(setup / "bioasq4b" / "BioASQ-test-factoid-4b-1.json"))[:40]
    assert len(pairs) == 40
    batched = task.predict(pairs, batch_size=40)
    for pair, got in zip(pairs, batched, strict=True):
        (alone,) = task.predict([pair], batch_size=1)
        assert [a for a, _ in got] == [a for a, _ in alone]
        np.testing.assert_allclose([p for _, p in got], [p for _, p in alone], atol=1e-5)
    assert sum(len(a) >= 5 for a in batched) >= 30


def test_ner_predicts_sentences_whose_words_have_no_token(trained, setup, tiny_spm):
    """A test split whose sentences are words without a SentencePiece token (U+200B, a lone
    combining mark) is tagged O, alone or in a batch of its own, instead of failing at the end
    of fine-tuning."""
    _, out = trained("ncbi_disease")
    task = _task("ncbi_disease", setup, tiny_spm, out)
    odd = [
        formats.NerSentence(("\u200b",), ("O",)),
        formats.NerSentence(("\u0301", "\u200b"), ("O", "O")),
    ]
    assert task.predict(odd[:1]) == [["O"]]
    assert task.predict(odd) == [["O"], ["O", "O"]]
    real = formats.NerSentence(("BRCA1", "mutation"), ("O", "O"))
    tags = task.predict([odd[0], real, odd[1]])
    assert tags[0] == ["O"] and tags[2] == ["O", "O"] and len(tags[1]) == 2
