"""The ingest job against the real Elasticsearch: indexing, merging, scores, aliases."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import ingest.job
from ingest.job import IngestError, run_ingest
from ingest.korean import analyze
from patentmatch.config import load_settings

RAW = Path(__file__).resolve().parent / "data" / "raw"
XML = RAW / "kipris_plus_applicant_search_response.xml"
BIBLIO = RAW / "kipris_biblio_detail.json"
BULK = RAW / "kipris_plus_bulk_txt"
INCHEON = RAW / "kipris_derived_csv__incheon-univ.csv"
COMPANY = RAW / "company_patent_detail.csv"
ALL_RAW = [XML, BIBLIO, BULK, INCHEON, COMPANY]


@pytest.fixture()
def settings(es_url: str, index_prefix: str, tmp_path: Path):
    return load_settings(environ={}, es_url=es_url, index_alias=f"{index_prefix}-patents",
                         cache_dir=tmp_path / "cache", bulk_chunk_size=16)


def _rejects(summary) -> list[dict]:
    with open(summary.rejects_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _alias_targets(es_client, alias: str) -> list[str]:
    return sorted(es_client.indices.get_alias(name=alias).body)


def test_ingest_all_raw_formats(settings, es_client):
    summary = run_ingest(ALL_RAW, settings, show_progress=False)

    # 33 XML + 1 JSON + 20 bulk + 40 + 40 CSV rows; 27 company rows lack a number.
    assert summary.read == 134
    assert summary.rejected == 27
    distinct = summary.indexed
    assert distinct + summary.merged == 134 - 27
    assert summary.updated == 0
    assert summary.alias_swapped
    assert es_client.count(index=settings.index_alias)["count"] == distinct

    rejects = [r for r in _rejects(summary) if r["kind"] == "reject"]
    assert len(rejects) == 27
    assert all(r["reason"] == "application number is empty" for r in rejects)
    assert all(r["source"].startswith(f"{COMPANY}:") for r in rejects)

    doc = es_client.get(index=settings.index_alias, id="1020047015570")["_source"]
    assert doc["title_en"] == "Mixed-cell gene therapy"
    assert doc["sources"] == ["kipris_biblio_detail.json#0"]
    assert doc["title_terms"].split()[:3] == ["혼합", "세포", "유전자"]
    assert "mixed-cell" in doc["title_terms"] or "mixed" in doc["title_terms"]
    assert doc["ingested_at"]


def test_reingest_changes_nothing(settings, es_client):
    first = run_ingest([XML, BULK], settings, show_progress=False)
    versions = {hit["_id"]: hit["_version"] for hit in es_client.search(
        index=settings.index_alias, size=100, version=True)["hits"]["hits"]}

    second = run_ingest([XML, BULK], settings, show_progress=False)

    assert first.indexed == 53
    assert second.read == first.read
    assert second.indexed == 0
    assert second.updated == 0
    assert second.unchanged == 53
    assert second.index == first.index
    assert not second.alias_swapped
    after = {hit["_id"]: hit["_version"] for hit in es_client.search(
        index=settings.index_alias, size=100, version=True)["hits"]["hits"]}
    assert after == versions


def test_changed_record_updates(settings, es_client, tmp_path):
    row = {"application_number": "1020180173848", "title": "공기정화장치",
           "abstract": "먼지를 거르는 장치", "ipc": ["B01D 46/00"]}
    run_ingest([_jsonl(tmp_path / "a.jsonl", [row])], settings, show_progress=False)
    before = es_client.get(index=settings.index_alias, id="1020180173848")["_source"]

    changed = dict(row, abstract="먼지와 냄새를 거르는 장치", register_status="등록")
    summary = run_ingest([_jsonl(tmp_path / "a.jsonl", [changed])], settings,
                         show_progress=False)

    assert summary.updated == 1
    doc = es_client.get(index=settings.index_alias, id="1020180173848")["_source"]
    assert doc["abstract"] == "먼지와 냄새를 거르는 장치"
    assert doc["register_status"] == "등록"
    assert doc["content_hash"] != before["content_hash"]
    assert "냄새" in doc["abstract_terms"].split()


def test_duplicates_merge_and_conflicts(settings, es_client, tmp_path):
    path = _jsonl(tmp_path / "dups.jsonl", [
        {"application_number": "10-2018-0173848", "title": "<b>공기정화장치</b>",
         "abstract": "먼지를 거르는..."},
        {"application_number": "1020180173848", "title": "공기 청정기",
         "abstract": "먼지를 거르는 필터를 갖는 장치", "applicant": "주식회사 가나",
         "ipc": ["B01D 46/00"]},
        {"application_number": "10-2018-017384", "title": "번호가 짧다"},
        {"application_number": "1020180173849", "title": "  "},
    ])
    summary = run_ingest([path], settings, show_progress=False)

    assert summary.indexed == 1
    assert summary.merged == 1
    assert summary.rejected == 2
    assert summary.conflicts == 1
    doc = es_client.get(index=settings.index_alias, id="1020180173848")["_source"]
    assert doc["title"] == "공기정화장치"
    assert doc["abstract"] == "먼지를 거르는 필터를 갖는 장치"
    assert doc["abstract_truncated"] is False
    assert doc["applicant"] == "주식회사 가나"
    assert doc["ipc"] == ["B01D 46/00"]
    assert doc["sources"] == ["dups.jsonl:1", "dups.jsonl:2"]

    by_kind = {}
    for entry in _rejects(summary):
        by_kind.setdefault(entry["kind"], []).append(entry)
    conflict = by_kind["conflict"][0]
    assert conflict["source"] == f"{path}:2"
    assert "title '공기 청정기' differs from '공기정화장치'" in conflict["reason"]
    assert f"{path}:1" in conflict["reason"]
    reasons = {r["source"]: r["reason"] for r in by_kind["reject"]}
    assert "12 digits" in reasons[f"{path}:3"]
    assert reasons[f"{path}:4"] == "title is empty after removing tags and whitespace"


def test_duplicates_across_batches(settings, es_client, tmp_path):
    rows = [{"application_number": f"10201800{i:05d}", "title": f"장치 {i}"}
            for i in range(40)]
    rows.append({"application_number": "1020180000003", "title": "다른 제목",
                 "abstract": "나중에 온 초록"})
    summary = run_ingest([_jsonl(tmp_path / "many.jsonl", rows)], settings,
                         show_progress=False)

    assert summary.indexed == 40
    assert summary.merged == 1
    assert summary.conflicts == 1
    doc = es_client.get(index=settings.index_alias, id="1020180000003")["_source"]
    assert doc["title"] == "장치 3"
    assert doc["abstract"] == "나중에 온 초록"


def test_scores_joined(settings, es_client, tmp_path):
    run_ingest([XML], settings, show_progress=False)
    scores = tmp_path / "kpeg.csv"
    scores.write_text(
        "출원번호,PQI,권리성,기술성,사업성,등급,평가일\n"
        "10-2022-0011322,1.3,71,82.5,64,AA,2023.05.01\n"
        "1020190063015,14,71,82,64,A,\n"
        "1020010000001,1,50,50,50,B,\n",
        encoding="cp949")
    summary = run_ingest([], settings, scores=[scores], show_progress=False)

    assert summary.scores_read == 3
    assert summary.scores_applied == 1
    assert summary.scores_unknown == 1
    assert summary.scores_rejected == 1
    doc = es_client.get(index=settings.index_alias, id="1020220011322")["_source"]
    assert doc["scores"] == {"pqi": 1.3, "rights": 71.0, "technology": 82.5,
                             "commercial": 64.0, "grade": "AA",
                             "evaluation_date": "2023-05-01", "source": "kpeg"}
    entries = {e["source"]: e for e in _rejects(summary)}
    assert "pqi '14' is outside 0-10" in entries[f"{scores}:3"]["reason"]
    assert entries[f"{scores}:4"]["kind"] == "unknown_patent"
    assert "1020010000001" in entries[f"{scores}:4"]["reason"]

    again = run_ingest([XML], settings, scores=[scores], show_progress=False)
    assert again.unchanged == 33
    assert again.scores_unchanged == 1
    assert again.scores_applied == 0
    doc = es_client.get(index=settings.index_alias, id="1020220011322")["_source"]
    assert doc["scores"]["pqi"] == 1.3


def test_new_index_swaps_alias(settings, es_client):
    first = run_ingest([XML], settings, show_progress=False)
    assert _alias_targets(es_client, settings.index_alias) == [first.index]

    second = run_ingest([BULK], settings, new_index=True, show_progress=False)

    assert second.index != first.index
    assert second.index.startswith(f"{settings.index_alias}-v")
    assert second.alias_swapped
    assert _alias_targets(es_client, settings.index_alias) == [second.index]
    assert not es_client.indices.exists(index=first.index)
    assert es_client.count(index=settings.index_alias)["count"] == 20

    third = run_ingest([XML], settings, new_index=True, keep_old=True, show_progress=False)
    assert _alias_targets(es_client, settings.index_alias) == [third.index]
    assert es_client.indices.exists(index=second.index)


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes(settings, es_client, monkeypatch):
    first = run_ingest([BIBLIO], settings, show_progress=False)
    real_read = ingest.job.read_patents

    def read_then_stop(path, fmt=None):
        for count, item in enumerate(real_read(path, fmt)):
            if count == 20:
                raise _Interrupt("stopped by the test")
            yield item

    monkeypatch.setattr(ingest.job, "read_patents", read_then_stop)
    with pytest.raises(_Interrupt):
        run_ingest([XML], settings, new_index=True, show_progress=False)

    # Readers still see the old, complete index; the new one is half built.
    assert _alias_targets(es_client, settings.index_alias) == [first.index]
    assert es_client.count(index=settings.index_alias)["count"] == 1
    checkpoint = settings.cache_dir / "ingest" / f"{settings.index_alias}.checkpoint.json"
    state = json.loads(checkpoint.read_text(encoding="utf-8"))
    assert state["inputs"][f"patents:{XML}"]["done"] == 16

    monkeypatch.setattr(ingest.job, "read_patents", real_read)
    resumed = run_ingest([XML], settings, new_index=True, show_progress=False)

    assert resumed.resumed
    assert resumed.index == state["index"]
    assert resumed.read == 33 - 16
    assert _alias_targets(es_client, settings.index_alias) == [resumed.index]
    assert es_client.count(index=settings.index_alias)["count"] == 33
    assert not checkpoint.exists()


def test_bad_files_do_not_stop_the_run(settings, es_client, tmp_path):
    data = XML.read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(data[: len(data) // 2])
    nocolumns = tmp_path / "nocolumns.csv"
    nocolumns.write_text("name,date\n장치,2018-01-01\n", encoding="utf-8")

    summary = run_ingest([cut, nocolumns, BIBLIO], settings, show_progress=False)

    assert summary.indexed > 10
    assert es_client.exists(index=settings.index_alias, id="1020047015570")
    reasons = {e["source"]: e["reason"] for e in _rejects(summary)}
    cut_reject = [r for s, r in reasons.items() if s.startswith(f"{cut}:")]
    assert "truncated or malformed at line" in cut_reject[0]
    assert "missing required column" in reasons[f"{nocolumns}:1"]


def test_operator_six_t_table(settings, es_client, tmp_path):
    table = tmp_path / "six_t.csv"
    table.write_text("ipc_prefix,six_t,reason\nC12P,NT,test row\n", encoding="utf-8")
    settings.six_t_table = table
    run_ingest([XML], settings, show_progress=False)
    doc = es_client.get(index=settings.index_alias, id="1020220011322")["_source"]
    assert doc["six_t"] == "NT"
    assert doc["six_t_source"] == "table"


def test_bm25_finds_patent_by_korean_phrase(settings, es_client):
    run_ingest([XML, BULK, INCHEON], settings, show_progress=False)
    query = analyze("손목을 보호하는 밴드")
    reply = es_client.search(index=settings.index_alias, size=3, query={
        "multi_match": {"query": query, "fields": ["title_terms^2", "abstract_terms"]}})
    hits = [h["_id"] for h in reply["hits"]["hits"]]
    assert hits[0] == "1020200149050"

    query = analyze("슈퍼커패시터용 그래핀 전극을 스프레이로 제조")
    reply = es_client.search(index=settings.index_alias, size=3, query={
        "multi_match": {"query": query, "fields": ["title_terms^2", "abstract_terms"]}})
    assert reply["hits"]["hits"][0]["_id"] == "1020160138184"


def test_bundled_sample_subset(settings, es_client, sample_path, tmp_path):
    subset = tmp_path / "subset.jsonl.gz"
    with gzip.open(sample_path, "rt", encoding="utf-8") as source, \
            gzip.open(subset, "wt", encoding="utf-8") as target:
        for _ in range(120):
            target.write(source.readline())
    summary = run_ingest([subset], settings, show_progress=False)
    assert summary.read == 120
    assert summary.rejected == 0
    assert summary.indexed == 120
    doc = es_client.get(index=settings.index_alias, id="1019927000533")["_source"]
    assert doc["title"] == "연료필터"
    assert doc["title_en"] == "Fuel filter"
    assert doc["sources"] == ["kjihee/Patent_Classification:dataset/방독면_이윤오(건대송부용).xlsx",
                              "subset.jsonl.gz:1"]


def test_alias_on_concrete_index_rejected(settings, es_client):
    es_client.indices.create(index=settings.index_alias)
    with pytest.raises(IngestError, match="is a concrete index, not an alias"):
        run_ingest([XML], settings, show_progress=False)


def test_missing_input_rejected(settings, tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        run_ingest([tmp_path / "nope.jsonl"], settings, show_progress=False)
    with pytest.raises(IngestError, match="nothing to ingest"):
        run_ingest([], settings, show_progress=False)


def test_cli_ingest(settings, es_client, monkeypatch, tmp_path, capsys):
    from patentmatch.cli import main

    monkeypatch.setenv("ES_URL", settings.es_url)
    monkeypatch.setenv("PATENTMATCH_INDEX_ALIAS", settings.index_alias)
    monkeypatch.setenv("PATENTMATCH_CACHE_DIR", str(settings.cache_dir))
    rejects = tmp_path / "rejects.jsonl"
    code = main(["-q", "ingest", str(BIBLIO), str(COMPANY), "--rejects", str(rejects),
                 "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["indexed"] == 14
    assert out["rejected"] == 27
    assert out["rejects_path"] == str(rejects)
    assert len(rejects.read_text(encoding="utf-8").splitlines()) == 27


def test_merged_duplicates_reingest_unchanged(settings, es_client, tmp_path):
    path = _jsonl(tmp_path / "dups.jsonl", [
        {"application_number": "1020180173848", "title": "공기정화장치",
         "abstract": "먼지를 거르는...", "ipc": ["B01D 46/00"]},
        {"application_number": "1020180173848", "title": "공기정화장치",
         "abstract": "먼지를 거르는 필터를 갖는 장치", "ipc": ["F24F 8/10"],
         "register_status": "등록"},
    ])
    first = run_ingest([path], settings, show_progress=False)
    again = run_ingest([path], settings, show_progress=False)

    assert (first.indexed, first.merged) == (1, 1)
    assert (again.indexed, again.updated, again.unchanged) == (0, 0, 1)
    doc = es_client.get(index=settings.index_alias, id="1020180173848")["_source"]
    assert doc["abstract"] == "먼지를 거르는 필터를 갖는 장치"
    assert doc["ipc"] == ["B01D 46/00", "F24F 8/10"]
    assert doc["register_status"] == "등록"


def test_repeated_evaluations_later_date_wins(settings, es_client, tmp_path):
    run_ingest([XML], settings, show_progress=False)
    rows = ["application_number,pqi,rights,technology,commercial,evaluation_date"]
    rows.append("1020220011322,1.0,50,50,50,2023-01-01")
    rows += [f"10201900630{i:02d},1,50,50,50," for i in range(20)]
    rows.append("1020220011322,2.0,60,60,60,2024-01-01")
    rows.append("1020220011322,0.5,40,40,40,2022-01-01")
    scores = tmp_path / "kpeg.csv"
    scores.write_text("\n".join(rows) + "\n", encoding="utf-8")

    first = run_ingest([], settings, scores=[scores], show_progress=False)
    again = run_ingest([], settings, scores=[scores], show_progress=False)

    doc = es_client.get(index=settings.index_alias, id="1020220011322")["_source"]
    assert doc["scores"]["pqi"] == 2.0
    assert doc["scores"]["evaluation_date"] == "2024-01-01"
    assert first.conflicts == 2
    assert again.scores_applied == 0
    assert again.conflicts == 2
    conflicts = [e for e in _rejects(again) if e["kind"] == "conflict"]
    assert all("later evaluation_date wins" in e["reason"] for e in conflicts)


def test_cli_cluster_unreachable(monkeypatch, tmp_path, caplog):
    from patentmatch.cli import main

    monkeypatch.setenv("ES_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PATENTMATCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATENTMATCH_BULK_MAX_RETRIES", "0")
    code = main(["-q", "ingest", str(BIBLIO)])
    assert code == 1
    assert "Elasticsearch at http://127.0.0.1:9 failed" in caplog.text


@pytest.mark.slow
def test_bundled_sample_whole(settings, es_client, sample_path):
    settings.bulk_chunk_size = 500
    summary = run_ingest([sample_path], settings, show_progress=False)
    assert summary.read == 10906
    assert summary.indexed == 10906
    assert summary.rejected == 0
    assert summary.conflicts == 0
    assert summary.warnings == 0
    assert es_client.count(index=settings.index_alias)["count"] == 10906


def test_new_index_needs_patents(settings, tmp_path):
    scores = tmp_path / "kpeg.csv"
    scores.write_text("application_number,pqi,rights,technology,commercial\n", encoding="utf-8")
    with pytest.raises(IngestError, match="--new-index needs patent files"):
        run_ingest([], settings, scores=[scores], new_index=True, show_progress=False)
