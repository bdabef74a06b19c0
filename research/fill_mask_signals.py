r"""How often pretraining records teach each of the demo's fill-mask answers.

For each sentence of the demo's fill-mask (bioalbert_tf/demo_recipe.py), take the expected
word's piece and the --context pieces just before [MASK] (fewer when the sentence has fewer).
Over the records, count the expected piece: anywhere, masked anywhere, right after those pieces,
and masked right after them with those pieces left visible. The last count is the number of
training signals that teach the answer in the sentence's own context; it is also scaled to
the number of examples that --steps at --batch_size read.

  python -m research.fill_mask_signals --records=output/demo/tfrecords \
      --spm_model_file=output/demo/vocab/bio8k.model
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

import numpy as np
from absl import app, flags

from bioalbert_tf import demo_recipe as recipe
from bioalbert_tf import settings
from bioalbert_tf.settings import setting


@dataclass(frozen=True)
class FillMaskSignalsConfig:
    """This script's settings (its flags are generated from these fields)."""

    records: str = setting(help="Folder of the builder's *.tfrecord shards.")
    spm_model_file: str = setting(help="Their SentencePiece model.")
    max_seq_length: int = setting(recipe.SEQ, "Sequence length of the records.")
    max_predictions_per_seq: int = setting(
        recipe.PREDICTIONS, "Masked-LM predictions per sequence."
    )
    context: int = setting(2, "Pieces before [MASK] that must match (at most).")
    steps: int = setting(recipe.STEPS, "Training steps to scale the counts to.")
    batch_size: int = setting(recipe.BATCH, "Examples per training step.")


FLAGS = flags.FLAGS


@dataclass(frozen=True)
class Probe:
    sentence: str
    expected: int  # the expected word's piece id
    context: tuple[int, ...]  # the piece ids just before the slot


@dataclass
class Counts:
    anywhere: int = 0
    masked: int = 0
    in_context: int = 0
    masked_in_context: int = 0  # masked there, with every context piece visible


def probes(tokenizer, context: int) -> list[Probe]:
    """The demo's fill-mask sentences as (expected piece, the pieces before its slot)."""
    from bioalbert_tf.tokenization import MASK_ID

    out = []
    for sentence, word in recipe.FILL_MASK:
        expected = recipe.expected_piece_id(tokenizer, word)
        if expected is None:
            raise ValueError(f"{word!r} is not one piece of {tokenizer.spm_model_file}")
        ids = recipe.fill_mask_ids(tokenizer, sentence, MASK_ID)
        slot = ids.index(MASK_ID)
        out.append(Probe(sentence, expected, tuple(ids[max(1, slot - context) : slot])))
    return out


def count(original: np.ndarray, masked: np.ndarray, probe: Probe) -> Counts:
    """Counts for one probe over a batch of sequences: `original` [n, seq] holds the ids before
    masking, `masked` [n, seq] whether each position is a masked-LM target."""
    k = len(probe.context)
    hit = original == probe.expected
    after = np.zeros_like(hit)
    after[:, k:] = hit[:, k:]
    visible = np.ones_like(hit)
    for j, piece in enumerate(probe.context):  # context piece j sits k - j positions earlier
        shift = k - j
        after[:, shift:] &= original[:, : original.shape[1] - shift] == piece
        visible[:, shift:] &= ~masked[:, : masked.shape[1] - shift]
    return Counts(
        anywhere=int(hit.sum()),
        masked=int((hit & masked).sum()),
        in_context=int(after.sum()),
        masked_in_context=int((after & masked & visible).sum()),
    )


def read_records(files: list[str], max_seq_length: int, max_predictions_per_seq: int):
    """Batches of (original ids, masked-target flags) from pretraining TFRecords: the ids before
    masking, restored from masked_lm_positions / masked_lm_ids where masked_lm_weights > 0."""
    import tensorflow as tf

    from bioalbert_tf import features

    dataset = tf.data.TFRecordDataset(files).batch(4096)
    for serialized in dataset:
        parsed = features.parse_pretraining_examples(
            serialized, max_seq_length, max_predictions_per_seq
        )
        ids = parsed[features.INPUT_IDS].numpy()
        positions = parsed[features.MASKED_LM_POSITIONS].numpy()
        labels = parsed[features.MASKED_LM_IDS].numpy()
        real = parsed[features.MASKED_LM_WEIGHTS].numpy() > 0
        rows = np.broadcast_to(np.arange(len(ids))[:, None], positions.shape)
        original = ids.copy()
        original[rows[real], positions[real]] = labels[real]
        masked = np.zeros(ids.shape, bool)
        masked[rows[real], positions[real]] = True
        yield original, masked


def _define_flags() -> None:
    """Defined when run as a program only: tests import this module beside others that define
    flags of the same names."""
    settings.define_flags(FillMaskSignalsConfig)
    flags.mark_flags_as_required(["records", "spm_model_file"])


def main(argv):
    del argv
    from bioalbert_tf.tokenization import Tokenizer

    files = sorted(glob.glob(os.path.join(FLAGS.records, "*.tfrecord")))
    if not files:
        raise SystemExit(f"no *.tfrecord files in {FLAGS.records}")
    tokenizer = Tokenizer(FLAGS.spm_model_file)
    wanted = probes(tokenizer, FLAGS.context)
    totals = [Counts() for _ in wanted]
    examples = 0
    for original, masked in read_records(
        files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq
    ):
        examples += len(original)
        for total, probe in zip(totals, wanted, strict=True):
            c = count(original, masked, probe)
            for field in vars(c):
                setattr(total, field, getattr(total, field) + getattr(c, field))
    if not examples:
        raise SystemExit(f"no records in {FLAGS.records}")
    epochs = FLAGS.steps * FLAGS.batch_size / examples
    print(
        f"{examples} examples; {FLAGS.steps} steps at batch {FLAGS.batch_size} read "
        f"{epochs:.2f} times as many\n"
    )
    print(
        "| sentence | context | anywhere | masked | after the context | masked there, "
        f"context visible | the same in {FLAGS.steps} steps |\n|---|---|---|---|---|---|---|"
    )
    for total, probe in zip(totals, wanted, strict=True):
        context = " ".join(tokenizer.id_to_piece(i) for i in probe.context)
        print(
            f"| {probe.sentence} | {context} | {total.anywhere} | {total.masked} | "
            f"{total.in_context} | {total.masked_in_context} | "
            f"{total.masked_in_context * epochs:.0f} |"
        )
    print(
        json.dumps(
            {
                "examples": examples,
                "epochs": round(epochs, 3),
                "counts": {p.sentence: vars(t) for p, t in zip(wanted, totals, strict=True)},
            }
        )
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
