"""fileio's shared mechanisms: the one glob expander and the one atomic write."""

from __future__ import annotations

import pytest

from bioalbert_tf import fileio


def test_expand_takes_comma_lists_and_globs_and_names_what_is_missing(tmp_path):
    for name in ("b.txt", "a.txt", "c.json"):
        (tmp_path / name).write_text(name)
    (tmp_path / "sub.txt").mkdir()  # a folder that a glob matches: left out
    a, b, c = (str(tmp_path / n) for n in ("a.txt", "b.txt", "c.json"))
    assert fileio.expand([f"{tmp_path}/*.txt,{c}", a]) == [a, b, c]  # sorted, unique
    assert fileio.expand(f"{c},{tmp_path}/*.txt", in_order=True) == [c, a, b]
    with pytest.raises(FileNotFoundError, match=r"no TFRecord files match '.*/\*\.tfrecord'"):
        fileio.expand(f"{tmp_path}/*.tfrecord", "TFRecord files")
    with pytest.raises(FileNotFoundError, match=r"input files: not found: .*/nothing\.txt"):
        fileio.expand(f"{a},{tmp_path}/nothing.txt")
    with pytest.raises(
        IsADirectoryError, match=r"is a directory; pass a glob such as .*sub\.txt/\*"
    ):
        fileio.expand(str(tmp_path / "sub.txt"))
    with pytest.raises(ValueError, match="no gold files given"):
        fileio.expand(" , ", "gold files")


def test_an_atomic_write_leaves_the_old_file_whole_when_it_fails(tmp_path):
    path = tmp_path / "metrics.json"
    fileio.write_atomic(str(path), "old")

    class Unwritable:
        def __str__(self):
            raise RuntimeError("cut")

    with pytest.raises(TypeError):
        fileio.write_atomic(str(path), Unwritable())
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left
    a, b = fileio.tmp_path(str(path)), fileio.tmp_path(str(path))
    assert a != b and fileio.final_name(a.rsplit("/", 1)[1]) == "metrics.json"
    fileio.write_atomic(str(path), b"new")
    assert path.read_bytes() == b"new"


def test_a_streamed_atomic_write_appears_only_when_its_block_ends(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="killed"), fileio.atomic_open(str(path)) as f:
        f.write("half of a ")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.txt"]
    with fileio.atomic_open(str(path), "wb") as f:
        f.write(b"whole")
        # while it is written, the old file is there and the new one under a temporary name
        assert path.read_text() == "old"
        (temporary,) = [p for p in tmp_path.iterdir() if p.name != "corpus.txt"]
        assert fileio.final_name(temporary.name) == "corpus.txt"
    assert path.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.txt"]


def test_two_tfrecord_writers_of_one_path_never_share_a_temporary_file(tmp_path):
    from tfrecords_builder import writer

    path = str(tmp_path / "shard.tfrecord")
    a, b = writer.AtomicTFRecordWriter(path), writer.AtomicTFRecordWriter(path)
    assert a.tmp_path != b.tmp_path
    a.write(b"a")
    b.write(b"b")
    b.abort()
    a.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["shard.tfrecord"]
    assert list(writer.read_frames(path)) == [writer.tfrecord_frame(b"a")]


def test_dirname_of_local_remote_and_bare_paths():
    assert fileio.dirname("out/vocab/bio30k") == "out/vocab"
    assert fileio.dirname("gs://bucket/run/model.ckpt-5") == "gs://bucket/run"
    assert fileio.dirname("model.ckpt-best") == "."  # a bare name: the current folder
    assert fileio.dirname("/sys/bioalbert_export/") == "/sys"
    assert fileio.dirname("/top") == "/"
