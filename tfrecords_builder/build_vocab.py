r"""Trains a SentencePiece vocabulary with ALBERT's special ids, or adopts an existing one.

  python -m tfrecords_builder.build_vocab --input_files='pubmed/*.xml.gz' \
      --model_prefix=vocab/bio30k --vocab_size=30000
  python -m tfrecords_builder.build_vocab --existing_model=30k-clean.model \
      --model_prefix=vocab/30k-clean

An existing <model_prefix>.model or .vocab is left alone unless --overwrite.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from bioalbert_tf import fileio, run_folder, settings
from tfrecords_builder import corpus, vocab

FLAGS = flags.FLAGS
settings.define_flags(vocab.VocabConfig, exclude=("model_type", "num_threads"))
settings.define_flags(vocab.VocabOptions)


def main(argv):
    del argv
    options = settings.from_flags(vocab.VocabOptions)
    if not FLAGS.model_prefix:
        raise app.UsageError("--model_prefix is required")
    if not options.existing_model and not FLAGS.input_files:
        raise app.UsageError("--input_files (or --existing_model) is required")
    folder = fileio.dirname(FLAGS.model_prefix)
    try:
        with run_folder.hold(folder, "build_vocab"):
            summary = _build(options)
    except KeyboardInterrupt as e:
        then = "no vocabulary was written; rerun the command"
        print(run_folder.interrupted(e, then), file=sys.stderr)
        return 130
    except (
        corpus.CorpusError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        *fileio.fault_types(),
    ) as e:
        print(f"error: {fileio.describe_fault(e)}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def _build(options: vocab.VocabOptions) -> dict:
    """Trains (or adopts) the vocabulary as the flags say; returns the summary printed."""
    # Refused before training (hours on a full corpus): a vocabulary that TFRecords were built
    # with must not change under them.
    fileio.refuse_overwrite(
        vocab.output_files(FLAGS.model_prefix), options.overwrite, "Choose another --model_prefix"
    )
    if options.existing_model:
        return vocab.adopt_existing(options.existing_model, FLAGS.model_prefix)
    from tfrecords_builder.pipeline import expand_inputs

    inputs = tuple(expand_inputs(FLAGS.input_files))
    return vocab.train(settings.from_flags(vocab.VocabConfig, input_files=inputs))


if __name__ == "__main__":
    app.run(main)
