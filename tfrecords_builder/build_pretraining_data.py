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

from bioalbert_tf import fileio, run_folder, settings
from tfrecords_builder import corpus
from tfrecords_builder.pipeline import BuildConfig, run, unknown_pipeline_args
from tfrecords_builder.plan import BuildOptions

FLAGS = flags.FLAGS
settings.define_flags(BuildConfig, exclude=("min_line_chars", "output_prefix"))
settings.define_flags(BuildOptions)


def config_from_flags() -> BuildConfig:
    return settings.from_flags(BuildConfig)


def _parse(argv):
    # Our flags are parsed here; the rest goes to Beam's PipelineOptions.
    return FLAGS(argv, known_only=True)


def main(argv):
    config = config_from_flags()  # a missing required flag: a usage error
    options = settings.from_flags(BuildOptions)
    beam_args = [f"--runner={options.runner}", *argv[1:]]
    # Beam logs a failing step's traceback before re-raising; an I/O fault is told in one line.
    py_logging.getLogger("apache_beam.runners.common").addFilter(_not_a_fault)
    try:
        _refuse_unknown(argv[1:])
        stats = run(config, beam_args, overwrite=options.overwrite)
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
