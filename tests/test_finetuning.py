"""Fine-tuning every task at tiny size on real shared files (subsets) and on written fixtures for
the datasets that are not public; the exported SavedModels serve the same predictions."""

import dataclasses
import json
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bioalbert_tf.evaluation import datasets, formats
from tests.conftest import ROOT, SHARED_DATA

tf = pytest.importorskip("tensorflow")


def _head(src: pathlib.Path, dst: pathlib.Path, lines: int):
    text = src.read_text(encoding="utf-8").splitlines(keepends=True)
    dst.write_text("".join(text[:lines]), encoding="utf-8")


def _ner_subset(src: pathlib.Path, dst: pathlib.Path, sentences: int):
    blocks = src.read_text(encoding="utf-8").split("\n\n")
    dst.write_text("\n\n".join(blocks[:sentences]) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def setup(tiny_spm, tmp_path_factory):
    from bioalbert_tf.config import AlbertConfig

    folder = tmp_path_factory.mktemp("finetuning")
    values = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json")).to_dict()
    # Two layers in one group: albert_tiny's 5 layers in 2 groups of 2 inner layers (tested in
    # test_model, test_export, test_checkpoints) take 2.5x as long to trace here, 45 s a run.
    values.update(
        vocab_size=1000,
        max_position_embeddings=128,
        num_hidden_layers=2,
        num_hidden_groups=1,
        inner_group_num=1,
    )
    (folder / "albert_config.json").write_text(json.dumps(values))
    return folder


def _shared(*parts) -> pathlib.Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data)")
    return path


def _data(name: str, root: pathlib.Path) -> pathlib.Path:
    """A small data folder for each dataset: subsets of the real files, or written fixtures."""
    d = root / name
    d.mkdir(exist_ok=True)
    if name == "ncbi_disease":
        src = _shared("ner", "NCBI-disease")
        for split, n in (("train", 150), ("devel", 40), ("test", 40)):
            _ner_subset(src / f"{split}.tsv", d / f"{split}.tsv", n)
    elif name == "share_clefe":  # typed tags, -DOCSTART-, as the BLUE layout
        rows = (
            "-DOCSTART-\tO\n\n"
            "The\tO\npatient\tO\nhad\tO\nacute\tB-Disorder\n"
            "renal\tI-Disorder\nfailure\tI-Disorder\n.\tO\n\n"
            "No\tO\nchest\tB-Disorder\npain\tI-Disorder\n.\tO\n"
        )
        for split in ("train", "dev", "test"):
            (d / f"{split}.tsv").write_text(rows * 6)
    elif name == "gad":
        src = _shared("re", "GAD")
        for split, n in (("train", 120), ("dev", 40), ("test", 40)):
            _head(src / f"{split}.tsv", d / f"{split}.tsv", n)
    elif name == "chemprot":
        src = _shared("re", "ChemProt-scibert")
        for split, n in (("train", 120), ("dev", 40), ("test", 40)):
            _head(src / f"{split}.txt", d / f"{split}.txt", n)
    elif name == "i2b2":  # BLUE layout: index, sentence with @problem$/@treatment$, label
        rows = ["index\tsentence\tlabel"] + [
            f"{i}\tThe @treatment$ improved her @problem$ today .\t{lab}"
            for i, lab in enumerate(["TrIP", "false", "TrAP", "false"] * 10)
        ]
        for split in ("train", "dev", "test"):
            (d / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    elif name == "hoc":
        src = _shared("classification", "HoC")
        for split, n in (("train", 150), ("dev", 60), ("test", 60)):
            _head(src / f"{split}.tsv", d / f"{split}.tsv", n)
    elif name == "mednli":  # MedNLI JSON lines, as distributed (credentialed, so written here)
        rows = [
            {
                "sentence1": "The patient has a fever.",
                "sentence2": s,
                "gold_label": g,
                "pairID": str(i),
            }
            for i, (s, g) in enumerate(
                [
                    ("The patient is febrile.", "entailment"),
                    ("The patient is afebrile.", "contradiction"),
                    ("The patient has an infection.", "neutral"),
                ]
                * 8
            )
        ]
        for fname in ("mli_train_v1.jsonl", "mli_dev_v1.jsonl", "mli_test_v1.jsonl"):
            (d / fname).write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif name == "biosses":
        src = _shared("sts", "BIOSSES")
        for split in ("train", "dev", "test"):
            (d / f"{split}.tsv").write_bytes((src / f"{split}.tsv").read_bytes())
    elif name == "bioasq4b":
        src = _shared("qa", "BioASQ")
        for f in [*src.glob("BioASQ-test-factoid-4b-[12].json"), *src.glob("4B[12]_golden.json")]:
            (d / f.name).write_bytes(f.read_bytes())
        test = json.loads((d / "BioASQ-test-factoid-4b-1.json").read_text())
        golden = {
            q["id"]: q.get("exact_answer", [])
            for q in json.loads((d / "4B1_golden.json").read_text())["questions"]
        }
        # a training file in BioBERT's SQuAD layout, answers located in their snippets
        paragraphs = []
        for p in test["data"][0]["paragraphs"]:
            for qa in p["qas"]:
                for syn in golden.get(qa["id"].split("_")[0], []):
                    s = syn[0] if isinstance(syn, list) else syn
                    at = p["context"].lower().find(s.lower())
                    if at >= 0:
                        paragraphs.append(
                            {
                                "context": p["context"],
                                "qas": [
                                    {
                                        "id": qa["id"],
                                        "question": qa["question"],
                                        "answers": [
                                            {
                                                "text": p["context"][at : at + len(s)],
                                                "answer_start": at,
                                            }
                                        ],
                                    }
                                ],
                            }
                        )
                        break
        (d / "BioASQ-train-factoid-4b.json").write_text(
            json.dumps({"data": [{"paragraphs": paragraphs}]})
        )
    return d


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


# Task types whose training step the XLA/graph agreement test below does not compile: their
# runs here keep the default XLA step, so that every task type trains under XLA somewhere; the
# others train with the plain graph (compiling costs 10-30 s per run at this size).
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


def test_in_graph_tokenizer_matches_python(tiny_spm, small_text_corpus):
    """Same ids for the text both sides see, apart from SentencePiece ties (two segmentations with
    the same pieces in another order), which the two library versions break differently."""
    from bioalbert_tf.tasks.preprocessing import TextEncoder
    from bioalbert_tf.tokenization import Tokenizer

    lines = [s for s in small_text_corpus.read_text(encoding="utf-8").splitlines() if s.strip()]
    lines += ["Café  ``Naïve''\tTNF-α", "a\u00a0b\u2003c", "", "   "]
    ours = TextEncoder(pathlib.Path(tiny_spm).read_bytes()).tokenize(tf.constant(lines)).to_list()
    python = Tokenizer(tiny_spm).encode(lines)
    different = [(a, b) for a, b in zip(ours, python, strict=True) if a != b]
    assert len(different) <= 0.01 * len(lines)
    assert all(sorted(a) == sorted(b) for a, b in different)


def test_merge_windows_keeps_the_most_context():
    from bioalbert_tf.tasks import preprocessing as pp

    pieces = tf.ragged.constant([list(range(10, 30)), [7, 8, 9]], dtype=tf.int32)
    win = pp.windows(pieces, max_len=8, stride=3)  # 6 pieces per window
    logits = tf.cast(tf.stack([tf.range(tf.shape(win["example"])[0])] * 8, axis=1), tf.float32)[
        :, :, None
    ]  # window id
    merged = pp.merge_windows(
        logits, win["example"], win["start"], win["length"], tf.constant([20, 3])
    )
    chosen = merged.flat_values[:, 0].numpy().astype(int)
    starts, lengths = win["start"].numpy(), win["length"].numpy()
    for piece in range(
        20
    ):  # the first example's windows are 0.. ; pick by min(left, right) context
        candidates = [
            (min(piece - s, s + n - 1 - piece), -s, w)
            for w, (s, n) in enumerate(zip(starts, lengths, strict=True))
            if win["example"].numpy()[w] == 0 and s <= piece < s + n
        ]
        assert chosen[piece] == max(candidates)[2], piece
    assert set(chosen[20:]) == {int(np.flatnonzero(win["example"].numpy() == 1)[0])}


def test_ner_window_logits_in_length_sorted_chunks_equal_the_padded_model(tiny_spm):
    """Prediction runs windows in length order, PREDICT_CHUNK at a time, each chunk cut to its
    longest window: at every real position the logits are those of the whole padded batch."""
    from bioalbert_tf.tasks import create_task, ner
    from bioalbert_tf.tasks import preprocessing as pp
    from tests.conftest import small_config

    task = create_task(
        datasets.get("ncbi_disease"),
        ("O", "B", "I"),
        small_config(vocab_size=1000),
        pathlib.Path(tiny_spm).read_bytes(),
        16,
    )
    rng = np.random.default_rng(4)
    lengths = [int(n) for n in rng.integers(0, 40, 3 * ner.PREDICT_CHUNK + 1)]  # 4 chunks
    pieces = tf.ragged.constant([list(rng.integers(5, 1000, n)) for n in lengths], tf.int32)
    win = pp.windows(pieces, 16, task.stride)  # some examples in several windows, one empty
    chunked = task._window_logits(win["inputs"], win["length"]).numpy()
    padded = task.model(win["inputs"], training=False).numpy()
    real = win["inputs"]["input_mask"].numpy().astype(bool)
    assert chunked.shape == padded.shape and len(set(win["length"].numpy())) > 5
    np.testing.assert_allclose(chunked[real], padded[real], atol=1e-5)


def test_ner_training_batches_are_windows_of_one_shape_holding_every_window(tiny_spm):
    """Sentences longer than a window give several; a training batch is always `batch_size`
    windows of max_seq_length (one shape, so XLA compiles the step once), and one pass over the
    sentences yields each of their windows with its labels once."""
    from bioalbert_tf.tasks import create_task
    from bioalbert_tf.tasks import preprocessing as pp
    from tests.conftest import small_config

    labels = ("O", "B", "I")
    task = create_task(
        datasets.get("ncbi_disease"),
        labels,
        small_config(vocab_size=1000),
        pathlib.Path(tiny_spm).read_bytes(),
        16,
    )
    rng = np.random.default_rng(6)
    vocab = ["protein", "binds", "the", "receptor", "kinase", "in", "human", "cells", "of"]
    rows = [
        formats.NerSentence(tuple(rng.choice(vocab, n)), tuple(rng.choice(labels, n)))
        for n in (3, 30, 5, 22, 9, 40, 2, 14)
    ]
    words = tf.ragged.constant([r.words for r in rows])
    tags = tf.ragged.constant([[labels.index(t) for t in r.tags] for r in rows], tf.int32)
    pieces, first = pp.word_pieces(task.text_encoder, words)
    want = pp.windows(pieces, 16, task.stride, task._piece_labels(pieces, first, tags))
    total = len(want["labels"])
    assert total > len(rows) + 4  # several sentences span several windows

    def keyed(inputs, labels_):
        ids, y = inputs["input_ids"].numpy(), labels_.numpy()
        return sorted(tuple(a) + tuple(b) for a, b in zip(ids, y, strict=True))

    got_inputs, got_labels = [], []
    for x, y in task.train_dataset(rows, 4, seed=1).take(-(-total // 4)):
        assert all(v.shape == (4, 16) for v in x.values()) and y.shape == (4, 16)
        got_inputs.append(x["input_ids"])
        got_labels.append(y)
    ids, y = tf.concat(got_inputs, 0)[:total], tf.concat(got_labels, 0)[:total]
    assert keyed({"input_ids": ids}, y) == keyed(want["inputs"], want["labels"])


def test_bucket_width_is_the_first_that_holds_the_batch():
    from bioalbert_tf.tasks.base import bucket_width

    assert [bucket_width(n, 128) for n in (1, 32, 33, 64, 65, 128)] == [32, 32, 64, 64, 128, 128]
    assert [bucket_width(n, 100) for n in (20, 64, 65, 100)] == [32, 64, 100, 100]
    assert bucket_width(300, 512) == 512 and bucket_width(16, 16) == 16


@pytest.mark.parametrize("jit", [True, False])
def test_bucketed_prediction_equals_the_model_on_full_length_batches(tiny_spm, jit):
    """raw_outputs cuts each batch to its bucket width and pads the last one to the batch size:
    every row's output is the model's on the whole max_seq_length batch, and the forward pass is
    traced once per width, whatever the number of batches."""
    from bioalbert_tf.tasks import create_task
    from bioalbert_tf.tasks.base import bucket_width
    from tests.conftest import small_config

    task = create_task(
        datasets.get("chemprot"),
        ("false", "CPR:3", "CPR:4"),
        small_config(vocab_size=1000, max_position_embeddings=128),
        pathlib.Path(tiny_spm).read_bytes(),
        128,
    )
    task.predict_jit_compile = jit
    rng = np.random.default_rng(7)
    words = ["protein", "binds", "the", "receptor", "inhibits", "kinase", "in", "human", "cells"]
    # Two batches of short rows, one of long rows, then a partial last batch of short rows.
    lengths = [3] * 16 + [30] * 8 + [5] * 3
    rows = [formats.Example(str(i), " ".join(rng.choice(words, n))) for i, n in enumerate(lengths)]
    got = task.raw_outputs(rows, batch_size=8)
    texts = tf.constant([r.text_a for r in rows])
    want = task.model(task.encode_texts(texts), training=False).numpy()
    assert got.shape == want.shape == (len(rows), 3)
    np.testing.assert_allclose(got, want, atol=1e-5)
    pieces = task.encode_texts(texts)["input_mask"].numpy().sum(axis=1)
    widths = {bucket_width(int(pieces[i : i + 8].max()), 128) for i in range(0, len(rows), 8)}
    assert len(widths) == 2 and task._forward.experimental_get_tracing_count() == 2


@pytest.mark.parametrize("dataset", ["chemprot", "ncbi_disease"])
def test_xla_and_graph_training_steps_give_the_same_losses_and_weights(tiny_spm, dataset):
    """compile_task's XLA training step (run_finetuning's default) and the plain graph, from the
    same weights on the same batches (dropout 0): the same loss at every step and the same
    weights after them, within float32 round-off; and XLA is really on (Keras' own "auto" leaves
    it off on a CPU-only machine)."""
    import keras

    from bioalbert_tf.tasks import create_task
    from bioalbert_tf.training import finetuning
    from tests.conftest import small_config

    spec = datasets.get(dataset)
    labels = ("O", "B", "I") if spec.task == datasets.NER else spec.labels
    rng = np.random.default_rng(5)
    words = ["protein", "binds", "the", "receptor", "inhibits", "kinase", "in", "human", "cells"]
    if spec.task == datasets.NER:
        rows = [
            formats.NerSentence(tuple(rng.choice(words, 6)), tuple(rng.choice(labels, 6)))
            for _ in range(12)
        ]
    else:
        rows = [
            formats.Example(str(i), " ".join(rng.choice(words, 7)), label=str(rng.choice(labels)))
            for i in range(12)
        ]
    runs = {}
    for jit in (True, False):
        keras.utils.set_random_seed(0)
        task = create_task(
            spec,
            labels,
            small_config(vocab_size=1000),
            pathlib.Path(tiny_spm).read_bytes(),
            16,
            classifier_dropout=0.0,
        )
        config = finetuning.FinetuningConfig(
            dataset,
            "-",
            "-",
            "-",
            "-",
            learning_rate=1e-2,
            train_batch_size=4,
            num_train_steps=5,
            num_warmup_steps=1,
            jit_compile=jit,
        )
        finetuning.compile_task(task, config)
        assert task.model.jit_compile is jit
        start = [w.numpy().copy() for w in task.model.weights]
        losses = []
        record = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs, losses=losses: losses.append(float(logs["loss"]))
        )
        task.model.fit(
            task.train_dataset(rows, 4, seed=1),
            steps_per_epoch=5,
            epochs=1,
            callbacks=[record],
            verbose=0,
        )
        runs[jit] = start, losses, [w.numpy() for w in task.model.weights]
    (start_x, loss_x, end_x), (start_g, loss_g, end_g) = runs[True], runs[False]
    for a, b in zip(start_x, start_g, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(loss_x) == 5 and loss_x[0] != loss_x[-1]  # it trained
    np.testing.assert_allclose(loss_x, loss_g, rtol=1e-4)
    moved = max(float(np.abs(e - s).max()) for e, s in zip(end_g, start_g, strict=True))
    assert moved > 1e-3
    for a, b in zip(end_x, end_g, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


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


def test_a_finished_run_with_other_settings_is_refused_not_replaced(trained, tmp_path):
    """A single run into a folder holding a finished run: other settings are refused before
    anything is written (the folder may have been moved: output_dir is not compared). A
    metrics.json without run_settings.json beside it is not taken for a fine-tuning run's."""
    import shutil

    from bioalbert_tf.training import finetuning

    result, out = trained("i2b2")
    folder = tmp_path / "moved"
    shutil.copytree(out, folder)
    before = _files(folder)
    config = finetuning.FinetuningConfig(**{**result["config"], "output_dir": str(folder)})
    other = dataclasses.replace(config, learning_rate=5e-4)
    with pytest.raises(
        ValueError,
        match=rf"{folder} holds a fine-tuning run made with other settings; 1 differ:\n"
        rf"  --learning_rate: 0.001 in {folder}/run_settings.json, 0.0005 now\n"
        r"Choose another --output_dir, or pass --overwrite",
    ):
        finetuning.run(other)
    assert _files(folder) == before
    assert finetuning.finished_run(config) == json.loads((folder / "metrics.json").read_text())
    (folder / "run_settings.json").unlink()  # metrics.json alone: not a fine-tuning run's folder
    with pytest.raises(ValueError, match=rf"{folder}/metrics.json is not a fine-tuning run's"):
        finetuning.run(other)


def _files(folder: pathlib.Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


class Interrupted(Exception):
    """Raised as training starts: a run killed mid-training (without tracing a training step)."""


@pytest.fixture
def interrupted(monkeypatch):
    """Every fine-tuning run in the test stops as its training starts."""
    from bioalbert_tf.training import finetuning

    def stop(self, logs=None):
        raise Interrupted(self.config.output_dir)

    monkeypatch.setattr(finetuning.DevEvaluation, "on_train_begin", stop)


# run_finetuning's command line, stopped (exit code 3) as training starts.
STOPPED_AT_TRAINING = textwrap.dedent(
    """
    import sys
    from absl import app
    from bioalbert_tf import run_finetuning
    from bioalbert_tf.training import finetuning
    def stop(self, logs=None):
        print(f"jit_compile={self.model.jit_compile}")
        raise SystemExit(3)
    finetuning.DevEvaluation.on_train_begin = stop
    app.run(run_finetuning.main, argv=["run_finetuning", *sys.argv[1:]])
    """
)


def _cli_flags(setup, tiny_spm, data, out, *extra) -> list[str]:
    """run_finetuning's flags for a 2-step i2b2 run of the small model, then `extra`."""
    return [
        "--dataset=i2b2",
        f"--data_dir={data}",
        f"--output_dir={out}",
        f"--albert_config_file={setup}/albert_config.json",
        f"--spm_model_file={tiny_spm}",
        "--num_train_steps=2",
        "--num_warmup_steps=1",
        "--max_seq_length=32",
        *extra,
    ]


def _run_cli(setup, tiny_spm, data, out, *extra) -> subprocess.CompletedProcess:
    """`python -m bioalbert_tf.run_finetuning` with `_cli_flags`, its output captured."""
    flags = _cli_flags(setup, tiny_spm, data, out, *extra)
    command = [sys.executable, "-m", "bioalbert_tf.run_finetuning", *flags]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


def _small(setup, tiny_spm, data, out, **kw):
    from bioalbert_tf.training import finetuning

    values = dict(
        dataset="i2b2",
        data_dir=str(data),
        output_dir=str(out),
        albert_config_file=str(setup / "albert_config.json"),
        spm_model_file=tiny_spm,
        learning_rate=1e-3,
        train_batch_size=8,
        num_train_steps=2,
        num_warmup_steps=1,
        max_seq_length=32,
        eval_every_steps=1,
    )
    return finetuning.FinetuningConfig(**{**values, **kw})


def test_settings_are_recorded_before_training_and_a_rerun_with_others_is_refused(
    setup, tiny_spm, tmp_path, interrupted
):
    """run_settings.json is written before training starts, so a run killed mid-training (no
    metrics.json yet) is compared too: other flags, data files or initial weights are refused
    before anything is written, each named with both values; the same settings run again."""
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.manifest import SettingsMismatchError
    from bioalbert_tf.training import finetuning
    from tests.tf1_names import write_random_tf1_checkpoint

    data = _data("i2b2", tmp_path)
    albert = AlbertConfig.from_json_file(str(setup / "albert_config.json"))
    write_random_tf1_checkpoint(albert, str(tmp_path / "init" / "model.ckpt-best"))
    out = tmp_path / "out"
    settings_file = out / "run_settings.json"
    config = _small(setup, tiny_spm, data, out, init_checkpoint=str(tmp_path / "init"))
    with pytest.raises(Interrupted):
        finetuning.run(config)
    assert not (out / "metrics.json").exists()
    recorded = json.loads(settings_file.read_text())
    spm = pathlib.Path(tiny_spm)
    assert recorded["command"] == "run_finetuning" and recorded["cross_validation_folds"] is None
    assert "jit_compile" not in recorded  # round-off only: XLA or not, the same run
    assert (recorded["learning_rate"], recorded["max_seq_length"]) == (1e-3, 32)
    assert recorded["albert_config"] == albert.to_dict()
    assert recorded["data_files"] == [[p.name, p.stat().st_size] for p in sorted(data.iterdir())]
    assert recorded["spm_model"] == [[spm.name, spm.stat().st_size]]
    assert re.fullmatch(
        r"model\.ckpt-best \(\.index sha256 [0-9a-f]{16}\.\.\.\)", recorded["init_weights"]
    )
    # The same settings: trained again, as before run_settings.json.
    with pytest.raises(Interrupted):
        finetuning.run(config)
    assert json.loads(settings_file.read_text()) == recorded
    before = _files(out)
    train = (data / "train.tsv").read_bytes()
    (data / "train.tsv").write_bytes(
        train + b"40\tThe @treatment$ improved her @problem$ .\tfalse\n"
    )
    with pytest.raises(SettingsMismatchError) as e:
        finetuning.run(dataclasses.replace(config, learning_rate=5e-4, train_batch_size=4))
    message = str(e.value)
    assert message.startswith(
        f"{out} holds a fine-tuning run made with other settings; 3 differ:\n"
    )
    assert f"  --learning_rate: 0.001 in {settings_file}, 0.0005 now\n" in message
    assert f"  --train_batch_size: 8 in {settings_file}, 4 now\n" in message
    size = (data / "train.tsv").stat().st_size
    assert (
        f"  --data_dir: 3 file(s) in {settings_file}, 3 now; recorded but not given now: train.tsv "
        f"({len(train)} bytes); given now but not recorded: train.tsv ({size} bytes)\n"
    ) in message
    assert message.endswith(
        "Choose another --output_dir, or pass --overwrite to start this one afresh (the metrics, "
        "predictions, weights and SavedModel fine-tuning wrote there are removed)."
    )
    assert _files(out) == before
    # Other weights under the same name (a model.ckpt-best that pretraining rewrote).
    (data / "train.tsv").write_bytes(train)
    write_random_tf1_checkpoint(albert, str(tmp_path / "init" / "model.ckpt-best"), seed=1)
    with pytest.raises(SettingsMismatchError) as e:
        finetuning.run(config)
    assert re.search(
        r"1 differ:\n  --init_checkpoint weights: 'model.ckpt-best \(.index sha256 \w{16}...\)' "
        r"in .*run_settings.json, 'model.ckpt-best \(.index sha256 \w{16}...\)' now\n",
        str(e.value),
    )
    assert _files(out) == before


def _i2b2_folds(root: pathlib.Path, folds: int = 2) -> pathlib.Path:
    """Fold folders 1/ .. k/, each a copy of the written i2b2 splits."""
    splits = _data("i2b2", root)
    for k in range(1, folds + 1):
        (root / "folds" / str(k)).mkdir(parents=True)
        for f in splits.iterdir():
            (root / "folds" / str(k) / f.name).write_bytes(f.read_bytes())
    return root / "folds"


def test_a_cross_validation_and_a_single_run_do_not_share_a_folder(
    setup, tiny_spm, tmp_path, interrupted
):
    """A cross-validation into the folder of a single run (one killed before its metrics.json)
    is refused, and the reverse; each fold's folder is compared before any fold runs."""
    from bioalbert_tf.manifest import SettingsMismatchError
    from bioalbert_tf.training import finetuning

    fold_data = _i2b2_folds(tmp_path)
    single = _small(setup, tiny_spm, tmp_path / "i2b2", tmp_path / "single")
    with pytest.raises(Interrupted):
        finetuning.run(single)
    before = _files(tmp_path / "single")
    cv = _small(setup, tiny_spm, fold_data, tmp_path / "single")
    with pytest.raises(SettingsMismatchError) as e:
        finetuning.run(cv)
    source = tmp_path / "single" / "run_settings.json"
    assert f"  --data_dir: 3 file(s) in {source}, 0 now; recorded but not given" in str(e.value)
    assert f"  the run: 'a single run' in {source}, 'a cross-validation' now\n" in str(e.value)
    assert _files(tmp_path / "single") == before
    # The reverse: a cross-validation killed in its first fold, then a single run there.
    cv = dataclasses.replace(cv, output_dir=str(tmp_path / "cv"))
    with pytest.raises(Interrupted):
        finetuning.run(cv)
    cv_settings = json.loads((tmp_path / "cv" / "run_settings.json").read_text())
    assert cv_settings["cross_validation_folds"] == [1, 2]
    assert (tmp_path / "cv" / "fold-1" / "run_settings.json").exists()
    assert not (tmp_path / "cv" / "fold-2").exists()
    before = _files(tmp_path / "cv")
    with pytest.raises(
        SettingsMismatchError, match=r"  the run: 'a cross-validation' in .*, 'a single run' now\n"
    ):
        finetuning.run(dataclasses.replace(single, output_dir=str(tmp_path / "cv")))
    # Fold 1's data changed: refused before fold 1 (or any other) runs.
    with (fold_data / "1" / "test.tsv").open("a") as f:
        f.write("40\tThe @treatment$ improved her @problem$ .\tfalse\n")
    with pytest.raises(
        SettingsMismatchError,
        match=rf"{tmp_path}/cv/fold-1 holds a fine-tuning run made with other settings; 1 differ:\n"
        r"  --data_dir: 3 file\(s\) in .*fold-1/run_settings.json, 3 now; recorded but not",
    ):
        finetuning.run(cv)
    assert _files(tmp_path / "cv") == before
    # overwrite: what the cross-validation wrote goes (not a file of someone else's in fold-1/).
    (tmp_path / "cv" / "fold-1" / "notes.txt").write_text("mine")
    with pytest.raises(Interrupted):
        finetuning.run(dataclasses.replace(single, output_dir=str(tmp_path / "cv")), overwrite=True)
    assert sorted(_files(tmp_path / "cv")) == ["fold-1/notes.txt", "run_settings.json"]
    assert (
        json.loads((tmp_path / "cv" / "run_settings.json").read_text())["cross_validation_folds"]
        is None
    )


def test_run_finetuning_overwrite_starts_the_folder_afresh(setup, tiny_spm, tmp_path, interrupted):
    """Other settings are refused on the command line too; --overwrite removes what fine-tuning
    wrote there (even names this run would not write), keeps other files, and records the new
    settings before training starts."""
    from bioalbert_tf.training import finetuning

    data = _data("i2b2", tmp_path)
    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        finetuning.run(_small(setup, tiny_spm, data, out))
    (out / "notes.txt").write_text("mine")
    (out / "predictions.json").write_text("{}")  # a BioASQ run's
    (out / "saved_model").mkdir()
    (out / "saved_model" / "stale.pb").write_bytes(b"old")
    before = _files(out)
    other = ("--learning_rate=5e-4", "--train_batch_size=8", "--eval_every_steps=1")
    proc = _run_cli(setup, tiny_spm, data, out, *other)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        f"error: {out} holds a fine-tuning run made with other settings; 1 differ:\n"
        f"  --learning_rate: 0.001 in {out}/run_settings.json, 0.0005 now\n"
    ) in proc.stderr
    assert _files(out) == before
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            STOPPED_AT_TRAINING,
            *_cli_flags(setup, tiny_spm, data, out, *other),
            "--overwrite",
            "--nojit_compile",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "jit_compile=False" in proc.stdout  # the flag reaches Keras' compile
    assert sorted(_files(out)) == ["notes.txt", "run_settings.json"]
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "run_settings.json").read_text())["learning_rate"] == 5e-4


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


# ------------------------------------------------------------------------------ QA ranking


def test_rank_within_rows_is_a_two_key_sort():
    """Candidates of 45 rows with scores of every size (ties included): the order must be row
    ascending, then score descending, exactly as numpy's lexsort gives it."""
    from bioalbert_tf.tasks.qa import rank_within_rows

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 45, 900).astype(np.int32)
    scores = (rng.normal(0, 1, 900) * rng.choice([1e-3, 1.0, 1e4], 900)).astype(np.float32)
    scores[::7] = scores[0]  # ties
    order = rank_within_rows(tf.constant(rows), tf.constant(scores)).numpy()
    expected = np.lexsort((-scores, rows))
    assert np.array_equal(rows[order], rows[expected])
    assert np.array_equal(scores[order], scores[expected])


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


# ------------------------------------------------------------------------ cross-validation


def _gad_folds(root: pathlib.Path, folds=3) -> pathlib.Path:
    """BioBERT's GAD layout: folders 1/ .. k/, train.tsv without header, test.tsv with one, and an
    empty dev.tsv; rows are slices of the real GAD file."""
    rows = _shared("re", "GAD", "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    for k in range(1, folds + 1):
        fold = root / str(k)
        fold.mkdir(parents=True)
        part = rows[(k - 1) * 90 : k * 90]
        (fold / "train.tsv").write_text("".join(r.split("\t", 1)[1] + "\n" for r in part[:60]))
        (fold / "test.tsv").write_text(
            "index\tsentence\tlabel\n" + "".join(r + "\n" for r in part[60:])
        )
        (fold / "dev.tsv").write_text("")
    return root


def test_cross_validation_runs_every_fold_and_reports_mean_and_sd(setup, tiny_spm, tmp_path):
    from bioalbert_tf.benchmark import reporting, runner
    from bioalbert_tf.training import finetuning

    data = _gad_folds(tmp_path / "GAD")
    config = finetuning.FinetuningConfig(
        dataset="gad",
        data_dir=str(data),
        output_dir=str(tmp_path / "out"),
        albert_config_file=str(setup / "albert_config.json"),
        spm_model_file=tiny_spm,
        learning_rate=1e-3,
        train_batch_size=8,
        num_train_steps=4,
        num_warmup_steps=1,
        max_seq_length=64,
        eval_every_steps=2,
        jit_compile=False,
    )
    result = finetuning.run(config)
    cv = result["cross_validation"]
    assert sorted(cv["folds"]) == ["1", "2", "3"]
    f1 = [cv["folds"][k]["micro_f1"] for k in ("1", "2", "3")]
    assert cv["mean"]["micro_f1"] == pytest.approx(np.mean(f1))
    assert cv["sd"]["micro_f1"] == pytest.approx(np.std(f1, ddof=1))
    for k in ("1", "2", "3"):
        fold = tmp_path / "out" / f"fold-{k}"
        metrics = json.loads((fold / "metrics.json").read_text())
        assert metrics["dev_selection"] is False and "dev" not in metrics["history"][-1]
        assert metrics["test"] == cv["folds"][k]
        assert (fold / "saved_model" / "saved_model.pb").exists()
        assert (fold / "test_predictions.tsv").exists()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())[
        "cross_validation"
    ] == json.loads(json.dumps(cv))
    # A rerun skips finished folds; other settings in the same folder are refused.
    stamp = (tmp_path / "out" / "fold-2" / "metrics.json").stat().st_mtime_ns
    again = finetuning.run(dataclasses.replace(config, folds="2,3"))
    assert (tmp_path / "out" / "fold-2" / "metrics.json").stat().st_mtime_ns == stamp
    assert sorted(again["cross_validation"]["folds"]) == ["2", "3"]
    with pytest.raises(
        ValueError,
        match=rf"{tmp_path}/out holds a fine-tuning run made with other settings; 1 differ:\n"
        r"  --learning_rate: 0.001 in .*, 0.0005 now",
    ):
        finetuning.run(dataclasses.replace(config, learning_rate=5e-4))
    with pytest.raises(ValueError, match=r"--folds=4: fold '4' is not among the folds"):
        finetuning.run(dataclasses.replace(config, folds="4"))
    # The benchmark runner scores the folder of fold SavedModels the same way: mean ± sd.
    results = runner.run_suite(
        [runner.RunConfig(str(tmp_path / "out"), "gad", str(data), str(tmp_path / "bench"))],
        progress=False,
    )
    assert [r["run"]["fold"] for r in results] == [1, 2, 3]
    assert [r["micro_f1"] for r in results] == f1
    summary = reporting.build_report(str(tmp_path / "bench"), None)
    (row,) = summary["rows"]
    assert row["n"] == 3 and row["folds"] == [1, 2, 3]
    assert row["mean"] == pytest.approx(100 * np.mean(f1))
    assert row["sd"] == pytest.approx(100 * np.std(f1, ddof=1))


def test_an_undefined_dev_score_never_wins_the_selection():
    """STS on constant predictions has no Pearson (None): the first defined score replaces it,
    and it never replaces a number."""
    from bioalbert_tf.training.dev_evaluation import _better

    assert _better(0.1, None) and _better(0.2, 0.1)
    assert not _better(None, None) and not _better(None, -0.5)
    assert not _better(0.1, 0.1)


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


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_run_finetuning_output_faults_are_one_line(setup, tiny_spm, tmp_path, where):
    data = _data("i2b2", tmp_path)
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a folder\n")
    out, expected = {
        "under a file": (in_the_way / "out", (in_the_way, "a file is in the way")),
        "read-only": (
            "/sys/bioalbert_finetuning",
            ("/sys/bioalbert_finetuning", "permission denied"),
        ),
    }[where]
    proc = _run_cli(setup, tiny_spm, data, out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(f"error: {re.escape(str(expected[0]))}(/out)?: {expected[1]}", proc.stderr), (
        proc.stderr[-2000:]
    )
