"""Browser tests of the dashboard: headless Chromium, the real API and Elasticsearch.

One module-scoped setup ingests a slice of the bundled sample with the shipped
synthetic scores under a unique alias and encodes it with the tiny test encoder.
It then builds the vector store and serves the real search API on a free
127.0.0.1 port. Each test starts the dashboard with ``dash_duo`` and drives it
in Chromium.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from dashboard import ids
from dashboard.app import create_dash_app
from ingest.synthetic_scores import DEFAULT_OUTPUT as SYNTHETIC_SCORES
from patentmatch.config import Settings

pytestmark = pytest.mark.browser

QUERY = "딥러닝을 활용한 영상 인식"
SLICE_KEYWORDS = ("영상", "딥러닝", "인공지능", "신경망", "인식", "카메라")
SLICE_EVERY = 12
WAIT_S = 60


@dataclass
class SearchApi:
    """The search API served for the tests."""

    url: str
    alias: str


class ApiThread:
    """Serve an aiohttp application on 127.0.0.1 from a background thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="search-api", daemon=True)

    def _serve(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, access_log=None)
        try:
            self._loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(timeout=300)
        if self._error is not None:
            raise RuntimeError(f"the search API did not start: {self._error}") from self._error
        if not self.url:
            raise RuntimeError("the search API did not start within 300 s")
        return self.url

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=60)


def write_sample_slice(sample: Path, target: Path) -> int:
    """Write the sample's image-recognition patents plus every 12th other one; return the count."""
    count = 0
    with gzip.open(sample, "rt", encoding="utf-8") as source, \
            gzip.open(target, "wt", encoding="utf-8") as sink:
        for index, line in enumerate(source):
            record = json.loads(line)
            title = record.get("title") or ""
            if index % SLICE_EVERY == 0 or any(word in title for word in SLICE_KEYWORDS):
                sink.write(line)
                count += 1
    return count


@pytest.fixture(scope="module")
def search_api(es_url, module_index_prefix, sample_path, tiny_encoder_path,
               tmp_path_factory) -> Iterator[SearchApi]:
    """The real search API over an ingested, encoded slice of the bundled sample."""
    from elasticsearch import Elasticsearch

    from encoder import load_encoder
    from ingest.job import run_ingest
    from search_api.app import create_app
    from search_api.indexing import run_indexing
    from search_api.vectors import VectorStore, store_dir

    work = tmp_path_factory.mktemp("dashboard-api")
    settings = Settings(es_url=es_url, index_alias=f"{module_index_prefix}-patents",
                        cache_dir=work / "cache")
    slice_path = work / "sample-slice.jsonl.gz"
    assert write_sample_slice(sample_path, slice_path) > 500

    es = Elasticsearch(es_url, request_timeout=120)
    try:
        summary = run_ingest([slice_path], settings, scores=[SYNTHETIC_SCORES], client=es,
                             show_progress=False)
        assert summary.scores_applied > 0, summary
        encoder = load_encoder(tiny_encoder_path, settings)
        run_indexing(settings, encoder, es, rebuild=True)
    finally:
        es.close()
    store = VectorStore.load(store_dir(settings.cache_dir, settings.index_alias), use_gpu=False)
    server = ApiThread(create_app(settings, encoder=encoder, store=store))
    url = server.start()
    try:
        warm_up(url)
        yield SearchApi(url, settings.index_alias)
    finally:
        server.stop()


def warm_up(url: str, parallel: int = 6) -> None:
    """Send parallel requests so the API starts its worker threads now.

    dash_duo's runner stops the app by raising SystemExit in every thread started
    while the app ran. Worker threads that the API started lazily during a test
    would die with it, so they are started here, before any test.
    """
    from concurrent.futures import ThreadPoolExecutor

    def call(index: int) -> None:
        requests.post(f"{url}/v1/search", json={"title": QUERY, "k": 5 + index},
                      timeout=300).raise_for_status()
        requests.get(f"{url}/v1/stats/scores", params={"six_t": "IT"},
                     timeout=300).raise_for_status()

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(call, range(parallel)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dashboard(dash_duo, api_url: str, query: str = "") -> None:
    app = create_dash_app(Settings(api_url=api_url, request_timeout_s=60.0))
    dash_duo.start_server(app, port=free_port())
    if query:
        dash_duo.driver.get(dash_duo.server_url + "/" + query)
    dash_duo.wait_for_element(f"#{ids.TITLE}", timeout=WAIT_S)


def api_search(api: SearchApi, **request) -> dict:
    reply = requests.post(f"{api.url}/v1/search", json=request, timeout=120)
    reply.raise_for_status()
    return reply.json()


def search_in_browser(dash_duo, title: str) -> None:
    box = dash_duo.find_element(f"#{ids.TITLE}")
    box.send_keys(title)
    box.send_keys(Keys.ENTER)
    dash_duo.wait_for_element("#search-done", timeout=WAIT_S)


def table_column(dash_duo, column: str) -> list[str]:
    cells = dash_duo.find_elements(f"#{ids.RESULTS_TABLE} td[data-dash-column='{column}']")
    return [cell.text for cell in cells]


def wait_for_rows(dash_duo, count: int) -> None:
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: len(table_column(dash_duo, "application_number")) == count,
        message=f"the results table never showed {count} rows",
    )


def figure_data(dash_duo, graph_id: str) -> list[dict]:
    """Return the traces Plotly drew in a dcc.Graph (JSON-ready fields only)."""
    return dash_duo.driver.execute_script(
        "const div = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "if (!div || !div.data) { return []; }"
        "return div.data.map(t => ({type: t.type || 'scatter', name: t.name,"
        " y: t.y ? Array.from(t.y) : [], x: t.x ? Array.from(t.x) : [],"
        " size: t.marker ? t.marker.size : null}));",
        f"#{graph_id}",
    )


def expected_cell(value: float | None, digits: int) -> str:
    return "없음" if value is None else f"{value:.{digits}f}"


def test_search_rows_pagination_and_link(dash_duo, search_api):
    reply = api_search(search_api, title=QUERY, k=20)
    results = reply["results"]
    assert len(results) == 20
    start_dashboard(dash_duo, search_api.url)

    search_in_browser(dash_duo, QUERY)
    wait_for_rows(dash_duo, 10)
    assert "검색 결과 20건" in dash_duo.find_element(f"#{ids.RESULT_COUNT}").text
    assert table_column(dash_duo, "application_number") == \
        [r["application_number"] for r in results[:10]]
    expected_pqi = [expected_cell((r["scores"] or {}).get("pqi"), 2) for r in results[:10]]
    assert table_column(dash_duo, "pqi") == expected_pqi
    titles = table_column(dash_duo, "title")
    assert titles[0] == results[0]["title"]

    link = dash_duo.find_element(f"#{ids.RESULTS_TABLE} td[data-dash-column='kipris'] a")
    assert link.get_attribute("href") == results[0]["kipris_url"]
    assert link.get_attribute("target") == "_blank"

    if any(r["score_source"] == "synthetic" for r in results):
        notice = dash_duo.find_element("#notice-synthetic-scores")
        assert "합성 평가 점수" in notice.text
    if reply["no_close_match"]:
        assert dash_duo.find_element("#notice-no-close-match").is_displayed()

    dash_duo.find_element(f"#{ids.RESULTS_TABLE} button.next-page").click()
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: table_column(dash_duo, "application_number")
        == [r["application_number"] for r in results[10:20]],
        message="page 2 never showed results 11-20",
    )
    assert dash_duo.get_logs() == []


def test_missing_scores_show_as_missing(dash_duo, search_api):
    reply = api_search(search_api, title=QUERY, k=100)
    unscored = [r for r in reply["results"] if r["scores"] is None]
    if not unscored:
        pytest.fail("no unscored patent among 100 results; the slice or the synthetic "
                    "scores changed, pick another query")
    start_dashboard(dash_duo, search_api.url,
                    "?" + urlencode({"title": QUERY, "k": 100}))
    wait_for_rows(dash_duo, 10)
    assert dash_duo.find_element("#notice-missing-scores").is_displayed()

    # Page through until the first unscored patent is on screen.
    target = unscored[0]["application_number"]
    while target not in table_column(dash_duo, "application_number"):
        dash_duo.find_element(f"#{ids.RESULTS_TABLE} button.next-page").click()
        dash_duo.wait_for_element(f"#{ids.RESULTS_TABLE} td[data-dash-column='pqi']")
    row = table_column(dash_duo, "application_number").index(target)
    for column in ("pqi", "rights", "technology", "commercial"):
        assert table_column(dash_duo, column)[row] == "없음", column
    assert dash_duo.get_logs() == []


def test_sorting_by_pqi(dash_duo, search_api):
    reply = api_search(search_api, title=QUERY, k=30)
    start_dashboard(dash_duo, search_api.url, "?" + urlencode({"title": QUERY, "k": 30}))
    wait_for_rows(dash_duo, 10)
    values = [r["scores"]["pqi"] for r in reply["results"] if r["scores"]]
    header = dash_duo.find_element(
        f"#{ids.RESULTS_TABLE} th[data-dash-column='pqi'] .column-header--sort")
    header.click()
    ascending = expected_cell(min(values), 2)
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: table_column(dash_duo, "pqi")[0] == ascending,
        message=f"sorting by PQI never put {ascending} first",
    )
    header = dash_duo.find_element(
        f"#{ids.RESULTS_TABLE} th[data-dash-column='pqi'] .column-header--sort")
    header.click()
    descending = expected_cell(max(values), 2)
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: table_column(dash_duo, "pqi")[0] == descending,
        message=f"sorting by PQI descending never put {descending} first",
    )
    assert dash_duo.get_logs() == []


def test_checkboxes_drive_charts(dash_duo, search_api):
    reply = api_search(search_api, title=QUERY, k=20)
    scored = [i for i, r in enumerate(reply["results"][:10]) if r["scores"]]
    assert len(scored) >= 2, "fewer than two scored patents on page 1"
    first, second = (reply["results"][i] for i in scored[:2])
    start_dashboard(dash_duo, search_api.url, "?" + urlencode({"title": QUERY}))
    wait_for_rows(dash_duo, 10)

    checkboxes = dash_duo.find_elements(f"#{ids.RESULTS_TABLE} td.dash-select-cell input")
    checkboxes[scored[0]].click()
    checkboxes[scored[1]].click()
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: len([t for t in figure_data(dash_duo, ids.BAR_CHART) if t["type"] == "bar"]) == 2,
        message="the bar chart never showed the two checked patents",
    )
    bars = [t for t in figure_data(dash_duo, ids.BAR_CHART) if t["type"] == "bar"]
    assert bars[0]["name"].startswith(first["application_number"])
    assert bars[1]["name"].startswith(second["application_number"])
    for bar in bars:
        assert all(v is None or 0.0 <= v <= 1.0 for v in bar["y"])

    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: any(t["type"] == "violin" for t in figure_data(dash_duo, ids.VIOLIN_CHART)),
        message="the violin plots never appeared",
    )
    stats = requests.get(f"{search_api.url}/v1/stats/scores",
                         params={"six_t": second["six_t"]}, timeout=60).json()
    assert stats["scores"]["pqi"]["count"] > 0

    # A real mouse move: Plotly emits plotly_hover (and dcc.Graph sets hoverData)
    # only for pointer events, not for its programmatic Plotly.Fx.hover.
    second_bars = dash_duo.find_elements(f"#{ids.BAR_CHART} g.trace.bars")[1]
    ActionChains(dash_duo.driver).move_to_element(
        second_bars.find_elements(By.CSS_SELECTOR, "path")[0]).perform()
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: any(t["type"] == "scatter" and t["size"] == 18
                      and t["name"] == second["application_number"]
                      for t in figure_data(dash_duo, ids.VIOLIN_CHART)),
        message="hovering the second patent's bar never highlighted it in the violins",
    )
    highlighted = [t for t in figure_data(dash_duo, ids.VIOLIN_CHART)
                   if t["type"] == "scatter" and t["size"] == 18]
    assert {t["name"] for t in highlighted} == {second["application_number"]}

    checkboxes = dash_duo.find_elements(f"#{ids.RESULTS_TABLE} td.dash-select-cell input")
    checkboxes[scored[0]].click()
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: len([t for t in figure_data(dash_duo, ids.BAR_CHART) if t["type"] == "bar"]) == 1,
        message="unchecking a patent never removed its bars",
    )
    assert dash_duo.get_logs() == []


def test_row_click_opens_detail(dash_duo, search_api):
    reply = api_search(search_api, title=QUERY, k=20)
    second = reply["results"][1]
    start_dashboard(dash_duo, search_api.url, "?" + urlencode({"title": QUERY}))
    wait_for_rows(dash_duo, 10)
    dash_duo.find_elements(f"#{ids.RESULTS_TABLE} td[data-dash-column='title']")[1].click()
    dash_duo.wait_for_text_to_equal("#detail-title", second["title"], timeout=WAIT_S)
    panel = dash_duo.find_element(f"#{ids.DETAIL_PANEL}").text
    assert second["application_number"] in panel
    assert "초록 유사도" in panel
    assert "제목 유사도" in panel
    assert f"{second['abstract_similarity']:.3f}" in panel
    assert (second["abstract"] or "")[:30] in dash_duo.find_element("#detail-abstract").text
    assert dash_duo.find_element("#detail-kipris-link").get_attribute("href") == \
        second["kipris_url"]
    assert dash_duo.get_logs() == []


def test_export_downloads_csv(dash_duo, search_api):
    reply = api_search(search_api, title=QUERY, k=20)
    start_dashboard(dash_duo, search_api.url, "?" + urlencode({"title": QUERY}))
    wait_for_rows(dash_duo, 10)
    dash_duo.find_element(f"#{ids.EXPORT_BUTTON}").click()
    folder = Path(dash_duo.download_path)
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda _: [p for p in folder.glob("*.csv")],
        message=f"no CSV file arrived in {folder}",
    )
    data = next(folder.glob("*.csv")).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("순위,출원번호,특허명")
    assert len(lines) == 1 + len(reply["results"])
    assert reply["results"][0]["application_number"] in lines[1]
    assert dash_duo.get_logs() == []


def test_url_restores_search(dash_duo, search_api):
    query = "?" + urlencode([("title", QUERY), ("six_t", "IT"), ("k", "15")])
    reply = api_search(search_api, title=QUERY, k=15, filters={"six_t": ["IT"]})
    start_dashboard(dash_duo, search_api.url, query)
    wait_for_rows(dash_duo, 10)
    assert dash_duo.find_element(f"#{ids.TITLE}").get_attribute("value") == QUERY
    assert dash_duo.find_element(f"#{ids.K}").get_attribute("value") == "15"
    assert set(table_column(dash_duo, "six_t")) == {"IT"}
    assert table_column(dash_duo, "application_number") == \
        [r["application_number"] for r in reply["results"][:10]]

    # A search from the form writes its own URL.
    box = dash_duo.find_element(f"#{ids.TITLE}")
    dash_duo.clear_input(box)
    box.send_keys("리튬 이차전지 전극")
    dash_duo.find_element(f"#{ids.SEARCH_BUTTON}").click()
    WebDriverWait(dash_duo.driver, WAIT_S).until(
        lambda driver: "%EB%A6%AC%ED%8A%AC" in driver.current_url,
        message="the URL never changed to the new search",
    )
    assert "six_t=IT" in dash_duo.driver.current_url
    share = dash_duo.find_element(f"#{ids.SHARE_LINK}").get_attribute("href")
    assert share == dash_duo.driver.current_url
    assert dash_duo.get_logs() == []


def test_empty_result_state(dash_duo, search_api):
    query = "?" + urlencode({"title": QUERY, "from": 1950, "to": 1955})
    start_dashboard(dash_duo, search_api.url, query)
    notice = dash_duo.wait_for_element("#notice-empty-result", timeout=WAIT_S)
    assert "조건에 맞는 특허가 없습니다" in notice.text
    assert table_column(dash_duo, "application_number") == []
    assert dash_duo.find_element(f"#{ids.EXPORT_BUTTON}").get_attribute("disabled") == "true"
    assert dash_duo.get_logs() == []


def test_form_error_keeps_results(dash_duo, search_api):
    start_dashboard(dash_duo, search_api.url, "?" + urlencode({"title": QUERY}))
    wait_for_rows(dash_duo, 10)
    shown = table_column(dash_duo, "application_number")

    dash_duo.clear_input(dash_duo.find_element(f"#{ids.TITLE}"))
    dash_duo.find_element(f"#{ids.SEARCH_BUTTON}").click()
    message = dash_duo.wait_for_element("#form-error-message", timeout=WAIT_S)
    assert "수요기술명을 입력하세요" in message.text
    assert table_column(dash_duo, "application_number") == shown

    dash_duo.find_element(f"#{ids.TITLE}").send_keys(QUERY)
    year = dash_duo.find_element(f"#{ids.YEAR_FROM}")
    year.send_keys("1900" + Keys.ENTER)
    dash_duo.wait_for_contains_text("#form-error-message", "출원연도", timeout=WAIT_S)
    assert table_column(dash_duo, "application_number") == shown
    assert dash_duo.get_logs() == []


def test_api_down_message(dash_duo):
    start_dashboard(dash_duo, f"http://127.0.0.1:{free_port()}")
    box = dash_duo.find_element(f"#{ids.TITLE}")
    box.send_keys(QUERY + Keys.ENTER)
    error = dash_duo.wait_for_element("#search-error", timeout=WAIT_S)
    assert "연결할 수 없습니다" in error.text
    assert "Traceback" not in dash_duo.driver.page_source
    assert table_column(dash_duo, "application_number") == []
    assert dash_duo.get_logs() == []


class GatedProxy:
    """An HTTP proxy to the API that delays each search until ``gate`` is set.

    It makes a slow search without sleeping: the test checks the loading state,
    then sets the gate and the real API's reply goes through.
    """

    def __init__(self, target: str) -> None:
        self.gate = threading.Event()
        self.waiting = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.path.startswith("/v1/search"):
                    proxy.waiting.set()
                    proxy.gate.wait(timeout=WAIT_S * 5)
                reply = requests.request(self.command, target + self.path, data=body,
                                         headers={"Content-Type": "application/json"},
                                         timeout=120)
                self.send_response(reply.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = _forward
            do_POST = _forward

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GatedProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_slow_search_shows_loading(dash_duo, search_api):
    with GatedProxy(search_api.url) as proxy:
        start_dashboard(dash_duo, proxy.url)
        box = dash_duo.find_element(f"#{ids.TITLE}")
        box.send_keys(QUERY + Keys.ENTER)
        assert proxy.waiting.wait(timeout=WAIT_S), "the search never reached the API"

        dash_duo.wait_for_element("#search-loading .dash-spinner", timeout=WAIT_S)
        WebDriverWait(dash_duo.driver, WAIT_S).until(
            lambda _: dash_duo.find_element(f"#{ids.SEARCH_BUTTON}").get_attribute("disabled"),
            message="the search button stayed enabled during the search",
        )
        assert table_column(dash_duo, "application_number") == []

        proxy.gate.set()
        dash_duo.wait_for_element("#search-done", timeout=WAIT_S)
        wait_for_rows(dash_duo, 10)
        WebDriverWait(dash_duo.driver, WAIT_S).until(
            lambda _: not dash_duo.find_element(f"#{ids.SEARCH_BUTTON}").get_attribute("disabled"),
            message="the search button stayed disabled after the search",
        )
        assert dash_duo.find_elements("#search-loading .dash-spinner") == []
    assert dash_duo.get_logs() == []
