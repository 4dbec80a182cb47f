"""The page where a company follows its demand: ``/demand-status#id=<id>&token=<token>``.

The demand id and access token travel in the URL fragment, which browsers never
send to a server, and the page reads them to fill its form. The API call
(``GET /v1/demands/{id}`` with ``X-Demand-Token``) is made by the dashboard's
server, so the token does reach the dashboard server as callback input, just
not the web server's access log. The logic sits in plain functions;
:func:`register_callbacks` only wires them to components.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs, quote

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard import ids
from dashboard.api_client import ApiClient, ApiError, ApiUnavailable

logger = logging.getLogger(__name__)

PATH = "/demand-status"
DEMAND_ID = "demand-status-id"
TOKEN = "demand-status-token"
BUTTON = "demand-status-button"
RESULT = "demand-status-result"

STATUS_LABELS = {
    "registered": "접수됨",
    "recommended": "추천 특허 준비됨",
    "selected": "특허 선택됨 (권리자 연락 준비 중)",
    "contacted": "권리자에게 연락함",
    "interested": "권리자가 상담 의향을 밝힘",
    "declined": "권리자가 상담을 거절함",
    "transferred": "기술이전 완료",
    "closed": "종료됨",
}
CONTACT_LABELS = {
    "pending": "연락 준비 중",
    "queued": "메일 발송 대기",
    "missing_contact": "권리자 연락처 확인 중",
    "sent": "메일 발송됨",
    "failed": "발송 실패 (운영자 확인 중)",
}
ANSWER_LABELS = {"interested": "상담 의향 있음", "declined": "상담 의향 없음"}
ACTION_LABELS = {
    "register": "수요 접수", "transition": "상태 변경", "email_queued": "메일 발송 대기",
    "email_sent": "메일 발송", "email_failed": "메일 발송 실패", "answer": "권리자 회신",
    "contact_missing": "연락처 확인 필요", "recommend_failed": "특허 추천 실패",
}
_DEMAND_ID_RE = re.compile(r"^[0-9a-f]{16}$")


class StatusInputError(ValueError):
    """The demand id or token typed by the user is invalid; ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def status_link(demand_id: str, token: str) -> str:
    """Return the dashboard path of a demand's status page, token in the fragment."""
    return f"{PATH}#id={quote(demand_id, safe='')}&token={quote(token, safe='')}"


def parse_fragment(fragment: str | None) -> tuple[str, str]:
    """Return (demand id, token) from ``#id=...&token=...``; missing parts are ''."""
    values = parse_qs((fragment or "").lstrip("#"))
    return values.get("id", [""])[0].strip(), values.get("token", [""])[0].strip()


def check_inputs(demand_id: str | None, token: str | None) -> tuple[str, str]:
    """Return the stripped id and token, or raise :class:`StatusInputError`."""
    demand_id, token = (demand_id or "").strip(), (token or "").strip()
    if not _DEMAND_ID_RE.match(demand_id):
        raise StatusInputError("id", "요청 번호는 16자리 영문·숫자입니다 (요청 접수 시 받은 번호).")
    if not token:
        raise StatusInputError("token", "요청 접수 시 받은 접근 토큰을 입력하세요.")
    return demand_id, token


def fetch_status(client: ApiClient, demand_id: str,
                 token: str) -> tuple[dict[str, Any] | None, str | None]:
    """Return (the company's view of the demand, None), or (None, a user message)."""
    try:
        # NOTE: ApiClient has no public method for the workflow endpoints yet, so
        # its generic request helper is used; it maps errors the same way.
        demand = client._call("GET", f"/v1/demands/{quote(demand_id, safe='')}",
                              headers={"X-Demand-Token": token})
    except ApiUnavailable as exc:
        return None, f"API({exc.url})에 연결할 수 없습니다: {exc.reason}. 잠시 후 다시 시도하세요."
    except ApiError as exc:
        if exc.status == 404:
            return None, f"요청 번호 {demand_id}를 찾을 수 없습니다."
        if exc.status in (401, 403):
            return None, "접근 토큰이 이 요청과 맞지 않습니다. 접수 시 받은 토큰을 확인하세요."
        return None, f"상태를 읽지 못했습니다 (HTTP {exc.status}): {exc.message}"
    return demand, None


def status_view(demand: dict[str, Any]) -> list[Any]:
    """Return the components that show a demand's status, patents and timeline."""
    status = demand.get("status", "")
    children: list[Any] = [
        html.H3(demand.get("title") or "", id="demand-status-title"),
        html.P(f"{demand.get('company', '')} · 접수 {_time(demand.get('created_at'))}"),
        html.P(["현재 상태: ", html.Strong(STATUS_LABELS.get(status, status),
                                        id="demand-status-label")]),
    ]
    if demand.get("recommend_error"):
        children.append(html.Div("특허 추천이 아직 끝나지 않았습니다. 운영자가 확인하고 있습니다.",
                                  className="pm-notice pm-notice-info"))
    selection = demand.get("selection") or []
    if selection:
        children.append(html.H4("선택한 특허"))
        children.append(html.Table(id="demand-status-patents",
                                   style={"borderSpacing": "12px 4px", "textAlign": "left"},
                                   children=[
            html.Thead(html.Tr([html.Th(h) for h in ("출원번호", "발명의 명칭", "연락", "회신")])),
            html.Tbody([html.Tr([
                html.Td(_patent_link(entry)),
                html.Td(entry.get("title") or ""),
                html.Td(CONTACT_LABELS.get(entry.get("contact_status") or "", "")),
                html.Td(ANSWER_LABELS.get(entry.get("answer") or "", "회신 대기")
                        if entry.get("contact_status") == "sent" else ""),
            ]) for entry in selection]),
        ]))
    elif demand.get("recommended"):
        children.append(html.P(f"추천 특허 {len(demand['recommended'])}건 중 상담할 특허를 "
                               "아직 선택하지 않았습니다."))
    children.append(html.H4("진행 기록"))
    children.append(html.Ol(id="demand-status-timeline", children=[
        html.Li(_timeline_line(item)) for item in demand.get("timeline") or []
    ]))
    return children


def _timeline_line(item: dict[str, Any]) -> str:
    action = item.get("action") or ""
    line = f"{_time(item.get('at'))} {ACTION_LABELS.get(action, action)}"
    if action == "transition":
        status = item.get("to_status") or ""
        line += f": {STATUS_LABELS.get(status, status)}"
    return line


def _patent_link(entry: dict[str, Any]) -> Any:
    number = entry.get("application_number") or ""
    url = entry.get("kipris_url") or ""
    if url.startswith("https://"):
        return html.A(number, href=url, target="_blank", rel="noopener noreferrer")
    return number


def _time(value: str | None) -> str:
    """Show an ISO UTC timestamp as 'YYYY-MM-DD HH:MM UTC'."""
    if not value:
        return ""
    return value.replace("T", " ")[:16] + " UTC"


def layout() -> html.Div:
    """Return the status page."""
    return html.Div(className="pm-main", children=[
        html.Div(className="pm-card", children=[
            html.H2("기술이전 상담 요청 진행 상황"),
            html.P("요청 접수 시 받은 요청 번호와 접근 토큰으로 진행 상황을 확인합니다."),
            html.Div(className="pm-form-row", children=[
                html.Label("요청 번호", htmlFor=DEMAND_ID),
                dcc.Input(id=DEMAND_ID, type="text", className="pm-small-input"),
                html.Label("접근 토큰", htmlFor=TOKEN),
                dcc.Input(id=TOKEN, type="password", className="pm-small-input"),
                html.Button("확인", id=BUTTON, n_clicks=0, className="pm-button"),
            ]),
            html.A("검색으로 돌아가기", href="/"),
        ]),
        dcc.Loading(html.Div(id=RESULT), type="default", delay_show=150),
    ])


def show_status(client: ApiClient, demand_id: str | None, token: str | None) -> list[Any]:
    """Return the result area for the typed id and token."""
    try:
        demand_id, token = check_inputs(demand_id, token)
    except StatusInputError as exc:
        return [html.Div(exc.message, role="alert", className="pm-notice pm-notice-error")]
    demand, problem = fetch_status(client, demand_id, token)
    if problem:
        return [html.Div(problem, role="alert", className="pm-notice pm-notice-error")]
    return [html.Div(status_view(demand), className="pm-card")]


def register_callbacks(app: Dash, client: ApiClient) -> None:
    """Fill the form from the URL fragment and show the status on demand."""

    @app.callback(
        Output(RESULT, "children"),
        Output(DEMAND_ID, "value"),
        Output(TOKEN, "value"),
        Input(BUTTON, "n_clicks"),
        Input(ids.URL, "hash"),
        Input(ids.URL, "pathname"),
        State(DEMAND_ID, "value"),
        State(TOKEN, "value"),
    )
    def update(_clicks, fragment, pathname, demand_id, token):
        if ctx.triggered_id in (None, ids.URL):
            if pathname != PATH or not fragment:
                return no_update, no_update, no_update
            demand_id, token = parse_fragment(fragment)
            return show_status(client, demand_id, token), demand_id, token
        return show_status(client, demand_id, token), no_update, no_update
