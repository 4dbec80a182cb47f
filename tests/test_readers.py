"""Readers on the real raw-format samples in tests/data/raw, and on broken input."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest

from ingest.normalize import load_six_t_table, normalize_record
from ingest.readers import (
    ReaderError,
    detect_encoding,
    detect_format,
    read_csv,
    read_jsonl,
    read_kipris_xml,
    read_patents,
)
from ingest.records import RecordError, Reject, SourceRecord
from ingest.scores import read_scores

RAW = Path(__file__).resolve().parent / "data" / "raw"
XML = RAW / "kipris_plus_applicant_search_response.xml"
BIBLIO = RAW / "kipris_biblio_detail.json"
BULK = RAW / "kipris_plus_bulk_txt"
INCHEON = RAW / "kipris_derived_csv__incheon-univ.csv"
COMPANY = RAW / "company_patent_detail.csv"


def _split(items):
    records = [i for i in items if isinstance(i, SourceRecord)]
    rejects = [i for i in items if isinstance(i, Reject)]
    return records, rejects


def _docs(path: Path) -> dict[str, dict]:
    """Normalised documents by application number; records that fail are left out."""
    table = load_six_t_table()
    records, _ = _split(list(read_patents(path)))
    docs = {}
    for record in records:
        try:
            doc = normalize_record(record, table).doc
        except RecordError:
            continue
        docs[doc["application_number"]] = doc
    return docs


@pytest.mark.parametrize("path, fmt", [
    (XML, "kipris_xml"), (BIBLIO, "biblio_json"), (BULK, "kipris_bulk"),
    (INCHEON, "csv"), (COMPANY, "csv"),
])
def test_detect_format(path, fmt):
    assert detect_format(path) == fmt


def test_detect_format_unknown(tmp_path: Path):
    path = tmp_path / "notes.bin"
    path.write_bytes(b"\x00\x01binary")
    with pytest.raises(ReaderError, match="unknown format"):
        detect_format(path)
    with pytest.raises(ReaderError, match="no such file"):
        detect_format(tmp_path / "missing.csv")


def test_xml_reader():
    records, rejects = _split(list(read_kipris_xml(XML)))
    assert len(records) == 33
    assert rejects == []
    first = records[0]
    assert first.source == f"{XML}:13"
    assert first.fields["application_number"] == "1020220011322"
    assert first.fields["register_status"] == "공개"
    doc = _docs(XML)["1020220011322"]
    assert doc["ipc"][:2] == ["C12P 13/00", "C12P 21/00"]
    assert doc["open_date"] == "2022-11-07"
    assert doc["applicants"] == ["(주)마린바이오프로세스"]
    assert doc["six_t"] == "BT"


def test_xml_truncated(tmp_path: Path):
    data = XML.read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(data[: len(data) // 2])
    records, rejects = _split(list(read_kipris_xml(cut, chunk_bytes=4096)))
    assert 10 < len(records) < 33
    assert len(rejects) == 1
    assert rejects[0].source.startswith(f"{cut}:")
    assert "truncated or malformed at line" in rejects[0].reason
    assert f"the {len(records)} records before it were read" in rejects[0].reason


def test_xml_api_error(tmp_path: Path):
    path = tmp_path / "error.xml"
    path.write_text("<response><header><resultCode>30</resultCode><resultMsg>SERVICE KEY "
                    "IS NOT REGISTERED</resultMsg></header><body><items/></body></response>",
                    encoding="utf-8")
    records, rejects = _split(list(read_kipris_xml(path)))
    assert records == []
    assert "resultCode '30'" in rejects[0].reason


def test_biblio_json_reader():
    records, rejects = _split(list(read_patents(BIBLIO)))
    assert len(records) == 1
    assert rejects == []
    assert records[0].source == f"{BIBLIO}#0"
    doc = _docs(BIBLIO)["1020047015570"]
    assert doc["title"] == "혼합-세포 유전자 요법"
    assert doc["title_en"] == "Mixed-cell gene therapy"
    assert doc["application_date"] == "2003-03-28"
    assert doc["register_number"] == "1008661010000"
    assert doc["ipc"] == ["C12N 5/00", "A61K 31/70", "C12N 5/10", "C12N 5/071"]
    assert doc["applicants"] == ["코오롱 티슈진 인크."]
    assert doc["claim_count"] == 21
    assert doc["abstract"].startswith("본 발명은 발현시키고자")


def test_biblio_json_in_jsonl(tmp_path: Path):
    obj = json.loads(BIBLIO.read_text(encoding="utf-8"))
    path = tmp_path / "details.jsonl"
    path.write_text(json.dumps(obj, ensure_ascii=False) + "\n", encoding="utf-8")
    records, _ = _split(list(read_jsonl(path)))
    assert records[0].fields["application_number"] == "10-2004-7015570"


def test_bulk_reader_joins_tables():
    records, rejects = _split(list(read_patents(BULK)))
    assert len(records) == 20
    assert rejects == []
    assert records[0].source == f"{BULK / 'Bibliographic.txt'}:2"
    doc = _docs(BULK)["1020200149050"]
    assert doc["title"] == "컴퓨터 입력장치 조작 시 착용하는 손목 보호용 밴드"
    assert doc["title_en"] == "BAND FOR WRIST SAFEGUARD"
    assert doc["abstract"].startswith("본 발명은 내부 수용부")
    assert "<" not in doc["abstract"]
    assert doc["ipc"] == ["G06F 3/039", "A61F 5/01"]
    assert doc["cpc"] == ["G06F 3/039", "A61F 5/0118", "A61F 2005/0197"]
    assert doc["register_date"] == "2021-05-31"


def test_bulk_orphan_rows_reported(tmp_path: Path):
    folder = tmp_path / "bulk"
    shutil.copytree(BULK, folder)
    with (folder / "IPC.txt").open("a", encoding="utf-8") as handle:
        handle.write("1020990000001¶1¶G06F 3/01¶(2006.01.01)\n")
    records, rejects = _split(list(read_patents(folder)))
    assert len(records) == 20
    assert len(rejects) == 1
    assert "1020990000001" in rejects[0].reason
    assert "no row in Bibliographic.txt" in rejects[0].reason
    assert rejects[0].source.endswith("IPC.txt:80")


def test_bulk_without_bibliographic(tmp_path: Path):
    folder = tmp_path / "bulk"
    folder.mkdir()
    shutil.copy(BULK / "IPC.txt", folder)
    records, rejects = _split(list(read_patents(folder)))
    assert records == []
    assert "no Bibliographic table" in rejects[0].reason


def test_incheon_csv_reader():
    records, rejects = _split(list(read_csv(INCHEON)))
    assert len(records) == 40
    assert rejects == []
    assert records[0].source == f"{INCHEON}:2"
    doc = _docs(INCHEON)["1020160138184"]
    assert doc["title"] == "스프레이 분사를 이용한 슈퍼커패시터용 3차원 그래핀 전극의 제조방법"
    assert doc["title_en"].startswith("PREPARATION METHOD OF 3D GRAPHENE")
    assert doc["application_date"] == "2016-10-24"
    assert doc["register_date"] == "2018-04-02"
    assert doc["ipc"][:2] == ["H01G 11/86", "H01G 11/32"]
    assert doc["six_t"] == "ET"


def test_company_csv_reader():
    table = load_six_t_table()
    records, rejects = _split(list(read_csv(COMPANY)))
    assert len(records) == 40
    assert rejects == []
    # Registered rows and designs of this export carry no application number.
    errors = []
    for record in records:
        try:
            normalize_record(record, table)
        except RecordError as exc:
            errors.append(str(exc))
    assert len(errors) == 27
    assert set(errors) == {"application number is empty"}
    docs = _docs(COMPANY)
    assert len(docs) == 13
    doc = docs["1020220045670"]
    assert doc["title"] == "포커스 링"
    assert doc["ipc"] == ["H01J 37/32", "H01L 21/67", "C04B 35/14"]
    assert doc["register_status"] == "공개"
    assert doc["application_date"] == "2022-04-13"


def test_csv_cp949_detected(tmp_path: Path):
    path = tmp_path / "cp949.csv"
    path.write_bytes(INCHEON.read_text(encoding="utf-8").encode("cp949", errors="replace"))
    assert detect_encoding(path) == "cp949"
    records, rejects = _split(list(read_csv(path)))
    assert len(records) == 40
    assert rejects == []
    assert records[0].fields["application_number"] == "1020160138184"


def test_csv_utf8_bom(tmp_path: Path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "출원번호,발명의명칭\n10-2018-0173848,장치\n".encode())
    assert detect_encoding(path) == "utf-8-sig"
    records, _ = _split(list(read_csv(path)))
    assert records[0].fields == {"application_number": "10-2018-0173848", "title": "장치"}


def test_csv_wrong_encoding(tmp_path: Path):
    path = tmp_path / "utf16.csv"
    path.write_bytes("출원번호,발명의명칭\n".encode("utf-16"))
    with pytest.raises(ReaderError, match="UTF-16"):
        list(read_csv(path))
    path = tmp_path / "binary.csv"
    path.write_bytes(b"application_number,title\n\xff\xfe\xfa\xfb")
    with pytest.raises(ReaderError, match=r"not UTF-8 \(byte 0xff at offset 25\)"):
        list(read_csv(path))


def test_csv_bad_line_rejected_rest_read(tmp_path: Path):
    path = tmp_path / "mixed.csv"
    path.write_bytes("출원번호,발명의명칭\n10-2018-0173848,장치\n".encode()
                     + "10-2018-0173849,방법\n".encode("cp949")
                     + "10-2018-0173850,시스템\n".encode())
    records, rejects = _split(list(read_csv(path, encoding="utf-8")))
    assert [r.fields["title"] for r in records] == ["장치", "시스템"]
    assert rejects[0].source == f"{path}:3"
    assert "line 3 is not valid utf-8" in rejects[0].reason


def test_csv_missing_columns(tmp_path: Path):
    path = tmp_path / "nocolumns.csv"
    path.write_text("name,date\n장치,2018-01-01\n", encoding="utf-8")
    with pytest.raises(ReaderError) as info:
        list(read_csv(path))
    message = str(info.value)
    assert str(path) in message
    assert "application_number (one of 출원번호" in message
    assert "title (one of 특허명" in message
    assert "['name', 'date']" in message


def test_csv_short_row_rejected(tmp_path: Path):
    path = tmp_path / "short.csv"
    path.write_text("abstract,title,출원번호\n초록,장치,10-2018-0173848\n초록만\n",
                    encoding="utf-8")
    records, rejects = _split(list(read_csv(path)))
    assert len(records) == 1
    assert rejects[0].source == f"{path}:3"
    assert "row has 1 columns" in rejects[0].reason


def test_jsonl_bad_lines(tmp_path: Path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"application_number": "1020180173848", "title": "장치"}\n'
                    '{"application_number": "10201801738\n'
                    '\n'
                    '[1, 2]\n'
                    '{"application_number": "1020180173849", "title": "방법"}\n',
                    encoding="utf-8")
    records, rejects = _split(list(read_jsonl(path)))
    assert [r.source for r in records] == [f"{path}:1", f"{path}:5"]
    assert [r.source for r in rejects] == [f"{path}:2", f"{path}:4"]
    assert "not valid JSON" in rejects[0].reason
    assert "JSON list" in rejects[1].reason


def test_jsonl_gzip(tmp_path: Path):
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write('{"application_number": "1020180173848", "title": "장치"}\n')
    assert detect_format(path) == "jsonl"
    records, _ = _split(list(read_patents(path)))
    assert records[0].fields["title"] == "장치"


def test_bundled_sample_reads(sample_path: Path):
    count = 0
    for item in read_patents(sample_path):
        assert isinstance(item, SourceRecord)
        count += 1
    assert count == 10906


def test_large_file_streams(tmp_path: Path, sample_path: Path):
    """A ~60 MB JSONL reads with a flat memory peak: nothing accumulates."""
    with gzip.open(sample_path, "rt", encoding="utf-8") as handle:
        lines = [handle.readline() for _ in range(200)]
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(200):
            handle.writelines(lines)
    assert path.stat().st_size > 50 * 1024 * 1024
    table = load_six_t_table()
    tracemalloc.start()
    count = 0
    for item in read_patents(path):
        normalize_record(item, table)
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 40000
    assert peak < 16 * 1024 * 1024


#####################################################################
# KPEG evaluation files
#####################################################################


def _scores_file(tmp_path: Path, body: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "kpeg.csv"
    path.write_bytes(body.encode(encoding))
    return path


def test_scores_reader(tmp_path: Path):
    path = _scores_file(tmp_path, (
        "출원번호,PQI,권리성,기술성,사업성,등급,평가일\n"
        "10-2016-0138184,1.2,70.5,80,65,AA,2021.03.02\n"
        "1020160138185,0.8,40,50,60,,\n"
    ), encoding="cp949")
    records, rejects = _split(list(read_scores(path)))
    assert rejects == []
    assert records[0].fields == {
        "application_number": "1020160138184",
        "scores": {"pqi": 1.2, "rights": 70.5, "technology": 80.0, "commercial": 65.0,
                   "grade": "AA", "evaluation_date": "2021-03-02", "source": "kpeg"},
    }
    assert records[1].fields["scores"] == {"pqi": 0.8, "rights": 40.0, "technology": 50.0,
                                           "commercial": 60.0, "source": "kpeg"}


@pytest.mark.parametrize("row, message", [
    ("1020160138184,11,70,80,65", "pqi '11' is outside 0-10"),
    ("1020160138184,1,170,80,65", "rights '170' is outside 0-100"),
    ("1020160138184,1,70,-1,65", "technology '-1' is outside 0-100"),
    ("1020160138184,1,70,80,high", "commercial 'high' is not a number"),
    ("1020160138184,1,70,80,nan", "commercial 'nan' is outside 0-100"),
    ("1020160138184,1,70,,65", "technology is empty"),
    ("10201601381,1,70,80,65", "implausible year 1020"),
])
def test_scores_invalid_rows(tmp_path: Path, row, message):
    path = _scores_file(tmp_path, "application_number,pqi,rights,technology,commercial\n"
                        f"{row}\n1020160138185,1,70,80,65\n")
    records, rejects = _split(list(read_scores(path)))
    assert len(records) == 1
    assert rejects[0].source == f"{path}:2"
    assert message in rejects[0].reason


def test_scores_bad_application_number(tmp_path: Path):
    path = _scores_file(tmp_path, "application_number,pqi,rights,technology,commercial\n"
                        "30-2016-0138184,1,70,80,65\n")
    _, rejects = _split(list(read_scores(path)))
    assert "design" in rejects[0].reason


def test_scores_unknown_source(tmp_path: Path):
    path = _scores_file(tmp_path, "application_number,pqi,rights,technology,commercial,"
                        "source\n1020160138184,1,70,80,65,guess\n")
    _, rejects = _split(list(read_scores(path)))
    assert "source 'guess' is not one of kpeg, synthetic" in rejects[0].reason


def test_scores_missing_columns(tmp_path: Path):
    path = _scores_file(tmp_path, "출원번호,PQI\n1020160138184,1\n")
    with pytest.raises(ReaderError, match="missing required column.*rights"):
        list(read_scores(path))


def test_overlong_line_skipped(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("ingest.readers.MAX_LINE_BYTES", 1000)
    path = tmp_path / "long.jsonl"
    path.write_text('{"application_number": "1020180173848", "title": "장치"}\n'
                    + '{"title": "' + "가" * 5000 + '"}\n'
                    + '{"application_number": "1020180173849", "title": "방법"}\n',
                    encoding="utf-8")
    records, rejects = _split(list(read_jsonl(path)))
    assert [r.source for r in records] == [f"{path}:1", f"{path}:3"]
    assert rejects[0].source == f"{path}:2"
    assert "longer than 1000 bytes" in rejects[0].reason


def test_bulk_bad_bytes_rejected(tmp_path: Path):
    folder = tmp_path / "bulk"
    shutil.copytree(BULK, folder)
    with (folder / "Bibliographic.txt").open("ab") as handle:
        handle.write("1020990000002¶20201110¶".encode() + "잘못된".encode("cp949") + b"\n")
    records, rejects = _split(list(read_patents(folder)))
    assert len(records) == 20
    assert rejects[0].source == f"{folder / 'Bibliographic.txt'}:22"
    assert "not valid UTF-8" in rejects[0].reason


def test_csv_broken_row_rejected(tmp_path: Path):
    path = tmp_path / "huge-field.csv"
    path.write_bytes("출원번호,발명의명칭\n10-2018-0173848,장치\n".encode()
                     + b"10-2018-0173849," + b"x" * 500 + b"\n"
                     + "10-2018-0173850,시스템\n".encode())
    limit = csv.field_size_limit(100)
    try:
        records, rejects = _split(list(read_csv(path)))
    finally:
        csv.field_size_limit(limit)
    assert [r.fields["title"] for r in records] == ["장치", "시스템"]
    assert rejects[0].source == f"{path}:3"
    assert "not valid CSV" in rejects[0].reason


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.ndjson", "empty.xml", "empty.json",
                                  "empty.csv", "empty.tsv", "empty.jsonl.gz"])
@pytest.mark.parametrize("content", [b"", b"\n \r\n\t\n", b"\xef\xbb\xbf\n"])
def test_empty_file_raises_for_every_format(tmp_path, name, content):
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    with pytest.raises(ReaderError) as info:
        list(read_patents(path))
    assert str(path) in str(info.value)
    assert "the file is empty" in str(info.value)


def test_empty_jsonl_message_names_format(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with pytest.raises(ReaderError, match="expected one JSON object per line"):
        next(read_patents(path, "jsonl"))
