"""Normalisation of raw field values, the IPC-to-6T table and Korean analysis."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.korean import analyze, analyze_many
from ingest.normalize import (
    SixTRow,
    SixTTable,
    clean_text,
    content_hash,
    load_six_t_table,
    normalize_application_number,
    normalize_date,
    normalize_ipc,
    normalize_record,
    split_title,
)
from ingest.records import RecordError, SourceRecord


@pytest.fixture(scope="module")
def table() -> SixTTable:
    return load_six_t_table()


@pytest.mark.parametrize("raw, expected", [
    ("10-2018-0173848", "1020180173848"),
    ("1020180173848", "1020180173848"),
    (" 10 2018 0173848 ", "1020180173848"),
    ("KR10-2018-0173848", "1020180173848"),
    ("10.2018.0173848", "1020180173848"),
    ("2018-7000533", "1020187000533"),
    ("1992-7000533", "1019927000533"),
    ("20-2017-0000715", "2020170000715"),
    (1020180173848, "1020180173848"),
    (1.020180173848e12, "1020180173848"),
])
def test_application_number_forms(raw, expected):
    assert normalize_application_number(raw) == expected


def test_application_number_kind_default():
    assert normalize_application_number("2017-0000715", default_kind="20") == "2020170000715"


@pytest.mark.parametrize("raw, message", [
    ("", "empty"),
    (None, "empty"),
    ("10-2018-017384", "12 digits"),
    ("10-2018-01738480", "14 digits"),
    ("30-2018-0014079", "design"),
    ("99-2018-0014079", "kind code 99"),
    ("10-2018-01738A8", "characters other than digits"),
    ("10-1800-0173848", "implausible year 1800"),
    (1.5, "not a whole number"),
])
def test_application_number_invalid(raw, message):
    with pytest.raises(ValueError, match=message):
        normalize_application_number(raw)


@pytest.mark.parametrize("raw, expected", [
    ("<b>공기정화장치</b>", "공기정화장치"),
    ("A &lt; B &amp; C", "A < B & C"),
    (" <summary> <p num=\"0001a\">본 발명은</p> </summary>", "본 발명은"),
    ("433㎒ & 900㎒", "433㎒ & 900㎒"),
    ("x<y and y>z", "x<y and y>z"),
    ("&lt;b&gt;literal&lt;/b&gt;", "<b>literal</b>"),
    ("줄\n바꿈\t탭", "줄 바꿈 탭"),
    ("제\x00목\x7f", "제목"),
    (None, ""),
])
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


@pytest.mark.parametrize("raw, korean, english", [
    ("연료필터(Fuel filter)", "연료필터", "Fuel filter"),
    ("장치(Apparatus (A) for cutting)", "장치", "Apparatus (A) for cutting"),
    ("그래핀 전극의 제조방법(PREPARATION METHOD OF 3D GRAPH", "그래핀 전극의 제조방법",
     "PREPARATION METHOD OF 3D GRAPH"),
    ("가바(GABA)", "가바(GABA)", None),
    ("락토바실러스(Lactobacillus brevis) 조성물", "락토바실러스(Lactobacillus brevis) 조성물",
     None),
    ("Fuel filter (Type A)", "Fuel filter (Type A)", None),
    ("화합물(화학식 1)", "화합물(화학식 1)", None),
])
def test_split_title(raw, korean, english):
    assert split_title(raw) == (korean, english)


@pytest.mark.parametrize("raw, expected", [
    ("2016.10.24", "2016-10-24"),
    (" 2016.10.24", "2016-10-24"),
    ("20161024", "2016-10-24"),
    (20161024, "2016-10-24"),
    ("2016-10-24", "2016-10-24"),
    ("2016/10/24", "2016-10-24"),
    ("(2006.01.01)", "2006-01-01"),
    ("2016-10-24 00:00:00", "2016-10-24"),
    ("2016-10-24T09:30:00Z", "2016-10-24"),
    ("2016.1.5", "2016-01-05"),
    ("", None),
    (" ", None),
    (None, None),
])
def test_date_forms(raw, expected):
    assert normalize_date(raw) == expected


@pytest.mark.parametrize("raw", ["2016-02-30", "24.10.2016", "201610241", "yesterday"])
def test_date_invalid(raw):
    with pytest.raises(ValueError, match="date"):
        normalize_date(raw)


@pytest.mark.parametrize("raw, expected", [
    ("H01J-037/32", ["H01J 37/32"]),
    ("H01L 21/67", ["H01L 21/67"]),
    ("H01L21/67", ["H01L 21/67"]),
    ("A61K  8/02", ["A61K 8/02"]),
    ("C12P 13/00|C12P 21/00|C12P 13/00", ["C12P 13/00", "C12P 21/00"]),
    ("['H01J-037/32', 'H01L-021/67', 'C04B-035/14']",
     ["H01J 37/32", "H01L 21/67", "C04B 35/14"]),
    ("['H01G 11/86 H01G 11/32  .... ', 'H01G 11/86|H01G 11/32|B05D 1/12|B05",
     ["H01G 11/86", "H01G 11/32", "B05D 1/12"]),
    (["G06F 3/039", "a61f 5/01"], ["G06F 3/039", "A61F 5/01"]),
    ("H01L", ["H01L"]),
    ("", []),
    (None, []),
])
def test_ipc_forms(raw, expected):
    assert normalize_ipc(raw) == expected


def test_six_t_longest_prefix_wins(table):
    assert table.classify(["H01L 21/67"]) == "IT"
    assert table.classify(["H01L 31/05"]) == "ET"
    assert table.classify(["H04N 21/234"]) == "CT"
    assert table.classify(["H04N 5/232"]) == "IT"


def test_six_t_first_matching_code_decides(table):
    assert table.classify(["F16B 1/00", "A61K 8/44", "G06F 3/01"]) == "BT"


def test_six_t_no_row_applies(table):
    assert table.classify(["F16B 1/00"]) is None
    assert table.classify([]) is None


def test_six_t_main_group_prefix():
    table = SixTTable([SixTRow("A61K 8", "CT", "test"), SixTRow("A61K", "BT", "test")])
    assert table.classify(["A61K 8/02"]) == "CT"
    assert table.classify(["A61K 80/02"]) == "BT"


def test_six_t_operator_table(tmp_path: Path):
    path = tmp_path / "mine.csv"
    path.write_text("# our own\nipc_prefix,six_t,reason\nF16B,NT,screws are tiny\n",
                    encoding="utf-8")
    table = load_six_t_table(path)
    assert len(table) == 1
    assert table.classify(["F16B 1/00"]) == "NT"
    assert table.classify(["G06F 3/01"]) is None


@pytest.mark.parametrize("body, message", [
    ("ipc_prefix,six_t,reason\nF16B,XT,bad\n", "not one of IT"),
    ("ipc_prefix,six_t,reason\nF16-B,IT,bad\n", "is not a section"),
    ("prefix,category\nF16B,IT\n", "header must have columns"),
])
def test_six_t_table_invalid(tmp_path: Path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_six_t_table(path)


def test_six_t_bundled_table_documents_itself():
    from ingest.normalize import bundled_six_t_path

    text = bundled_six_t_path().read_text(encoding="utf-8")
    assert "NOT an official" in text
    table = load_six_t_table()
    assert all(row.reason for row in table._rows.values())


def _record(**fields) -> SourceRecord:
    return SourceRecord("/data/in.jsonl:7", fields)


def test_record_full(table):
    doc = normalize_record(_record(
        application_number="10-2016-0138184",
        title="<b>그래핀 전극의 제조방법</b>(PREPARATION METHOD OF GRAPHENE ELECTRODE)",
        abstract="본 발명은 &lt;그래핀&gt; 전극...",
        ipc="['H01G-011/86', 'H01G-011/32']",
        applicant="인천대학교 산학협력단|에이치씨테크(주)",
        application_date=" 2016.10.24",
        register_number="10-1846363-0000",
        claim_count="12",
        sources=["owner/repo:file.csv"],
    ), table).doc
    assert doc["application_number"] == "1020160138184"
    assert doc["title"] == "그래핀 전극의 제조방법"
    assert doc["title_en"] == "PREPARATION METHOD OF GRAPHENE ELECTRODE"
    assert doc["abstract"] == "본 발명은 <그래핀> 전극..."
    assert doc["abstract_truncated"] is True
    assert doc["ipc"] == ["H01G 11/86", "H01G 11/32"]
    assert doc["ipc_subclass"] == ["H01G"]
    assert (doc["six_t"], doc["six_t_source"]) == ("ET", "table")
    assert doc["applicants"] == ["인천대학교 산학협력단", "에이치씨테크(주)"]
    assert doc["application_date"] == "2016-10-24"
    assert doc["register_number"] == "1018463630000"
    assert doc["claim_count"] == 12
    assert doc["sources"] == ["owner/repo:file.csv", "in.jsonl:7"]
    assert doc["content_hash"] == content_hash(doc["title"], doc["abstract"])


def test_record_six_t_from_input_wins(table):
    doc = normalize_record(_record(application_number="1020160138184", title="제목",
                                   ipc=["H01L 21/67"], six_t="bt"), table).doc
    assert (doc["six_t"], doc["six_t_source"]) == ("BT", "input")


def test_record_unclassified(table):
    doc = normalize_record(_record(application_number="1020160138184", title="나사",
                                   ipc=["F16B 1/00"]), table).doc
    assert (doc["six_t"], doc["six_t_source"]) == ("unclassified", "none")


def test_record_invalid_six_t_warns(table):
    result = normalize_record(_record(application_number="1020160138184", title="제목",
                                      ipc=["H01L 21/67"], six_t="XT"), table)
    assert result.doc["six_t"] == "IT"
    assert "6T value 'XT'" in result.warnings[0]


@pytest.mark.parametrize("fields, message", [
    ({"application_number": "1020160138184", "title": "  "}, "title is empty"),
    ({"application_number": "1020160138184", "title": "<b></b>"}, "title is empty"),
    ({"application_number": "10-2016-013818", "title": "제목"}, "12 digits"),
    ({"title": "제목"}, "application number is empty"),
])
def test_record_rejected(table, fields, message):
    with pytest.raises(RecordError, match=message):
        normalize_record(_record(**fields), table)


def test_record_bad_fields_warn(table):
    result = normalize_record(_record(application_number="1020160138184", title="제목",
                                      application_date="2016-02-30", claim_count="many"),
                              table)
    assert "application_date" not in result.doc
    assert "claim_count" not in result.doc
    assert len(result.warnings) == 2
    assert "application_date" in result.warnings[0]


def test_content_hash_changes_with_text():
    assert content_hash("a", "b") == content_hash("a", "b")
    assert content_hash("a", "b") != content_hash("a", "c")
    assert len(content_hash("a", "b")) == 64


def test_analyze_keeps_content_words():
    terms = analyze("공기정화장치를 이용한 RFID 리더 3개").split()
    assert terms == ["공기", "정화", "장치", "이용", "rfid", "리더", "3"]


def test_analyze_verbs_adjectives_stems():
    terms = analyze("빠르게 달리는 예쁜 로봇").split()
    assert "달리" in terms
    assert "예쁘" in terms
    assert "로봇" in terms


def test_analyze_empty():
    assert analyze("") == ""
    assert analyze("   ") == ""
    assert analyze(None) == ""


def test_analyze_many_matches_analyze():
    texts = ["딥러닝을 활용한 영상 인식", "", "Fuel filter 연료필터", None,
             "<b>공기정화장치</b>"]
    assert list(analyze_many(texts)) == [analyze(t) for t in texts]


def test_analyze_deterministic():
    text = "반도체 웨이퍼를 처리하는 플라즈마 장치 및 방법"
    assert analyze(text) == analyze(text)
