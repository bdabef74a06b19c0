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

  python -m bench.serving_bench [--max_seq_length=128 --threads=2 --requests=400 \
      --batches=20 --batch_size=32 --aggregation_strategy=first --sides=ours,ours_c_api,hf]

Three sides, each in its own process and loaded once before timing: our SavedModel through
TensorFlow's Python loader (`tf.saved_model.load`), the same SavedModel through TensorFlow's C API
(`TF_LoadSessionFromSavedModel` and `TF_SessionRun`, the model server's path; tests/tf_c_api.py),
and the pipeline. `--warmup` calls at batch 1 and two batches are untimed; then `--requests`
calls at batch 1 (p50 / p99 latency and sentences/s) and `--batches` batches of `--batch_size`
(sentences/s). The sides are called in turn, request by request, so that a busy spell of a shared
machine falls on all of them alike. Results also go to output/bench/serving/serving_bench.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import time

from absl import app, flags

from bench import common
from bioalbert_tf import settings
from bioalbert_tf.settings import setting

SIDE_NAMES = ("ours", "ours_c_api", "hf")  # what SIDES (below) times, in this order


@dataclasses.dataclass(frozen=True)
class ServingBenchConfig:
    """This script's settings (its flags are generated from these fields)."""

    output_dir: str = setting("output/bench/serving", "Vocabulary, checkpoint, models, results.")
    max_seq_length: int = setting(128, "Pieces per window (ours) / truncation length (HF).")
    threads: int = setting(os.cpu_count() or 1, "TF intra- and inter-op threads = torch threads.")
    requests: int = setting(400, "Timed calls at batch 1.")
    warmup: int = setting(10, "Untimed calls at batch 1 before timing.")
    batches: int = setting(20, "Timed batches at --batch_size.")
    batch_size: int = setting(32, "The large batch.")
    aggregation_strategy: str = setting("first", "The HF pipeline's.", choices=("simple", "first"))
    vocab_size: int = setting(8000, "SentencePiece pieces (trained once, cached).")
    measure: str | None = setting(
        None, "Internal: serve one side's calls on stdin.", choices=SIDE_NAMES
    )
    paths: str | None = setting(None, "Internal: the setup's paths, JSON.")
    sides: tuple[str, ...] = setting(SIDE_NAMES, f"What to time, of {', '.join(SIDE_NAMES)}.")
    gap_ms: int = setting(10, "Idle milliseconds before each call.")


FLAGS = flags.FLAGS
settings.define_flags(ServingBenchConfig)

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

    return HFConfig(
        vocab_size=config.vocab_size,
        embedding_size=config.embedding_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_hidden_groups=config.num_hidden_groups,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        inner_group_num=config.inner_group_num,
        hidden_act="gelu_new",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=0.0,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        layer_norm_eps=1e-12,
        **extra,
    )


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

    hf_config = _hf_config(
        config,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={k: i for i, k in enumerate(LABELS)},
    )
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
    stats = {
        "sentence_count": needed,
        "read": seen,
        "ours_pieces_mean": sum(ours_pieces) / needed,
        "hf_pieces_mean": sum(hf_pieces) / needed,
        "ours_pieces_max": max(ours_pieces),
        "hf_pieces_max": max(hf_pieces),
    }
    return chosen, stats


def _logit_difference(task, model, tokenizer, sentences: list[str]) -> float:
    """Max |logit| difference of the two models on the same ids (HF's tokenization): same
    weights."""
    import numpy as np
    import torch

    enc = tokenizer(
        sentences,
        padding="max_length",
        max_length=FLAGS.max_seq_length,
        truncation=True,
        return_tensors="np",
    )
    ours = task.model(
        {
            "input_ids": enc["input_ids"].astype("int32"),
            "input_mask": enc["attention_mask"].astype("int32"),
            "segment_ids": enc["token_type_ids"].astype("int32"),
        }
    )
    with torch.no_grad():
        theirs = model(**{k: torch.tensor(v) for k, v in enc.items()}).logits.numpy()
    real = enc["attention_mask"].astype(bool)
    return float(np.max(np.abs(np.asarray(ours)[real] - theirs[real])))


def setup(out: str) -> dict:
    import keras

    from bioalbert_tf import checkpoints
    from bioalbert_tf.evaluation import datasets
    from bioalbert_tf.serving import export
    from bioalbert_tf.tasks import create_task

    os.makedirs(out, exist_ok=True)
    spm_path = common.medline_spm(out, FLAGS.vocab_size)
    config, prefix = _checkpoint(out)
    keras.utils.set_random_seed(0)  # the random head
    with open(spm_path, "rb") as f:
        task = create_task(
            datasets.get("ncbi_disease"),
            LABELS,
            config,
            f.read(),
            FLAGS.max_seq_length,
            classifier_dropout=0.0,
        )
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


# --- one side, in its own process ------------------------------------------------------------
def _entity_rows(out: dict, count: int, text) -> list[list[dict]]:
    """Our signature's outputs (numpy arrays, or nested lists) as the pipeline's entity dicts."""
    return [
        [
            {
                "entity_group": text(out["entity_types"][r][k]),
                "word": text(out["entity_texts"][r][k]),
                "start": int(out["entity_starts"][r][k]),
                "end": int(out["entity_ends"][r][k]),
                "score": float(out["entity_scores"][r][k]),
            }
            for k in range(out["num_entities"][r])
        ]
        for r in range(count)
    ]


def _ours(paths: dict, threads: int):
    """Our SavedModel through TensorFlow's Python loader (`tf.saved_model.load`)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from bioalbert_tf.serving import export

    serve = export.load(paths["saved_model"]).signatures["serving_default"]

    def call(texts: list[str]) -> list[list[dict]]:
        out = {k: v.numpy() for k, v in serve(text=tf.constant(texts)).items()}
        return _entity_rows(out, len(texts), bytes.decode)

    return call, {
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def _ours_c_api(paths: dict, threads: int):
    """Our SavedModel through TensorFlow's C API (`TF_LoadSessionFromSavedModel`, then
    `TF_SessionRun` on the SignatureDef's tensors), the model server's loader path, with the
    TF.Text op libraries loaded as the server links them; TensorFlow's Python runtime is never
    imported in this process."""
    from tests import tf_c_api

    session = tf_c_api.Session(paths["saved_model"], tf_c_api.text_op_libraries(), threads)

    def call(texts: list[str]) -> list[list[dict]]:
        out = {k: v["value"] for k, v in session.run("serving_default", {"text": texts}).items()}
        return _entity_rows(out, len(texts), lambda s: s.encode("latin-1").decode("utf-8"))

    return call, {"session_threads": threads}


def _theirs(paths: dict, threads: int):
    import torch
    from transformers import AlbertForTokenClassification, AlbertTokenizerFast, pipeline

    torch.set_num_threads(threads)
    model = AlbertForTokenClassification.from_pretrained(paths["hf_dir"]).eval()
    tokenizer = AlbertTokenizerFast.from_pretrained(paths["hf_dir"])
    pipe = pipeline(
        "token-classification",
        model=model,
        tokenizer=tokenizer,
        device=-1,
        aggregation_strategy=FLAGS.aggregation_strategy,
    )

    def call(texts: list[str]) -> list[list[dict]]:
        with torch.inference_mode():
            out = pipe(texts, batch_size=len(texts))
        return out

    return call, {
        "torch_threads": torch.get_num_threads(),
        "attention": model.config._attn_implementation,
    }


SIDES = {"ours": _ours, "ours_c_api": _ours_c_api, "hf": _theirs}
NAMES = {"ours": "ours, Python loader", "ours_c_api": "ours, C API loader", "hf": "HF pipeline"}


def serve_requests(side: str, paths: dict, threads: int) -> None:
    """A worker: loads one side, says so on stdout, then answers each stdin line (a JSON list of
    texts) with one line: the call's time in ms (taken here, so the pipe is not timed) and the
    number of entities found."""
    t = time.perf_counter()
    call, info = SIDES[side](paths, threads)
    info["load_s"] = time.perf_counter() - t
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        texts = json.loads(line)
        t = time.perf_counter()
        found = call(texts)
        ms = (time.perf_counter() - t) * 1000
        print(json.dumps({"ms": ms, "entities": sum(len(e) for e in found)}), flush=True)


class Worker:
    def __init__(self, side: str, paths: dict):
        import subprocess

        argv = [
            sys.executable,
            "-m",
            "bench.serving_bench",
            f"--measure={side}",
            f"--paths={json.dumps(paths)}",
        ] + [a for a in sys.argv[1:] if not a.startswith("--measure")]
        self.side = side
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=common.child_env(),
        )
        self.info = self._reply()

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the {NAMES[self.side]} worker ended (exit {self.proc.wait()}); run it alone: "
                f"python -m bench.serving_bench --measure={self.side} --paths=..."
            )
        return json.loads(line)

    def call(self, texts: list[str]) -> dict:
        self.proc.stdin.write(json.dumps(texts) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def measure(sides: list[str], paths: dict) -> dict:
    """All sides loaded at once, each in its own process, and called in turn, request by
    request and batch by batch (the order rotating), with --gap_ms of idle time between calls:
    a busy spell of a shared machine slows every side alike, and no side's spinning threads
    run into the next side's call."""
    import numpy as np

    with open(paths["sentences"], encoding="utf-8") as f:
        sentences = json.load(f)
    workers = [Worker(side, paths) for side in sides]
    w, n, b = FLAGS.warmup, FLAGS.requests, FLAGS.batch_size
    rest = sentences[w + n :]
    jobs = [[s] for s in sentences[:w]] + [rest[i * b : (i + 1) * b] for i in range(2)]
    timed = [[s] for s in sentences[w : w + n]]
    timed += [rest[i * b : (i + 1) * b] for i in range(2, FLAGS.batches + 2)]
    times = {side: [] for side in sides}
    entities = dict.fromkeys(sides, 0)
    for i, texts in enumerate(jobs + timed):
        for k in range(len(workers)):
            worker = workers[(i + k) % len(workers)]
            time.sleep(FLAGS.gap_ms / 1000)
            reply = worker.call(texts)
            if i >= len(jobs):
                times[worker.side].append(reply["ms"])
                entities[worker.side] += reply["entities"]
    for worker in workers:
        worker.close()
    results = {}
    for worker in workers:
        ms = np.array(times[worker.side])
        single, batched = ms[:n], ms[n:]
        results[worker.side] = {
            **worker.info,
            "b1_sentences_per_s": n / single.sum() * 1000,
            "b1_p50_ms": float(np.percentile(single, 50)),
            "b1_p99_ms": float(np.percentile(single, 99)),
            f"b{b}_sentences_per_s": len(batched) * b / batched.sum() * 1000,
            "entities": entities[worker.side],
        }
    return results


# --- the table -------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.measure:
        serve_requests(FLAGS.measure, json.loads(FLAGS.paths), FLAGS.threads)
        return
    unknown = sorted(set(FLAGS.sides) - set(SIDES))
    if unknown or "hf" not in FLAGS.sides:
        raise app.UsageError(
            f"--sides: {unknown or 'hf is the baseline and'} must be among {list(SIDES)}"
        )
    t = time.time()
    paths = setup(FLAGS.output_dir)
    setup_s = time.time() - t
    load_before = os.getloadavg()[0]
    results = measure(FLAGS.sides, paths)
    b, hf = FLAGS.batch_size, results["hf"]
    print(
        f"CPU: {common.cpu()}; 1-minute load average {load_before:.2f} before timing, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    threads = [
        f"{NAMES[s]}: " + ", ".join(f"{k} {v}" for k, v in r.items() if "thread" in k)
        for s, r in results.items()
    ]
    print(f"threads ({'; '.join(threads)}); HF attention: {hf['attention']}")
    print(
        f"ALBERT-base, vocabulary {FLAGS.vocab_size}, max_seq_length {FLAGS.max_seq_length}; "
        f"{paths['sentence_count']} MEDLINE sentences fitting one window: "
        f"pieces mean {paths['ours_pieces_mean']:.1f} (ours) / {paths['hf_pieces_mean']:.1f} (HF), "
        f"max {paths['ours_pieces_max']} / {paths['hf_pieces_max']}"
    )
    print(
        f"same weights: max |logit difference| {paths['max_logit_difference']:.1e}; "
        f"HF aggregation_strategy={FLAGS.aggregation_strategy}; {FLAGS.requests} requests at "
        f"batch 1, {FLAGS.batches} batches of {b}, sides called in turn\n"
    )
    rows = [
        ("sentences/s, batch 1", "b1_sentences_per_s", True),
        (f"sentences/s, batch {b}", f"b{b}_sentences_per_s", True),
        ("p50 latency ms, batch 1", "b1_p50_ms", False),
        ("p99 latency ms, batch 1", "b1_p99_ms", False),
    ]
    ours = [s for s in FLAGS.sides if s != "hf"]
    header = "".join(f"{NAMES[s]:>22}" for s in ours)
    ratios = "".join(
        f"{'/'.join(NAMES[s].split(', ')[1:] or ['ours'])[:18] + ' /HF':>22}" for s in ours
    )
    print(f"{'':<26}{header}{NAMES['hf']:>14}{ratios}")
    for name, key, higher in rows:
        line = "".join(f"{results[s][key]:>22.2f}" for s in ours) + f"{hf[key]:>14.2f}"
        for s in ours:
            ratio = results[s][key] / hf[key] if higher else hf[key] / results[s][key]
            line += f"{ratio:>21.2f}x"
        print(f"{name:<26}{line}")
    found = ", ".join(f"{NAMES[s]} {r['entities']}" for s, r in results.items())
    print(f"\nentities found: {found}")
    print(f"(ratios > 1 favour ours; latency ratio is HF/ours; setup {setup_s:.0f} s)")
    with open(os.path.join(FLAGS.output_dir, "serving_bench.json"), "w") as f:
        json.dump(
            {
                "paths": paths,
                "results": results,
                "cpu": common.cpu(),
                "max_seq_length": FLAGS.max_seq_length,
                "threads": FLAGS.threads,
            },
            f,
            indent=2,
        )


if __name__ == "__main__":
    app.run(main)
