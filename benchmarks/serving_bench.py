r"""`make bench` for serving: raw text in, entities out, on this CPU.

Our NER SavedModel, called through its `serving_default` signature as TF Serving would (in-graph
normalisation, SentencePiece, windows, ALBERT, entity spans), against transformers'
`pipeline("token-classification")` (AlbertTokenizerFast, PyTorch AlbertForTokenClassification,
`aggregation_strategy`) on the same weights: one random TF1 checkpoint at ALBERT-base size
(configs/albert_base.json, vocabulary resized to the SentencePiece model), one random head copied
into both. The vocabulary is an 8000-piece SentencePiece model trained with
`tfrecords_builder.vocab` on the embedded MEDLINE file pubmed20n0014; the input sentences are
real MEDLINE sentences from the other file, pubmed21n1298, kept only where both tokenizers give at
most max_seq_length - 2 pieces: our NER cuts longer texts into overlapping windows while the
pipeline truncates, and with sentences that fit both do the same work.

  python -m benchmarks.serving_bench [--max_seq_length=128 --threads=2 --requests=200 \
      --batches=20 --batch_size=32 --aggregation_strategy=first]

Each side runs in its own process, loaded once before timing: `--requests` calls at batch 1 after
`--warmup` calls (p50 / p99 latency and sentences/s), then `--batches` batches of `--batch_size`
after two warm-up batches (sentences/s). Sides alternate `--rounds` times (ours, theirs, ours,
...) and each figure is the best round's, as the machine may be shared. Results also go to
output/bench/serving/serving_bench.json.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time

from absl import app, flags

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "output_dir", "output/bench/serving", "Vocabulary, checkpoint, models, results."
)
flags.DEFINE_integer("max_seq_length", 128, "Pieces per window (ours) / truncation length (HF).")
flags.DEFINE_integer(
    "threads", os.cpu_count() or 1, "TF intra- and inter-op threads = torch threads."
)
flags.DEFINE_integer("requests", 200, "Timed calls at batch 1.")
flags.DEFINE_integer("warmup", 10, "Untimed calls at batch 1 before timing.")
flags.DEFINE_integer("batches", 20, "Timed batches at --batch_size.")
flags.DEFINE_integer("batch_size", 32, "The large batch.")
flags.DEFINE_integer("rounds", 2, "Alternating runs of each side; the best is reported.")
flags.DEFINE_enum("aggregation_strategy", "first", ["simple", "first"], "The HF pipeline's.")
flags.DEFINE_integer("vocab_size", 8000, "SentencePiece pieces (trained once, cached).")
flags.DEFINE_enum("measure", None, ["ours", "hf"], "Internal: run one side's timing, print JSON.")

LABELS = ("O", "B-Disease", "I-Disease")  # typed so that both sides group entities by type
INPUT_CORPUS = common.INPUT_CORPUS
MIN_WORDS = 5  # skip headings and fragments


# --- setup (cached under --output_dir, except our SavedModel, which is re-exported each run) ---
def _checkpoint(out: str):
    from bioalbert_tf.config import AlbertConfig
    from tests.tf1_names import write_random_tf1_checkpoint

    config = AlbertConfig.from_json_file("configs/albert_base.json")
    config = AlbertConfig.from_dict({**config.to_dict(), "vocab_size": FLAGS.vocab_size})
    prefix = os.path.join(out, "checkpoint", "model.ckpt-0")
    if not os.path.exists(prefix + ".index"):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        write_random_tf1_checkpoint(config, prefix, scale=config.initializer_range)
    return config, prefix


def _hf_config(config, **extra):
    from transformers import AlbertConfig as HFConfig

    return HFConfig(vocab_size=config.vocab_size, embedding_size=config.embedding_size, hidden_size=config.hidden_size,
                    num_hidden_layers=config.num_hidden_layers, num_hidden_groups=config.num_hidden_groups,
                    num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
                    inner_group_num=config.inner_group_num, hidden_act="gelu_new", hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0,
                    max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
                    layer_norm_eps=1e-12, **extra)  # fmt: skip


def _fast_tokenizer(cls, spm_path: str):
    """AlbertTokenizerFast converted from our SentencePiece file. The conversion reads the model's
    protobuf; sentencepiece 0.2.3's generated module needs protobuf >= 7 while TensorFlow 2.21
    pins 6, so the conversion uses transformers' own copy of the same proto instead."""
    from transformers.utils import sentencepiece_model_pb2_new

    name = "sentencepiece.sentencepiece_model_pb2"
    saved = sys.modules.get(name)
    sys.modules[name] = sentencepiece_model_pb2_new
    try:
        return cls(vocab_file=spm_path, do_lower_case=True, keep_accents=False)
    finally:
        if saved is None:
            del sys.modules[name]
        else:
            sys.modules[name] = saved


def _hf_model(task, config, prefix: str, spm_path: str, folder: str):
    """AlbertForTokenClassification with the checkpoint (transformers' own TF1 loader) and our
    head, and AlbertTokenizerFast built from our SentencePiece file; saved to `folder`."""
    import numpy as np
    import torch
    from transformers import AlbertForPreTraining, AlbertForTokenClassification, AlbertTokenizerFast
    from transformers.models.albert.modeling_albert import load_tf_weights_in_albert

    hf_config = _hf_config(config, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                           label2id={k: i for i, k in enumerate(LABELS)})  # fmt: skip
    pretrainer = AlbertForPreTraining(_hf_config(config))
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per variable
        load_tf_weights_in_albert(pretrainer, pretrainer.config, prefix)
    model = AlbertForTokenClassification(hf_config)
    missing, _ = model.albert.load_state_dict(pretrainer.albert.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"transformers' ALBERT lacks weights after loading {prefix}: {missing}")
    head = task.model.get_layer("token_classifier")
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(np.asarray(head.kernel)).T)
        model.classifier.bias.copy_(torch.tensor(np.asarray(head.bias)))
    tokenizer = _fast_tokenizer(AlbertTokenizerFast, spm_path)
    tokenizer.model_max_length = FLAGS.max_seq_length  # the pipeline truncates to this
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def _sentences(task, tokenizer, needed: int) -> tuple[list[str], dict]:
    """Real MEDLINE sentences that fit one window on both sides, with their piece counts."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    from bioalbert_tf.tasks import preprocessing as pp
    from tfrecords_builder import corpus

    fit = FLAGS.max_seq_length - 2
    chosen, ours_pieces, hf_pieces, seen = [], [], [], 0
    candidates = []
    for doc in corpus.iter_documents(INPUT_CORPUS, corpus.ReadStats()):
        candidates.extend(s for s in doc if len(s.split()) >= MIN_WORDS)
        if len(candidates) < 2 * needed:
            continue
        seen += len(candidates)
        words = tf_text.regex_split(tf.constant(candidates), pp.WORD_PATTERN, pp.WORD_KEEP)
        ours = pp.word_pieces(task.text_encoder, words)[0].row_lengths().numpy()
        hf = [len(ids) for ids in tokenizer(candidates, add_special_tokens=False)["input_ids"]]
        for s, a, b in zip(candidates, ours, hf, strict=True):
            if a <= fit and b <= fit and len(chosen) < needed:
                chosen.append(s)
                ours_pieces.append(int(a))
                hf_pieces.append(int(b))
        candidates = []
        if len(chosen) == needed:
            break
    if len(chosen) < needed:
        raise RuntimeError(
            f"{INPUT_CORPUS}: only {len(chosen)} of {needed} sentences fit {fit} pieces"
        )
    stats = {"sentence_count": needed, "read": seen, "ours_pieces_mean": sum(ours_pieces) / needed,
             "hf_pieces_mean": sum(hf_pieces) / needed, "ours_pieces_max": max(ours_pieces),
             "hf_pieces_max": max(hf_pieces)}  # fmt: skip
    return chosen, stats


def _logit_difference(task, model, tokenizer, sentences: list[str]) -> float:
    """Max |logit| difference of the two models on the same ids (HF's tokenization): same weights."""
    import numpy as np
    import torch

    enc = tokenizer(sentences, padding="max_length", max_length=FLAGS.max_seq_length,
                    truncation=True, return_tensors="np")  # fmt: skip
    ours = task.model({"input_ids": enc["input_ids"].astype("int32"),
                       "input_mask": enc["attention_mask"].astype("int32"),
                       "segment_ids": enc["token_type_ids"].astype("int32")})  # fmt: skip
    with torch.no_grad():
        theirs = model(**{k: torch.tensor(v) for k, v in enc.items()}).logits.numpy()
    real = enc["attention_mask"].astype(bool)
    return float(np.max(np.abs(np.asarray(ours)[real] - theirs[real])))


def setup(out: str) -> dict:
    import keras

    from bioalbert_tf import checkpoints, export
    from bioalbert_tf.evaluation import datasets
    from bioalbert_tf.tasks import create_task

    os.makedirs(out, exist_ok=True)
    spm_path = common.medline_spm(out, FLAGS.vocab_size)
    config, prefix = _checkpoint(out)
    keras.utils.set_random_seed(0)  # the random head
    with open(spm_path, "rb") as f:
        task = create_task(datasets.get("ncbi_disease"), LABELS, config, f.read(),
                           FLAGS.max_seq_length, classifier_dropout=0.0)  # fmt: skip
    checkpoints.load_init_checkpoint(task.encoder, prefix)
    saved_model = export.export_task(task, os.path.join(out, f"saved_model_{FLAGS.max_seq_length}"))
    hf_dir = os.path.join(out, f"hf_{FLAGS.max_seq_length}")
    model, tokenizer = _hf_model(task, config, prefix, spm_path, hf_dir)
    needed = FLAGS.warmup + FLAGS.requests + (FLAGS.batches + 2) * FLAGS.batch_size
    sentences, stats = _sentences(task, tokenizer, needed)
    stats["max_logit_difference"] = _logit_difference(task, model, tokenizer, sentences[:8])
    path = os.path.join(out, "sentences.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(sentences, f)
    return {"saved_model": saved_model, "hf_dir": hf_dir, "sentences": path, **stats}


# --- one side's timing, in its own process -------------------------------------------------
def _ours(paths: dict, threads: int):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from bioalbert_tf import export

    serve = export.load(paths["saved_model"]).signatures["serving_default"]

    def call(texts: list[str]) -> list[list[dict]]:
        out = {k: v.numpy() for k, v in serve(text=tf.constant(texts)).items()}
        return [[{"entity_group": out["entity_types"][r][k].decode(), "word": out["entity_texts"][r][k].decode(),
                  "start": int(out["entity_starts"][r][k]), "end": int(out["entity_ends"][r][k]),
                  "score": float(out["entity_scores"][r][k])} for k in range(out["num_entities"][r])]
                for r in range(len(texts))]  # fmt: skip

    return call, {"tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                  "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}  # fmt: skip


def _theirs(paths: dict, threads: int):
    import torch
    from transformers import AlbertForTokenClassification, AlbertTokenizerFast, pipeline

    torch.set_num_threads(threads)
    model = AlbertForTokenClassification.from_pretrained(paths["hf_dir"]).eval()
    tokenizer = AlbertTokenizerFast.from_pretrained(paths["hf_dir"])
    pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, device=-1,
                    aggregation_strategy=FLAGS.aggregation_strategy)  # fmt: skip

    def call(texts: list[str]) -> list[list[dict]]:
        with torch.inference_mode():
            out = pipe(texts, batch_size=len(texts))
        return out

    return call, {"torch_threads": torch.get_num_threads(),
                  "attention": model.config._attn_implementation}  # fmt: skip


def measure(side: str, paths: dict, threads: int) -> dict:
    import numpy as np

    with open(paths["sentences"], encoding="utf-8") as f:
        sentences = json.load(f)
    t = time.perf_counter()
    call, info = (_ours if side == "ours" else _theirs)(paths, threads)
    info["load_s"] = time.perf_counter() - t
    w, n, b = FLAGS.warmup, FLAGS.requests, FLAGS.batch_size
    for s in sentences[:w]:
        call([s])
    latencies, entities = [], 0
    for s in sentences[w : w + n]:
        t = time.perf_counter()
        entities += len(call([s])[0])
        latencies.append(time.perf_counter() - t)
    rest = sentences[w + n :]
    batches = [rest[i * b : (i + 1) * b] for i in range(FLAGS.batches + 2)]
    for batch in batches[:2]:
        call(batch)
    t = time.perf_counter()
    for batch in batches[2:]:
        entities += sum(len(e) for e in call(batch))
    batch_s = time.perf_counter() - t
    ms = np.array(latencies) * 1000
    return {**info, "b1_sentences_per_s": n / sum(latencies), "b1_p50_ms": float(np.percentile(ms, 50)),
            "b1_p99_ms": float(np.percentile(ms, 99)), f"b{b}_sentences_per_s": FLAGS.batches * b / batch_s,
            "entities": entities, "load_avg": os.getloadavg()}  # fmt: skip


# --- the table -------------------------------------------------------------------------------
def _run_side(side: str, paths: dict) -> dict:
    argv = [sys.executable, "-m", "benchmarks.serving_bench", f"--measure={side}",
            f"--paths={json.dumps(paths)}"] + [a for a in sys.argv[1:] if not a.startswith("--measure")]  # fmt: skip
    return common.run_json(argv)


flags.DEFINE_string("paths", None, "Internal: the setup's paths, JSON.")


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.measure:
        print(json.dumps(measure(FLAGS.measure, json.loads(FLAGS.paths), FLAGS.threads)))
        return
    t = time.time()
    paths = setup(FLAGS.output_dir)
    setup_s = time.time() - t
    runs = {"ours": [], "hf": []}
    for _ in range(FLAGS.rounds):
        for side in ("ours", "hf"):
            runs[side].append(_run_side(side, paths))
    b = FLAGS.batch_size
    keys = ["b1_sentences_per_s", f"b{b}_sentences_per_s"]
    best = {side: {k: max(r[k] for r in rs) for k in keys} for side, rs in runs.items()}
    for side, rs in runs.items():
        best[side]["b1_p50_ms"] = min(r["b1_p50_ms"] for r in rs)
        best[side]["b1_p99_ms"] = min(r["b1_p99_ms"] for r in rs)
    ours, hf = runs["ours"][0], runs["hf"][0]
    loads = ", ".join(
        f"{r['load_avg'][0]:.2f}" for pair in zip(*runs.values(), strict=True) for r in pair
    )
    print(f"CPU: {common.cpu()}; 1-minute load average at the end of "
          f"each run (ours, HF, ...): {loads}")  # fmt: skip
    print(f"threads: TF intra-op {ours['tf_intra_op_threads']}, inter-op {ours['tf_inter_op_threads']}; "
          f"torch {hf['torch_threads']} (attention: {hf['attention']})")  # fmt: skip
    print(f"ALBERT-base, vocabulary {FLAGS.vocab_size}, max_seq_length {FLAGS.max_seq_length}; "
          f"{paths['sentence_count']} MEDLINE sentences fitting one window: "
          f"pieces mean {paths['ours_pieces_mean']:.1f} (ours) / {paths['hf_pieces_mean']:.1f} (HF), "
          f"max {paths['ours_pieces_max']} / {paths['hf_pieces_max']}")  # fmt: skip
    print(f"same weights: max |logit difference| {paths['max_logit_difference']:.1e}; "
          f"HF aggregation_strategy={FLAGS.aggregation_strategy}; {FLAGS.rounds} round(s), best shown\n")  # fmt: skip
    rows = [("sentences/s, batch 1", "b1_sentences_per_s", True),
            (f"sentences/s, batch {b}", f"b{b}_sentences_per_s", True),
            ("p50 latency ms, batch 1", "b1_p50_ms", False),
            ("p99 latency ms, batch 1", "b1_p99_ms", False)]  # fmt: skip
    print(f"{'':<26} {'ours (SavedModel)':>18} {'HF pipeline':>12} {'ours/HF':>8}")
    for name, key, higher in rows:
        o, h = best["ours"][key], best["hf"][key]
        ratio = o / h if higher else h / o  # > 1: ours is better
        print(f"{name:<26} {o:>18.2f} {h:>12.2f} {ratio:>7.2f}x")
    print(f"\n(ratios > 1 favour ours; latency ratio is HF/ours; setup {setup_s:.0f} s)")
    with open(os.path.join(FLAGS.output_dir, "serving_bench.json"), "w") as f:
        json.dump({"paths": paths, "runs": runs, "best": best, "cpu": common.cpu(),
                   "max_seq_length": FLAGS.max_seq_length, "threads": FLAGS.threads}, f, indent=2)  # fmt: skip


if __name__ == "__main__":
    app.run(main)
