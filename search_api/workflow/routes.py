"""aiohttp handlers of the demand workflow, under ``/v1/demands``, ``/v1/contacts``,
``/v1/outbox`` and ``/v1/replies``.

Who may call what:

- anyone: ``POST /v1/demands`` (the reply carries the demand's access token once);
- the company, with the demand's access token in ``X-Demand-Token`` or ``?token=``:
  ``GET /v1/demands/{id}``, ``POST /v1/demands/{id}/selection``;
- the rights holder, with the signed token of the e-mail link: ``/v1/replies/{token}``;
- the operator, with ``X-API-Key``: everything else, and ``GET /v1/demands/{id}``
  with the full audit trail. An empty ``Settings.api_key`` disables these
  endpoints (503) instead of leaving them open.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import elasticsearch
from aiohttp import web

from search_api.schema import dumps_response, has_lone_surrogate, replace_surrogates
from search_api.workflow import validation
from search_api.workflow.contacts import parse_contacts_csv
from search_api.workflow.lifecycle import (
    ALLOWED_TRANSITIONS,
    Actor,
    AlreadyAnswered,
    Demand,
    InvalidTransition,
    Status,
    WorkflowError,
)
from search_api.workflow.outbox import FAILED, PENDING, SENDING, SENT
from search_api.workflow.service import Workflow
from search_api.workflow.store import DemandNotFound
from search_api.workflow.tokens import TokenError, keys_match, secret_matches

logger = logging.getLogger(__name__)

WORKFLOW = web.AppKey("workflow", Workflow)
API_KEY_HEADER = "X-API-Key"
TOKEN_HEADER = "X-Demand-Token"
OPERATOR_HEADER = "X-Operator"
CONTACTS_MAX_BYTES = 5 * 1024 * 1024
MAX_PAGE = 100
OUTBOX_STATUSES = (PENDING, SENDING, SENT, FAILED)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Unauthorized(WorkflowError):
    """A credential is missing."""

    status = 401


class OperatorDisabled(WorkflowError):
    """Operator endpoints are off because no API key is configured."""

    status = 503


def error_response(status: int, message: str, field: str | None = None) -> web.Response:
    """Build the API's JSON error ``{"error": {"status", "message", "field"?}}``."""
    error: dict[str, Any] = {"status": status, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status, dumps=dumps_response)


def json_errors(handler: Handler) -> Handler:
    """Turn workflow and Elasticsearch errors of a handler into JSON errors."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except WorkflowError as exc:
            return error_response(exc.status, exc.message, exc.field)
        except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
            logger.warning("%s %s: Elasticsearch unavailable: %s", request.method,
                           request.path, exc)
            return error_response(503, f"Elasticsearch is unavailable: {type(exc).__name__}; "
                                  "try again later")
        except elasticsearch.ApiError as exc:
            if exc.meta.status in (429, 502, 503, 504):
                return error_response(503, f"Elasticsearch is busy ({exc.meta.status}); "
                                      "try again later")
            logger.exception("Elasticsearch rejected a request for %s %s", request.method,
                             request.path)
            return error_response(500, f"Elasticsearch error {exc.meta.status}")

    return wrapper


async def _workflow(request: web.Request) -> Workflow:
    workflow = request.app[WORKFLOW]
    await workflow.start()
    return workflow


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise validation.ValidationError("the request body is empty; send a JSON object",
                                         field="body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation.ValidationError(f"the request body is not valid JSON: {exc}",
                                         field="body") from None
    except RecursionError:
        # json.loads recurses once per nesting level, so a small body of brackets overflows it.
        raise validation.ValidationError("the request body is nested too deeply; "
                                         "send a flat JSON object", field="body") from None
    if has_lone_surrogate(body):
        raise validation.ValidationError("the request body contains an unpaired UTF-16 "
                                         "surrogate escape such as \\ud800; send valid "
                                         "Unicode text", field="body")
    return body


##### credentials


def require_operator(request: web.Request) -> str:
    """Check ``X-API-Key`` and return the audit actor, ``operator`` or ``operator:<name>``.

    ``X-Operator`` names the person for the audit trail; it is informational,
    because every operator shares the one API key.
    """
    expected = request.app[WORKFLOW].settings.api_key
    if not expected:
        raise OperatorDisabled("operator endpoints are disabled because no API key is "
                               "configured; set PATENTMATCH_API_KEY and restart the API")
    presented = request.headers.get(API_KEY_HEADER)
    if not presented:
        raise Unauthorized(f"operator endpoint: send the API key in the {API_KEY_HEADER} "
                           "header", field=API_KEY_HEADER)
    if not keys_match(presented, expected):
        raise TokenError(f"invalid {API_KEY_HEADER}", field=API_KEY_HEADER)
    name = re.sub(r"[^\w.@-]", "", request.headers.get(OPERATOR_HEADER, ""))[:64]
    return f"{Actor.OPERATOR}:{name}" if name else str(Actor.OPERATOR)


def _demand_token(request: web.Request) -> str | None:
    return request.headers.get(TOKEN_HEADER) or request.query.get("token")


def require_demand_token(request: web.Request, demand: Demand) -> None:
    """Check the company's access token against the demand's stored hash."""
    token = _demand_token(request)
    if not token:
        raise Unauthorized(f"send the demand's access token in the {TOKEN_HEADER} header or "
                           "the token query parameter", field=TOKEN_HEADER)
    if not secret_matches(token, demand.get("access_token_hash")):
        raise TokenError("the access token does not match this demand", field=TOKEN_HEADER)


def _paging(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", "20"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise validation.ValidationError("limit and offset must be integers",
                                         field="limit") from None
    if not 1 <= limit <= MAX_PAGE:
        raise validation.ValidationError(f"limit must be in 1..{MAX_PAGE}, found {limit}",
                                         field="limit")
    if not 0 <= offset <= 10_000 - limit:
        raise validation.ValidationError(f"offset must be in 0..{10_000 - limit}, found "
                                         f"{offset}", field="offset")
    return limit, offset


##### views of a demand


def company_view(demand_id: str, demand: Demand) -> dict[str, Any]:
    """Return the company's view: its demand, per-patent progress and the timeline."""
    return {
        "id": demand_id,
        "title": demand["title"],
        "description": demand.get("description"),
        "company": demand["company"],
        "email": demand["email"],
        "filters": demand.get("filters") or {},
        "status": demand["status"],
        "next_statuses": sorted(ALLOWED_TRANSITIONS[Status(demand["status"])]),
        "status_times": demand.get("status_times", {}),
        "created_at": demand["created_at"],
        "updated_at": demand["updated_at"],
        "recommended_at": demand.get("recommended_at"),
        "recommend_error": demand.get("recommend_error"),
        "recommended": demand.get("recommended", []),
        "selection": [
            {key: entry.get(key) for key in (
                "application_number", "title", "kipris_url", "score", "selected_at",
                "contact_status", "sent_at", "answer", "answered_at")}
            for entry in demand.get("selection", [])
        ],
        "timeline": [
            {key: item.get(key) for key in ("at", "action", "from_status", "to_status")}
            for item in demand.get("audit", [])
        ],
    }


def operator_view(demand_id: str, demand: Demand) -> dict[str, Any]:
    """Return the full demand for the operator, secrets' hashes removed."""
    view = company_view(demand_id, demand)
    view["selection"] = [
        {key: value for key, value in entry.items() if key != "reply_nonce_hash"}
        for entry in demand.get("selection", [])
    ]
    view["audit"] = demand.get("audit", [])
    view.pop("timeline")
    return view


def summary_view(demand_id: str, demand: Demand) -> dict[str, Any]:
    """Return one row of the operator's demand list."""
    return {
        "id": demand_id, "title": demand["title"], "company": demand["company"],
        "email": demand["email"], "status": demand["status"],
        "created_at": demand["created_at"], "updated_at": demand["updated_at"],
        "recommended": len(demand.get("recommended", [])),
        "selected": len(demand.get("selection", [])),
    }


##### demand handlers


@json_errors
async def create_demand(request: web.Request) -> web.Response:
    fields = validation.new_demand(await _json_body(request))
    workflow = await _workflow(request)
    demand_id, token, demand = await workflow.register(fields)
    body = {"id": demand_id, "access_token": token, "status_url":
            f"{workflow.public_base_url}/v1/demands/{demand_id}",
            "demand": company_view(demand_id, demand)}
    return web.json_response(body, status=201, dumps=dumps_response,
                             headers={"Location": f"/v1/demands/{demand_id}"})


@json_errors
async def list_demands(request: web.Request) -> web.Response:
    require_operator(request)
    status = request.query.get("status") or None
    if status is not None and status not in Status.__members__.values():
        raise validation.ValidationError(
            f"status {status!r} is invalid; allowed: {', '.join(Status)}", field="status")
    limit, offset = _paging(request)
    workflow = await _workflow(request)
    total, hits = await workflow.demands.search(status=status,
                                                company=request.query.get("company") or None,
                                                size=limit, offset=offset)
    return web.json_response({"total": total, "limit": limit, "offset": offset,
                              "demands": [summary_view(i, d) for i, d in hits]},
                             dumps=dumps_response)


@json_errors
async def get_demand(request: web.Request) -> web.Response:
    demand_id = request.match_info["demand_id"]
    workflow = await _workflow(request)
    if request.headers.get(API_KEY_HEADER):
        require_operator(request)
        return web.json_response(operator_view(demand_id, await workflow.demands.get(demand_id)),
                                 dumps=dumps_response)
    demand = await workflow.demands.get(demand_id)
    require_demand_token(request, demand)
    return web.json_response(company_view(demand_id, demand), dumps=dumps_response)


@json_errors
async def select_patents(request: web.Request) -> web.Response:
    demand_id = request.match_info["demand_id"]
    workflow = await _workflow(request)
    require_demand_token(request, await workflow.demands.get(demand_id))
    numbers = validation.selection(await _json_body(request))
    demand = await workflow.select(demand_id, numbers)
    return web.json_response(company_view(demand_id, demand), dumps=dumps_response)


@json_errors
async def rerun_recommend(request: web.Request) -> web.Response:
    actor = require_operator(request)
    demand_id = request.match_info["demand_id"]
    demand = await (await _workflow(request)).recommend(demand_id, actor)
    return web.json_response(operator_view(demand_id, demand), dumps=dumps_response)


@json_errors
async def redispatch(request: web.Request) -> web.Response:
    require_operator(request)
    demand_id = request.match_info["demand_id"]
    demand = await (await _workflow(request)).dispatch(demand_id)
    return web.json_response(operator_view(demand_id, demand), dumps=dumps_response)


@json_errors
async def record_answer(request: web.Request) -> web.Response:
    actor = require_operator(request)
    demand_id = request.match_info["demand_id"]
    number, answer, note = validation.answer(await _json_body(request))
    demand = await (await _workflow(request)).record_answer(demand_id, number, answer, note,
                                                            actor)
    return web.json_response(operator_view(demand_id, demand), dumps=dumps_response)


@json_errors
async def set_status(request: web.Request) -> web.Response:
    actor = require_operator(request)
    demand_id = request.match_info["demand_id"]
    status, note = validation.operator_transition(await _json_body(request))
    demand = await (await _workflow(request)).set_status(demand_id, status, note, actor)
    return web.json_response(operator_view(demand_id, demand), dumps=dumps_response)


##### contacts and outbox


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """Read the body up to ``limit`` bytes, past the app's general request size limit."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise WorkflowError(f"contacts file larger than {limit} bytes; split it into "
                                "several imports", field="file")
        chunks.append(chunk)
    return b"".join(chunks)


@json_errors
async def import_contacts(request: web.Request) -> web.Response:
    actor = require_operator(request)
    source = re.sub(r"[^\w.-]", "_", request.query.get("source", "upload"))[:100] or "upload"
    rows = parse_contacts_csv(await _read_limited(request, CONTACTS_MAX_BYTES), source)
    workflow = await _workflow(request)
    imported = await workflow.contacts.import_rows(rows, source)
    dispatched = await workflow.dispatch_waiting()
    logger.info("%s imported %d contacts from %s; e-mails queued for demands %s",
                actor, imported, source, dispatched)
    return web.json_response({"imported": imported, "dispatched_demands": dispatched},
                             dumps=dumps_response)


@json_errors
async def list_contacts(request: web.Request) -> web.Response:
    require_operator(request)
    limit, offset = _paging(request)
    total, contacts = await (await _workflow(request)).contacts.list(limit, offset)
    return web.json_response({"total": total, "contacts": contacts}, dumps=dumps_response)


@json_errors
async def missing_contacts(request: web.Request) -> web.Response:
    require_operator(request)
    missing = await (await _workflow(request)).missing_contacts()
    return web.json_response({"missing": missing}, dumps=dumps_response)


@json_errors
async def list_outbox(request: web.Request) -> web.Response:
    require_operator(request)
    limit, offset = _paging(request)
    status = request.query.get("status") or None
    if status is not None and status not in OUTBOX_STATUSES:
        raise validation.ValidationError(
            f"status {status!r} is invalid; allowed: {', '.join(OUTBOX_STATUSES)}", field="status")
    total, hits = await (await _workflow(request)).outbox.search(status, limit, offset)
    return web.json_response({"total": total, "messages": [{"id": i, **m} for i, m in hits]},
                             dumps=dumps_response)


@json_errors
async def retry_outbox(request: web.Request) -> web.Response:
    require_operator(request)
    outbox_id = request.match_info["outbox_id"]
    message = await (await _workflow(request)).outbox.retry(outbox_id)
    message.pop("body", None)
    return web.json_response({"id": outbox_id, **message}, dumps=dumps_response)


##### reply links


_ANSWER_LABELS = {"interested": "상담 의향 있음", "declined": "상담 의향 없음"}


def _html_page(title: str, paragraphs: list[str], *, form_action: str | None = None,
               button: str | None = None, status: int = 200) -> web.Response:
    """Build a small Korean HTML page; every value is escaped here."""
    body = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs)
    if form_action and button:
        body += (f'<form method="post" action="{html.escape(form_action)}">'
                 f'<button type="submit">{html.escape(button)}</button></form>')
    page = ("<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")
    return web.Response(text=replace_surrogates(page), content_type="text/html", charset="utf-8", status=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "Content-Security-Policy": "default-src 'none'; "
                                 "style-src 'unsafe-inline'; form-action 'self'"})


def _reply_error_page(request: web.Request, exc: Exception) -> web.Response:
    """Explain in Korean why a reply link did not work; the English detail goes to the log."""
    if isinstance(exc, TokenError):
        text = ("회신 링크가 올바르지 않거나 더 이상 유효하지 않습니다. 메일에 있는 링크를 "
                "그대로 열거나, 더 최근에 받은 메일의 링크를 사용해 주십시오.")
    elif isinstance(exc, AlreadyAnswered):
        text = "이 특허에 대한 회신은 이미 기록되었습니다. 회신은 한 번만 기록할 수 있습니다."
    elif isinstance(exc, InvalidTransition):
        text = (f"이 상담 요청은 현재 회신을 받을 수 없는 상태입니다 (상태: {exc.current}). "
                "서비스 운영자에게 문의해 주십시오.")
    elif isinstance(exc, DemandNotFound):
        text = "이 회신 링크의 상담 요청을 찾을 수 없습니다. 서비스 운영자에게 문의해 주십시오."
    elif isinstance(exc, WorkflowError):
        text = exc.message
    else:
        text = "서비스에 일시적인 문제가 있습니다. 잠시 후 다시 시도해 주십시오."
    status = exc.status if isinstance(exc, WorkflowError) else 503
    logger.warning("%s reply link rejected with %d: %s", request.method, status, exc)
    return _html_page("회신을 처리할 수 없습니다", [text], status=status)


async def reply_confirm_page(request: web.Request) -> web.Response:
    """Show the answer a reply link carries and a button that records it.

    Opening the link records nothing, because mail scanners open links too.
    """
    token = request.match_info["token"]
    try:
        preview = await (await _workflow(request)).reply_preview(token)
    except (WorkflowError, elasticsearch.TransportError, elasticsearch.ApiError) as exc:
        return _reply_error_page(request, exc)
    label = _ANSWER_LABELS[preview["answer"]]
    facts = [f"기업: {preview['company']}", f"수요기술: {preview['demand_title']}",
             f"특허: {preview['patent_title']} (출원번호 {preview['application_number']})"]
    if preview["already_answered"]:
        answered = _ANSWER_LABELS[preview["already_answered"]]
        return _html_page("이미 회신하셨습니다",
                          facts + [f"기록된 회신: {answered} ({preview['answered_at']})"])
    return _html_page("기술이전 상담 요청 회신", facts + [f"선택한 회신: {label}",
                      "아래 버튼을 누르면 회신이 기록되고 기업에 전달됩니다."],
                      form_action=request.path, button=f"'{label}'(으)로 회신하기")


async def reply_submit(request: web.Request) -> web.Response:
    """Record the answer of a reply link; a second submission is rejected (409)."""
    token = request.match_info["token"]
    try:
        workflow = await _workflow(request)
        claim_answer = (await workflow.reply_preview(token))["answer"]
        await workflow.record_reply(token)
    except (WorkflowError, elasticsearch.TransportError, elasticsearch.ApiError) as exc:
        return _reply_error_page(request, exc)
    return _html_page("회신이 기록되었습니다",
                      [f"회신: {_ANSWER_LABELS[claim_answer]}",
                       "감사합니다. 회신 내용은 요청한 기업에 전달됩니다."])


# search_api/workflow/openapi.py documents each of these; a test checks that none is missing.
ROUTES = [
    web.post("/v1/demands", create_demand),
    web.get("/v1/demands", list_demands),
    web.get("/v1/demands/{demand_id}", get_demand),
    web.post("/v1/demands/{demand_id}/selection", select_patents),
    web.post("/v1/demands/{demand_id}/recommendations", rerun_recommend),
    web.post("/v1/demands/{demand_id}/dispatch", redispatch),
    web.post("/v1/demands/{demand_id}/answers", record_answer),
    web.post("/v1/demands/{demand_id}/status", set_status),
    web.post("/v1/contacts/import", import_contacts),
    web.get("/v1/contacts", list_contacts),
    web.get("/v1/contacts/missing", missing_contacts),
    web.get("/v1/outbox", list_outbox),
    web.post("/v1/outbox/{outbox_id}/retry", retry_outbox),
    web.get("/v1/replies/{token}", reply_confirm_page),
    web.post("/v1/replies/{token}", reply_submit),
]
