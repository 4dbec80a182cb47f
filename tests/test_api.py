"""The HTTP API with the aiohttp test client against the real Elasticsearch."""

from __future__ import annotations

import json
import socket
from dataclasses import replace

import numpy as np
import pytest
import pytest_asyncio
from openapi_spec_validator import validate

from search_api.app import create_app
from search_api.indexing import run_indexing
from search_api.search import RankingConfig
from search_api.vectors import VectorStore, VectorStoreMismatch, store_dir
from test_api_support import corpus, encoder, search_settings  # noqa: F401  (fixtures)

pytestmark = pytest.mark.asyncio

TITLE = "딥러닝 영상 인식"


@pytest.fixture()
def store(corpus, encoder, search_settings, es_client) -> VectorStore:
    run_indexing(search_settings, encoder, es_client, rebuild=True)
    return VectorStore.load(store_dir(search_settings.cache_dir, corpus.alias), use_gpu=False)


@pytest_asyncio.fixture()
async def client(aiohttp_client, search_settings, encoder, store):
    app = create_app(search_settings, encoder=encoder, store=store,
                     ranking_config=RankingConfig(n_candidates=25, threshold=0.3), default_mode="two_stage")
    return await aiohttp_client(app)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def post_search(client, body, status=200):
    response = await client.post("/v1/search", json=body)
    assert response.status == status, await response.text()
    return await response.json()


##### search


async def test_search_two_stage_equals_reference(client, store, encoder):
    reply = await post_search(client, {"title": TITLE, "k": 7})
    query = encoder.encode_query(TITLE)
    abstract = store.abstracts @ query
    candidates = np.argsort(-abstract, kind="stable")[:25]
    final = (abstract[candidates] + store.titles[candidates] @ query) / 2
    order = np.argsort(-final, kind="stable")[:7]
    expected = [store.application_numbers[candidates[i]] for i in order]

    assert reply["mode"] == "two_stage"
    assert [r["application_number"] for r in reply["results"]] == expected
    assert [r["rank"] for r in reply["results"]] == list(range(1, 8))
    assert np.allclose([r["score"] for r in reply["results"]], final[order], atol=1e-5)
    first = reply["results"][0]
    assert first["score"] == pytest.approx((first["abstract_similarity"] + first["title_similarity"]) / 2, abs=1e-5)


async def test_search_result_fields(client, corpus):
    reply = await post_search(client, {"title": TITLE, "k": 3})
    result = reply["results"][0]
    document = next(d for d in corpus.documents if d["application_number"] == result["application_number"])
    assert result["title"] == document["title"]
    assert result["abstract"] == document["abstract"]
    assert result["six_t"] == document["six_t"]
    assert result["ipc"] == document["ipc"]
    assert result["scores"]["pqi"] == document["scores"]["pqi"]
    assert result["score_source"] == "synthetic"
    assert result["kipris_url"].endswith("applno=" + document["application_number"])
    assert set(reply) == {"query", "mode", "no_close_match", "threshold", "best_similarity",
                          "lexical_coverage", "lexical_threshold", "took_ms", "results"}


@pytest.mark.parametrize("mode", ["two_stage", "hybrid", "bm25", "dense"])
async def test_search_modes_respect_filters(client, corpus, mode):
    body = {"title": "리튬 이차전지 전극", "k": 10, "mode": mode,
            "filters": {"six_t": ["ET"], "ipc_prefix": "h01m", "application_date_from": "2006-01-01",
                        "register_status": ["등록", "공개", "소멸"]}}
    reply = await post_search(client, body)
    assert reply["mode"] == mode
    assert reply["results"]
    for result in reply["results"]:
        assert result["six_t"] == "ET"
        assert result["ipc"][0].startswith("H01M")
        assert result["application_date"] >= "2006-01-01"


async def test_search_applicant_filter(client):
    reply = await post_search(client, {"title": TITLE, "k": 20, "filters": {"applicant": "한국과학기술원"}})
    assert reply["results"]
    assert all(r["applicant"] == "한국과학기술원" for r in reply["results"])


async def test_no_close_match_flag(client, aiohttp_client, search_settings, encoder, store):
    reply = await post_search(client, {"title": TITLE, "k": 3})
    assert reply["no_close_match"] is False
    strict = create_app(search_settings, encoder=encoder, store=store,
                        ranking_config=RankingConfig(n_candidates=25, threshold=0.99))
    strict_client = await aiohttp_client(strict)
    reply = await post_search(strict_client, {"title": "zzz qqq", "k": 3})
    assert reply["no_close_match"] is True
    assert reply["threshold"] == 0.99


async def test_lexical_coverage_flags_unknown_words(aiohttp_client, search_settings, encoder, store):
    app = create_app(search_settings, encoder=encoder, store=store,
                     ranking_config=RankingConfig(n_candidates=25, threshold=-1.0,
                                                  lexical_threshold=0.5))
    lexical_client = await aiohttp_client(app)
    known = await post_search(lexical_client, {"title": TITLE, "k": 3})
    assert known["lexical_coverage"] >= 0.5
    assert known["no_close_match"] is False
    unknown = await post_search(lexical_client, {"title": "zzzqqq xxyyz", "k": 3})
    assert unknown["lexical_coverage"] == 0.0
    assert unknown["no_close_match"] is True
    assert unknown["lexical_threshold"] == 0.5
    assert isinstance(unknown["best_similarity"], float)


async def test_description_is_used(client):
    plain = await post_search(client, {"title": "장치", "k": 5})
    described = await post_search(client, {"title": "장치", "description": "항체 단백질 치료 의약", "k": 5})
    assert [r["application_number"] for r in plain["results"]] != [
        r["application_number"] for r in described["results"]]
    assert described["query"]["description"] == "항체 단백질 치료 의약"


##### 400


@pytest.mark.parametrize("body,field", [
    ({}, "title"),
    ({"title": "   "}, "title"),
    ({"title": 5}, "title"),
    ({"title": "x" * 501}, "title"),
    ({"title": "a", "k": 0}, "k"),
    ({"title": "a", "k": 101}, "k"),
    ({"title": "a", "k": "10"}, "k"),
    ({"title": "a", "k": True}, "k"),
    ({"title": "a", "mode": "magic"}, "mode"),
    ({"title": "a", "mode": 0}, "mode"),
    ({"title": "a", "mode": False}, "mode"),
    ({"title": "a", "mode": ""}, "mode"),
    ({"title": "a", "k": None}, "k"),
    ({"title": "a", "description": 0}, "description"),
    ({"title": "a", "description": False}, "description"),
    ({"title": "a", "filters": False}, "filters"),
    ({"title": "a", "filters": 0}, "filters"),
    ({"title": "a", "filters": ""}, "filters"),
    ({"title": "a", "filters": []}, "filters"),
    ({"title": "a", "filters": {"six_t": ["XT"]}}, "filters.six_t"),
    ({"title": "a", "filters": {"ipc_prefix": "G06N3//"}}, "filters.ipc_prefix"),
    ({"title": "a", "filters": {"application_date_from": "2020-13-01"}}, "filters.application_date_from"),
    ({"title": "a", "filters": {"application_date_from": "20200101"}}, "filters.application_date_from"),
    ({"title": "a", "filters": {"application_date_from": "2020-W01-1"}}, "filters.application_date_from"),
    ({"title": "a", "filters": {"application_date_to": "2020-02-30"}}, "filters.application_date_to"),
    ({"title": "a", "filters": {"application_date_to": "2020-1-1"}}, "filters.application_date_to"),
    ({"title": "a", "filters": {"application_date_to": "2020-01-01T00:00"}}, "filters.application_date_to"),
    ({"title": "a", "filters": {"application_date_from": "2021-01-01", "application_date_to": "2020-01-01"}},
     "filters.application_date_from"),
    ({"title": "a", "filters": {"colour": "red"}}, "filters.colour"),
    ({"title": "a", "topk": 3}, "topk"),
    ([1, 2], "body"),
    ({"title": "\ud800 영상"}, "body"),
    ({"title": "영상", "filters": {"applicant": "\udc00"}}, "body"),
])
async def test_search_invalid_field(client, body, field):
    reply = await post_search(client, body, status=400)
    assert reply["error"]["status"] == 400
    assert reply["error"]["field"] == field
    assert reply["error"]["message"]


async def test_search_invalid_json(client):
    response = await client.post("/v1/search", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "body"


async def test_search_deeply_nested_json(aiohttp_client, search_settings, encoder, store):
    # 100,000 levels overflow json.loads at any usual recursion limit, and the body
    # limit is raised so that the parser, not the 413 check, sees the body.
    settings = replace(search_settings, max_request_bytes=1024 * 1024)
    test_client = await aiohttp_client(create_app(settings, encoder=encoder, store=store))
    body = b"[" * 100_000 + b"]" * 100_000
    response = await test_client.post("/v1/search", data=body,
                                      headers={"Content-Type": "application/json"})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["field"] == "body"
    assert "nested too deeply" in error["message"]


async def test_search_body_too_large(client, search_settings):
    body = json.dumps({"title": "a", "description": "가" * search_settings.max_request_bytes})
    response = await client.post("/v1/search", data=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status == 413
    reply = await response.json()
    assert reply["error"]["status"] == 413
    assert str(search_settings.max_request_bytes) in reply["error"]["message"]


##### other routes


async def test_get_patent(client, corpus):
    number = corpus.documents[0]["application_number"]
    response = await client.get(f"/v1/patents/{number[:2]}-{number[2:6]}-{number[6:]}")
    assert response.status == 200
    document = await response.json()
    assert document["application_number"] == number
    assert document["kipris_url"].endswith(number)
    assert document["in_vector_store"] is True
    assert "title_terms" not in document


async def test_get_patent_not_found(client):
    response = await client.get("/v1/patents/1019990000001")
    assert response.status == 404
    assert (await response.json())["error"]["status"] == 404


@pytest.mark.parametrize("form", ["{kind}-{year}-{serial}", "KR{kind}{year}{serial}",
                                  "KR {kind}-{year}-{serial}", "{kind}{year}{serial}"])
async def test_get_patent_ingest_number_forms(client, corpus, form):
    number = corpus.documents[0]["application_number"]
    path_number = form.format(kind=number[:2], year=number[2:6], serial=number[6:])
    response = await client.get(f"/v1/patents/{path_number}")
    assert response.status == 200, await response.text()
    assert (await response.json())["application_number"] == number


@pytest.mark.parametrize("number", ["12345", "3020180173848", "KR10201801738x8", "1018000173848"])
async def test_get_patent_invalid_number(client, number):
    response = await client.get(f"/v1/patents/{number}")
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["field"] == "application_number"
    assert number in error["message"]


async def test_unknown_route_is_json_404(client):
    response = await client.get("/v1/nothing")
    assert response.status == 404
    error = (await response.json())["error"]
    assert error["status"] == 404
    assert error["message"] == "no route for GET /v1/nothing; see /v1/openapi.json"


async def test_wrong_method_is_json_405(client):
    response = await client.delete("/v1/search")
    assert response.status == 405
    error = (await response.json())["error"]
    assert error["status"] == 405
    assert "DELETE /v1/search" in error["message"]
    assert "POST" in error["message"]


async def test_score_stats(client, corpus):
    response = await client.get("/v1/stats/scores", params={"six_t": "IT"})
    assert response.status == 200
    stats = await response.json()
    it_documents = [d for d in corpus.documents if d["six_t"] == "IT"]
    assert stats["count"] == len(it_documents)
    pqi = stats["scores"]["pqi"]
    assert pqi["count"] == len(it_documents)
    assert pqi["min"] == pytest.approx(min(d["scores"]["pqi"] for d in it_documents))
    assert set(pqi["quantiles"]) == {"0.05", "0.25", "0.5", "0.75", "0.95"}
    assert len(pqi["histogram"]["edges"]) == len(pqi["histogram"]["counts"]) + 1
    assert sum(pqi["histogram"]["counts"]) == len(it_documents)
    assert len(pqi["values"]) == len(it_documents)


async def test_score_stats_repeated_category(client):
    response = await client.get("/v1/stats/scores?six_t=IT&six_t=BT")
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["field"] == "six_t"
    assert "'IT', 'BT'" in error["message"]


async def test_score_stats_invalid_category(client):
    response = await client.get("/v1/stats/scores", params={"six_t": "XX"})
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "six_t"


async def test_health_ok(client, corpus):
    response = await client.get("/v1/health")
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ok"
    assert body["elasticsearch"]["count"] == len(corpus.documents)
    assert body["vector_store"]["count"] == len(corpus.documents)
    assert body["vector_store"]["check"] == "ok"


async def test_openapi_document_is_valid(client):
    response = await client.get("/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)
    assert {"/v1/search", "/v1/patents/{application_number}", "/v1/stats/scores", "/v1/health",
            "/v1/openapi.json"} <= set(document["paths"])


async def test_openapi_lists_every_route(client):
    document = await (await client.get("/v1/openapi.json")).json()
    registered = [(route.resource.canonical, route.method.lower())
                  for route in client.app.router.routes()
                  if route.resource is not None and route.method != "HEAD"]
    assert len(registered) > 5
    for path, method in registered:
        assert path in document["paths"], f"{method.upper()} {path} is not in the OpenAPI document"
        assert method in document["paths"][path], f"{method.upper()} {path} is not documented"


async def test_openapi_workflow_security(client):
    document = await (await client.get("/v1/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    paths = document["paths"]
    assert schemes["operatorKey"]["name"] == "X-API-Key"
    assert schemes["demandToken"]["name"] == "X-Demand-Token"
    assert paths["/v1/outbox"]["get"]["security"] == [{"operatorKey": []}]
    assert paths["/v1/contacts/import"]["post"]["security"] == [{"operatorKey": []}]
    assert {"demandToken": []} in paths["/v1/demands/{demand_id}/selection"]["post"]["security"]
    assert {"operatorKey": []} not in paths["/v1/demands/{demand_id}/selection"]["post"]["security"]
    assert paths["/v1/demands"]["post"]["security"] == []


async def test_request_time_limit(aiohttp_client, search_settings, encoder, store):
    settings = replace(search_settings, request_timeout_s=1e-9)
    test_client = await aiohttp_client(create_app(settings, encoder=encoder, store=store))
    response = await test_client.post("/v1/search", json={"title": TITLE})
    assert response.status == 504
    assert "PATENTMATCH_REQUEST_TIMEOUT_S" in (await response.json())["error"]["message"]


##### Elasticsearch down, stale store


async def test_elasticsearch_down_gives_503(aiohttp_client, search_settings, encoder, store):
    settings = replace(search_settings, es_url=f"http://127.0.0.1:{closed_port()}", es_request_timeout_s=2.0)
    test_client = await aiohttp_client(create_app(settings, encoder=encoder, store=store))

    response = await test_client.post("/v1/search", json={"title": TITLE})
    assert response.status == 503
    assert "Elasticsearch is unavailable" in (await response.json())["error"]["message"]

    response = await test_client.get("/v1/patents/1020200000001")
    assert response.status == 503

    response = await test_client.get("/v1/health")
    assert response.status == 503
    health = await response.json()
    assert health["status"] == "unavailable"
    assert health["elasticsearch"]["reachable"] is False
    assert health["vector_store"]["check"] == "pending"


async def test_start_up_rejects_stale_store(aiohttp_client, search_settings, encoder, store, es_client, corpus):
    es_client.delete(index=corpus.index, id=corpus.documents[0]["application_number"], refresh=True)
    with pytest.raises(VectorStoreMismatch, match="Elasticsearch has 59"):
        await aiohttp_client(create_app(search_settings, encoder=encoder, store=store))


async def test_bm25_only_without_vector_store(aiohttp_client, search_settings):
    test_client = await aiohttp_client(create_app(search_settings, load_models=False, default_mode="bm25"))
    reply = await post_search(test_client, {"title": "화장품 보습"})
    assert reply["results"]
    assert reply["results"][0]["abstract_similarity"] is None
    response = await test_client.post("/v1/search", json={"title": "화장품", "mode": "two_stage"})
    assert response.status == 503
    assert "patentmatch index build" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/v1/replies/abc.def.sig", "/v1/replies/***"),
        ("/v1/replies/abc.def.sig/confirm", "/v1/replies/***/confirm"),
        ("/v1/demands/d1?token=s3cret&x=1", "/v1/demands/d1?token=***&x=1"),
        ("/v1/health", "/v1/health"),
    ],
)
def test_access_log_redacts_tokens(url, expected):
    from aiohttp.test_utils import make_mocked_request

    from search_api.app import redact_path

    assert redact_path(make_mocked_request("GET", url)) == expected


async def test_threshold_follows_encoder_loaded_at_start(aiohttp_client, search_settings, encoder,
                                                         store, monkeypatch):
    from search_api import app as app_module
    from search_api import defaults

    calibrated = defaults.RankingDefaults(default_mode="two_stage",
                                          thresholds={encoder.fingerprint: 0.1234})
    monkeypatch.setattr(defaults, "load_defaults", lambda *args, **kwargs: calibrated)
    # Model loading is the boundary here: start-up gets the test encoder
    # instead of reading weights from settings.model.
    monkeypatch.setattr(app_module, "_load_encoder", lambda settings: encoder)
    lazy_client = await aiohttp_client(create_app(search_settings, store=store))
    reply = await post_search(lazy_client, {"title": TITLE, "k": 3})
    assert reply["threshold"] == 0.1234
