"""The search form: its values, their checks, the API request and the shareable URL.

A search is fully described by a ``SearchForm``. The form turns into the
``POST /v1/search`` body (``build_search_request``) and into a URL query string
(``form_to_query``) from which ``form_from_query`` restores it, so a copied link
reruns the same search.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

logger = logging.getLogger(__name__)

SIX_T_CATEGORIES: tuple[str, ...] = ("IT", "BT", "NT", "ST", "ET", "CT", "unclassified")
# Statuses as KIPRIS publishes them; the bundled sample also has 포기 (abandoned).
REGISTER_STATUSES: tuple[str, ...] = ("등록", "공개", "거절", "취하", "소멸", "포기")
SEARCH_MODES: tuple[str, ...] = ("two_stage", "hybrid", "bm25", "dense")

MAX_RESULTS = 100
DEFAULT_RESULTS = 20
MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 10_000
MIN_YEAR = 1948  # KIPO's first patent applications

# Section, class, subclass, main group and subgroup, each optional after the one
# before it: "H", "H04", "H04N", "H04N 5", "H04N 5/2", "H04N 5/232".
_IPC_PREFIX = re.compile(r"^[A-H](\d{2}([A-Z]( \d{1,4}(/\d{0,6})?)?)?)?$")


class SearchInputError(ValueError):
    """A form value is invalid; ``field`` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class SearchForm:
    """The values of the search form, as the user entered them."""

    title: str = ""
    description: str = ""
    six_t: list[str] = field(default_factory=list)
    ipc_prefix: str = ""
    year_from: int | None = None
    year_to: int | None = None
    register_status: list[str] = field(default_factory=list)
    k: int = DEFAULT_RESULTS
    mode: str = ""


def normalize_ipc_prefix(raw: str) -> str:
    """Return an IPC prefix in canonical form (``h04n5/232`` -> ``H04N 5/232``).

    Raises:
        SearchInputError: the text is not the start of an IPC code.
    """
    text = re.sub(r"\s+", "", raw or "").upper()
    if not text:
        return ""
    # The group number follows the subclass after one space, as in the index.
    match = re.match(r"^([A-H]\d{2}[A-Z])(\d.*)$", text)
    if match:
        text = f"{match.group(1)} {match.group(2)}"
    if not _IPC_PREFIX.match(text):
        raise SearchInputError(
            "ipc_prefix",
            f"IPC 분류 {raw!r}를 읽을 수 없습니다. 'G06', 'H04N', 'H04N 5/232'처럼 입력하세요.",
        )
    return text


def _check_year(name: str, year: int | None, today: dt.date) -> None:
    if year is None:
        return
    if not MIN_YEAR <= year <= today.year:
        raise SearchInputError(
            name, f"출원연도는 {MIN_YEAR}년부터 {today.year}년 사이여야 합니다 ({year} 입력됨)."
        )


def build_search_request(form: SearchForm, today: dt.date | None = None) -> dict[str, Any]:
    """Check the form and return the ``POST /v1/search`` body.

    Raises:
        SearchInputError: the first invalid value, with a message for the user.
    """
    today = today or dt.date.today()
    title = (form.title or "").strip()
    description = (form.description or "").strip()
    if not title:
        raise SearchInputError("title", "수요기술명을 입력하세요.")
    if len(title) > MAX_TITLE_CHARS:
        raise SearchInputError(
            "title", f"수요기술명은 {MAX_TITLE_CHARS}자 이하로 입력하세요 ({len(title)}자)."
        )
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise SearchInputError(
            "description",
            f"상세 설명은 {MAX_DESCRIPTION_CHARS}자 이하로 입력하세요 ({len(description)}자).",
        )
    if not isinstance(form.k, int) or not 1 <= form.k <= MAX_RESULTS:
        raise SearchInputError("k", f"결과 수는 1에서 {MAX_RESULTS} 사이여야 합니다 ({form.k!r}).")
    unknown_six_t = sorted(set(form.six_t) - set(SIX_T_CATEGORIES))
    if unknown_six_t:
        raise SearchInputError("six_t", f"알 수 없는 6T 분류: {', '.join(unknown_six_t)}")
    unknown_status = sorted(set(form.register_status) - set(REGISTER_STATUSES))
    if unknown_status:
        raise SearchInputError(
            "register_status", f"알 수 없는 권리 상태: {', '.join(unknown_status)}"
        )
    if form.mode and form.mode not in SEARCH_MODES:
        raise SearchInputError("mode", f"알 수 없는 검색 방식: {form.mode}")
    _check_year("year_from", form.year_from, today)
    _check_year("year_to", form.year_to, today)
    if form.year_from is not None and form.year_to is not None and form.year_from > form.year_to:
        raise SearchInputError(
            "year_from",
            f"출원연도 시작({form.year_from})이 끝({form.year_to})보다 늦습니다.",
        )
    ipc_prefix = normalize_ipc_prefix(form.ipc_prefix)

    filters: dict[str, Any] = {}
    if form.six_t:
        filters["six_t"] = sorted(set(form.six_t), key=SIX_T_CATEGORIES.index)
    if ipc_prefix:
        filters["ipc_prefix"] = ipc_prefix
    if form.year_from is not None:
        filters["application_date_from"] = f"{form.year_from:04d}-01-01"
    if form.year_to is not None:
        filters["application_date_to"] = f"{form.year_to:04d}-12-31"
    if form.register_status:
        filters["register_status"] = sorted(
            set(form.register_status), key=REGISTER_STATUSES.index
        )

    request: dict[str, Any] = {"title": title, "k": form.k}
    if description:
        request["description"] = description
    if form.mode:
        request["mode"] = form.mode
    if filters:
        request["filters"] = filters
    return request


def form_to_query(form: SearchForm) -> str:
    """Return the URL query string (with its leading ``?``) that restores ``form``."""
    pairs: list[tuple[str, str]] = [("title", form.title.strip())]
    if form.description.strip():
        pairs.append(("description", form.description.strip()))
    pairs += [("six_t", value) for value in form.six_t]
    if form.ipc_prefix.strip():
        pairs.append(("ipc", form.ipc_prefix.strip()))
    if form.year_from is not None:
        pairs.append(("from", str(form.year_from)))
    if form.year_to is not None:
        pairs.append(("to", str(form.year_to)))
    pairs += [("status", value) for value in form.register_status]
    if form.k != DEFAULT_RESULTS:
        pairs.append(("k", str(form.k)))
    if form.mode:
        pairs.append(("mode", form.mode))
    return "?" + urlencode(pairs)


def _int_or_none(name: str, values: list[str]) -> int | None:
    if not values or not values[-1].strip():
        return None
    try:
        return int(values[-1])
    except ValueError:
        logger.info("ignoring URL parameter %s=%r: not an integer", name, values[-1])
        return None


def form_from_query(query: str | None) -> SearchForm | None:
    """Return the form a URL query string describes, or None when it names no title.

    Unparsable numbers are dropped (logged); values outside the allowed sets are
    kept so that ``build_search_request`` reports them to the user.
    """
    params = parse_qs((query or "").lstrip("?"), keep_blank_values=False)
    title = params.get("title", [""])[-1].strip()
    if not title:
        return None
    k = _int_or_none("k", params.get("k", []))
    return SearchForm(
        title=title,
        description=params.get("description", [""])[-1],
        six_t=list(dict.fromkeys(params.get("six_t", []))),
        ipc_prefix=params.get("ipc", [""])[-1],
        year_from=_int_or_none("from", params.get("from", [])),
        year_to=_int_or_none("to", params.get("to", [])),
        register_status=list(dict.fromkeys(params.get("status", []))),
        k=DEFAULT_RESULTS if k is None else k,
        mode=params.get("mode", [""])[-1],
    )


def form_from_inputs(
    title: str | None,
    description: str | None,
    six_t: list[str] | None,
    ipc_prefix: str | None,
    year_from: float | str | None,
    year_to: float | str | None,
    register_status: list[str] | None,
    k: float | str | None,
    mode: str | None,
) -> SearchForm:
    """Build a form from raw component values (``None`` for empty inputs).

    Raises:
        SearchInputError: a number input contains something that is not a whole number.
    """
    return SearchForm(
        title=title or "",
        description=description or "",
        six_t=list(six_t or []),
        ipc_prefix=ipc_prefix or "",
        year_from=_whole_number("year_from", year_from),
        year_to=_whole_number("year_to", year_to),
        register_status=list(register_status or []),
        k=DEFAULT_RESULTS if k in (None, "") else _whole_number("k", k),
        mode=mode or "",
    )


def _whole_number(name: str, value: float | str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SearchInputError(name, f"{value!r}는 숫자가 아닙니다.") from None
    if not number.is_integer():
        raise SearchInputError(name, f"{value!r}는 정수가 아닙니다.")
    return int(number)
