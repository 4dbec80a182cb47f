"""E-mail to rights holders: the message on a real SMTP server, the outbox through
an outage, restarts and rejections, and the reply links; real Elasticsearch."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiohttp import web
from test_workflow_support import (  # noqa: F401  (fixtures)
    COMPANY,
    OPERATOR,
    TTO_EMAIL,
    client,
    clock,
    create_demand,
    import_contacts,
    operator_get,
    patent_index,
    reply_links,
    select,
    smtp_server,
    workflow_settings,
)

from search_api.workflow import WORKFLOW, RetryPolicy, setup
from search_api.workflow.service import outbox_id

pytestmark = pytest.mark.asyncio

CONTACTS_CSV = f"applicant,email,office\n가나대학교 산학협력단,{TTO_EMAIL},가나대 기술이전센터\n"
VISION_PATENT = "1020180173848"


async def contacted_demand(client, smtp_server):
    """Create a demand, import the contact and select the deep-learning patent."""
    await import_contacts(client, CONTACTS_CSV)
    demand = await create_demand(client)
    numbers = [p["application_number"] for p in demand["demand"]["recommended"]]
    assert VISION_PATENT in numbers
    await select(client, demand, [VISION_PATENT])
    return demand


##### the message


async def test_email_arrives_with_korean_body_and_links(client, smtp_server):
    demand = await contacted_demand(client, smtp_server)
    workflow = client.app[WORKFLOW]

    handled = await workflow.outbox.process_due()

    assert handled == 1
    assert len(smtp_server.received) == 1
    received = smtp_server.received[0]
    assert received.recipients == [TTO_EMAIL]
    assert received.mail_from == "noreply@patentmatch.example"
    message = received.message
    assert message["Subject"] == ("[기술이전 상담 요청] 딥러닝을 이용한 영상 인식 장치 "
                                  "(출원번호 10-2018-0173848)")
    stored = await workflow.outbox.get(outbox_id(demand["id"], VISION_PATENT))
    assert message["Message-ID"] == stored["message_id"]
    body = message.get_content()
    assert "가나대학교산학협력단 기술이전 담당자님께" in body
    assert f"기업명: {COMPANY}" in body
    assert "수요기술명: 딥러닝 영상 인식" in body
    assert "상세 설명: 공장 제품 불량을 카메라로 검사" in body
    assert "발명의 명칭: 딥러닝을 이용한 영상 인식 장치" in body
    assert f"KIPRIS: https://kpat.kipris.or.kr/kpat/biblioa.do?method=biblioFrame&applno={VISION_PATENT}" in body
    assert set(reply_links(body)) == {"interested", "declined"}
    assert "cto@vision.example" not in body


async def test_sent_email_moves_demand_to_contacted(client, smtp_server):
    demand = await contacted_demand(client, smtp_server)
    before = await operator_get(client, f"/v1/demands/{demand['id']}")
    await client.app[WORKFLOW].outbox.process_due()
    after = await operator_get(client, f"/v1/demands/{demand['id']}")

    assert before["status"] == "selected"
    assert before["selection"][0]["contact_status"] == "queued"
    assert after["status"] == "contacted"
    assert after["selection"][0]["contact_status"] == "sent"
    assert after["selection"][0]["recipients"] == [TTO_EMAIL]
    assert after["audit"][-1]["to_status"] == "contacted"
    assert after["audit"][-1]["actor"] == "system"


##### the outbox


async def test_outbox_delivers_after_smtp_outage_exactly_once(client, smtp_server, clock):
    smtp_server.stop()
    demand = await contacted_demand(client, smtp_server)
    workflow = client.app[WORKFLOW]
    message_key = outbox_id(demand["id"], VISION_PATENT)

    assert await workflow.outbox.process_due() == 1
    failed_once = await workflow.outbox.get(message_key)
    assert failed_once["status"] == "pending"
    assert failed_once["attempts"] == 1
    assert failed_once["last_error"]
    assert await workflow.outbox.process_due() == 0  # the retry is not due yet

    clock.advance(RetryPolicy().delay_s(1))
    assert await workflow.outbox.process_due() == 1
    assert (await workflow.outbox.get(message_key))["attempts"] == 2

    smtp_server.start()
    clock.advance(RetryPolicy().delay_s(2))
    assert await workflow.outbox.process_due() == 1
    clock.advance(RetryPolicy().max_delay_s * 10)
    assert await workflow.outbox.process_due() == 0

    assert len(smtp_server.received) == 1
    sent = await workflow.outbox.get(message_key)
    assert sent["status"] == "sent"
    assert sent["attempts"] == 3
    assert sent["demand_updated"] is True
    assert smtp_server.received[0].message["Message-ID"] == sent["message_id"]
    status = await operator_get(client, f"/v1/demands/{demand['id']}")
    assert status["status"] == "contacted"


async def test_restarted_service_never_resends(client, smtp_server, aiohttp_client,
                                               workflow_settings, patent_index, clock):
    await contacted_demand(client, smtp_server)
    await client.app[WORKFLOW].outbox.process_due()
    await client.close()

    restarted_app = web.Application()
    setup(restarted_app, workflow_settings, recommend=patent_index.recommend,
          run_worker=False, clock=clock)
    restarted = await aiohttp_client(restarted_app)
    await restarted.get("/v1/demands", headers=OPERATOR)
    clock.advance(86400)

    assert await restarted.app[WORKFLOW].outbox.process_due() == 0
    assert len(smtp_server.received) == 1


async def test_crash_after_accept_resends_same_message_id(client, smtp_server, clock):
    """The documented at-least-once window: accepted, then the process died before
    writing "sent". After the claim expires the message goes out again, with the
    same Message-ID."""
    demand = await contacted_demand(client, smtp_server)
    workflow = client.app[WORKFLOW]
    key = outbox_id(demand["id"], VISION_PATENT)
    await workflow.outbox.process_due()
    await workflow.es.update(index=workflow.names.outbox, id=key, refresh=True, doc={
        "status": "sending", "claim_expires_at": "2026-03-02T09:05:00Z",
        "demand_updated": False})

    assert await workflow.outbox.process_due() == 0  # the claim has not expired
    clock.advance(RetryPolicy().claim_timeout_s + 1)
    assert await workflow.outbox.process_due() == 1

    ids = [r.message["Message-ID"] for r in smtp_server.received]
    assert len(ids) == 2
    assert ids[0] == ids[1]
    assert (await workflow.outbox.get(key))["status"] == "sent"


async def test_two_workers_send_once(client, smtp_server):
    await contacted_demand(client, smtp_server)
    outbox = client.app[WORKFLOW].outbox

    await asyncio.gather(outbox.process_due(), outbox.process_due(), outbox.process_due())

    assert len(smtp_server.received) == 1


async def test_permanent_rejection_fails_message(client, smtp_server):
    smtp_server.handler.refuse.add(TTO_EMAIL)
    demand = await contacted_demand(client, smtp_server)
    workflow = client.app[WORKFLOW]
    key = outbox_id(demand["id"], VISION_PATENT)

    await workflow.outbox.process_due()

    message = await workflow.outbox.get(key)
    assert message["status"] == "failed"
    assert "550" in message["last_error"]
    assert smtp_server.received == []
    status = await operator_get(client, f"/v1/demands/{demand['id']}")
    assert status["status"] == "selected"
    assert status["selection"][0]["contact_status"] == "failed"
    failed = await operator_get(client, "/v1/outbox?status=failed")
    assert [m["id"] for m in failed["messages"]] == [key]

    smtp_server.handler.refuse.clear()
    response = await client.post(f"/v1/outbox/{key}/retry", headers=OPERATOR)
    assert response.status == 200, await response.text()
    await workflow.outbox.process_due()
    assert len(smtp_server.received) == 1
    assert (await operator_get(client, f"/v1/demands/{demand['id']}"))["status"] == "contacted"


async def test_retry_of_pending_message_rejected(client, smtp_server):
    demand = await contacted_demand(client, smtp_server)
    key = outbox_id(demand["id"], VISION_PATENT)

    response = await client.post(f"/v1/outbox/{key}/retry", headers=OPERATOR)

    assert response.status == 400
    assert "only failed messages" in (await response.json())["error"]["message"]


async def test_gives_up_after_max_attempts(aiohttp_client, workflow_settings, patent_index,
                                           smtp_server, clock):
    app = web.Application()
    setup(app, workflow_settings, recommend=patent_index.recommend, run_worker=False,
          clock=clock, policy=RetryPolicy(max_attempts=2))
    client = await aiohttp_client(app)
    smtp_server.stop()
    demand = await contacted_demand(client, smtp_server)
    outbox = app[WORKFLOW].outbox

    await outbox.process_due()
    clock.advance(RetryPolicy().max_delay_s)
    await outbox.process_due()

    message = await outbox.get(outbox_id(demand["id"], VISION_PATENT))
    assert message["status"] == "failed"
    assert message["last_error"].startswith("gave up after 2 attempts")


async def test_background_worker_delivers_after_outage(aiohttp_client, workflow_settings,
                                                       patent_index, smtp_server):
    app = web.Application()
    setup(app, workflow_settings, recommend=patent_index.recommend,
          policy=RetryPolicy(base_delay_s=0.2, max_delay_s=0.5, poll_interval_s=0.2))
    client = await aiohttp_client(app)
    smtp_server.stop()
    demand = await contacted_demand(client, smtp_server)
    outbox = app[WORKFLOW].outbox
    key = outbox_id(demand["id"], VISION_PATENT)

    await wait_until(lambda m: m["attempts"] >= 2, outbox, key)
    smtp_server.start()
    await wait_until(lambda m: m["status"] == "sent" and m["demand_updated"], outbox, key)

    assert len(smtp_server.received) == 1
    status = await operator_get(client, f"/v1/demands/{demand['id']}")
    assert status["status"] == "contacted"


async def wait_until(condition, outbox, key, limit_s: float = 60.0) -> None:
    """Poll an outbox message until ``condition`` holds; fail after ``limit_s``."""
    async with asyncio.timeout(limit_s):
        while not condition(await outbox.get(key)):
            await asyncio.sleep(0.1)


##### reply links


async def test_reply_link_records_answer_once(client, smtp_server):
    demand = await contacted_demand(client, smtp_server)
    await client.app[WORKFLOW].outbox.process_due()
    links = reply_links(smtp_server.received[0].message.get_content())

    page = await client.get(links["interested"])
    page_text = await page.text()
    unchanged = await operator_get(client, f"/v1/demands/{demand['id']}")
    submitted = await client.post(links["interested"])
    submitted_text = await submitted.text()
    again = await client.post(links["interested"])
    other_answer = await client.post(links["declined"])
    reopened = await client.get(links["declined"])

    assert page.status == 200
    assert "상담 의향 있음" in page_text
    assert '<form method="post"' in page_text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert unchanged["status"] == "contacted"
    assert submitted.status == 200
    assert "회신이 기록되었습니다" in submitted_text
    assert again.status == 409
    assert "이미 기록되었습니다" in await again.text()
    assert other_answer.status == 409
    assert "이미 회신하셨습니다" in await reopened.text()
    status = await operator_get(client, f"/v1/demands/{demand['id']}")
    assert status["status"] == "interested"
    assert status["selection"][0]["answer"] == "interested"
    assert status["audit"][-1]["actor"] == "rights_holder"


async def test_tampered_reply_link_rejected(client, smtp_server):
    await contacted_demand(client, smtp_server)
    await client.app[WORKFLOW].outbox.process_due()
    link = reply_links(smtp_server.received[0].message.get_content())["declined"]
    payload, signature = link.rsplit("/", 1)[1].split(".")
    forged = f"/v1/replies/{payload[:-2]}xx.{signature}"

    responses = [await client.post(forged), await client.post("/v1/replies/not-a-token"),
                 await client.get(forged)]

    assert [r.status for r in responses] == [403, 403, 403]
    assert "회신 링크가 올바르지 않거나" in await responses[0].text()


async def test_reply_to_closed_demand_rejected(client, smtp_server):
    demand = await contacted_demand(client, smtp_server)
    await client.app[WORKFLOW].outbox.process_due()
    link = reply_links(smtp_server.received[0].message.get_content())["interested"]
    await client.post(f"/v1/demands/{demand['id']}/status", headers=OPERATOR,
                      json={"status": "closed", "note": "기업이 철회"})

    response = await client.post(link)

    assert response.status == 409
    assert "상태: closed" in await response.text()


async def test_reply_before_sent_mark_counts_as_delivery(client, smtp_server):
    """A click on a link proves the e-mail arrived even if "sent" was never written."""
    demand = await contacted_demand(client, smtp_server)
    workflow = client.app[WORKFLOW]
    key = outbox_id(demand["id"], VISION_PATENT)
    message = await workflow.outbox.get(key)
    from search_api.workflow.mail import build_message, send_message

    await send_message(workflow.settings, build_message(
        mail_from=message["mail_from"], to=message["to"], subject=message["subject"],
        body=message["body"], message_id=message["message_id"]))
    link = reply_links(smtp_server.received[0].message.get_content())["declined"]
    response = await client.post(link)

    assert response.status == 200, await response.text()
    status = await operator_get(client, f"/v1/demands/{demand['id']}")
    assert status["selection"][0]["contact_status"] == "sent"
    assert status["status"] == "declined"
    assert [a["to_status"] for a in status["audit"]][-2:] == ["contacted", "declined"]
    assert (await workflow.outbox.get(key))["status"] == "sent"
    assert await workflow.outbox.process_due() == 0
    assert len(smtp_server.received) == 1


async def test_starttls_required_never_sends_clear(aiohttp_client, workflow_settings,
                                                   patent_index, smtp_server, clock):
    app = web.Application()
    setup(app, replace(workflow_settings, smtp_tls="starttls"),
          recommend=patent_index.recommend, run_worker=False, clock=clock)
    client = await aiohttp_client(app)
    demand = await contacted_demand(client, smtp_server)

    await app[WORKFLOW].outbox.process_due()

    message = await app[WORKFLOW].outbox.get(outbox_id(demand["id"], VISION_PATENT))
    assert message["status"] == "pending"
    assert "STARTTLS" in message["last_error"]
    assert smtp_server.received == []


async def test_sent_for_deleted_demand_settles(client, smtp_server):
    demand = await contacted_demand(client, smtp_server)
    workflow = client.app[WORKFLOW]
    await workflow.es.delete(index=workflow.names.demands, id=demand["id"], refresh=True)

    first = await workflow.outbox.process_due()
    second = await workflow.outbox.process_due()

    message = await workflow.outbox.get(outbox_id(demand["id"], VISION_PATENT))
    assert first == 1
    assert second == 0
    assert message["status"] == "sent"
    assert message["demand_updated"] is True
    assert len(smtp_server.received) == 1
