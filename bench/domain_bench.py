r"""`make bench`, part 3: a small reproduction of "domain pretraining helps" (the paper's Fig. 3).

Same small ALBERT and pretraining recipe as `make demo` (configs/demo/*.flags), same
pretraining steps, same fine-tuning budget,
four starting points: (a) random initialisation, (b) pretrained on a general-domain Wikipedia
sample (shipped in the gensim wheel), (c) pretrained on the MEDLINE corpus, (d) pretrained on
MEDLINE cut to the Wikipedia sample's size (whole abstracts, in file order, until as many
SentencePiece pieces as the sample has), so that (d) against (b) compares domains at one corpus
size and (c) against (d) shows what size adds. Each is fine-tuned on NCBI-disease and
BC5CDR-chem (../shared/data) with several seeds; the table reports test entity-level F1
mean +- sd per start, as text and PNG, with the total wall time.

  python -m bench.domain_bench --data_dir=../shared/data [--pretraining_steps=8000 \
      --finetuning_steps=600 --seeds=1,2,3]

Fine-tuning runs at the pretraining's sequence length, 32: only those positions were pretrained.
Longer sentences are split into overlapping windows, as in every NER run.
Finished runs with the same settings are reused; changed settings retrain.
"""

from __future__ import annotations

import bz2
import dataclasses
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

from absl import app, flags

from bioalbert_tf import demo_recipe as recipe
from bioalbert_tf import fileio, manifest, run_folder, settings
from bioalbert_tf.config import AlbertConfig
from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class DomainBenchConfig:
    """This script's settings (its flags are generated from these fields)."""

    data_dir: str = setting("../shared/data", "Benchmark data (ner/NCBI-disease, ner/BC5CDR-chem).")
    output_dir: str = setting("output/bench/domain", "Where everything goes.")
    pretraining_steps: int = setting(recipe.STEPS, "Pretraining steps for (b) and (c).")
    finetuning_steps: int = setting(600, "Fine-tuning steps per run.")
    finetuning_max_seq_length: int = setting(
        recipe.SEQ, "Fine-tuning window length (the pretrained one)."
    )
    seeds: tuple[str, ...] = setting(("1", "2", "3"), "Fine-tuning seeds.")
    datasets: tuple[str, ...] = setting(
        ("ncbi_disease:NCBI-disease", "bc5cdr_chem:BC5CDR-chem"), "name:folder under data_dir/ner."
    )


FLAGS = flags.FLAGS
settings.define_flags(DomainBenchConfig)

WIKI_MEMBER = (
    "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
)
MEDLINE = (".cache/corpus/pubmed20n0014.xml.gz", ".cache/corpus/pubmed21n1298.xml.gz")
CONFIG = recipe.CONFIG


def _run(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", *args], check=True, stdout=subprocess.DEVNULL)


def wiki_text(out_dir: str) -> str:
    """The gensim wheel's Wikipedia sample as plain text: wiki markup stripped, one sentence per
    line, a blank line between articles (the builder's plain format)."""
    from lxml import etree

    from tfrecords_builder.corpus import ReadStats, clean_lines, split_sentences

    target = os.path.join(out_dir, "enwiki_sample.txt")
    if os.path.exists(target):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "gensim", "-d", tmp],
            check=True,
        )
        (wheel,) = glob.glob(os.path.join(tmp, "gensim-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            raw = zf.read(WIKI_MEMBER)
    stats = ReadStats()
    docs = []
    for _, elem in etree.iterparse(
        __import__("io").BytesIO(bz2.decompress(raw)), events=("end",), tag="{*}text"
    ):
        text = elem.text or ""
        elem.clear()
        if text.lower().startswith("#redirect"):
            continue
        text = re.sub(
            r"\{\{[^{}]*\}\}", " ", re.sub(r"\{\{[^{}]*\}\}", " ", text)
        )  # templates (2 levels)
        text = re.sub(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>|<[^>]+>", " ", text, flags=re.S)
        text = re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1", text)  # [[target|label]] -> label
        text = re.sub(r"\[https?://\S+ ?([^\]]*)\]", r"\1", text)
        text = re.sub(r"'{2,}|={2,}.*?={2,}|^[*#:;|!{].*$", " ", text, flags=re.M)
        lines = []
        for paragraph in text.split("\n\n"):
            lines.extend(split_sentences(" ".join(paragraph.split())))
        doc = clean_lines(lines, stats)
        if len(doc) >= 2:
            docs.append(doc)
    with open(target, "w", encoding="utf-8") as f:
        for doc in docs:
            f.write("\n".join(doc) + "\n\n")
    return target


def count_pieces(path: str, sp) -> int:
    """SentencePiece pieces of a plain-text corpus file (sentence per line)."""
    with open(path, encoding="utf-8") as f:
        return sum(len(sp.encode(line.strip())) for line in f if line.strip())


def medline_sample(out_dir: str, vocab_model: str, target_pieces: int) -> str:
    """MEDLINE cut to target_pieces: whole abstracts of the embedded files, in file order, as
    the builder reads them, until their pieces reach the target (the builder's plain format)."""
    import sentencepiece as spm

    from tfrecords_builder.corpus import ReadStats, iter_documents

    target = os.path.join(out_dir, f"medline_sample_{target_pieces}.txt")
    if os.path.exists(target):
        return target
    sp = spm.SentencePieceProcessor(model_file=vocab_model)
    stats, pieces, docs = ReadStats(), 0, []
    for path in MEDLINE:
        for doc in iter_documents(path, stats):
            docs.append(doc)
            pieces += sum(len(sp.encode(line)) for line in doc)
            if pieces >= target_pieces:
                break
        if pieces >= target_pieces:
            break
    fileio.write_atomic(target, "".join("\n".join(doc) + "\n\n" for doc in docs))
    return target


def _tag(*parts) -> str:
    """A short name for the settings that made a folder: changed settings get a new folder."""
    return manifest.digest(parts)[:8]


def main(argv):
    del argv
    with run_folder.hold(FLAGS.output_dir, "bench.domain_bench"):
        _bench(FLAGS.output_dir)


def _bench(out: str) -> None:
    """Every command skips (or resumes) its own finished work: a rerun redoes only what changed."""
    start = time.time()
    wiki = wiki_text(out)
    vocab = os.path.join(out, "vocab", "mixed8k")
    if not os.path.exists(
        vocab + ".model"
    ):  # one vocabulary for every start: only the weights differ
        _run(
            [
                "tfrecords_builder.build_vocab",
                f"--input_files={wiki},{','.join(MEDLINE)}",
                f"--model_prefix={vocab}",
                "--vocab_size=8000",
            ]
        )
    model_config = AlbertConfig.from_json_file(CONFIG).to_dict()  # the recipe's model, in tags
    import sentencepiece as spm

    wiki_pieces = count_pieces(wiki, spm.SentencePieceProcessor(model_file=vocab + ".model"))
    small = medline_sample(out, vocab + ".model", wiki_pieces)
    starts = {"a_random": None}
    corpus_stats: dict[str, dict] = {"wikipedia_pieces": {"pieces": wiki_pieces}}
    corpora = (("b_wikipedia", wiki), ("c_medline", ",".join(MEDLINE)), ("d_medline_small", small))
    for name, corpus in corpora:
        build = [
            f"--input_files={corpus}",
            f"--spm_model_file={vocab}.model",
            *recipe.builder_args(),
            "--dupe_factor=2",
            "--num_shards=2",
        ]
        records = os.path.join(out, "tfrecords", f"{name}-{_tag(build)}")
        _run(["tfrecords_builder.build_pretraining_data", f"--output_dir={records}", *build])
        steps = FLAGS.pretraining_steps
        tag = _tag(build, recipe.pretraining_args(steps), model_config)
        run_dir = os.path.join(out, "pretraining", f"{name}-{steps}steps-{tag}")
        _run(
            [
                "bioalbert_tf.run_pretraining",
                f"--input_file={records}/*.tfrecord",
                f"--output_dir={run_dir}",
                *recipe.pretraining_args(steps),
                f"--save_checkpoints_steps={steps}",
            ]
        )
        starts[name] = run_dir
        with open(os.path.join(records, "stats.json")) as f:
            corpus_stats[name] = {k: v for k, v in json.load(f).items() if isinstance(v, int)}
        print(f"pretrained {name}: {time.time() - start:.0f} s elapsed", flush=True)
    results = {}
    for spec in FLAGS.datasets:
        dataset, folder = spec.split(":")
        for name, init in starts.items():
            for seed in FLAGS.seeds:
                run_dir = os.path.join(out, "finetuning", dataset, name, f"seed{seed}")
                metrics_file = os.path.join(run_dir, "metrics.json")
                # A finished run with these settings is skipped by run_finetuning itself; one
                # with other settings (a changed recipe) is redone (--overwrite).
                args = [
                    "bioalbert_tf.run_finetuning",
                    f"--dataset={dataset}",
                    f"--data_dir={FLAGS.data_dir}/ner/{folder}",
                    f"--output_dir={run_dir}",
                    f"--spm_model_file={vocab}.model",
                    *recipe.finetuning_args(
                        FLAGS.finetuning_steps, 50, FLAGS.finetuning_max_seq_length
                    ),
                    f"--eval_every_steps={FLAGS.finetuning_steps // 2}",
                    f"--random_seed={seed}",
                    "--overwrite",
                ]
                if init:
                    args.append(f"--init_checkpoint={init}")
                _run(args)
                with open(metrics_file) as f:
                    f1 = json.load(f)["test"]["entity_f1"]
                results.setdefault(dataset, {}).setdefault(name, []).append(100 * f1)
                print(
                    f"{dataset} {name} seed {seed}: test entity F1 {100 * f1:.2f} "
                    f"({time.time() - start:.0f} s elapsed)",
                    flush=True,
                )
    seconds = time.time() - start
    lines = ["| start | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for name in starts:
        cells = []
        for dataset in results:
            v = results[dataset][name]
            cells.append(
                f"{statistics.mean(v):.2f} +- {statistics.stdev(v) if len(v) > 1 else 0.0:.2f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(
        f"\ntest entity-level F1 (mean +- sd over seeds {','.join(FLAGS.seeds)}), "
        f"total {seconds / 60:.1f} min\n{table}"
    )
    with open(os.path.join(out, "domain_bench.json"), "w") as f:
        json.dump(
            {
                "results": results,
                "seconds": seconds,
                "corpora": corpus_stats,
                "flags": {
                    k: str(FLAGS[k].value)
                    for k in (
                        "pretraining_steps",
                        "finetuning_steps",
                        "finetuning_max_seq_length",
                        "seeds",
                        "datasets",
                    )
                },
            },
            f,
            indent=2,
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(starts)
    for i, name in enumerate(starts):
        means = [statistics.mean(results[d][name]) for d in results]
        sds = [
            statistics.stdev(results[d][name]) if len(results[d][name]) > 1 else 0 for d in results
        ]
        ax.bar(
            [j + i * width for j in range(len(results))],
            means,
            width,
            yerr=sds,
            label=name,
            capsize=3,
        )
    ax.set_xticks([j + width * (len(starts) - 1) / 2 for j in range(len(results))], list(results))
    ax.set_ylabel("test entity-level F1")
    ax.set_title("Small ALBERT: starting point vs NER F1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "domain_bench.png"), dpi=120)


if __name__ == "__main__":
    app.run(main)
