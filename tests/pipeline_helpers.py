"""What the Beam pipeline tests share: the MEDLINE sample as two plain-text files (the
`two_files` fixture), the build settings they use, and a build's shards as bytes."""

import pathlib

import pytest

from tfrecords_builder import pipeline


@pytest.fixture(scope="module", name="two_files")
def two_text_files(small_text_corpus, tmp_path_factory) -> str:
    """The 400-abstract sample split into two plain-text files (documents kept whole)."""
    docs = small_text_corpus.read_text(encoding="utf-8").split("\n\n")
    folder = tmp_path_factory.mktemp("two")
    (folder / "part-a.txt").write_text("\n\n".join(docs[:200]) + "\n", encoding="utf-8")
    (folder / "part-b.txt").write_text("\n\n".join(docs[200:]), encoding="utf-8")
    return str(folder / "part-*.txt")


def _config(inputs, out, spm, **kw):
    settings = dict(
        max_seq_length=128, max_predictions_per_seq=20, dupe_factor=2, docs_per_chunk=50
    )
    settings.update(kw)
    return pipeline.BuildConfig(
        input_files=(inputs,), output_dir=str(out), spm_model_file=spm, **settings
    )


def _shard_bytes(out) -> dict:
    return {p.name: p.read_bytes() for p in sorted(pathlib.Path(out).glob("*.tfrecord"))}
