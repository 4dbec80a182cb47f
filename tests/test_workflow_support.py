"""Fixtures of the demand-workflow tests: a small patents index with a real BM25
ranking, an SMTP server on 127.0.0.1 that records what arrives, and settings."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiosmtpd.controller import Controller
from elasticsearch import Elasticsearch

from mappings import load_mapping
from patentmatch.config import Settings
from search_api.workflow import setup

API_KEY = "operator-key-for-tests"
COMPANY = "(주)비전테크"
TTO_EMAIL = "tlo@univ-a.example"

PATENTS = [
    {"application_number": "1020180173848", "title": "딥러닝을 이용한 영상 인식 장치",
     "abstract": "합성곱 신경망으로 영상 속 객체를 인식하는 딥러닝 장치", "applicants": ["가나대학교산학협력단"]},
    {"application_number": "1020190012345", "title": "영상 인식 기반 불량 검사 방법",
     "abstract": "카메라 영상과 딥러닝 모델로 제품 불량을 검사한다", "applicants": ["주식회사 한빛전자"]},
    {"application_number": "1020200054321", "title": "딥러닝 음성 인식 시스템",
     "abstract": "음성 신호를 딥러닝으로 인식하는 시스템", "applicants": ["다라연구원", "가나대학교산학협력단"]},
    {"application_number": "1020150099999", "title": "공기정화장치",
     "abstract": "필터와 팬으로 실내 공기를 정화하는 장치", "applicants": ["(주)맑은공기"]},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    """One message as the SMTP server got it."""

    mail_from: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class RecordingHandler:
    """aiosmtpd handler that stores every message and refuses chosen recipients with 550."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = RecordingHandler()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)


@pytest.fixture()
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@dataclass
class PatentIndex:
    alias: str
    es: Elasticsearch

    def recommend(self, demand: dict[str, Any]) -> list[dict[str, Any]]:
        """Rank patents by BM25 on title and abstract: a real, small ranking."""
        text = " ".join(filter(None, [demand["title"], demand.get("description")]))
        reply = self.es.search(index=self.alias, size=demand.get("k") or 10,
                               query={"multi_match": {"query": text,
                                                      "fields": ["title^2", "abstract"]}})
        return [{"application_number": hit["_id"], "title": hit["_source"]["title"],
                 "applicant": "|".join(hit["_source"]["applicants"]),
                 "score": hit["_score"]} for hit in reply["hits"]["hits"]]


@pytest.fixture()
def patent_index(es_client, index_prefix) -> PatentIndex:
    alias = f"{index_prefix}-patents"
    body = load_mapping("patents.json")
    es_client.indices.create(index=f"{alias}-v1", settings=body["settings"],
                             mappings=body["mappings"], aliases={alias: {}})
    for patent in PATENTS:
        es_client.index(index=alias, id=patent["application_number"],
                        document={**patent, "applicant": "|".join(patent["applicants"])})
    es_client.indices.refresh(index=alias)
    return PatentIndex(alias, es_client)


@pytest.fixture()
def workflow_settings(es_url, index_prefix, patent_index, smtp_server) -> Settings:
    return Settings(es_url=es_url, demands_index=f"{index_prefix}-demands",
                    index_alias=patent_index.alias, api_key=API_KEY,
                    smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_tls="none",
                    mail_from="매칭서비스 <noreply@patentmatch.example>",
                    public_url="https://match.example")


def reply_links(body: str) -> dict[str, str]:
    """Return {answer: URL path} of the reply links in an e-mail body."""
    links = {}
    for label, answer in (("상담 의향 있음", "interested"), ("상담 의향 없음", "declined")):
        match = re.search(rf"{label}: https://match\.example(/v1/replies/\S+)", body)
        if match:
            links[answer] = match.group(1)
    return links


class FakeClock:
    """A UTC clock that moves only when the test advances it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture()
async def client(aiohttp_client, workflow_settings, patent_index, clock):
    """Test client of a bare app with only the workflow; e-mail is sent by process_due()."""
    app = web.Application()
    setup(app, workflow_settings, recommend=patent_index.recommend, run_worker=False,
          clock=clock)
    return await aiohttp_client(app)


OPERATOR = {"X-API-Key": API_KEY}


async def create_demand(client, **overrides) -> dict[str, Any]:
    body = {"title": "딥러닝 영상 인식", "description": "공장 제품 불량을 카메라로 검사",
            "company": COMPANY, "email": "cto@vision.example", "k": 3, **overrides}
    response = await client.post("/v1/demands", json=body)
    assert response.status == 201, await response.text()
    return await response.json()


async def select(client, demand: dict[str, Any], numbers: list[str], status: int = 200):
    response = await client.post(f"/v1/demands/{demand['id']}/selection",
                                 json={"application_numbers": numbers},
                                 headers={"X-Demand-Token": demand["access_token"]})
    assert response.status == status, await response.text()
    return await response.json()


async def import_contacts(client, csv_text: str, status: int = 200) -> dict[str, Any]:
    response = await client.post("/v1/contacts/import", data=csv_text.encode("utf-8"),
                                 headers={**OPERATOR, "Content-Type": "text/csv"})
    assert response.status == status, await response.text()
    return await response.json()


async def operator_get(client, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=OPERATOR)
    assert response.status == 200, await response.text()
    return await response.json()
