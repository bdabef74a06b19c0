r"""Builds ALBERT MLM + SOP pretraining TFRecords from a corpus, on Apache Beam.

  python -m tfrecords_builder.build_pretraining_data \
    --input_files='pubmed/*.xml.gz' --output_dir=tfrecords --spm_model_file=30k-clean.model \
    --max_seq_length=512 --max_predictions_per_seq=20 --dupe_factor=40

Any flag this program does not define is passed to Beam as a pipeline option, e.g.
`--runner=DataflowRunner --project=... --region=... --temp_location=gs://...` or
`--direct_num_workers=2`; a flag that is neither ours nor a Beam pipeline option is an error.
"""

from __future__ import annotations

import difflib
import json
import logging as py_logging
import sys

from absl import app, flags, logging

from bioalbert_tf import fileio, run_folder
from tfrecords_builder import corpus
from tfrecords_builder.pipeline import BuildConfig, run, unknown_pipeline_args

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "input_files",
    None,
    "Comma list of files or globs (local or gs://): MEDLINE .xml(.gz), PMC .nxml / .tar.gz, MIMIC NOTEEVENTS.csv(.gz), or plain text.",
)
flags.DEFINE_string(
    "output_dir", None, "Where the *.tfrecord shards and stats.json go (local or gs://)."
)
flags.DEFINE_string(
    "spm_model_file", None, "SentencePiece model with ALBERT's special ids (e.g. 30k-clean.model)."
)
flags.DEFINE_integer(
    "max_seq_length", 512, "Maximum tokens per example, [CLS] and [SEP]s included."
)
flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum masked-LM predictions per example.")
flags.DEFINE_float(
    "masked_lm_prob", 0.15, "Share of tokens to mask (before the max_predictions cap)."
)
flags.DEFINE_float("short_seq_prob", 0.1, "Probability of a shorter random target length.")
flags.DEFINE_integer("dupe_factor", 40, "Passes over each document, each with different masks.")
flags.DEFINE_integer("ngram", 3, "Maximum n-gram (in whole words) of a masked span.")
flags.DEFINE_bool(
    "favor_shorter_ngram", True, "n-gram length n has probability proportional to 1/n."
)
flags.DEFINE_integer(
    "random_seed", 12345, "Seed: same inputs, flags and seed give identical bytes."
)
flags.DEFINE_integer("num_shards", 0, "Output shards; 0 = one per input file.")
flags.DEFINE_bool("do_lower_case", True, "Lowercase in normalisation (BioALBERT: true).")
flags.DEFINE_enum(
    "compression", "", ["", "GZIP"], "TFRecord compression; the original readers expect none."
)
flags.DEFINE_enum(
    "input_format", "auto", ["auto", *corpus.FORMATS], "Corpus format; auto = by file extension."
)
flags.DEFINE_integer(
    "docs_per_chunk",
    1000,
    "Documents per chunk: the unit of parallel work, held in memory at once per worker, and "
    "the pool for random segment B.",
)
flags.DEFINE_bool(
    "skip_bad_files",
    False,
    "Keep what was read of a truncated/malformed file, count it in stats, and go on.",
)
flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace the shards of a finished build with other inputs, flags or vocabulary in --output_dir.",
)
flags.DEFINE_string(
    "runner",
    "DirectRunner",
    "Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...).",
)


def config_from_flags() -> BuildConfig:
    return BuildConfig(
        input_files=tuple(FLAGS.input_files),
        output_dir=FLAGS.output_dir,
        spm_model_file=FLAGS.spm_model_file,
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob,
        short_seq_prob=FLAGS.short_seq_prob,
        dupe_factor=FLAGS.dupe_factor,
        ngram=FLAGS.ngram,
        favor_shorter_ngram=FLAGS.favor_shorter_ngram,
        random_seed=FLAGS.random_seed,
        num_shards=FLAGS.num_shards,
        do_lower_case=FLAGS.do_lower_case,
        compression=FLAGS.compression,
        input_format=FLAGS.input_format,
        docs_per_chunk=FLAGS.docs_per_chunk,
        skip_bad_files=FLAGS.skip_bad_files,
    )


def _parse(argv):
    # Our flags are parsed here; the rest goes to Beam's PipelineOptions.
    return FLAGS(argv, known_only=True)


def main(argv):
    for name in ("input_files", "output_dir", "spm_model_file"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required")
    beam_args = [f"--runner={FLAGS.runner}", *argv[1:]]
    # Beam logs a failing step's traceback before re-raising; an I/O fault is told in one line.
    py_logging.getLogger("apache_beam.runners.common").addFilter(_not_a_fault)
    try:
        _refuse_unknown(argv[1:])
        stats = run(config_from_flags(), beam_args, overwrite=FLAGS.overwrite)
    except KeyboardInterrupt as e:
        then = "finished groups and chunks are kept; rerun the same command to go on"
        print(run_folder.interrupted(e, then), file=sys.stderr)
        return 130
    except (
        corpus.CorpusError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        IsADirectoryError,
        *fileio.fault_types(),
    ) as e:
        logging.error("%s", e)
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    except (
        Exception
    ) as e:  # Beam wraps worker errors; show the cause, not 200 lines of runner internals
        fault = _fault_in(e)
        cause = fileio.describe_fault(fault) if fault else _root_message(e)
        print(f"error: {cause}", file=sys.stderr)
        return 1
    brief = {
        k: stats[k]
        for k in (
            "documents",
            "sentences",
            "examples",
            "tokens",
            "masked_share_of_tokens",
            "masked_replacement_shares",
            "ngram_span_shares",
            "sop_label_1_share",
            "mean_tokens_per_example",
            "seconds",
            "examples_per_second",
        )
    }
    print(json.dumps(brief, indent=2))
    print(f"wrote {len(stats['shards'])} shard(s) and stats.json to {FLAGS.output_dir}")
    return 0


def _refuse_unknown(args: list[str]) -> None:
    unknown = unknown_pipeline_args(args)
    if not unknown:
        return
    ours = sorted(FLAGS.get_key_flags_for_module(sys.modules[__name__]), key=str)
    names = [f.name for f in ours]
    lines = []
    for arg in unknown:
        name = arg.lstrip("-").split("=", 1)[0]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean --{close[0]}?)" if close and arg.startswith("-") else ""
        lines.append(f"  {arg}{hint}")
    raise ValueError(
        "unknown argument(s), neither a flag of this program nor a Beam pipeline option:\n"
        + "\n".join(lines)
    )


def _not_a_fault(record: py_logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, fileio.fault_types())


def _fault_in(e: BaseException) -> BaseException | None:
    """The I/O fault (OSError, TensorFlow's errors) that a runner's wrapped error came from."""
    seen = set()
    while e is not None and id(e) not in seen and not isinstance(e, corpus.CorpusError):
        if isinstance(e, fileio.fault_types()):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _root_message(e: BaseException) -> str:
    text = str(e)
    for marker in ("CorpusError: ", "FileNotFoundError: ", "ValueError: ", "OSError: "):
        if marker in text:
            return text.rsplit(marker, 1)[1].split("\n", 1)[0].split(" [while running")[0]
    return text.splitlines()[-1] if text else type(e).__name__


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
