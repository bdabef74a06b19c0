r"""The whole pipeline on the embedded MEDLINE corpus, small enough for a CPU (`make demo`).

corpus -> 8k SentencePiece vocabulary -> TFRecords (seq 32) -> run_pretraining (8,000 steps of the
recipe in demo_recipe.py, resumable) -> pretrainer SavedModel -> fill-mask examples + MLM/SOP
accuracy and MLM loss curves (PNG).
With --data_dir (e.g. ../shared/data): fine-tunes NER on NCBI-disease, exports the task
SavedModel, scores it with the benchmark runner and prints the table.

Each stage runs as the project's own command line and is skipped when its output exists for the
same settings; rerunning continues where it stopped. The demo owns its output folders, so it
passes --overwrite to the commands that otherwise refuse to replace what an interrupted stage
left there (the vocabulary, the SavedModel, a fine-tuning run with other settings).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from absl import app

from bioalbert_tf import demo_recipe as recipe
from bioalbert_tf import manifest, run_folder, settings

settings.define_flags(recipe.DemoConfig)

FILL_MASK = recipe.FILL_MASK


_UPSTREAM: list[str] = []  # digests of the stages run so far: a stage is redone when any changed


def _stage(name: str, marker_dir: str, settings: dict, command: list[str]) -> None:
    """Runs a stage's command unless its manifest (`<marker_dir>/.<name>.json`) records the same
    settings, command and upstream stages; a stage done with other ones is redone afresh."""
    os.makedirs(marker_dir, exist_ok=True)
    marker = os.path.join(marker_dir, f".{name}.json")
    # --overwrite changes no output, so it is not compared (adding it redoes nothing).
    now = {
        "settings": settings,
        "command": [arg for arg in command[1:] if arg != "--overwrite"],
        "earlier stages": list(_UPSTREAM),
    }
    _UPSTREAM.append(manifest.digest(now))
    before = manifest.read(marker)
    if before is not None:
        rows = manifest.differences(before, now, marker)
        if not rows:
            print(f"[{name}] already done for these settings: skipped ({marker_dir})", flush=True)
            return
        # Done before with other settings: start this stage afresh (without a manifest, a stage
        # that was interrupted resumes instead).
        print(f"[{name}] redone afresh; since it was done:\n" + "\n".join(rows), flush=True)
        shutil.rmtree(marker_dir)
        os.makedirs(marker_dir)
    print(f"[{name}] {' '.join(command[2:])}", flush=True)
    start = time.time()
    subprocess.run(command, check=True)
    manifest.record(marker, now)
    print(f"[{name}] done in {time.time() - start:.0f} s", flush=True)


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def fill_mask(saved_model: str, spm_model: str) -> list[dict]:
    import numpy as np
    import tensorflow as tf

    from bioalbert_tf.tokenization import MASK_ID, Tokenizer

    tok = Tokenizer(spm_model)
    model = tf.saved_model.load(saved_model)
    rows = []
    for sentence, expected in FILL_MASK:
        ids = recipe.fill_mask_ids(tok, sentence, MASK_ID)
        x = tf.constant([ids], tf.int32)
        out = model.signatures["serving_default"](
            input_ids=x, input_mask=tf.ones_like(x), segment_ids=tf.zeros_like(x)
        )
        logits = out["mlm_logits"].numpy()[0, ids.index(MASK_ID)]
        top = np.argsort(-logits)[:5]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        rows.append(
            {
                "sentence": sentence,
                "expected": expected,
                "top5": [(tok.id_to_piece(i), round(float(probs[i]), 3)) for i in top],
                "expected_rank": recipe.expected_rank(logits, tok, expected),
            }
        )
    return rows


def plot_curve(metrics_file: str, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        json.loads(line)
        for line in pathlib.Path(metrics_file).read_text().splitlines()
        if line.strip()
    ]
    steps = [r["step"] for r in rows]
    fig, (ax, loss) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot(steps, [r["mlm_accuracy"] for r in rows], label="masked-LM accuracy")
    ax.plot(steps, [r["sop_accuracy"] for r in rows], label="sentence-order accuracy")
    ax.set_xlabel("step")
    ax.set_ylabel("training accuracy")
    ax.legend()
    # The masked-LM loss shows the frequent-token plateau (flat) and leaving it (falling again).
    losses = [r["mlm_loss"] for r in rows]
    loss.plot(steps, losses, color="tab:blue")
    # the first tenth of the run (from ln(vocab) down to the plateau) would flatten the rest
    loss.set_ylim(min(losses) - 0.05, max(losses[len(losses) // 10 :]) + 0.05)
    loss.set_xlabel("step")
    loss.set_ylabel("training masked-LM loss")
    for a in (ax, loss):
        a.grid(alpha=0.3)
    fig.suptitle("Small ALBERT pretrained on MEDLINE (demo)")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main(argv):
    del argv
    config = settings.from_flags(recipe.DemoConfig)
    try:
        with run_folder.hold(config.output_dir, "bioalbert_tf.demo"):
            _demo(config)
    except KeyboardInterrupt as e:
        then = "finished stages are kept; rerun the same command to go on"
        print(run_folder.interrupted(e, then), file=sys.stderr)
        return 130
    except subprocess.CalledProcessError as e:
        failed = " ".join(e.cmd[2:])
        print(
            f"error: a stage's command ended with exit code {e.returncode}: {failed}",
            file=sys.stderr,
        )
        return 1
    except run_folder.FolderBusyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _demo(config: recipe.DemoConfig) -> None:
    out, corpus = config.output_dir, config.corpus_dir
    medline = ",".join(
        os.path.join(corpus, f) for f in ("pubmed20n0014.xml.gz", "pubmed21n1298.xml.gz")
    )
    started = time.time()
    vocab = os.path.join(out, "vocab", "bio8k")
    _stage(
        "vocabulary",
        os.path.join(out, "vocab"),
        {"inputs": medline, "size": 8000},
        _python(
            "tfrecords_builder.build_vocab",
            f"--input_files={medline}",
            f"--model_prefix={vocab}",
            "--vocab_size=8000",
            "--overwrite",
        ),
    )
    records = os.path.join(out, "tfrecords")
    _stage(
        "tfrecords",
        records,
        {"inputs": medline, "vocab": vocab, "seq": recipe.SEQ},
        _python(
            "tfrecords_builder.build_pretraining_data",
            f"--input_files={medline}",
            f"--output_dir={records}",
            f"--spm_model_file={vocab}.model",
            *recipe.builder_args(),
            "--dupe_factor=1",
            "--num_shards=4",
        ),
    )
    pretrain = os.path.join(out, "pretraining")
    steps = config.pretraining_steps
    _stage(
        "pretraining",
        pretrain,
        {"steps": steps, "records": records},
        _python(
            "bioalbert_tf.run_pretraining",
            f"--input_file={records}/*.tfrecord",
            f"--output_dir={pretrain}",
            *recipe.pretraining_args(steps),
            f"--save_checkpoints_steps={max(1, steps // 3)}",
            "--do_eval",
            "--max_eval_steps=20",
            "--export_tf1",
        ),
    )
    saved = os.path.join(out, "saved_model", "pretrainer")
    _stage(
        "export",
        os.path.join(out, "saved_model"),
        {"steps": steps},
        _python(
            "bioalbert_tf.export_saved_model",
            "--model=pretrainer",
            f"--checkpoint={pretrain}",
            f"--output_dir={saved}",
            "--overwrite",
        ),
    )
    print("\nfill-mask with the pretrainer SavedModel (top 5 pieces for [MASK]):")
    rows = fill_mask(saved, vocab + ".model")
    for row in rows:
        rank = row["expected_rank"]
        ranked = f"its rank: {rank}" if rank else "not one piece of the vocabulary"
        print(f"  {row['sentence']}  (expected: {row['expected']}, {ranked})")
        print("    " + ", ".join(f"{p} {s:.3f}" for p, s in row["top5"]))
    named = sum(recipe.names_expected([p for p, _ in r["top5"]], r["expected"]) for r in rows)
    print(f"  the expected word is in the top 5 for {named} of {len(rows)} sentences")
    png = os.path.join(out, "pretraining_accuracy.png")
    plot_curve(os.path.join(pretrain, "train_metrics.jsonl"), png)
    best = json.loads(pathlib.Path(pretrain, "best_eval.json").read_text())
    print(
        f"\neval after pretraining: MLM accuracy {best['mlm_accuracy']:.3f}, "
        f"SOP accuracy {best['sop_accuracy']:.3f} (step {best['global_step']})"
    )
    if config.data_dir:
        ncbi = os.path.join(config.data_dir, "ner", "NCBI-disease")
        ner_out = os.path.join(out, "finetuning", "ncbi_disease")
        _stage(
            "finetuning",
            ner_out,
            {"steps": config.finetuning_steps, "pretrain": steps},
            _python(
                "bioalbert_tf.run_finetuning",
                "--dataset=ncbi_disease",
                f"--data_dir={ncbi}",
                f"--output_dir={ner_out}",
                f"--init_checkpoint={pretrain}",
                f"--spm_model_file={vocab}.model",
                *recipe.finetuning_args(config.finetuning_steps, warmup=30),
                f"--eval_every_steps={max(1, config.finetuning_steps // 2)}",
                "--overwrite",
            ),
        )
        bench = os.path.join(out, "benchmark")
        _stage(
            "benchmark",
            bench,
            {"finetuned": config.finetuning_steps},
            _python(
                "bioalbert_tf.benchmark",
                f"--saved_model={ner_out}/saved_model",
                "--dataset=ncbi_disease",
                f"--data_dir={ncbi}",
                f"--output_dir={bench}",
            ),
        )
        print("\n" + pathlib.Path(bench, "report.md").read_text())
    print(f"\ndemo finished in {time.time() - started:.0f} s. Outputs under {out}/:")
    print(
        "  vocab/bio8k.model          SentencePiece vocabulary\n"
        "  tfrecords/                 pretraining examples + stats.json"
    )
    print(
        "  pretraining/               checkpoints, TensorBoard logs, model.ckpt-best, tf1/ export\n"
        "  saved_model/pretrainer     SavedModel (serving_default)"
    )
    print("  pretraining_accuracy.png   MLM/SOP accuracy curve")
    if config.data_dir:
        print(
            "  finetuning/ncbi_disease    NER model, predictions, metrics.json, saved_model/\n"
            "  benchmark/                 report.md, report.json, charts"
        )


if __name__ == "__main__":
    app.run(main)
