"""Callback logic as plain functions of component values and an ``ApiClient``.

The search store (``ids.SEARCH_STORE``) contains the outcome of the last search:
``{"query": "?title=...", "request": {...} | None, "reply": {...} | None,
"error": {"kind": ..., "message": ..., "field": ...} | None}``. ``kind`` is
``input`` (the form), ``unavailable`` (API unreachable) or ``api`` (an error status).
``search_step`` never stores an ``input`` outcome: invalid input leaves the last
search on screen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashboard.api_client import ApiClient, ApiError, ApiUnavailable
from dashboard.charts import CategoryStats, StatsFormatError, parse_category_stats
from dashboard.results import Result
from dashboard.search_form import (
    SearchForm,
    SearchInputError,
    build_search_request,
    form_from_inputs,
    form_from_query,
    form_to_query,
)

logger = logging.getLogger(__name__)

SearchOutcome = dict[str, Any]


def unavailable_message(exc: ApiUnavailable) -> str:
    """Return the user's message for an API that cannot be reached."""
    return (f"검색 API({exc.url})에 연결할 수 없습니다: {exc.reason}. "
            "API 서버가 실행 중인지 확인한 뒤 다시 검색하세요.")


def api_error_message(exc: ApiError) -> str:
    """Return the user's message for an error status from the API."""
    if exc.status == 503:
        return f"검색 서비스를 지금 사용할 수 없습니다 (HTTP 503): {exc.message}"
    if exc.status in (400, 413, 422):
        field = f" [{exc.field}]" if exc.field else ""
        return f"검색 요청이 올바르지 않습니다{field}: {exc.message}"
    return f"검색 API 오류 (HTTP {exc.status}): {exc.message}"


def run_search(client: ApiClient, form: SearchForm) -> SearchOutcome:
    """Check the form, send the search and return the search store's new value."""
    outcome: SearchOutcome = {"query": form_to_query(form), "request": None,
                              "reply": None, "error": None}
    try:
        request = build_search_request(form)
    except SearchInputError as exc:
        outcome["error"] = {"kind": "input", "message": exc.message, "field": exc.field}
        return outcome
    outcome["request"] = request
    try:
        reply = client.search(request)
    except ApiUnavailable as exc:
        outcome["error"] = {"kind": "unavailable", "message": unavailable_message(exc),
                            "field": None}
        return outcome
    except ApiError as exc:
        outcome["error"] = {"kind": "api", "message": api_error_message(exc),
                            "field": exc.field}
        return outcome
    if not isinstance(reply.get("results"), list):
        outcome["error"] = {"kind": "api", "field": None,
                            "message": "검색 API의 응답에 results 목록이 없습니다."}
        return outcome
    outcome["reply"] = reply
    logger.info("search %r returned %d results in %s ms", request["title"],
                len(reply["results"]), reply.get("took_ms"))
    return outcome


def form_for_url(url_search: str | None, last_query: str | None) -> SearchForm | None:
    """Return the form to search with when the URL changes, or None to do nothing.

    Nothing happens when the URL names no search, or names the search already on
    screen (the dashboard itself writes each search's URL after running it).
    """
    if not url_search or url_search == last_query:
        return None
    return form_from_query(url_search)


@dataclass(frozen=True)
class SearchStep:
    """Changes the search callback makes; None leaves that part of the page as it is."""

    outcome: SearchOutcome | None
    form: SearchForm | None
    url_query: str | None
    form_error: str


def search_step(
    client: ApiClient,
    from_url: bool,
    url_search: str | None,
    raw_form: list[Any],
    previous: SearchOutcome | None,
) -> SearchStep | None:
    """Decide and run the search for a button press, an Enter or a URL change.

    Args:
        from_url: the URL changed (or the page loaded) rather than the form.
        url_search: the URL's query string.
        raw_form: the form components' values, in ``form_from_inputs`` order.
        previous: the search store's current value.

    Returns:
        None when nothing should happen (the URL names no search or the one on
        screen). Invalid input leaves the results as they are and only sets
        ``form_error``. A search from the form writes its query into the URL once
        the API has returned results. A search from the URL fills the form.
    """
    if from_url:
        form = form_for_url(url_search, (previous or {}).get("query"))
        if form is None:
            return None
    else:
        try:
            form = form_from_inputs(*raw_form)
        except SearchInputError as exc:
            return SearchStep(None, None, None, exc.message)

    outcome = run_search(client, form)
    error = outcome["error"]
    if error and error["kind"] == "input":
        return SearchStep(None, form if from_url else None, None, error["message"])
    url_query = None if from_url or outcome["reply"] is None else outcome["query"]
    return SearchStep(outcome, form if from_url else None, url_query, "")


def search_results(outcome: SearchOutcome | None) -> list[Result]:
    """Return the results in the search store, or an empty list."""
    if not outcome or not outcome.get("reply"):
        return []
    return list(outcome["reply"].get("results") or [])


def checked_patents(results: list[Result], selected_ids: list[str] | None) -> list[Result]:
    """Return the checked results in the order they were checked."""
    by_number = {str(r.get("application_number")): r for r in results}
    return [by_number[number] for number in selected_ids or [] if number in by_number]


class ScoreStatsCache:
    """Score statistics per 6T category, fetched from the API once per ``ttl_s``.

    One cache serves every user of a dashboard process, so checking patents does
    not send the statistics back and forth with the browser. The statistics only
    change when patents or scores are ingested, so a few minutes of delay is
    harmless. A category that failed to load is not cached.

    Args:
        client: the API client.
        ttl_s: seconds a category's statistics are kept, default 300.
        clock: monotonic time source, replaceable in tests.
    """

    def __init__(self, client: ApiClient, ttl_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s < 0:
            raise ValueError(f"ttl_s must not be negative, found {ttl_s!r}")
        self.client = client
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, CategoryStats]] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[str, threading.Lock] = {}

    def get(self, categories: list[str]) -> tuple[dict[str, CategoryStats], list[str]]:
        """Return the statistics of ``categories`` and one user message per failure.

        Two callbacks that ask for the same missing category at once cause one
        request: the second waits for the first.
        """
        found: dict[str, CategoryStats] = {}
        problems: list[str] = []
        for six_t in sorted(set(categories)):
            try:
                stats = self._fresh(six_t) or self._fetch_once(six_t)
            except ApiUnavailable as exc:
                # The other categories would fail the same way.
                problems.append(unavailable_message(exc))
                break
            except ApiError as exc:
                problems.append(f"{six_t} 분류의 점수 분포를 읽지 못했습니다: "
                                f"{api_error_message(exc)}")
                continue
            except StatsFormatError as exc:
                logger.warning("invalid stats reply for %s: %s", six_t, exc)
                problems.append(f"{six_t} 분류의 점수 분포 형식이 올바르지 않습니다: {exc}")
                continue
            found[six_t] = stats
        return found, problems

    def _fresh(self, six_t: str) -> CategoryStats | None:
        with self._lock:
            entry = self._entries.get(six_t)
        if entry is None or self._clock() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def _fetch_lock(self, six_t: str) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(six_t, threading.Lock())

    def _fetch_once(self, six_t: str) -> CategoryStats:
        with self._fetch_lock(six_t):
            stats = self._fresh(six_t)
            if stats is None:
                stats = parse_category_stats(self.client.score_stats(six_t))
                with self._lock:
                    self._entries[six_t] = (self._clock(), stats)
            return stats


def patent_document(client: ApiClient, application_number: str) -> tuple[dict[str, Any] | None, str | None]:
    """Return (document, None), or (None, a user message) when it cannot be read."""
    try:
        return client.patent(application_number), None
    except ApiUnavailable as exc:
        return None, unavailable_message(exc)
    except ApiError as exc:
        return None, f"특허 {application_number}의 상세 정보를 읽지 못했습니다: {api_error_message(exc)}"
