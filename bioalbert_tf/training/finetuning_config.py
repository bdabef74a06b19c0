"""run_finetuning's settings: each field's default and help (its flags are generated from them,
`settings`). Imports nothing heavy, so that the command line answers --help at once."""

from __future__ import annotations

import dataclasses

from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class FinetuningConfig:
    """The paper's Table 5 recipe is the default: AdamW, lr 1e-5, batch 32, 10000 steps, 320
    warm-up, lowercased; max length 512 for NER and 128 otherwise (the dataset registry's)."""

    dataset: str = setting(help="Dataset of the paper.")
    data_dir: str = setting(
        help="Folder with train/dev(el)/test files, or with numbered fold folders 1/, 2/, ... "
        "(local or gs://)."
    )
    output_dir: str = setting(help="Where predictions, metrics.json and saved_model/ go.")
    albert_config_file: str = setting(help="albert_config.json of the pretrained model.")
    spm_model_file: str = setting(help="SentencePiece model of the pretrained model.")
    init_checkpoint: str | None = setting(
        None, "TF1 (Google ALBERT / BioALBERT) or our checkpoint; unset: random initialisation."
    )
    learning_rate: float = setting(1e-5, "Peak learning rate (paper: 1e-5).")
    train_batch_size: int = setting(32, "Training batch size (paper: 32).")
    eval_batch_size: int = setting(64, "Prediction batch size.")
    num_train_steps: int = setting(10000, "Training steps (paper: 10000).")
    num_warmup_steps: int = setting(320, "Warm-up steps (paper: 320).")
    max_seq_length: int | None = setting(None, "Default: 512 for NER, 128 otherwise (paper).")
    eval_every_steps: int = setting(1000, "Evaluate on dev (and keep the best) this often.")
    save_checkpoints_steps: int | None = setting(
        None,
        "Also save a resume checkpoint (model, optimizer, data position) this often; by default "
        "one is saved at every dev evaluation only.",
    )
    use_train_dev: bool = setting(False, "Train on train_dev.tsv (train + dev).")
    do_lower_case: bool = setting(True, "Lowercase in normalisation.")
    random_seed: int = setting(12345, "Seed.")
    weight_decay_rate: float = setting(0.01, "AdamW's decoupled weight decay.")
    folds: str | None = setting(
        None, "Cross-validation: the folds to run, e.g. 1,3 (default: all)."
    )
    jit_compile: bool = setting(
        True,
        "XLA-compile the training step on CPU and GPU (bench/finetuning_bench); "
        "--nojit_compile trains with the plain graph (Keras' own default leaves XLA off on "
        "CPU-only machines).",
    )

    def __post_init__(self):
        for name in (
            "learning_rate",
            "train_batch_size",
            "eval_batch_size",
            "num_train_steps",
            "eval_every_steps",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.save_checkpoints_steps is not None and not self.save_checkpoints_steps > 0:
            raise ValueError(
                f"save_checkpoints_steps must be > 0, got {self.save_checkpoints_steps}"
            )
        if not 0 <= self.num_warmup_steps <= self.num_train_steps:
            raise ValueError(
                f"num_warmup_steps must be in [0, num_train_steps={self.num_train_steps}], "
                f"got {self.num_warmup_steps}"
            )


@dataclasses.dataclass(frozen=True)
class FinetuningOptions:
    """run_finetuning's flags beside its settings: not recorded with the run."""

    overwrite: bool = setting(
        False,
        "Start --output_dir afresh: remove what fine-tuning wrote there before (metrics, "
        "predictions, weights, saved_model/, run_settings.json, fold-<k>/), leaving other files. "
        "By default a folder whose run_settings.json records other settings is refused.",
    )
