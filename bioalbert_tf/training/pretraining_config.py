"""run_pretraining's settings: each field's default and help (its flags are generated from them,
`settings`), and their validation. Imports nothing heavy."""

from __future__ import annotations

import dataclasses

from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class PretrainingConfig:
    """run_pretraining's settings (its flags are generated from these fields, `settings`)."""

    input_file: tuple[str, ...] = setting(
        help="TFRecord files: comma list or globs, local or gs://."
    )
    output_dir: str = setting(help="Checkpoints, summaries, eval results (local or gs://).")
    albert_config_file: str = setting(help="albert_config.json of the model.")
    init_checkpoint: str | None = setting(
        None, "TF1 (Google ALBERT / BioALBERT) or our checkpoint, prefix or folder."
    )
    eval_input_file: tuple[str, ...] = setting(
        (), "Eval TFRecords (default: --input_file, as the original)."
    )
    train_batch_size: int = setting(
        1024, "Global training batch size (over all replicas); BioALBERT base: 8 TPU v3 x 128."
    )
    eval_batch_size: int = setting(64, "Global eval batch size.")
    max_seq_length: int = setting(512, "Sequence length of the TFRecords.")
    max_predictions_per_seq: int = setting(
        20, "Masked-LM predictions per sequence in the TFRecords."
    )
    learning_rate: float = setting(0.00176, "Peak learning rate.")
    num_train_steps: int = setting(200_000, "Training steps (the polynomial decay reaches 0 here).")
    num_warmup_steps: int = setting(3125, "Linear warm-up steps.")
    poly_power: float = setting(1.0, "Power of the polynomial decay.")
    optimizer: str = setting("lamb", "ALBERT's LAMB, or BERT's AdamW.", choices=("lamb", "adamw"))
    save_checkpoints_steps: int = setting(5000, "Checkpoint every this many steps.")
    keep_checkpoint_max: int = setting(5, "Checkpoints to keep.")
    iterations_per_loop: int = setting(
        1000, "Steps per call into the device (steps per execution)."
    )
    do_train: bool = setting(True, "Train.")
    do_eval: bool = setting(False, "Evaluate at each checkpoint; keep the best as model.ckpt-best.")
    max_eval_steps: int = setting(100, "Eval batches.")
    use_bfloat16: bool = setting(False, "mixed_bfloat16: bfloat16 compute, float32 variables.")
    random_seed: int = setting(12345, "Seed of initialisation and data order.")
    export_tf1: bool = setting(
        False,
        "Also write the final (and best) weights in the original TF1 layout under output_dir/tf1.",
    )
    spm_model_file: str | None = setting(
        None,
        "SentencePiece model of the TFRecords: checks that vocab_size holds all its ids (the "
        "builder's stats.json, when beside the TFRecords, is checked anyway).",
    )
    jit_compile: bool = setting(
        True,
        "XLA-compile each replica's forward/backward on CPU and GPU (TPUs always compile); "
        "--nojit_compile runs the plain graph, which starts without compiling "
        "(bench/pretraining_bench compares the two).",
    )

    def validate(self) -> None:
        for name in (
            "train_batch_size",
            "eval_batch_size",
            "max_seq_length",
            "max_predictions_per_seq",
            "num_train_steps",
            "save_checkpoints_steps",
            "keep_checkpoint_max",
            "iterations_per_loop",
            "max_eval_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.num_warmup_steps < 0:
            raise ValueError(f"--num_warmup_steps must be >= 0, got {self.num_warmup_steps}")
        if not self.learning_rate > 0:  # 0 or less trains nothing, or climbs the loss
            raise ValueError(f"--learning_rate must be > 0, got {self.learning_rate}")
        if self.do_train and self.num_warmup_steps > self.num_train_steps:
            raise ValueError(
                f"--num_warmup_steps={self.num_warmup_steps} exceeds --num_train_steps="
                f"{self.num_train_steps}: the learning rate would never reach --learning_rate"
            )
        if self.optimizer not in ("lamb", "adamw"):
            raise ValueError(f"--optimizer must be lamb or adamw, got {self.optimizer!r}")
        if not (self.do_train or self.do_eval):
            raise ValueError("nothing to do: set --do_train and/or --do_eval")
