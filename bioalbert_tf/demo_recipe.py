"""The small-model pretraining recipe of `make demo` and of benchmarks/domain_bench.

Chosen by measurement on a 2-core CPU (README, "How the demo's recipe was chosen"): a small
ALBERT (configs/albert_demo.json: hidden 128, 1 layer, 2 heads) on sequences of 32 pieces with
5 masked-LM predictions each (ALBERT's 15%, in one-word spans), batch 32, LAMB at 0.005 after
200 warm-up steps, 8,000 steps. At LAMB 0.005-0.01 and sequence 32 or 64, the masked-LM loss
left the frequent-token plateau after about 3 million training tokens, whatever the batch; one layer
learned as much per step as two (the same loss at the same step) at 1.6x the steps per second,
so in the demo's time it gets furthest. One-word spans instead of ALBERT's up to 3 gave a lower
eval loss at 8,000 steps, on one-word and on 3-word masks alike.
"""

from __future__ import annotations

CONFIG = "configs/albert_demo.json"
SEQ, PREDICTIONS = 32, 5
# Masked spans of one whole word (the builder's default is ALBERT's n-grams up to 3): with 5
# predictions in 32 pieces, 2- and 3-word spans often hide the very neighbours a small model
# learns from first, and the demo's fill-mask asks for one word between visible ones.
NGRAM = 1
BATCH, LEARNING_RATE, WARMUP = 32, 0.005, 200
STEPS = 8000  # about 8 minutes of the demo's 15 on that CPU

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


def builder_args() -> list[str]:
    """build_pretraining_data flags for the recipe's TFRecords."""
    return [
        f"--max_seq_length={SEQ}",
        f"--max_predictions_per_seq={PREDICTIONS}",
        f"--ngram={NGRAM}",
    ]


def pretraining_args(steps: int) -> list[str]:
    """run_pretraining flags for `steps` steps of the recipe (linear decay to 0 at the last)."""
    return [f"--albert_config_file={CONFIG}", f"--train_batch_size={BATCH}", f"--max_seq_length={SEQ}",
            f"--max_predictions_per_seq={PREDICTIONS}", f"--learning_rate={LEARNING_RATE}",
            f"--num_train_steps={steps}", f"--num_warmup_steps={min(WARMUP, max(1, steps // 10))}",
            f"--iterations_per_loop={min(100, steps)}"]  # fmt: skip
