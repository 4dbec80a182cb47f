"""Dashboard pieces of the demand workflow: the plain functions behind the
"request transfer talk" form and the status page, against the workflow API served
on 127.0.0.1 with the real Elasticsearch."""

from __future__ import annotations

import asyncio
import threading

import pytest
from aiohttp import web
from dash import html
from test_workflow_support import (  # noqa: F401  (fixtures)
    PATENTS,
    free_port,
    patent_index,
    smtp_server,
    workflow_settings,
)

from dashboard import ids, workflow
from dashboard.api_client import ApiClient
from dashboard.layout import build_layout
from dashboard.pages import demand_status
from search_api.workflow import setup

VISION, INSPECTION, AIR = (PATENTS[i]["application_number"] for i in (0, 1, 3))
SEARCH = {"title": "딥러닝 영상 인식", "description": "제품 불량 검사", "k": 3,
          "filters": {"six_t": []}, "mode": None}


@pytest.fixture()
def api(workflow_settings, patent_index):
    """The workflow API on a real port, served by a loop in a background thread."""
    loop = asyncio.new_event_loop()
    app = web.Application()
    setup(app, workflow_settings, recommend=patent_index.recommend, run_worker=False)
    runner = web.AppRunner(app)
    port = free_port()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    run(runner.setup())
    run(web.TCPSite(runner, "127.0.0.1", port).start())
    client = ApiClient(f"http://127.0.0.1:{port}", timeout_s=60)
    yield client
    client.close()
    run(runner.cleanup())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


def texts(component) -> str:
    """Return all text inside a Dash component tree."""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(texts(c) for c in component)
    children = getattr(component, "children", None)
    return "" if children is None else texts(children)


##### the request form


@pytest.mark.parametrize(("search", "checked", "company", "email", "field"), [
    (None, [VISION], "회사", "a@b.example", "search"),
    (SEARCH, [], "회사", "a@b.example", "patents"),
    (SEARCH, [str(n) for n in range(21)], "회사", "a@b.example", "patents"),
    (SEARCH, [VISION], "  ", "a@b.example", "company"),
    (SEARCH, [VISION], "회사", "no-at-sign", "email"),
    ({**SEARCH, "title": "가" * 201}, [VISION], "회사", "a@b.example", "search"),
])
def test_build_demand_rejects(search, checked, company, email, field):
    with pytest.raises(workflow.TransferInputError) as caught:
        workflow.build_demand(search, checked, company, email)

    assert caught.value.field == field


def test_build_demand_copies_search():
    body, numbers = workflow.build_demand(SEARCH, [VISION, VISION, INSPECTION], " 비전테크 ",
                                          "cto@vision.example")

    assert body == {"title": "딥러닝 영상 인식", "description": "제품 불량 검사", "k": 3,
                    "filters": {"six_t": []}, "company": "비전테크",
                    "email": "cto@vision.example"}
    assert numbers == [VISION, INSPECTION]


def test_request_transfer_creates_and_selects(api):
    body, numbers = workflow.build_demand(SEARCH, [VISION, AIR], "비전테크", "cto@vision.example")

    outcome = workflow.request_transfer(api, body, numbers)
    demand, problem = demand_status.fetch_status(api, outcome.demand_id, outcome.token)

    assert outcome.ok, outcome.message
    assert outcome.skipped == [AIR]
    assert outcome.token in outcome.message
    assert AIR in outcome.message
    assert outcome.status_path == demand_status.status_link(outcome.demand_id, outcome.token)
    assert problem is None
    assert demand["status"] == "selected"
    assert [e["application_number"] for e in demand["selection"]] == [VISION]


def test_request_transfer_nothing_recommended(api):
    body, numbers = workflow.build_demand(SEARCH, [AIR], "비전테크", "cto@vision.example")

    outcome = workflow.request_transfer(api, body, numbers)

    assert not outcome.ok
    assert "추천 목록에 없습니다" in outcome.message
    assert outcome.demand_id is not None


def test_request_transfer_api_error_and_down(api):
    invalid = workflow.request_transfer(api, {"title": "딥", "company": "c",
                                              "email": "a@b.example"}, [VISION])
    down = workflow.request_transfer(ApiClient(f"http://127.0.0.1:{free_port()}"),
                                     {"title": "딥러닝"}, [VISION])

    assert not invalid.ok
    assert "(HTTP 400) [title]" in invalid.message
    assert not down.ok
    assert "연결할 수 없습니다" in down.message


def test_submit_shows_form_errors_without_calling_api():
    elements = workflow.submit(ApiClient("http://127.0.0.1:9"), {"request": SEARCH}, [],
                               "회사", "a@b.example")

    assert "특허를 결과 표에서 체크하세요" in texts(elements)


def test_outcome_links_to_status_page():
    outcome = workflow.TransferOutcome(True, "ok", "0123456789abcdef", "tok",
                                       demand_status.status_link("0123456789abcdef", "tok"))

    link = workflow.outcome_elements(outcome)[0].children[-1]

    assert link.href == "/demand-status#id=0123456789abcdef&token=tok"


##### the status page


def test_fragment_roundtrip():
    link = demand_status.status_link("0123456789abcdef", "a+b/c=")

    assert demand_status.parse_fragment(link.split("#", 1)[1]) == ("0123456789abcdef", "a+b/c=")
    assert demand_status.parse_fragment(None) == ("", "")


@pytest.mark.parametrize(("demand_id", "token", "field"), [
    ("", "t", "id"), ("short", "t", "id"), ("0123456789abcdef", " ", "token")])
def test_status_inputs_checked(demand_id, token, field):
    with pytest.raises(demand_status.StatusInputError) as caught:
        demand_status.check_inputs(demand_id, token)

    assert caught.value.field == field


def test_status_page_shows_progress(api):
    body, numbers = workflow.build_demand(SEARCH, [VISION], "비전테크", "cto@vision.example")
    outcome = workflow.request_transfer(api, body, numbers)

    shown = texts(demand_status.show_status(api, outcome.demand_id, outcome.token))
    wrong = texts(demand_status.show_status(api, outcome.demand_id, "wrong-token"))
    unknown = texts(demand_status.show_status(api, "0" * 16, outcome.token))

    assert "현재 상태:  특허 선택됨 (권리자 연락 준비 중)" in shown
    assert "권리자 연락처 확인 중" in shown
    assert "수요 접수" in shown
    assert "상태 변경: 추천 특허 준비됨" in shown
    assert "접근 토큰이 이 요청과 맞지 않습니다" in wrong
    assert "찾을 수 없습니다" in unknown


def test_status_view_answers():
    view = texts(demand_status.status_view({
        "title": "딥러닝", "company": "비전테크", "status": "interested",
        "created_at": "2026-03-02T09:00:00Z",
        "selection": [{"application_number": VISION, "title": "영상 장치",
                       "contact_status": "sent", "answer": "interested",
                       "kipris_url": "https://kpat.kipris.or.kr/x"}],
        "timeline": []}))

    assert "권리자가 상담 의향을 밝힘" in view
    assert "상담 의향 있음" in view
    assert "2026-03-02 09:00 UTC" in view


##### wiring


def test_page_styles():
    assert workflow.page_styles("/demand-status") == ({"display": "none"}, {})
    assert workflow.page_styles("/") == ({}, {"display": "none"})
    assert workflow.page_styles(None) == ({}, {"display": "none"})


def test_install_layout_fills_extensions():
    layout = workflow.install_layout(build_layout("http://127.0.0.1:8080"))

    assert workflow._find(layout, workflow.BUTTON) is not None
    assert workflow._find(layout, ids.EXTENSIONS).children[0].id == "transfer-card"
    assert workflow._find(layout, demand_status.BUTTON) is not None
    with pytest.raises(ValueError, match="page-extensions"):
        workflow.install_layout(html.Div("no container"))


def test_dashboard_app_registers_workflow():
    from dashboard.app import create_dash_app
    from patentmatch.config import Settings

    app = create_dash_app(Settings())

    outputs = " ".join(app.callback_map)
    assert f"{workflow.RESULT}.children" in outputs
    assert f"{demand_status.RESULT}.children" in outputs
    assert f"{workflow.MAIN_PAGE}.style" in outputs
