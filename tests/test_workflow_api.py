"""Workflow API with the aiohttp test client against the real Elasticsearch:
validation, tokens, API keys, transitions through HTTP and concurrent writers."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import replace

import pytest
from aiohttp import web
from test_api_support import corpus, encoder, search_settings  # noqa: F401  (fixtures)
from test_workflow_support import (  # noqa: F401  (fixtures)
    API_KEY,
    OPERATOR,
    PATENTS,
    TTO_EMAIL,
    client,
    clock,
    create_demand,
    import_contacts,
    operator_get,
    patent_index,
    select,
    smtp_server,
    workflow_settings,
)

from search_api.workflow import WORKFLOW, setup

pytestmark = pytest.mark.asyncio

VISION, INSPECTION, SPEECH = (p["application_number"] for p in PATENTS[:3])
ALL_CONTACTS = (f"applicant,email\n가나대학교산학협력단,{TTO_EMAIL}\n"
                "(주)한빛전자,ip@hanbit.example\n다라연구원,tlo@dara.example\n")


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    return (await response.json())["error"]


##### registration


@pytest.mark.parametrize(("body", "field", "fragment"), [
    ({"title": "딥"}, "title", "at least 2 characters"),
    ({"title": "가" * 201}, "title", "at most 200 characters"),
    ({"title": None}, "title", "title is required"),
    ({"email": "not-an-address"}, "email", "not a valid e-mail address"),
    ({"email": "a@b.example\r\nBcc: x@y.example"}, "email", "not a valid e-mail address"),
    ({"email": None}, "email", "email is required"),
    ({"company": ""}, "company", "at least 1 characters"),
    ({"filters": {"colour": "red"}}, "filters.colour", "unknown filter"),
    ({"filters": {"six_t": ["XT"]}}, "filters.six_t", "unknown values"),
    ({"filters": {"application_date_from": "2020-13-01"}}, "filters.application_date_from",
     "YYYY-MM-DD"),
    ({"k": 0}, "k", "1..100"),
    ({"mode": "magic"}, "mode", "allowed"),
    ({"budget": 10}, "budget", "unknown field"),
])
async def test_create_invalid_input(client, body, field, fragment):
    base = {"title": "딥러닝 영상 인식", "company": "회사", "email": "a@b.example"}

    response = await client.post("/v1/demands", json={**base, **body})

    error = await error_of(response, 400)
    assert error["field"] == field
    assert fragment in error["message"]


async def test_create_non_json_rejected(client):
    response = await client.post("/v1/demands", data=b"{not json")

    error = await error_of(response, 400)
    assert error["field"] == "body"


async def test_create_deeply_nested_json_rejected(client):
    # 30,000 levels overflow json.loads at any usual recursion limit and fit in 64 KiB.
    response = await client.post("/v1/demands", data=b"[" * 30_000 + b"]" * 30_000)

    error = await error_of(response, 400)
    assert error["field"] == "body"
    assert "nested too deeply" in error["message"]


async def test_create_lone_surrogate_rejected(client):
    body = {"title": "\ud800 영상", "company": "회사", "email": "a@b.example"}

    response = await client.post("/v1/demands", json=body)

    error = await error_of(response, 400)
    assert error["field"] == "body"
    assert "surrogate" in error["message"]


async def test_create_attaches_ranked_patents(client, patent_index):
    created = await create_demand(client, filters={"six_t": ["IT"]})
    expected = patent_index.recommend({"title": "딥러닝 영상 인식",
                                       "description": "공장 제품 불량을 카메라로 검사", "k": 3})

    demand = created["demand"]
    assert len(created["access_token"]) >= 40
    assert demand["status"] == "recommended"
    assert [p["application_number"] for p in demand["recommended"]] == \
        [p["application_number"] for p in expected]
    assert [p["score"] for p in demand["recommended"]] == [p["score"] for p in expected]
    assert demand["recommended"][0]["kipris_url"].endswith(expected[0]["application_number"])
    assert demand["filters"]["six_t"] == ["IT"]
    assert [t["to_status"] for t in demand["timeline"]] == ["registered", "recommended"]
    stored = await client.app[WORKFLOW].demands.get(created["id"])
    assert created["access_token"] not in str(stored)


async def test_failing_ranking_leaves_registered(client, patent_index):
    workflow = client.app[WORKFLOW]

    def broken(demand):
        raise RuntimeError("vector store not loaded")

    workflow.recommend_fn = broken
    created = await create_demand(client)
    workflow.recommend_fn = patent_index.recommend
    response = await client.post(f"/v1/demands/{created['id']}/recommendations",
                                 headers=OPERATOR)
    retried = await response.json()
    again = await client.post(f"/v1/demands/{created['id']}/recommendations", headers=OPERATOR)

    assert created["demand"]["status"] == "registered"
    assert "vector store not loaded" in created["demand"]["recommend_error"]
    assert response.status == 200
    assert retried["status"] == "recommended"
    assert retried["recommend_error"] is None
    assert (await error_of(again, 409))["message"].startswith(
        "cannot move the demand from recommended to recommended")


async def test_applicants_completed_from_patent_index(client, patent_index):
    workflow = client.app[WORKFLOW]
    workflow.recommend_fn = lambda demand: [{"application_number": SPEECH, "score": 0.5}]

    created = await create_demand(client)

    patent = created["demand"]["recommended"][0]
    assert patent["title"] == "딥러닝 음성 인식 시스템"
    stored = await workflow.demands.get(created["id"])
    assert stored["recommended"][0]["applicants"] == ["다라연구원", "가나대학교산학협력단"]


##### company access token


async def test_company_reads_status_with_token(client):
    created = await create_demand(client)
    other = await create_demand(client)
    path = f"/v1/demands/{created['id']}"

    by_header = await client.get(path, headers={"X-Demand-Token": created["access_token"]})
    by_query = await client.get(path, params={"token": created["access_token"]})
    missing = await client.get(path)
    wrong = await client.get(path, headers={"X-Demand-Token": created["access_token"] + "x"})
    foreign = await client.get(path, headers={"X-Demand-Token": other["access_token"]})
    unknown = await client.get("/v1/demands/0000000000000000",
                               headers={"X-Demand-Token": created["access_token"]})

    assert by_header.status == 200
    view = await by_header.json()
    assert view["status"] == "recommended"
    assert "audit" not in view
    assert "access_token_hash" not in str(view)
    assert by_query.status == 200
    assert (await error_of(missing, 401))["field"] == "X-Demand-Token"
    assert (await error_of(wrong, 403))["message"] == "the access token does not match this demand"
    assert foreign.status == 403
    assert unknown.status == 404


async def test_select_needs_token(client):
    created = await create_demand(client)

    response = await client.post(f"/v1/demands/{created['id']}/selection",
                                 json={"application_numbers": [VISION]},
                                 headers={"X-Demand-Token": "guess"})

    assert response.status == 403


##### operator API key


async def test_operator_endpoints_need_key(client):
    await create_demand(client)

    no_key = await client.get("/v1/demands")
    wrong = await client.get("/v1/demands", headers={"X-API-Key": API_KEY[:-1]})
    right = await client.get("/v1/demands", headers=OPERATOR)
    contacts = await client.post("/v1/contacts/import", data=b"applicant,email\n")

    assert (await error_of(no_key, 401))["field"] == "X-API-Key"
    assert (await error_of(wrong, 403))["message"] == "invalid X-API-Key"
    assert right.status == 200
    listing = await right.json()
    assert listing["total"] == 1
    assert listing["demands"][0]["status"] == "recommended"
    assert contacts.status == 401


async def test_operator_endpoints_disabled_without_key(aiohttp_client, workflow_settings,
                                                       patent_index):
    app = web.Application()
    setup(app, replace(workflow_settings, api_key=""), recommend=patent_index.recommend,
          run_worker=False)
    client = await aiohttp_client(app)
    created = await create_demand(client)

    listing = await client.get("/v1/demands", headers={"X-API-Key": ""})
    with_key = await client.get("/v1/demands", headers={"X-API-Key": "anything"})
    company = await client.get(f"/v1/demands/{created['id']}",
                               headers={"X-Demand-Token": created["access_token"]})

    assert "PATENTMATCH_API_KEY" in (await error_of(listing, 503))["message"]
    assert with_key.status == 503
    assert company.status == 200


async def test_operator_list_filters_and_pages(client):
    first = await create_demand(client, company="알파")
    await create_demand(client, company="베타")
    await client.post(f"/v1/demands/{first['id']}/status", json={"status": "closed"},
                      headers=OPERATOR)

    closed = await operator_get(client, "/v1/demands?status=closed")
    beta = await operator_get(client, "/v1/demands?company=베타")
    page = await operator_get(client, "/v1/demands?limit=1&offset=1")
    bad_status = await client.get("/v1/demands?status=lost", headers=OPERATOR)
    bad_limit = await client.get("/v1/demands?limit=1000", headers=OPERATOR)

    assert [d["id"] for d in closed["demands"]] == [first["id"]]
    assert [d["company"] for d in beta["demands"]] == ["베타"]
    assert page["total"] == 2
    assert len(page["demands"]) == 1
    assert (await error_of(bad_status, 400))["field"] == "status"
    assert (await error_of(bad_limit, 400))["field"] == "limit"


def store_lone_surrogate_company(es_url: str, index: str, demand_id: str) -> None:
    """Set a demand's company to a string with an unpaired surrogate, as older versions stored.

    The body is sent with ASCII escapes because Python cannot encode the surrogate as
    UTF-8, and Elasticsearch returns the escape unchanged in ``_source``.
    """
    body = json.dumps({"doc": {"company": "알파\ud800"}}, ensure_ascii=True).encode("ascii")
    request = urllib.request.Request(f"{es_url}/{index}/_update/{demand_id}?refresh=true",
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 200


async def test_stored_lone_surrogate_is_replaced(client, es_url, workflow_settings):
    demand = await create_demand(client, company="알파")
    store_lone_surrogate_company(es_url, workflow_settings.demands_index, demand["id"])

    listed = await client.get("/v1/demands", headers=OPERATOR)
    operator = await client.get(f"/v1/demands/{demand['id']}", headers=OPERATOR)
    company = await client.get(f"/v1/demands/{demand['id']}",
                               headers={"X-Demand-Token": demand["access_token"]})

    assert listed.status == 200, await listed.text()
    assert (await listed.json())["demands"][0]["company"] == "알파\ufffd"
    assert operator.status == 200, await operator.text()
    assert (await operator.json())["company"] == "알파\ufffd"
    assert company.status == 200, await company.text()
    assert (await company.json())["company"] == "알파\ufffd"


async def test_outbox_list_rejects_unknown_status(client):
    response = await client.get("/v1/outbox?status=zzz", headers=OPERATOR)

    error = await error_of(response, 400)
    assert error["field"] == "status"
    assert "'zzz'" in error["message"]
    for status in ("pending", "sending", "sent", "failed"):
        assert status in error["message"]


async def test_outbox_list_accepts_known_status(client):
    listed = await operator_get(client, "/v1/outbox?status=pending")
    assert listed["total"] == 0


##### transitions through the API


async def test_full_path_to_transferred(client, smtp_server):
    await import_contacts(client, ALL_CONTACTS)
    created = await create_demand(client)
    selected = await select(client, created, [VISION, INSPECTION])
    await client.app[WORKFLOW].outbox.process_due()
    path = f"/v1/demands/{created['id']}"

    declined = await client.post(f"{path}/answers", headers={**OPERATOR, "X-Operator": "kim"},
                                 json={"application_number": INSPECTION, "answer": "declined",
                                       "note": "전화로 거절"})
    interested = await client.post(f"{path}/answers", headers=OPERATOR,
                                   json={"application_number": VISION, "answer": "interested"})
    transferred = await client.post(f"{path}/status", headers=OPERATOR,
                                    json={"status": "transferred", "note": "계약 체결"})
    closed = await client.post(f"{path}/status", headers=OPERATOR, json={"status": "closed"})
    company = await client.get(path, headers={"X-Demand-Token": created["access_token"]})

    assert selected["status"] == "selected"
    assert sorted(r.recipients[0] for r in smtp_server.received) == [
        "ip@hanbit.example", TTO_EMAIL]
    assert (await declined.json())["status"] == "contacted"
    assert (await interested.json())["status"] == "interested"
    final = await transferred.json()
    assert final["status"] == "transferred"
    assert [a["to_status"] for a in final["audit"] if a["action"] == "transition"] == [
        "recommended", "selected", "contacted", "interested", "transferred"]
    assert final["audit"][-1]["actor"] == "operator"
    assert any(a["actor"] == "operator:kim" for a in final["audit"])
    assert set(final["status_times"]) == {"registered", "recommended", "selected",
                                          "contacted", "interested", "transferred"}
    error = await error_of(closed, 409)
    assert error["message"] == ("cannot move the demand from transferred to closed; "
                                "allowed from transferred: none, it is final")
    view = await company.json()
    assert view["status"] == "transferred"
    assert {e["application_number"]: e["answer"] for e in view["selection"]} == {
        VISION: "interested", INSPECTION: "declined"}


async def test_declined_then_new_selection(client, smtp_server):
    await import_contacts(client, ALL_CONTACTS)
    created = await create_demand(client)
    await select(client, created, [VISION])
    await client.app[WORKFLOW].outbox.process_due()
    path = f"/v1/demands/{created['id']}"

    declined = await client.post(f"{path}/answers", headers=OPERATOR,
                                 json={"application_number": VISION, "answer": "declined"})
    again = await select(client, created, [INSPECTION])
    await client.app[WORKFLOW].outbox.process_due()
    view = await operator_get(client, path)

    assert (await declined.json())["status"] == "declined"
    assert again["status"] == "selected"
    assert view["status"] == "contacted"
    assert len(smtp_server.received) == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"status": "contacted"}, "status"),
    ({"status": "closed", "extra": 1}, "extra"),
])
async def test_operator_status_invalid_body(client, body, field):
    created = await create_demand(client)

    response = await client.post(f"/v1/demands/{created['id']}/status", headers=OPERATOR,
                                 json=body)

    assert (await error_of(response, 400))["field"] == field


async def test_select_invalid_requests(client):
    created = await create_demand(client)
    path = f"/v1/demands/{created['id']}/selection"
    token = {"X-Demand-Token": created["access_token"]}

    empty = await client.post(path, json={"application_numbers": []}, headers=token)
    malformed = await client.post(path, json={"application_numbers": ["12"]}, headers=token)
    not_recommended = await client.post(path, json={"application_numbers": ["1020150099999"]},
                                        headers=token)

    assert (await error_of(empty, 400))["field"] == "application_numbers"
    assert "13 digits" in (await error_of(malformed, 400))["message"]
    assert "not among this demand's recommended" in (await error_of(not_recommended, 400))[
        "message"]


async def test_operator_answer_before_email_rejected(client):
    created = await create_demand(client)
    await select(client, created, [VISION])

    response = await client.post(f"/v1/demands/{created['id']}/answers", headers=OPERATOR,
                                 json={"application_number": VISION, "answer": "interested"})

    error = await error_of(response, 409)
    assert error["message"].startswith("cannot move the demand from selected to interested")


##### concurrency


async def test_concurrent_selections_one_wins(client):
    created = await create_demand(client)

    responses = await asyncio.gather(*[
        client.post(f"/v1/demands/{created['id']}/selection",
                    json={"application_numbers": [number]},
                    headers={"X-Demand-Token": created["access_token"]})
        for number in (VISION, INSPECTION, SPEECH)])

    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 409, 409]
    view = await operator_get(client, f"/v1/demands/{created['id']}")
    assert len(view["selection"]) == 1
    transitions = [a["to_status"] for a in view["audit"] if a["action"] == "transition"]
    assert transitions == ["recommended", "selected"]


async def test_concurrent_answers_all_kept(client, smtp_server):
    await import_contacts(client, ALL_CONTACTS)
    created = await create_demand(client)
    await select(client, created, [VISION, INSPECTION, SPEECH])
    await client.app[WORKFLOW].outbox.process_due()
    path = f"/v1/demands/{created['id']}/answers"

    responses = await asyncio.gather(*[
        client.post(path, headers=OPERATOR, json={"application_number": n, "answer": "declined"})
        for n in (VISION, INSPECTION, SPEECH)])

    assert [r.status for r in responses] == [200, 200, 200]
    view = await operator_get(client, f"/v1/demands/{created['id']}")
    assert [e["answer"] for e in view["selection"]] == ["declined"] * 3
    assert view["status"] == "declined"


async def test_stale_write_conflicts(client):
    from elasticsearch import ConflictError

    created = await create_demand(client)
    store = client.app[WORKFLOW].demands
    demand, seq_no, term = await store.get_versioned(created["id"])
    await store.update(created["id"], lambda d: {**d, "description": "changed"})

    with pytest.raises(ConflictError):
        await store.es.index(index=store.names.demands, id=created["id"], document=demand,
                             if_seq_no=seq_no, if_primary_term=term)


##### inside the search API's app


async def test_api_app_recommends_with_search_service(aiohttp_client, search_settings, corpus,
                                                      index_prefix):
    from search_api.app import create_app

    settings = replace(search_settings, demands_index=f"{index_prefix}-demands",
                       api_key=API_KEY, max_request_bytes=64 * 1024)
    app = create_app(settings, load_models=False, default_mode="bm25")
    api = await aiohttp_client(app)
    query = {"title": "딥러닝 영상 인식", "k": 5, "filters": {"six_t": ["IT"]}}

    search = await api.post("/v1/search", json=query)
    created = await api.post("/v1/demands", json={**query, "company": "회사",
                                                   "email": "a@b.example"})

    assert search.status == 200, await search.text()
    assert created.status == 201, await created.text()
    expected = (await search.json())["results"]
    demand = (await created.json())["demand"]
    assert demand["status"] == "recommended"
    assert [p["application_number"] for p in demand["recommended"]] == \
        [r["application_number"] for r in expected]
    assert [p["score"] for p in demand["recommended"]] == [r["score"] for r in expected]
    stored = await app[WORKFLOW].demands.get((await created.json())["id"])
    assert stored["recommended"][0]["applicants"] == [expected[0]["applicant"]]


async def test_worker_creates_no_indices(aiohttp_client, workflow_settings, patent_index,
                                         es_client):
    app = web.Application()
    setup(app, workflow_settings, recommend=patent_index.recommend, run_worker=False)
    client = await aiohttp_client(app)
    workflow = app[WORKFLOW]
    alias = workflow_settings.demands_index

    before = await workflow.start_if_created()
    exists_before = es_client.indices.exists_alias(name=f"{alias}-outbox").body
    await create_demand(client)
    after = await workflow.start_if_created()

    assert before is False
    assert exists_before is False
    assert after is True
    assert es_client.indices.exists_alias(name=f"{alias}-outbox").body
