"""E-mail to rights holders: the message on a real SMTP server, the outbox through
an outage, restarts and rejections, and the reply links; real Elasticsearch."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from search_api.workflow import WORKFLOW, RetryPolicy, setup
from search_api.workflow.service import outbox_id
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
