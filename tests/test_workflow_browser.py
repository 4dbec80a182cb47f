"""The workflow's dashboard pieces in headless Chromium: the transfer-talk request on
checked patents and the status page, against the search API app (BM25 mode) with
the workflow, the real Elasticsearch and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import pytest
import requests
from aiohttp import web
from selenium.webdriver.common.keys import Keys
from test_api_support import APPLICANTS, corpus, encoder, search_settings  # noqa: F401
from test_workflow_support import API_KEY, free_port, smtp_server  # noqa: F401

from dashboard import ids, workflow
from dashboard.app import create_dash_app
from dashboard.pages import demand_status
from patentmatch.config import Settings
from search_api.app import create_app

pytestmark = pytest.mark.browser

WAIT_S = 60


@pytest.fixture()
def api_url(search_settings, corpus, index_prefix, smtp_server):
    """The search API with the workflow, served from a background thread."""
    settings = replace(search_settings, demands_index=f"{index_prefix}-demands",
                       api_key=API_KEY, max_request_bytes=64 * 1024, request_timeout_s=60.0,
                       smtp_host="127.0.0.1", smtp_port=smtp_server.port)
    app = create_app(settings, load_models=False, default_mode="bm25")
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    port = free_port()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    run(runner.setup())
    run(web.TCPSite(runner, "127.0.0.1", port).start())
    url = f"http://127.0.0.1:{port}"
    contacts = "applicant,email\n" + "".join(
        f"{name},tlo{i}@applicant.example\n" for i, name in enumerate(APPLICANTS))
    reply = requests.post(f"{url}/v1/contacts/import", data=contacts.encode("utf-8"),
                          headers={"X-API-Key": API_KEY}, timeout=60)
    reply.raise_for_status()
    yield url
    run(runner.cleanup())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


def test_request_transfer_and_follow_status(dash_duo, api_url, smtp_server):
    app = create_dash_app(Settings(api_url=api_url, request_timeout_s=60.0))
    dash_duo.start_server(app, port=free_port())
    dash_duo.wait_for_element(f"#{ids.TITLE}", timeout=WAIT_S)

    box = dash_duo.find_element(f"#{ids.TITLE}")
    box.send_keys("딥러닝 영상 인식")
    box.send_keys(Keys.ENTER)
    dash_duo.wait_for_element("#search-done", timeout=WAIT_S)
    checkboxes = dash_duo.find_elements(f"#{ids.RESULTS_TABLE} td.dash-select-cell input")
    checkboxes[0].click()
    checkboxes[1].click()
    dash_duo.find_element(f"#{workflow.COMPANY}").send_keys("(주)비전테크")
    dash_duo.find_element(f"#{workflow.EMAIL}").send_keys("cto@vision.example")
    dash_duo.find_element(f"#{workflow.BUTTON}").click()
    link = dash_duo.wait_for_element("#transfer-status-link", timeout=WAIT_S)
    message = dash_duo.find_element(f"#{workflow.RESULT}").text
    link.click()
    label = dash_duo.wait_for_element("#demand-status-label", timeout=WAIT_S)

    assert "특허 2건의 권리자에게 상담 요청을 보냅니다" in message
    assert dash_duo.driver.current_url.split("#")[0].endswith(demand_status.PATH)
    assert label.text in ("특허 선택됨 (권리자 연락 준비 중)", "권리자에게 연락함")
    assert not dash_duo.find_element(f"#{ids.TITLE}").is_displayed()
    rows = dash_duo.find_elements("#demand-status-patents tbody tr")
    assert len(rows) == 2
    deadline = time.monotonic() + WAIT_S
    while len(smtp_server.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(smtp_server.received) == 2
    dash_duo.find_element(f"#{demand_status.BUTTON}").click()
    dash_duo.wait_for_text_to_equal("#demand-status-label", "권리자에게 연락함", timeout=WAIT_S)
    assert dash_duo.get_logs() == []
