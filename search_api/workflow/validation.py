"""Checks of the JSON bodies the workflow API accepts.

Each check raises :class:`ValidationError` naming the field, the value found and
what is allowed, and returns the cleaned value.
"""

from __future__ import annotations

import re
from typing import Any

from search_api.ranking import MODES
from search_api.schema import InvalidField, parse_application_number, parse_filters
from search_api.search import filters_json
from search_api.workflow.lifecycle import Answer, WorkflowError

TITLE_MIN_CHARS = 2
TITLE_MAX_CHARS = 200
DESCRIPTION_MAX_CHARS = 5000
COMPANY_MAX_CHARS = 200
NOTE_MAX_CHARS = 2000
EMAIL_MAX_CHARS = 254
DEFAULT_K = 20
MAX_K = 100
MAX_SELECTED = 20

# Deliberately simple: one @, no spaces or control characters, a dot in the domain.
# Full RFC 5322 syntax is not worth matching; the mail server has the last word.
_EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")


class ValidationError(WorkflowError):
    """A request field is missing or invalid."""

    status = 400


def require_object(body: Any, what: str = "request body") -> dict[str, Any]:
    """Return ``body`` when it is a JSON object."""
    if not isinstance(body, dict):
        raise ValidationError(f"{what} must be a JSON object, found {type(body).__name__}")
    return body


def reject_unknown(body: dict[str, Any], known: tuple[str, ...]) -> None:
    """Raise for the first key of ``body`` not in ``known``."""
    for key in body:
        if key not in known:
            raise ValidationError(f"unknown field {key!r}; allowed: {', '.join(known)}",
                                  field=key)


def text(body: dict[str, Any], name: str, *, required: bool, min_chars: int = 1,
         max_chars: int) -> str | None:
    """Return the stripped string field ``name``, checked for type and length."""
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise ValidationError(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, found {type(value).__name__}",
                              field=name)
    value = value.strip()
    if len(value) < min_chars:
        raise ValidationError(
            f"{name} must have at least {min_chars} characters, found {len(value)}", field=name
        )
    if len(value) > max_chars:
        raise ValidationError(
            f"{name} must have at most {max_chars} characters, found {len(value)}", field=name
        )
    return value


def email(value: Any, field: str) -> str:
    """Return a syntactically valid e-mail address, lower-casing its domain."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, found {type(value).__name__}",
                              field=field)
    value = value.strip()
    if len(value) > EMAIL_MAX_CHARS or not _EMAIL_RE.match(value):
        raise ValidationError(
            f"{field} {value[:80]!r} is not a valid e-mail address; expected name@domain.tld",
            field=field,
        )
    local, domain = value.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def application_number(value: Any, field: str) -> str:
    """Return a 13-digit application number; dashes as in 10-2018-0173848 are removed."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, found {type(value).__name__}",
                              field=field)
    try:
        return parse_application_number(value)
    except InvalidField as exc:
        raise ValidationError(exc.message, field=field) from None


def filters(value: Any) -> dict[str, Any]:
    """Return the search filters of a demand, checked by the search API's own rules."""
    try:
        parsed = parse_filters(value)
    except InvalidField as exc:
        raise ValidationError(exc.message, field=exc.field) from None
    return filters_json(parsed)


def new_demand(body: Any) -> dict[str, Any]:
    """Return the cleaned fields of a demand registration."""
    body = require_object(body)
    reject_unknown(body, ("title", "description", "company", "email", "filters", "k", "mode"))
    k = body.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValidationError(f"k must be an integer in 1..{MAX_K}, found {k!r}", field="k")
    if body.get("email") is None:
        raise ValidationError("email is required", field="email")
    mode = body.get("mode")
    if mode is not None and mode not in MODES:
        raise ValidationError(f"mode {mode!r} is invalid; allowed: {', '.join(MODES)}",
                              field="mode")
    return {
        "title": text(body, "title", required=True, min_chars=TITLE_MIN_CHARS,
                      max_chars=TITLE_MAX_CHARS),
        "description": text(body, "description", required=False,
                            max_chars=DESCRIPTION_MAX_CHARS),
        "company": text(body, "company", required=True, max_chars=COMPANY_MAX_CHARS),
        "email": email(body["email"], "email"),
        "filters": filters(body.get("filters")),
        "k": k,
        "mode": mode,
    }


def selection(body: Any) -> list[str]:
    """Return the distinct application numbers of a selection, in request order."""
    body = require_object(body)
    reject_unknown(body, ("application_numbers",))
    numbers = body.get("application_numbers")
    if not isinstance(numbers, list) or not numbers:
        raise ValidationError("application_numbers must be a non-empty list",
                              field="application_numbers")
    if len(numbers) > MAX_SELECTED:
        raise ValidationError(
            f"application_numbers has {len(numbers)} entries; at most {MAX_SELECTED}",
            field="application_numbers",
        )
    cleaned = [application_number(n, "application_numbers") for n in numbers]
    return list(dict.fromkeys(cleaned))


def answer(body: Any) -> tuple[str, Answer, str | None]:
    """Return (application number, answer, note) of an operator-entered answer."""
    body = require_object(body)
    reject_unknown(body, ("application_number", "answer", "note"))
    number = application_number(body.get("application_number"), "application_number")
    try:
        value = Answer(body.get("answer"))
    except ValueError as exc:
        raise ValidationError(
            f"answer {body.get('answer')!r} is invalid; allowed: interested, declined",
            field="answer",
        ) from exc
    return number, value, text(body, "note", required=False, max_chars=NOTE_MAX_CHARS)


def operator_transition(body: Any) -> tuple[str, str | None]:
    """Return (status, note) of an operator's transition request."""
    body = require_object(body)
    reject_unknown(body, ("status", "note"))
    status = body.get("status")
    if status not in ("transferred", "closed"):
        raise ValidationError(
            f"status {status!r} cannot be set directly; allowed: transferred, closed "
            "(the other statuses follow from recommendations, selections, e-mails and answers)",
            field="status",
        )
    return status, text(body, "note", required=False, max_chars=NOTE_MAX_CHARS)
