"""What the benchmarks share: the CPU they ran on, a cached MEDLINE vocabulary, real sentences,
and one measurement per subprocess (its last stdout line is JSON)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from bioalbert_tf.settings import setting

VOCAB_CORPUS = ".cache/corpus/pubmed20n0014.xml.gz"
INPUT_CORPUS = ".cache/corpus/pubmed21n1298.xml.gz"


def cpu() -> str:
    """'model, ISA, N cores' from /proc/cpuinfo: benchmark figures only compare on the same CPU."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return "unknown CPU"
    lines = text.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    flags = next((ln for ln in lines if ln.startswith("flags")), "")
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model}, {isa}, {os.cpu_count()} cores"


def medline_spm(out: str, vocab_size: int) -> str:
    """A SentencePiece model trained on the embedded MEDLINE file pubmed20n0014 (cached in out)."""
    from tfrecords_builder import vocab

    prefix = os.path.join(out, f"medline-{vocab_size}")
    if not os.path.exists(prefix + ".model"):
        os.makedirs(out, exist_ok=True)
        vocab.train(
            vocab.VocabConfig(
                input_files=(VOCAB_CORPUS,),
                model_prefix=prefix,
                vocab_size=vocab_size,
                input_sentence_size=200_000,
            )
        )
    return prefix + ".model"


def medline_sentences(count: int, min_words: int = 5, path: str = INPUT_CORPUS) -> list[str]:
    """The first `count` sentences of at least min_words words in the MEDLINE file `path`."""
    from tfrecords_builder import corpus

    chosen: list[str] = []
    for doc in corpus.iter_documents(path, corpus.ReadStats()):
        chosen.extend(s for s in doc if len(s.split()) >= min_words)
        if len(chosen) >= count:
            return chosen[:count]
    raise RuntimeError(f"{path}: only {len(chosen)} sentences of >= {min_words} words")


def child_env(extra: dict | None = None) -> dict:
    """The environment of a measuring process: this one's, the repository importable, quiet TF."""
    return {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "2", **(extra or {})}


def run_json(args: list[str], env: dict | None = None) -> dict:
    """Runs a measurement in its own process; returns the JSON object on its last stdout line."""
    proc = subprocess.run(args, capture_output=True, text=True, env=child_env(env))
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_mode(module: str, mode: str, spm: str) -> dict:
    """`python -m <module> --measure=<mode> --spm=<spm>` with this process's other flags (but
    --modes) in its own process; returns its JSON result."""
    rest = [a for a in sys.argv[1:] if not a.startswith("--modes")]
    return run_json([sys.executable, "-m", module, f"--measure={mode}", f"--spm={spm}", *rest])


@dataclasses.dataclass(frozen=True)
class ModeFlags:
    """The settings of a bench that measures each mode in its own process (its flags are
    generated from these fields by define_mode_flags)."""

    vocab_size: int = setting(8000, "SentencePiece pieces (trained once, cached).")
    measure: str | None = setting(None, "Internal: time one mode in this process, print JSON.")
    spm: str | None = setting(None, "Internal: the SentencePiece model for --measure.")


def mode_sentences(output_dir: str, count: int, measuring: bool) -> list[str]:
    """`count` real MEDLINE sentences, the same in every measuring process: the parent picks them
    and writes <output_dir>/sentences-<count>.json; each --measure process reads that file."""
    path = os.path.join(output_dir, f"sentences-{count}.json")
    if measuring:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    sentences = medline_sentences(count)
    os.makedirs(output_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(sentences, f)
    return sentences


def write_results(path: str, results: dict) -> None:
    """The results of a bench with the CPU and this run's flags, as JSON."""
    from absl import flags

    with open(path, "w") as f:
        json.dump(
            {"cpu": cpu(), "flags": flags.FLAGS.flag_values_dict(), "results": results},
            f,
            indent=1,
            default=str,
        )


def define_mode_flags() -> None:
    """The flags of a bench that measures each mode in its own process (see run_mode)."""
    from bioalbert_tf import settings

    settings.define_flags(ModeFlags)
