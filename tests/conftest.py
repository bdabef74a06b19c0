"""Shared fixtures: the embedded MEDLINE corpus, a small plain-text corpus, a tiny vocabulary;
and the two tiers of the suite.

`make test` runs every test. `make check` runs the fast tier (`pytest --fast`): tests marked
`slow` are left out, and a test that starts a subprocess (a command line, the GCS emulator, a
second TensorFlow) is skipped at that moment, as are those that need torch or TensorFlow's C API.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS_DIR = pathlib.Path(os.environ.get("BIOALBERT_CORPUS_DIR", ROOT / ".cache" / "corpus"))
SHARED_DATA = pathlib.Path(os.environ.get("BIOALBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MEDLINE_FILES = ["pubmed20n0014.xml.gz", "pubmed21n1298.xml.gz"]


def folder_bytes(folder) -> dict[str, bytes]:
    """{relative path: bytes} of every file under `folder`: equal before and after means that
    nothing there was written, removed or changed."""
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def small_config(**overrides):
    """A small ALBERT config (one group unless overridden) for numeric tests at CPU speed."""
    from bioalbert_tf.config import AlbertConfig

    sizes = dict(
        vocab_size=211,
        embedding_size=16,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=60,
        max_position_embeddings=32,
    )
    return AlbertConfig(**{**sizes, **overrides})


def medline_path(name: str = MEDLINE_FILES[0]) -> pathlib.Path:
    path = CORPUS_DIR / name
    if not path.exists():
        pytest.skip(f"embedded MEDLINE corpus missing ({path}); `make corpus` fetches it")
    return path


def medline_sample(n_articles: int) -> bytes:
    """The first n citations of the first MEDLINE file as a complete XML file (its own prolog,
    a closed root), read without decompressing the rest."""
    import gzip

    end_tag = b"</PubmedArticle>"
    with gzip.open(medline_path(), "rb") as f:
        data = b""
        while data.count(end_tag) < n_articles:
            data += f.read(1 << 20)
    end = 0
    for _ in range(n_articles):
        end = data.index(end_tag, end) + len(end_tag)
    return data[:end] + b"\n</PubmedArticleSet>\n"


@pytest.fixture(scope="session")
def small_text_corpus(tmp_path_factory) -> pathlib.Path:
    """The first 400 MEDLINE abstracts in the plain format (sentence per line, blank between
    docs)."""
    from tfrecords_builder import corpus

    stats = corpus.ReadStats()
    out = tmp_path_factory.mktemp("corpus") / "medline_sample.txt"
    with open(out, "w", encoding="utf-8") as f:
        for i, doc in enumerate(corpus.iter_documents(str(medline_path()), stats)):
            if i == 400:
                break
            f.write("\n".join(doc) + "\n\n")
    return out


@pytest.fixture(scope="session")
def tiny_spm(tmp_path_factory, small_text_corpus) -> str:
    """A 1000-piece unigram model with ALBERT's special ids, trained on the sample."""
    from tfrecords_builder import vocab

    prefix = tmp_path_factory.mktemp("vocab") / "tiny"
    vocab.train(
        vocab.VocabConfig(
            input_files=(str(small_text_corpus),),
            model_prefix=str(prefix),
            vocab_size=1000,
            num_threads=1,
        )
    )
    return str(prefix) + ".model"


@pytest.fixture()
def small_disk(tmp_path):
    """small_disk(kib) -> a folder on a tmpfs of that size (a disk that fills up); skipped where
    this machine cannot mount one."""
    import subprocess

    mounts = []

    def make(kib: int) -> pathlib.Path:
        folder = tmp_path / f"disk{len(mounts)}"
        folder.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
        mounts.append(folder)
        return folder

    yield make
    for folder in mounts:
        subprocess.run(["umount", str(folder)], capture_output=True)


def pytest_addoption(parser):
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast tier (make check): no slow test, no subprocess, torch or C API",
    )


# The slow tier (make test only): these modules as a whole (they compare against torch, start
# the GCS emulator, or every test trains a model), and each test marked `slow` elsewhere (over a
# few seconds on two cores, or Beam with several worker processes). In the fast tier, a test that
# starts a subprocess is skipped where it starts one (_fast_tier below).
SLOW_MODULES = {
    "test_parity_hf",
    "test_serving_loader",
    "test_serving_fuzz",
    "test_gcs",
    "test_finetuning",
    "test_finetuning_cv",
    "test_pretraining_resume",
    "test_task_learning",
}


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--fast"):
        return
    kept, left = [], []
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        slow = item.get_closest_marker("slow") or module in SLOW_MODULES
        (left if slow else kept).append(item)
    items[:] = kept
    config.hook.pytest_deselected(items=left)


class _NoSubprocess(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        pytest.skip("starts a subprocess: in make test, not in the fast tier")


@pytest.fixture(scope="session", autouse=True)
def _fast_tier(request):
    """In the fast tier, a test (or fixture) that starts a subprocess is skipped there and then.
    Session-wide and first, so that module fixtures are covered too (in the test processes
    only: pytest-xdist starts them before any fixture)."""
    if not request.config.getoption("--fast"):
        yield
        return
    with pytest.MonkeyPatch.context() as m:
        m.setattr(subprocess, "Popen", _NoSubprocess)
        yield
