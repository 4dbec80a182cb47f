"""The demand workflow in the dashboard: "request transfer talk" for checked patents,
and the status page of ``dashboard.pages.demand_status``.

``register(app, client)`` (called by ``dashboard.app.create_dash_app`` for every
module in ``EXTENSION_MODULES``) puts the request form into the page's
``ids.EXTENSIONS`` container, adds the status page on ``/demand-status`` and wires
the callbacks. The request creates a demand from the search on screen
(``POST /v1/demands`` with the same title, description, filters, k and mode, so
the recommendations are the ranked list the user saw) and selects the checked
patents (``POST /v1/demands/{id}/selection``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from dash import Dash, Input, Output, State, dcc, html

from dashboard import ids
from dashboard.api_client import ApiClient, ApiError, ApiUnavailable
from dashboard.pages import demand_status

logger = logging.getLogger(__name__)

COMPANY = "transfer-company"
EMAIL = "transfer-email"
BUTTON = "transfer-button"
RESULT = "transfer-result"
MAIN_PAGE = "page-main"
STATUS_PAGE = "page-demand-status"

MAX_DEMAND_TITLE = 200
MAX_COMPANY = 200
MAX_PATENTS = 20
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class TransferInputError(ValueError):
    """The request form cannot be sent; ``field`` names the input, the message is for the user."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class TransferOutcome:
    """Outcome of a transfer-talk request, shown under the button."""

    ok: bool
    message: str
    demand_id: str | None = None
    token: str | None = None
    status_path: str | None = None
    skipped: list[str] = field(default_factory=list)


def build_demand(search_request: dict[str, Any] | None, checked: list[str] | None,
                 company: str | None, email: str | None) -> tuple[dict[str, Any], list[str]]:
    """Return (the ``POST /v1/demands`` body, the checked application numbers).

    Raises:
        TransferInputError: no search on screen, no patent checked, or an invalid
            company or e-mail, with a message for the user.
    """
    if not search_request or not search_request.get("title"):
        raise TransferInputError("search", "먼저 수요기술로 검색하세요.")
    numbers = list(dict.fromkeys(checked or []))
    if not numbers:
        raise TransferInputError("patents", "상담을 요청할 특허를 결과 표에서 체크하세요.")
    if len(numbers) > MAX_PATENTS:
        raise TransferInputError("patents", f"한 번에 {MAX_PATENTS}건까지 요청할 수 있습니다 "
                                            f"({len(numbers)}건 선택됨).")
    company = (company or "").strip()
    if not company or len(company) > MAX_COMPANY:
        raise TransferInputError("company", f"기업명을 1~{MAX_COMPANY}자로 입력하세요.")
    email = (email or "").strip()
    if not _EMAIL_RE.match(email):
        raise TransferInputError(
            "email", "회신받을 이메일 주소를 name@example.com 형식으로 입력하세요.")
    title = search_request["title"].strip()
    if len(title) > MAX_DEMAND_TITLE:
        raise TransferInputError(
            "search", f"상담 요청의 수요기술명은 {MAX_DEMAND_TITLE}자 이하여야 합니다 "
                      f"({len(title)}자). 더 짧게 검색하세요.")
    body: dict[str, Any] = {"title": title, "company": company, "email": email}
    for key in ("description", "filters", "k", "mode"):
        if search_request.get(key) not in (None, "", {}):
            body[key] = search_request[key]
    return body, numbers


def request_transfer(client: ApiClient, body: dict[str, Any],
                     numbers: list[str]) -> TransferOutcome:
    """Create the demand and select the checked patents; return the outcome for the user.

    Patents the demand's recommendations do not contain (the ranking changed since
    the search) are left out and named in the message.
    """
    try:
        # NOTE: ApiClient has no public methods for the workflow endpoints yet, so
        # its generic request helper is used; it maps errors the same way.
        created = client._call("POST", "/v1/demands", json=body)
    except (ApiUnavailable, ApiError) as exc:
        return TransferOutcome(False, _error_message("상담 요청을 접수하지 못했습니다", exc))

    demand_id, token = created["id"], created["access_token"]
    path = demand_status.status_link(demand_id, token)
    demand = created.get("demand") or {}
    recommended = {p.get("application_number") for p in demand.get("recommended") or []}
    chosen = [n for n in numbers if n in recommended]
    skipped = [n for n in numbers if n not in recommended]
    keep = f" 요청 번호 {demand_id}, 접근 토큰 {token} 을(를) 보관하세요."
    if demand.get("status") != "recommended":
        return TransferOutcome(False, "요청은 접수되었지만 특허 추천이 끝나지 않아 특허를 선택하지 "
                               "못했습니다. 운영자가 확인합니다." + keep, demand_id, token, path)
    if not chosen:
        return TransferOutcome(False, "체크한 특허가 이 요청의 추천 목록에 없습니다. 다시 "
                               "검색한 뒤 요청하세요." + keep, demand_id, token, path, skipped)
    try:
        client._call("POST", f"/v1/demands/{quote(demand_id, safe='')}/selection",
                     json={"application_numbers": chosen}, headers={"X-Demand-Token": token})
    except (ApiUnavailable, ApiError) as exc:
        return TransferOutcome(False, _error_message("특허를 선택하지 못했습니다", exc) + keep,
                               demand_id, token, path, skipped)
    logger.info("transfer talk requested: demand %s, %d patents", demand_id, len(chosen))
    message = f"특허 {len(chosen)}건의 권리자에게 상담 요청을 보냅니다." + keep
    if skipped:
        message += f" 추천 목록에 없어 제외한 특허: {', '.join(skipped)}."
    return TransferOutcome(True, message, demand_id, token, path, skipped)


def _error_message(prefix: str, exc: ApiUnavailable | ApiError) -> str:
    if isinstance(exc, ApiUnavailable):
        return f"{prefix}: API({exc.url})에 연결할 수 없습니다. 잠시 후 다시 시도하세요."
    field = f" [{exc.field}]" if exc.field else ""
    return f"{prefix} (HTTP {exc.status}){field}: {exc.message}"


def outcome_elements(outcome: TransferOutcome) -> list[Any]:
    """Return the message under the button, with a link to the status page on success."""
    kind = "pm-notice-info" if outcome.ok else "pm-notice-error"
    children: list[Any] = [html.Span(outcome.message)]
    if outcome.status_path:
        children += [" ", dcc.Link("진행 상황 보기", href=outcome.status_path,
                                   id="transfer-status-link")]
    return [html.Div(children, role="status" if outcome.ok else "alert",
                     className=f"pm-notice {kind}")]


def submit(client: ApiClient, search_store: dict[str, Any] | None, checked: list[str] | None,
           company: str | None, email: str | None) -> list[Any]:
    """Run the whole action for the button: check the form, call the API, build the message."""
    try:
        body, numbers = build_demand((search_store or {}).get("request"), checked, company, email)
    except TransferInputError as exc:
        return [html.Div(exc.message, role="alert", className="pm-notice pm-notice-error")]
    return outcome_elements(request_transfer(client, body, numbers))


def transfer_form() -> html.Div:
    """Return the "request transfer talk" controls shown under the results."""
    return html.Div(className="pm-card", id="transfer-card", children=[
        html.H3("기술이전 상담 요청"),
        html.P("체크한 특허의 권리자(기술이전 담당 부서)에게 상담 요청 메일을 보냅니다. "
               "권리자의 회신은 진행 상황 페이지에서 확인할 수 있습니다."),
        html.Div(className="pm-form-row", children=[
            html.Label("기업명", htmlFor=COMPANY),
            dcc.Input(id=COMPANY, type="text", maxLength=MAX_COMPANY, className="pm-small-input"),
            html.Label("회신받을 이메일", htmlFor=EMAIL),
            dcc.Input(id=EMAIL, type="email", className="pm-small-input"),
            html.Button("체크한 특허로 상담 요청", id=BUTTON, n_clicks=0, className="pm-button"),
        ]),
        dcc.Loading(html.Div(id=RESULT), type="default", delay_show=150),
    ])


def page_styles(pathname: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Return the styles of (search page, status page) for a URL path."""
    hidden, shown = {"display": "none"}, {}
    if pathname == demand_status.PATH:
        return hidden, shown
    return shown, hidden


def _find(component: Any, component_id: str) -> Any:
    """Return the component with ``component_id`` inside a layout tree, or None."""
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    if children is None or isinstance(children, (str, int, float)):
        return None
    for child in children if isinstance(children, (list, tuple)) else [children]:
        found = _find(child, component_id)
        if found is not None:
            return found
    return None


def install_layout(layout: Any) -> html.Div:
    """Return the app's layout with the request form and the status page added.

    Raises:
        ValueError: when the layout has no ``ids.EXTENSIONS`` container.
    """
    container = _find(layout, ids.EXTENSIONS)
    if container is None:
        raise ValueError(f"the dashboard layout has no container with id {ids.EXTENSIONS!r} "
                         "for the transfer-request form")
    container.children = [transfer_form()]
    return html.Div([
        html.Div(layout, id=MAIN_PAGE),
        html.Div(demand_status.layout(), id=STATUS_PAGE, style={"display": "none"}),
    ])


def register(app: Dash, client: ApiClient) -> None:
    """Add the request form and the status page to the app and wire their callbacks."""
    app.layout = install_layout(app.layout)

    @app.callback(Output(MAIN_PAGE, "style"), Output(STATUS_PAGE, "style"),
                  Input(ids.URL, "pathname"))
    def switch_page(pathname):
        return page_styles(pathname)

    @app.callback(
        Output(RESULT, "children"),
        Input(BUTTON, "n_clicks"),
        State(ids.SEARCH_STORE, "data"),
        State(ids.RESULTS_TABLE, "selected_row_ids"),
        State(COMPANY, "value"),
        State(EMAIL, "value"),
        prevent_initial_call=True,
        running=[(Output(BUTTON, "disabled"), True, False)],
    )
    def request(_clicks, search_store, checked, company, email):
        return submit(client, search_store, checked, company, email)

    demand_status.register_callbacks(app, client)
