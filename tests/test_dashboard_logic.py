"""Unit tests of the dashboard's plain functions: form, results, charts, actions, client."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dashboard import actions
from dashboard.api_client import ApiClient, ApiError, ApiUnavailable
from dashboard.charts import (
    HIGHLIGHT_COLOUR,
    StatsFormatError,
    bar_figure,
    hovered_patent,
    min_max_scale,
    parse_category_stats,
    sample_from_histogram,
    violin_figure,
)
from dashboard.results import (
    EXPORT_COLUMNS,
    MISSING_TEXT,
    detail_fields,
    export_csv,
    result_notices,
    result_rows,
    safe_kipris_url,
)
from dashboard.search_form import (
    DEFAULT_RESULTS,
    SearchForm,
    SearchInputError,
    build_search_request,
    form_from_inputs,
    form_from_query,
    form_to_query,
    normalize_ipc_prefix,
)

TODAY = dt.date(2025, 6, 1)


def make_result(number: str, six_t: str = "IT", scores: dict | None = None, **extra) -> dict:
    result = {
        "rank": 1,
        "application_number": number,
        "title": f"딥러닝 기반 영상 인식 장치 {number[-3:]}",
        "title_en": None,
        "abstract": "영상에서 객체를 인식하는 장치.",
        "abstract_similarity": 0.8,
        "title_similarity": 0.7,
        "bm25_score": None,
        "score": 0.75,
        "scores": scores,
        "score_source": scores.get("source") if scores else None,
        "six_t": six_t,
        "ipc": ["G06N 3/08", "G06T 7/00"],
        "applicant": "한국전자통신연구원",
        "application_date": "2019-03-04",
        "register_status": "등록",
        "kipris_url": f"https://doi.org/10.8080/{number}",
    }
    result.update(extra)
    return result


SYNTHETIC = {"pqi": 1.2, "rights": 70.0, "technology": 80.0, "commercial": 55.0,
             "source": "synthetic"}


def score_stats(minimum: float, maximum: float, counts: list[int]) -> dict:
    step = (maximum - minimum) / len(counts)
    return {
        "count": sum(counts), "min": minimum, "max": maximum,
        "quantiles": {"0.5": (minimum + maximum) / 2},
        "histogram": {"edges": [minimum + i * step for i in range(len(counts) + 1)],
                      "counts": counts},
    }


def stats_reply(six_t: str = "IT") -> dict:
    return {"six_t": six_t, "count": 100, "scores": {
        "pqi": score_stats(0.2, 2.2, [10, 40, 40, 10]),
        "rights": score_stats(40.0, 100.0, [5, 20, 50, 25]),
        "technology": score_stats(60.0, 100.0, [25, 25, 25, 25]),
        "commercial": score_stats(45.0, 65.0, [50, 30, 20]),
    }}


# --- search form -------------------------------------------------------------


def test_search_request_with_every_filter():
    form = SearchForm(title="  딥러닝을 활용한 영상 인식 ", description="CCTV 영상",
                      six_t=["BT", "IT", "IT"], ipc_prefix="g06n", year_from=2015,
                      year_to=2020, register_status=["공개", "등록"], k=30, mode="hybrid")
    request = build_search_request(form, today=TODAY)
    assert request["title"] == "딥러닝을 활용한 영상 인식"
    assert request["description"] == "CCTV 영상"
    assert request["k"] == 30
    assert request["mode"] == "hybrid"
    assert request["filters"] == {
        "six_t": ["IT", "BT"],
        "ipc_prefix": "G06N",
        "application_date_from": "2015-01-01",
        "application_date_to": "2020-12-31",
        "register_status": ["등록", "공개"],
    }


def test_search_request_minimal_has_no_filters():
    request = build_search_request(SearchForm(title="공기정화장치"), today=TODAY)
    assert request == {"title": "공기정화장치", "k": DEFAULT_RESULTS}


@pytest.mark.parametrize(("form", "field"), [
    (SearchForm(title="   "), "title"),
    (SearchForm(title="가" * 501), "title"),
    (SearchForm(title="x", description="나" * 10_001), "description"),
    (SearchForm(title="x", k=0), "k"),
    (SearchForm(title="x", k=101), "k"),
    (SearchForm(title="x", six_t=["XT"]), "six_t"),
    (SearchForm(title="x", register_status=["만료"]), "register_status"),
    (SearchForm(title="x", mode="fuzzy"), "mode"),
    (SearchForm(title="x", year_from=1900), "year_from"),
    (SearchForm(title="x", year_to=2030), "year_to"),
    (SearchForm(title="x", year_from=2020, year_to=2010), "year_from"),
    (SearchForm(title="x", ipc_prefix="Z99"), "ipc_prefix"),
])
def test_search_request_rejects_invalid_field(form, field):
    with pytest.raises(SearchInputError) as caught:
        build_search_request(form, today=TODAY)
    assert caught.value.field == field
    assert caught.value.message


@pytest.mark.parametrize(("raw", "expected"), [
    ("h", "H"),
    ("H04", "H04"),
    ("h04n", "H04N"),
    ("H04N5", "H04N 5"),
    ("H04N 5/232", "H04N 5/232"),
    ("  g06f   16/ ", "G06F 16/"),
    ("", ""),
])
def test_ipc_prefix_normalised(raw, expected):
    assert normalize_ipc_prefix(raw) == expected


@pytest.mark.parametrize("raw", ["X01", "H4", "H04NN", "G06F/16", "딥러닝"])
def test_ipc_prefix_invalid(raw):
    with pytest.raises(SearchInputError):
        normalize_ipc_prefix(raw)


def test_query_string_round_trip_keeps_korean():
    form = SearchForm(title="딥러닝을 활용한 영상 인식", description="야간 & 저조도 = 필수",
                      six_t=["IT", "CT"], ipc_prefix="G06T", year_from=2010, year_to=2024,
                      register_status=["등록"], k=50, mode="two_stage")
    query = form_to_query(form)
    assert query.startswith("?title=")
    assert form_from_query(query) == form


def test_query_string_leaves_out_defaults():
    assert form_to_query(SearchForm(title="센서")) == "?title=%EC%84%BC%EC%84%9C"


def test_query_without_title_restores_nothing():
    assert form_from_query("") is None
    assert form_from_query(None) is None
    assert form_from_query("?six_t=IT") is None


def test_query_with_bad_numbers_drops_them():
    form = form_from_query("?title=a&from=abc&to=2020&k=ten")
    assert form.year_from is None
    assert form.year_to == 2020
    assert form.k == DEFAULT_RESULTS


def test_form_from_inputs_converts_numbers():
    form = form_from_inputs("제목", None, None, None, 2015.0, "2020", ["등록"], 15, None)
    assert form.year_from == 2015
    assert form.year_to == 2020
    assert form.k == 15
    assert form.description == ""
    assert form.six_t == []


def test_form_from_inputs_rejects_fractions():
    with pytest.raises(SearchInputError) as caught:
        form_from_inputs("제목", "", [], "", 2015.5, None, [], 10, "")
    assert caught.value.field == "year_from"


# --- results -----------------------------------------------------------------


def test_rows_keep_missing_scores_as_none():
    rows = result_rows([make_result("1020180173848", scores=None),
                        make_result("1020160017501", scores=SYNTHETIC)])
    assert rows[0]["id"] == "1020180173848"
    for key in ("pqi", "rights", "technology", "commercial"):
        assert rows[0][key] is None
    assert rows[1]["pqi"] == 1.2
    assert rows[1]["score_source"] == "synthetic"
    assert rows[1]["kipris"] == "[KIPRIS](https://doi.org/10.8080/1020160017501)"
    assert rows[1]["similarity"] == pytest.approx(0.75)
    assert rows[1]["score"] == 0.75


def test_rows_partial_scores_and_zero():
    scores = {"pqi": 0.0, "rights": None, "technology": "81.5", "commercial": True}
    row = result_rows([make_result("1020180173848", scores=scores)])[0]
    assert row["pqi"] == 0.0
    assert row["rights"] is None
    assert row["technology"] == 81.5
    assert row["commercial"] is None


@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.org/a?b=1", "https://example.org/a?b=1"),
    ("http://example.org/x (1)", "http://example.org/x%20%281%29"),
    ("javascript:alert(1)", None),
    ("//example.org", None),
    ("", None),
    (None, None),
])
def test_kipris_url_safety(url, expected):
    assert safe_kipris_url(url) == expected


def test_notice_names_failed_lexical_check():
    reply = {"no_close_match": True, "threshold": 0.3, "best_similarity": 0.45,
             "lexical_coverage": 0.25, "lexical_threshold": 0.5,
             "results": [make_result("1020180173848")]}
    text = {n.notice_id: n for n in result_notices(reply)}["no-close-match"].text
    assert "25%" in text
    assert "50%" in text
    assert "0.450" not in text


def test_notice_uses_reported_best_similarity():
    reply = {"no_close_match": True, "threshold": 0.5, "best_similarity": 0.2,
             "lexical_coverage": 1.0, "lexical_threshold": 0.4,
             "results": [make_result("1020180173848")]}
    text = {n.notice_id: n for n in result_notices(reply)}["no-close-match"].text
    assert "0.200" in text
    assert "0.500" in text
    assert "%" not in text


def test_notices_no_close_match_and_synthetic():
    reply = {"no_close_match": True, "threshold": 0.55, "results": [
        make_result("1020180173848", scores=SYNTHETIC, score=47.5,
                    abstract_similarity=0.42, title_similarity=0.40),
        make_result("1020160017501", scores=None, score=45.0,
                    abstract_similarity=0.30, title_similarity=None),
    ]}
    notices = {n.notice_id: n for n in result_notices(reply)}
    assert set(notices) == {"no-close-match", "synthetic-scores", "missing-scores"}
    assert "0.410" in notices["no-close-match"].text
    assert "47.5" not in notices["no-close-match"].text
    assert "0.550" in notices["no-close-match"].text
    assert "1건" in notices["synthetic-scores"].text
    assert "1건" in notices["missing-scores"].text


def test_notices_empty_result():
    notices = result_notices({"no_close_match": True, "threshold": 0.5, "results": []})
    assert [n.notice_id for n in notices] == ["empty-result"]


def test_notices_real_scores_need_no_notice():
    kpeg = dict(SYNTHETIC, source="kpeg")
    reply = {"no_close_match": False, "results": [make_result("1020180173848", scores=kpeg)]}
    assert result_notices(reply) == []


def test_score_source_falls_back_to_scores_object():
    result = make_result("1020180173848", scores=SYNTHETIC)
    result["score_source"] = None
    notices = result_notices({"results": [result]})
    assert [n.notice_id for n in notices] == ["synthetic-scores"]


def test_export_csv_has_bom_and_korean():
    results = [
        make_result("1020180173848", scores=SYNTHETIC),
        make_result("1020160017501", scores=None, title="=HYPERLINK(\"x\") 장치"),
    ]
    data = export_csv(results)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    header = rows[0]
    assert header == [name for _, name in EXPORT_COLUMNS]
    first = dict(zip(header, rows[1]))
    second = dict(zip(header, rows[2]))
    assert first["출원번호"] == "1020180173848"
    assert first["특허명"].startswith("딥러닝 기반")
    assert first["PQI 지수"] == "1.2"
    assert first["평가 점수 출처"] == "synthetic"
    assert first["IPC"] == "G06N 3/08; G06T 7/00"
    assert first["유사도 (초록·제목 평균)"] == "0.75"
    assert first["순위 점수"] == "0.75"
    assert second["PQI 지수"] == ""
    assert second["권리성 평가지수"] == ""
    assert second["특허명"].startswith("'=HYPERLINK")


def test_detail_fields_merge_document_dates():
    result = make_result("1020180173848", scores=None)
    document = {"register_date": "2021-05-01", "open_date": "2020-01-02",
                "abstract": "전체 초록"}
    fields = dict(detail_fields(result, document))
    assert fields["등록일"] == "2021-05-01"
    assert fields["공개일"] == "2020-01-02"
    assert fields["출원일"] == "2019-03-04"
    assert fields["초록 유사도"] == "0.800"
    assert fields["제목 유사도"] == "0.700"
    assert fields["유사도 (초록·제목 평균)"] == "0.750"
    assert fields["순위 점수"] == "0.750"
    assert fields["PQI 지수"] == MISSING_TEXT
    assert fields["IPC"] == "G06N 3/08, G06T 7/00"


def test_detail_fields_without_document():
    fields = dict(detail_fields(make_result("1020180173848", scores=SYNTHETIC)))
    assert fields["등록일"] == MISSING_TEXT
    assert fields["권리성"] == "70"
    assert fields["평가 점수 출처"] == "synthetic"


# --- charts ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "low", "high", "expected"), [
    (50.0, 40.0, 100.0, 1 / 6),
    (40.0, 40.0, 100.0, 0.0),
    (100.0, 40.0, 100.0, 1.0),
    (120.0, 40.0, 100.0, 1.0),
    (10.0, 40.0, 100.0, 0.0),
    (70.0, 70.0, 70.0, 0.5),
    (None, 40.0, 100.0, None),
    (50.0, None, 100.0, None),
])
def test_min_max_scale(value, low, high, expected):
    result = min_max_scale(value, low, high)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_histogram_sample_follows_counts():
    sample = sample_from_histogram([0.0, 1.0, 2.0, 3.0], [100, 300, 0], size=400)
    assert len(sample) == 400
    assert min(sample) > 0.0
    assert max(sample) < 2.0
    assert sum(1 for v in sample if v < 1.0) == 100
    assert sample_from_histogram([0.0, 1.0], [0]) == []


def test_histogram_sample_keeps_rare_bins():
    sample = sample_from_histogram([0.0, 1.0, 2.0], [100_000, 1], size=100)
    assert any(v > 1.0 for v in sample)


def test_stats_parse_valid():
    stats = parse_category_stats(stats_reply())
    assert stats.six_t == "IT"
    assert stats.scores["rights"].minimum == 40.0
    assert stats.scores["rights"].counts == (5, 20, 50, 25)


def test_stats_parse_empty_score():
    reply = stats_reply()
    reply["scores"]["pqi"] = {"count": 0, "min": None, "max": None, "quantiles": {},
                              "histogram": {"edges": [], "counts": []}}
    assert parse_category_stats(reply).scores["pqi"].minimum is None


@pytest.mark.parametrize(("change", "needle"), [
    (lambda r: r.pop("six_t"), "six_t"),
    (lambda r: r["scores"].pop("commercial"), "scores.commercial"),
    (lambda r: r["scores"]["pqi"].update(min=3.0), "above max"),
    (lambda r: r["scores"]["pqi"].update(max="high"), "pqi.max"),
    (lambda r: r["scores"]["rights"]["histogram"]["edges"].pop(), "one more edge"),
    (lambda r: r["scores"]["rights"]["histogram"].update(counts=[1, -1, 2, 3]), "counts"),
])
def test_stats_parse_rejects_bad_shape(change, needle):
    reply = stats_reply()
    change(reply)
    with pytest.raises(StatsFormatError, match=needle):
        parse_category_stats(reply)


def test_bar_figure_scales_within_category():
    stats = {"IT": parse_category_stats(stats_reply("IT"))}
    patents = [make_result("1020180173848", scores=SYNTHETIC),
               make_result("1020160017501", scores=None)]
    figure = bar_figure(patents, stats)
    assert len(figure.data) == 2
    first, second = figure.data
    assert list(first.y) == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert first.customdata[0][0] == "1020180173848"
    assert list(second.y) == [None, None, None, None]
    assert list(second.text) == [MISSING_TEXT] * 4


def test_bar_figure_category_without_stats():
    patents = [make_result("1020180173848", six_t="BT", scores=SYNTHETIC)]
    figure = bar_figure(patents, {"IT": parse_category_stats(stats_reply("IT"))})
    assert list(figure.data[0].y) == [None, None, None, None]
    assert "분포 없음" in figure.data[0].hovertext[0]


def test_bar_figure_empty_selection():
    figure = bar_figure([], {})
    assert len(figure.data) == 0
    assert figure.layout.annotations[0].text


def test_hovered_patent_from_hover_data():
    hover = {"points": [{"curveNumber": 1, "customdata": ["1020160017501", 70.0, 40, 100, "IT"]}]}
    assert hovered_patent(hover) == "1020160017501"
    assert hovered_patent(None) is None
    assert hovered_patent({"points": []}) is None
    assert hovered_patent({"points": [{"x": 1}]}) is None


def test_violin_figure_highlights_hovered_patent():
    stats = {"IT": parse_category_stats(stats_reply("IT")),
             "BT": parse_category_stats(stats_reply("BT"))}
    patents = [make_result("1020180173848", six_t="IT", scores=SYNTHETIC),
               make_result("1020160017501", six_t="BT", scores=SYNTHETIC)]
    figure = violin_figure(patents, stats, highlight="1020160017501")
    violins = [t for t in figure.data if t.type == "violin"]
    markers = [t for t in figure.data if t.type == "scatter"]
    assert len(violins) == 8
    assert len(markers) == 8
    highlighted = [m for m in markers if m.marker.color == HIGHLIGHT_COLOUR]
    assert len(highlighted) == 4
    assert {m.name for m in highlighted} == {"1020160017501"}
    assert all(m.marker.size > 9 for m in highlighted)
    assert all(m.x[0] == "BT" for m in highlighted)


def test_violin_figure_without_highlight_has_no_red_marker():
    stats = {"IT": parse_category_stats(stats_reply("IT"))}
    figure = violin_figure([make_result("1020180173848", scores=SYNTHETIC)], stats)
    markers = [t for t in figure.data if t.type == "scatter"]
    assert markers
    assert all(m.marker.color != HIGHLIGHT_COLOUR for m in markers)


def test_violin_figure_skips_missing_scores():
    stats = {"IT": parse_category_stats(stats_reply("IT"))}
    figure = violin_figure([make_result("1020180173848", scores=None)], stats)
    assert [t for t in figure.data if t.type == "scatter"] == []
    assert len([t for t in figure.data if t.type == "violin"]) == 4


def test_violin_figure_category_without_scores():
    figure = violin_figure([make_result("1020180173848", six_t="CT", scores=None)], {})
    assert len(figure.data) == 0
    assert "CT" in figure.layout.annotations[0].text


# --- actions and the API client --------------------------------------------------


class _CannedApi(BaseHTTPRequestHandler):
    """Replies with the status and body stored for each path."""

    routes: dict[str, tuple[int, bytes]] = {}
    requests: list[tuple[str, str, bytes]] = []
    tokens: list[str | None] = []

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).requests.append((self.command, self.path, body))
        type(self).tokens.append(self.headers.get("X-Demand-Token"))
        status, payload = self.routes.get(self.path.split("?")[0], (404, b'{"error": {"status": 404, "message": "not found"}}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _reply
    do_POST = _reply

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def canned_api() -> Iterator[tuple[str, type[_CannedApi]]]:
    """An HTTP server on 127.0.0.1 that returns canned API replies."""
    handler = type("Handler", (_CannedApi,), {"routes": {}, "requests": [], "tokens": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_client_rejects_bad_url():
    with pytest.raises(ValueError, match="api_url"):
        ApiClient("127.0.0.1:8080")
    with pytest.raises(ValueError, match="timeout_s"):
        ApiClient("http://127.0.0.1:8080", timeout_s=0)


def test_client_api_down_is_unavailable():
    client = ApiClient(closed_port_url(), timeout_s=5)
    with pytest.raises(ApiUnavailable, match="connection failed"):
        client.health()


def test_client_error_status_carries_field(canned_api):
    url, handler = canned_api
    handler.routes["/v1/search"] = (400, json.dumps(
        {"error": {"status": 400, "message": "k must be 1..100", "field": "k"}}).encode())
    with pytest.raises(ApiError) as caught:
        ApiClient(url).search({"title": "x", "k": 500})
    assert caught.value.status == 400
    assert caught.value.field == "k"
    assert "k must be" in caught.value.message
    method, path, body = handler.requests[-1]
    assert (method, path) == ("POST", "/v1/search")
    assert json.loads(body) == {"title": "x", "k": 500}


def test_client_non_json_reply_is_unavailable(canned_api):
    url, handler = canned_api
    handler.routes["/v1/health"] = (502, b"<html>Bad Gateway</html>")
    with pytest.raises(ApiUnavailable, match="not JSON"):
        ApiClient(url).health()


def test_client_quotes_patent_number(canned_api):
    url, handler = canned_api
    handler.routes["/v1/patents/10%2F2018"] = (200, b'{"application_number": "x"}')
    assert ApiClient(url).patent("10/2018") == {"application_number": "x"}


def test_client_stats_sends_category(canned_api):
    url, handler = canned_api
    handler.routes["/v1/stats/scores"] = (200, json.dumps(stats_reply("BT")).encode())
    assert ApiClient(url).score_stats("BT")["six_t"] == "BT"
    assert handler.requests[-1][1] == "/v1/stats/scores?six_t=BT"


def test_run_search_api_down_message():
    outcome = actions.run_search(ApiClient(closed_port_url(), timeout_s=5),
                                 SearchForm(title="영상 인식"))
    assert outcome["reply"] is None
    assert outcome["error"]["kind"] == "unavailable"
    assert "연결할 수 없습니다" in outcome["error"]["message"]
    assert "Traceback" not in outcome["error"]["message"]
    assert outcome["query"] == form_to_query(SearchForm(title="영상 인식"))


def test_run_search_input_error_sends_nothing(canned_api):
    url, handler = canned_api
    outcome = actions.run_search(ApiClient(url), SearchForm(title=""))
    assert outcome["error"] == {"kind": "input", "message": "수요기술명을 입력하세요.",
                                "field": "title"}
    assert handler.requests == []


@pytest.mark.parametrize(("status", "needle"), [
    (503, "사용할 수 없습니다"),
    (400, "올바르지 않습니다 [title]"),
    (500, "HTTP 500"),
])
def test_run_search_api_error_messages(canned_api, status, needle):
    url, handler = canned_api
    handler.routes["/v1/search"] = (status, json.dumps(
        {"error": {"status": status, "message": "Elasticsearch is down", "field": "title"}}
    ).encode())
    outcome = actions.run_search(ApiClient(url), SearchForm(title="영상"))
    assert outcome["error"]["kind"] == "api"
    assert needle in outcome["error"]["message"]


def test_run_search_success(canned_api):
    url, handler = canned_api
    reply = {"results": [make_result("1020180173848", scores=SYNTHETIC)],
             "no_close_match": False, "took_ms": 12.5, "mode": "two_stage"}
    handler.routes["/v1/search"] = (200, json.dumps(reply).encode())
    outcome = actions.run_search(ApiClient(url), SearchForm(title="영상", six_t=["IT"]))
    assert outcome["error"] is None
    assert outcome["reply"] == reply
    assert outcome["request"]["filters"] == {"six_t": ["IT"]}
    sent = json.loads(handler.requests[-1][2])
    assert sent == outcome["request"]


def test_run_search_reply_without_results_list(canned_api):
    url, handler = canned_api
    handler.routes["/v1/search"] = (200, b'{"results": null}')
    outcome = actions.run_search(ApiClient(url), SearchForm(title="영상"))
    assert outcome["error"]["kind"] == "api"


def test_form_for_url_ignores_current_search():
    query = form_to_query(SearchForm(title="영상"))
    assert actions.form_for_url(query, query) is None
    assert actions.form_for_url("", None) is None
    assert actions.form_for_url(query, None) == SearchForm(title="영상")


def test_checked_patents_in_checking_order():
    results = [make_result("1"), make_result("2"), make_result("3")]
    checked = actions.checked_patents(results, ["3", "1", "9"])
    assert [r["application_number"] for r in checked] == ["3", "1"]
    assert actions.checked_patents(results, None) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stats_cache_fetches_once_per_ttl(canned_api):
    url, handler = canned_api
    handler.routes["/v1/stats/scores"] = (200, json.dumps(stats_reply("IT")).encode())
    clock = FakeClock()
    cache = actions.ScoreStatsCache(ApiClient(url), ttl_s=60, clock=clock)
    stats, problems = cache.get(["IT", "IT"])
    assert problems == []
    assert stats["IT"].scores["rights"].minimum == 40.0
    assert len(handler.requests) == 1

    clock.now += 59
    cache.get(["IT"])
    assert len(handler.requests) == 1
    clock.now += 2
    cache.get(["IT"])
    assert len(handler.requests) == 2


def test_stats_cache_concurrent_gets_fetch_once(canned_api):
    url, handler = canned_api
    handler.routes["/v1/stats/scores"] = (200, json.dumps(stats_reply("IT")).encode())
    cache = actions.ScoreStatsCache(ApiClient(url))
    threads = [threading.Thread(target=cache.get, args=(["IT"],)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(handler.requests) == 1


def test_stats_cache_reports_bad_reply_uncached(canned_api):
    url, handler = canned_api
    handler.routes["/v1/stats/scores"] = (200, b'{"six_t": "BT", "scores": {}}')
    cache = actions.ScoreStatsCache(ApiClient(url))
    stats, problems = cache.get(["BT"])
    assert stats == {}
    assert "형식이 올바르지 않습니다" in problems[0]

    handler.routes["/v1/stats/scores"] = (200, json.dumps(stats_reply("BT")).encode())
    stats, problems = cache.get(["BT"])
    assert problems == []
    assert set(stats) == {"BT"}


def test_stats_cache_error_status(canned_api):
    url, handler = canned_api
    handler.routes["/v1/stats/scores"] = (400, json.dumps(
        {"error": {"status": 400, "message": "unknown six_t", "field": "six_t"}}).encode())
    stats, problems = actions.ScoreStatsCache(ApiClient(url)).get(["XX", "YY"])
    assert stats == {}
    assert len(problems) == 2
    assert "XX" in problems[0]


def test_stats_cache_api_down_stops_early():
    cache = actions.ScoreStatsCache(ApiClient(closed_port_url(), timeout_s=5))
    stats, problems = cache.get(["IT", "BT"])
    assert stats == {}
    assert len(problems) == 1
    assert "연결할 수 없습니다" in problems[0]


def test_stats_cache_rejects_negative_ttl():
    with pytest.raises(ValueError, match="ttl_s"):
        actions.ScoreStatsCache(ApiClient("http://127.0.0.1:1"), ttl_s=-1)


def test_patent_document_not_found(canned_api):
    url, _ = canned_api
    document, problem = actions.patent_document(ApiClient(url), "1020180173848")
    assert document is None
    assert "1020180173848" in problem


def test_violin_uses_api_sample_when_given():
    reply = stats_reply()
    reply["scores"]["rights"]["values"] = [41.0, 55.5, 99.0]
    stats = parse_category_stats(reply)
    assert stats.scores["rights"].violin_sample() == [41.0, 55.5, 99.0]
    assert len(stats.scores["pqi"].violin_sample()) == 2000
    figure = violin_figure([make_result("1020180173848", scores=SYNTHETIC)], {"IT": stats})
    rights_violin = [t for t in figure.data if t.type == "violin"][1]
    assert list(rights_violin.y) == [41.0, 55.5, 99.0]


def test_stats_parse_rejects_bad_values():
    reply = stats_reply()
    reply["scores"]["pqi"]["values"] = [1.0, "x"]
    with pytest.raises(StatsFormatError, match="pqi.values"):
        parse_category_stats(reply)


def test_client_demand_calls_send_token(canned_api):
    url, handler = canned_api
    handler.routes["/v1/demands"] = (201, b'{"id": "d1", "access_token": "t"}')
    handler.routes["/v1/demands/d%2F1/selection"] = (200, b'{"status": "selected"}')
    handler.routes["/v1/demands/d1"] = (200, b'{"status": "recommended"}')
    client = ApiClient(url)
    assert client.create_demand({"title": "영상"})["id"] == "d1"
    assert client.select_patents("d/1", ["1020180173848"], "t") == {"status": "selected"}
    assert json.loads(handler.requests[-1][2]) == {"application_numbers": ["1020180173848"]}
    assert client.demand("d1", "t") == {"status": "recommended"}
    assert [r[:2] for r in handler.requests] == [
        ("POST", "/v1/demands"), ("POST", "/v1/demands/d%2F1/selection"), ("GET", "/v1/demands/d1")]
    assert handler.tokens == [None, "t", "t"]


def raw_form(title: str = "영상", year_from=None, k=10) -> list:
    return [title, "", ["IT"], "", year_from, None, [], k, ""]


def test_search_step_from_form_writes_url(canned_api):
    url, handler = canned_api
    reply = {"results": [make_result("1020180173848")], "no_close_match": False}
    handler.routes["/v1/search"] = (200, json.dumps(reply).encode())
    step = actions.search_step(ApiClient(url), False, None, raw_form(), None)
    assert step.outcome["reply"] == reply
    assert step.url_query == form_to_query(SearchForm(title="영상", six_t=["IT"], k=10))
    assert step.form is None
    assert step.form_error == ""


def test_search_step_invalid_form_keeps_results(canned_api):
    url, handler = canned_api
    step = actions.search_step(ApiClient(url), False, None, raw_form(title=" "), None)
    assert step.outcome is None
    assert step.form_error == "수요기술명을 입력하세요."
    step = actions.search_step(ApiClient(url), False, None, raw_form(year_from=2010.5), None)
    assert step.outcome is None
    assert "정수" in step.form_error
    assert handler.requests == []


def test_search_step_api_down_leaves_url():
    client = ApiClient(closed_port_url(), timeout_s=5)
    step = actions.search_step(client, False, None, raw_form(), None)
    assert step.outcome["error"]["kind"] == "unavailable"
    assert step.url_query is None


def test_search_step_from_url_fills_form(canned_api):
    url, handler = canned_api
    handler.routes["/v1/search"] = (200, b'{"results": [], "no_close_match": false}')
    query = form_to_query(SearchForm(title="리튬 전지", k=30))
    step = actions.search_step(ApiClient(url), True, query, raw_form(), None)
    assert step.form == SearchForm(title="리튬 전지", k=30)
    assert step.url_query is None
    assert step.outcome["reply"]["results"] == []
    assert json.loads(handler.requests[-1][2]) == {"title": "리튬 전지", "k": 30}


def test_search_step_ignores_current_url(canned_api):
    url, handler = canned_api
    query = form_to_query(SearchForm(title="영상"))
    assert actions.search_step(ApiClient(url), True, query, raw_form(), {"query": query}) is None
    assert actions.search_step(ApiClient(url), True, "", raw_form(), None) is None
    assert handler.requests == []


def test_search_step_invalid_url_fills_form(canned_api):
    url, handler = canned_api
    step = actions.search_step(ApiClient(url), True, "?title=x&from=1900", raw_form(), None)
    assert step.outcome is None
    assert step.form.year_from == 1900
    assert "출원연도" in step.form_error
    assert handler.requests == []


def test_chart_titles_mark_synthetic_scores():
    stats = {"IT": parse_category_stats(stats_reply("IT"))}
    synthetic = [make_result("1020180173848", scores=SYNTHETIC)]
    kpeg = [make_result("1020180173848", scores=dict(SYNTHETIC, source="kpeg"))]
    assert "합성" in bar_figure(synthetic, stats).layout.title.text
    assert "합성" in violin_figure(synthetic, stats).layout.title.text
    assert "합성" not in bar_figure(kpeg, stats).layout.title.text
    assert "합성" not in violin_figure(kpeg, stats).layout.title.text


def test_cli_registers_dashboard_command():
    from patentmatch.cli import build_parser

    args = build_parser().parse_args(
        ["dashboard", "--port", "9050", "--api-url", "http://127.0.0.1:9999", "--threads", "2"])
    assert args.port == 9050
    assert args.api_url == "http://127.0.0.1:9999"
    assert args.threads == 2
    assert callable(args.handler)


def test_cli_rejects_zero_threads():
    from patentmatch.cli import main

    assert main(["dashboard", "--threads", "0"]) == 2


def test_app_factory_uses_settings_api_url():
    from dashboard.app import create_dash_app
    from patentmatch.config import Settings

    app = create_dash_app(Settings(api_host="127.0.0.1", api_port=18080))
    assert "http://127.0.0.1:18080" in str(app.layout)
    assert app.title == "유사 특허 탐색"


def test_two_stage_similarity_needs_both():
    from dashboard.results import two_stage_similarity

    assert two_stage_similarity({"abstract_similarity": 0.6, "title_similarity": 0.2}) == \
        pytest.approx(0.4)
    assert two_stage_similarity({"abstract_similarity": 0.6, "title_similarity": None}) is None
    assert two_stage_similarity({}) is None
