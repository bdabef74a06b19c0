"""The small-model recipe of `make demo` and of bench/domain_bench: the flagfiles
configs/demo/{builder,pretraining,finetuning}.flags (how it was chosen: docs/notes/demo_recipe.md),
the demo's settings, its fill-mask sentences and the helpers that score them."""

from __future__ import annotations

import dataclasses
import pathlib

from bioalbert_tf.settings import setting

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The recipe itself: flagfiles, passed to the builder and to run_pretraining as they are.
BUILDER_FLAGS = ROOT / "configs" / "demo" / "builder.flags"
PRETRAINING_FLAGS = ROOT / "configs" / "demo" / "pretraining.flags"
FINETUNING_FLAGS = ROOT / "configs" / "demo" / "finetuning.flags"


def flagfile_values(path: pathlib.Path) -> dict[str, str]:
    """{flag: value} of a flagfile's `--flag=value` lines."""
    lines = path.read_text().splitlines()
    return dict(line[2:].split("=", 1) for line in lines if line.startswith("--"))


_PRETRAINING = flagfile_values(PRETRAINING_FLAGS)
CONFIG = str(ROOT / _PRETRAINING["albert_config_file"])
SEQ = int(_PRETRAINING["max_seq_length"])
STEPS = int(_PRETRAINING["num_train_steps"])
WARMUP = int(_PRETRAINING["num_warmup_steps"])
LOOP = int(_PRETRAINING["iterations_per_loop"])
PREDICTIONS = int(_PRETRAINING["max_predictions_per_seq"])
BATCH = int(_PRETRAINING["train_batch_size"])
LEARNING_RATE = float(_PRETRAINING["learning_rate"])


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The demo command line's settings (its flags are generated from these fields)."""

    corpus_dir: str = setting(".cache/corpus", "Folder with the MEDLINE baseline files.")
    output_dir: str = setting("output/demo", "Where every stage writes.")
    data_dir: str | None = setting(
        None, "Benchmark data folder (with ner/NCBI-disease) for the fine-tuning stage."
    )
    pretraining_steps: int = setting(STEPS, "Pretraining steps of the small model.")
    finetuning_steps: int = setting(300, "NER fine-tuning steps.")


# What the demo asks the pretrained model: the top 5 pieces for [MASK], and the expected word.
FILL_MASK = [
    ("Patients with type 2 [MASK] were treated with metformin.", "diabetes"),
    ("The tumor was removed by [MASK].", "surgery"),
    ("Expression of the [MASK] was measured by western blot.", "protein"),
    ("Blood [MASK] was measured in all patients.", "pressure"),
]


def names_expected(pieces: list[str], expected: str) -> bool:
    """Whether one of the pieces is the expected word (as a whole word: `▁protein`, not
    `▁proteins` or a bare `▁`)."""
    return any(p.lstrip("\u2581") == expected for p in pieces)


def expected_piece_id(tokenizer, expected: str) -> int | None:
    """The id of the expected word as one whole-word piece (`▁word`); None when there is none."""
    piece_id = tokenizer.sp.piece_to_id("\u2581" + expected)
    return piece_id if tokenizer.id_to_piece(piece_id) == "\u2581" + expected else None


def expected_rank(logits, tokenizer, expected: str) -> int | None:
    """The rank (1 = top) of the expected word's piece `▁word` among all pieces' logits; None
    when the vocabulary has no such piece. It shows progress before the word reaches the top 5."""
    piece_id = expected_piece_id(tokenizer, expected)
    return None if piece_id is None else 1 + int((logits > logits[piece_id]).sum())


def fill_mask_ids(tokenizer, sentence: str, mask_id: int) -> list[int]:
    """[CLS] piece ids of the text around [MASK], the mask id in its place, [SEP]: the ids of the
    sentence with a one-piece word in the slot, that word's piece replaced by the mask."""
    from bioalbert_tf.tokenization import CLS_ID, SEP_ID

    left, right = sentence.split("[MASK]")
    right_ids = tokenizer.encode([right])[0]
    # SentencePiece starts each text it encodes at a word boundary. Text that follows the slot
    # without a space ("[MASK].") does not start a word: drop the bare boundary piece it gets.
    glued = right[:1] and not right[:1].isspace()
    if glued and right_ids and tokenizer.id_to_piece(right_ids[0]) == "\u2581":
        right_ids = right_ids[1:]
    return [CLS_ID, *tokenizer.encode([left])[0], mask_id, *right_ids, SEP_ID]


def _flags(values: dict[str, str]) -> list[str]:
    return [f"--{name}={value}" for name, value in values.items()]


def builder_args() -> list[str]:
    """build_pretraining_data flags for the recipe's TFRecords: the flagfile's, spelt out, so
    that what a stage records (the demo's manifests, the domain bench's folder tags) changes
    when the recipe does."""
    return _flags(flagfile_values(BUILDER_FLAGS))


def pretraining_args(steps: int) -> list[str]:
    """run_pretraining flags for `steps` steps of the recipe (linear decay to 0 at the last),
    spelt out as `builder_args` are."""
    return _flags(
        {
            **_PRETRAINING,
            "albert_config_file": CONFIG,  # wherever the command runs
            "num_train_steps": steps,
            "num_warmup_steps": min(WARMUP, max(1, steps // 10)),
            "iterations_per_loop": min(LOOP, steps),
        }
    )


def finetuning_args(steps: int, warmup: int, max_seq_length: int = SEQ) -> list[str]:
    """run_finetuning flags for `steps` steps of the recipe, `warmup` of them warming up (at
    most a tenth of a short run), at the pretraining's sequence length unless told, spelt out as
    `builder_args` are."""
    return _flags(
        {
            **flagfile_values(FINETUNING_FLAGS),
            "albert_config_file": CONFIG,
            "max_seq_length": max_seq_length,
            "num_train_steps": steps,
            "num_warmup_steps": min(warmup, max(1, steps // 10)),
        }
    )
