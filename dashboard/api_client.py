"""HTTP client of the search API, the dashboard's only way to reach the data.

Errors come in two kinds so the dashboard can word them for the user.
``ApiUnavailable`` means no usable reply arrived (connection refused, timeout,
a reply that is not the API's JSON). ``ApiError`` means the API returned an
error status with its ``{"error": {...}}`` body.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote

import requests

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]


class ApiUnavailable(RuntimeError):
    """The API could not be reached or did not return its JSON."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"the search API at {url} is unavailable: {reason}")
        self.url = url
        self.reason = reason


class ApiError(RuntimeError):
    """The API returned an error status."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        detail = f" (field {field!r})" if field else ""
        super().__init__(f"the search API returned {status}: {message}{detail}")
        self.status = status
        self.message = message
        self.field = field


class ApiClient:
    """Blocking client of the search API's JSON endpoints.

    Args:
        base_url: the API's URL, e.g. ``http://127.0.0.1:8080``.
        timeout_s: time limit of one request, in seconds.
    """

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"api_url must start with http:// or https://, found {base_url!r}"
            )
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, found {timeout_s!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        # Dash runs callbacks on several threads; requests.Session is not
        # documented as thread-safe, so each thread gets its own.
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def search(self, request: JsonObject) -> JsonObject:
        """Send ``POST /v1/search`` and return the reply."""
        return self._call("POST", "/v1/search", json=request)

    def score_stats(self, six_t: str) -> JsonObject:
        """Return the score distributions of one 6T category (``GET /v1/stats/scores``)."""
        return self._call("GET", "/v1/stats/scores", params={"six_t": six_t})

    def patent(self, application_number: str) -> JsonObject:
        """Return one patent document (``GET /v1/patents/{application_number}``)."""
        return self._call("GET", f"/v1/patents/{quote(application_number, safe='')}")

    def create_demand(self, body: JsonObject) -> JsonObject:
        """Register a technology demand (``POST /v1/demands``); the reply has its id and token."""
        return self._call("POST", "/v1/demands", json=body)

    def select_patents(self, demand_id: str, application_numbers: list[str],
                       token: str) -> JsonObject:
        """Select patents of a demand (``POST /v1/demands/{id}/selection``) with its token."""
        return self._call("POST", f"/v1/demands/{quote(demand_id, safe='')}/selection",
                          json={"application_numbers": application_numbers},
                          headers={"X-Demand-Token": token})

    def demand(self, demand_id: str, token: str) -> JsonObject:
        """Return the company's view of a demand (``GET /v1/demands/{id}``) with its token."""
        return self._call("GET", f"/v1/demands/{quote(demand_id, safe='')}",
                          headers={"X-Demand-Token": token})

    def health(self) -> JsonObject:
        """Return the API's health report (``GET /v1/health``)."""
        return self._call("GET", "/v1/health")

    def close(self) -> None:
        """Close the pooled connections of every thread."""
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _call(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        url = self.base_url + path
        try:
            response = self._session().request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.Timeout as exc:
            logger.warning("%s %s timed out after %.1f s", method, url, self.timeout_s)
            raise ApiUnavailable(self.base_url, f"no reply within {self.timeout_s:g} s") from exc
        except requests.RequestException as exc:
            logger.warning("%s %s failed: %s", method, url, exc)
            raise ApiUnavailable(self.base_url, _connection_reason(exc)) from exc

        try:
            body = response.json()
        except ValueError as exc:
            logger.warning("%s %s returned %d with a body that is not JSON",
                           method, url, response.status_code)
            raise ApiUnavailable(
                self.base_url, f"HTTP {response.status_code} with a reply that is not JSON"
            ) from exc

        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                error = {}
            message = str(error.get("message") or response.reason or "unknown error")
            field = error.get("field")
            logger.info("%s %s returned %d: %s", method, url, response.status_code, message)
            raise ApiError(response.status_code, message, str(field) if field else None)
        if not isinstance(body, dict):
            raise ApiUnavailable(self.base_url, "the reply is JSON but not an object")
        return body


def _connection_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (is the API running?)"
    return type(exc).__name__
