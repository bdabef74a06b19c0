"""The pieces of the task models that fine-tuning and prediction rely on, checked on an untrained
small model: the in-graph tokenizer against the Python one; NER windows (merged by the most
context, predicted in length-sorted chunks, batched for training in one shape); bucketed
prediction; the XLA and plain-graph training steps agreeing; the rule that picks the best dev
score; and QA candidate ranking."""

import pathlib

import numpy as np
import pytest

from bioalbert_tf.evaluation import datasets, formats

tf = pytest.importorskip("tensorflow")


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
@pytest.mark.slow
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


def test_an_undefined_dev_score_never_wins_the_selection():
    """STS on constant predictions has no Pearson (None): the first defined score replaces it,
    and it never replaces a number."""
    from bioalbert_tf.training.dev_evaluation import _better

    assert _better(0.1, None) and _better(0.2, 0.1)
    assert not _better(None, None) and not _better(None, -0.5)
    assert not _better(0.1, 0.1)


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
