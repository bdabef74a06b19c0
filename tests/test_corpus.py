"""Corpus readers on the real MEDLINE/PMC files and on small files written here."""

import gzip
import io
import tarfile

import pytest

from tests.conftest import CORPUS_DIR, medline_path, medline_sample
from tfrecords_builder import corpus


def _read(path, **kw):
    stats = corpus.ReadStats()
    docs = list(corpus.iter_documents(str(path), stats, **kw))
    return docs, stats


def test_medline_baseline_file_streams_title_and_abstract():
    docs, stats = _read(medline_path("pubmed20n0014.xml.gz"))
    c = stats.counts
    assert c["citations"] == 30000
    assert c["citations_without_abstract"] == 15168
    assert len(docs) == 30000 - 15168
    first = docs[0]
    assert first[0].startswith("Monitoring of bacteriological contamination")  # the ArticleTitle
    assert first[1].startswith("Two hundred and sixty nine beef")  # abstract, sentence-split
    assert all(len(s) >= 20 for d in docs for s in d)
    assert all(s == s.strip() and "\n" not in s for d in docs[:500] for s in d)


def test_medline_newer_file_counts_deletions():
    docs, stats = _read(medline_path("pubmed21n1298.xml.gz"))
    assert stats.counts["citations_deleted"] == 20
    assert len(docs) == stats.counts["citations"] - stats.counts["citations_without_abstract"]


def test_sentence_splitter_keeps_biomedical_abbreviations():
    text = (
        "Patients received 2.5 mg of drug X, e.g. aspirin, as described by Smith et al. in 2005. "
        "The difference was significant (p < 0.05). "
        "As shown in Fig. 3, the effect was larger in vitro."
    )
    assert corpus.split_sentences(text) == [
        "Patients received 2.5 mg of drug X, e.g. aspirin, as described by Smith et al. in 2005.",
        "The difference was significant (p < 0.05).",
        "As shown in Fig. 3, the effect was larger in vitro.",
    ]


def test_pmc_nxml_real_article_body_without_tables_or_references():
    path = CORPUS_DIR / "pone.0000217.nxml"
    if not path.exists():
        pytest.skip("embedded PMC sample missing; `make corpus` fetches it")
    docs, stats = _read(path)
    assert len(docs) == 1 and stats.counts["articles"] == 1
    doc = docs[0]
    assert doc[0] == "Quantifying Organismal Complexity using a Population Genetic Approach"
    text = " ".join(doc)
    raw = path.read_text(encoding="utf-8")
    ref_title = raw.split("<ref-list")[1].split("<article-title>")[1].split("</article-title>")[0]
    assert ref_title.strip()[:40] not in text  # the reference list is not in the text
    assert len(doc) > 100


def test_pmc_tar_package(tmp_path):
    article = (
        b"<article><front><article-meta><title-group>"
        b"<article-title>A study of kinase signalling in cells</article-title></title-group>"
        b"<abstract><p>We studied the kinase in detail. It was active in cells.</p></abstract>"
        b"</article-meta></front><body><sec><p>The body paragraph has one sentence here.</p>"
        b"<table-wrap><table><tr><td>table cell text that is long enough</td></tr></table>"
        b"</table-wrap></sec></body><back><ref-list><ref>"
        b"<mixed-citation>Reference text that should not appear.</mixed-citation>"
        b"</ref></ref-list></back></article>"
    )
    pkg = tmp_path / "oa_package.tar.gz"
    with tarfile.open(pkg, "w:gz") as tar:
        for name in ("PMC1/a.nxml", "PMC2/b.nxml"):
            info = tarfile.TarInfo(name)
            info.size = len(article)
            tar.addfile(info, io.BytesIO(article))
    docs, stats = _read(pkg)
    assert len(docs) == 2
    assert docs[0] == [
        "A study of kinase signalling in cells",
        "We studied the kinase in detail.",
        "It was active in cells.",
        "The body paragraph has one sentence here.",
    ]


def test_mimic_noteevents(tmp_path):
    path = tmp_path / "NOTEEVENTS.csv"
    path.write_text(
        "ROW_ID,SUBJECT_ID,HADM_ID,CHARTDATE,CHARTTIME,STORETIME,CATEGORY,DESCRIPTION,CGID,ISERROR,TEXT\n"
        '1,10,100,2151-07-16,,,Discharge summary,Report,,,"Admission Date:  [**2151-7-16**]\n\n'
        "The patient was admitted with chest pain and\n"
        'shortness of breath. She was treated with aspirin.\n\nShort."\n'
        '2,11,101,2151-07-17,,,Nursing,Note,,1,"This note was marked as an error '
        'by the hospital."\n'
        '3,12,102,2151-07-18,,,Radiology,Report,,,"Chest x-ray shows no acute process '
        'in the lungs."\n',
        encoding="utf-8",
    )
    docs, stats = _read(path)
    assert docs == [
        [
            "Admission Date: [**2151-7-16**]",
            "The patient was admitted with chest pain and shortness of breath.",
            "She was treated with aspirin.",
        ],
        ["Chest x-ray shows no acute process in the lungs."],
    ]
    assert stats.counts["notes"] == 2 and stats.counts["notes_marked_error"] == 1
    assert stats.counts["lines_short"] == 1


def test_mimic_without_text_column_names_the_file(tmp_path):
    path = tmp_path / "NOTEEVENTS.csv"
    path.write_text("ROW_ID,BODY\n1,hello\n", encoding="utf-8")
    with pytest.raises(
        corpus.CorpusError, match=r"NOTEEVENTS.csv: line 1: expected .* TEXT column"
    ):
        _read(path)


def test_plain_text_documents_and_bad_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    lines = [
        b"The first sentence of document one is here.",
        b"short line",
        b"Second sentence of the first document, long enough.",
        b"",
        b"Document two has an invalid byte \xff\xfe in this line.",
        b"Document two has a NUL \x00 byte inside this line.",
        b"x" * 1_000_000,  # a 1 MB single line
        b"Document two keeps this sentence, which is fine.",
        b"",
        b"",
    ]
    path.write_bytes(b"\n".join(lines))
    docs, stats = _read(path)
    assert docs == [
        [
            "The first sentence of document one is here.",
            "Second sentence of the first document, long enough.",
        ],
        ["Document two keeps this sentence, which is fine."],
    ]
    assert stats.counts["lines_invalid_utf8"] == 1
    assert stats.counts["lines_with_nul"] == 1
    assert stats.counts["lines_overlong"] == 1
    assert stats.counts["lines_short"] == 1


def test_empty_file_is_counted(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    docs, stats = _read(path)
    assert docs == [] and stats.counts["files_empty"] == 1


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(corpus.CorpusError, match="nope.xml.gz: no such file"):
        _read(tmp_path / "nope.xml.gz")


def test_truncated_medline_gz_is_an_error_or_a_counted_skip(tmp_path):
    data = medline_path("pubmed20n0014.xml.gz").read_bytes()
    path = tmp_path / "pubmed_truncated.xml.gz"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(
        corpus.CorpusError, match=r"pubmed_truncated.xml.gz: unreadable after \d+ documents"
    ):
        _read(path)
    docs, stats = _read(path, skip_bad_files=True)
    assert 1000 < len(docs) < 14832
    assert stats.counts["files_bad"] == 1
    assert "pubmed_truncated.xml.gz" in stats.bad_files[0]


def test_malformed_xml_is_an_error(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_bytes(b"<PubmedArticleSet><PubmedArticle><MedlineCitation>")
    with pytest.raises(corpus.CorpusError, match="bad.xml"):
        _read(path)


def test_gzip_plain_text(tmp_path):
    path = tmp_path / "c.txt.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"A gzipped sentence of plain text here.\n\nAnother document starts right here.\n")
    docs, _ = _read(path)
    assert docs == [
        ["A gzipped sentence of plain text here."],
        ["Another document starts right here."],
    ]


@pytest.mark.parametrize(
    "name,fmt",
    [
        ("pubmed21n0001.xml.gz", "medline"),
        ("a.nxml", "pmc"),
        ("oa.tar.gz", "pmc"),
        ("NOTEEVENTS.csv.gz", "mimic"),
        ("x.txt", "text"),
    ],
)
def test_format_detection(name, fmt):
    assert corpus.detect_format(name) == fmt


def test_binary_file_given_as_text_is_an_error_or_a_listed_skip(tmp_path):
    # Protobuf-like records: readable words between control bytes. Read line by line, the
    # words became "sentences" of garbage.
    path = tmp_path / "model.txt"
    path.write_bytes(
        b"".join(
            b"\x0a\x12\x08" + f"pieces of readable text {i}".encode() + b"\x15\x1f\x1c\x01\x02\x03"
            for i in range(2000)
        )
    )
    with pytest.raises(corpus.CorpusError, match=r"model.txt: not a text file: \d+% of the"):
        _read(path)
    docs, stats = _read(path, skip_bad_files=True)
    assert docs == [] and stats.counts["files_binary"] == 1
    assert stats.bad_files[0].startswith(f"{path}: not a text file")
    assert corpus.binary_share(path.read_bytes()[: corpus.SNIFF_BYTES]) > 0.15


def test_text_with_a_few_bad_bytes_is_still_text(tmp_path):
    text = "A plain sentence of text, long enough to keep, é and ü included.\n" * 200
    data = text.encode()
    # a stray NUL and an undecodable byte, and a character cut at the end of the sniffed block
    data = data[:100] + b"\x00\xff" + data[100 : corpus.SNIFF_BYTES - 103] + "é".encode()[:1]
    assert corpus.binary_share(data) < 0.01


def _pieces(path, fmt, piece_bytes) -> list[bytes]:
    pieces, current = [], []
    for part in corpus.split_stream(str(path), fmt, piece_bytes):
        if part is None:
            pieces.append(b"".join(current))
            current = []
        else:
            current.append(part)
    return pieces + [b"".join(current)]


def _read_pieces(pieces, fmt):
    stats = corpus.ReadStats()
    stats.counts["files"] += 1  # counted once per file, by the caller of split_stream
    docs = [d for p in pieces for d in corpus.read_piece(io.BytesIO(p), fmt, stats)]
    return docs, stats


def test_pieces_of_a_medline_file_parse_alone_to_its_documents_and_counts(tmp_path):
    path = tmp_path / "sample.xml.gz"
    path.write_bytes(gzip.compress(medline_sample(300)))
    pieces = _pieces(path, "medline", 50_000)
    prolog = pieces[0][: pieces[0].index(b"<PubmedArticle>")]
    assert len(pieces) > 20 and b"<!DOCTYPE PubmedArticleSet" in prolog
    for piece in pieces[1:]:
        assert piece.startswith(prolog + b"<PubmedArticle>")  # the same parsing context
    for piece in pieces[:-1]:
        assert piece.endswith(b"</PubmedArticle>\n  </PubmedArticleSet>")
    docs, stats = _read_pieces(pieces, "medline")
    whole_docs, whole = _read(path)
    assert len(whole_docs) == 101 and docs == whole_docs
    assert stats.to_dict() == whole.to_dict()


def test_pieces_of_a_text_file_are_cut_after_empty_lines(tmp_path):
    lines = [
        b"A first document of plain text, one sentence.",
        b"",
        b"",
        b" \t ",
        b"\xa0",
        b"Lines of blanks separate documents too, as here.",
        b"x" * 1_000_000,
        b"",
        b"An invalid byte \xff in this line, which is skipped.",
        b"short one",
        b"The last document of this file ends without a newline",
    ]
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"\n".join(lines * 3))
    pieces = _pieces(path, "text", 10)
    assert len(pieces) == 7 and all(p.endswith(b"\n\n") for p in pieces[:-1])
    docs, stats = _read_pieces(pieces, "text")
    whole_docs, whole = _read(path)
    assert len(whole_docs) == 7 and docs == whole_docs
    assert stats.to_dict() == whole.to_dict()


def test_a_cut_inside_a_comment_leaves_pieces_that_do_not_parse(tmp_path):
    xml = medline_sample(20)
    at = xml.index(b"<PubmedArticle>", 20_000)
    xml = xml[:at] + b"<!-- <PubmedArticle> is a citation -->\n" + xml[at:]
    path = tmp_path / "commented.xml"
    path.write_bytes(xml)
    pieces = _pieces(path, "medline", at + len(b"<!-- "))  # the first cut point: in the comment
    assert b"<!-- " + b"</PubmedArticleSet>" in pieces[0]
    with pytest.raises(corpus.etree.XMLSyntaxError):
        _read_pieces(pieces, "medline")
    assert _read(path)[0]  # read whole, the file is fine


def test_a_medline_prolog_with_content_is_not_split(tmp_path):
    path = tmp_path / "odd.xml"
    path.write_bytes(
        b"<PubmedArticleSet><DeleteCitation><PMID>1</PMID></DeleteCitation>"
        b"<PubmedArticle></PubmedArticle></PubmedArticleSet>"
    )
    with pytest.raises(corpus.NotSplittable):
        _pieces(path, "medline", 10)
