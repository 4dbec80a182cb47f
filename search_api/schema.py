"""Validation of API input and the OpenAPI 3 document of the API."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from ingest.normalize import normalize_application_number
from search_api.ranking import MODES, SIX_T_VALUES, SearchFilters, canonical_ipc_prefix
from search_api.search import SearchRequest

MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 5000
MAX_K = 100
APPLICATION_NUMBER = re.compile(r"^(10|20)\d{11}$")
# date.fromisoformat in Python 3.11 also accepts 20200101 and 2020-W01-1, so the form is checked first.
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class InvalidField(ValueError):
    """One input field is invalid; ``field`` is its dotted path, e.g. ``filters.six_t``."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def has_lone_surrogate(value: Any) -> bool:
    """Check whether a parsed JSON value contains a string with an unpaired surrogate.

    json.loads turns the escape ``\\ud800`` into a str that cannot be encoded as
    UTF-8, which the tokenizer and the Elasticsearch client then fail on.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> str:
    """Replace unpaired surrogates with U+FFFD so that ``text`` encodes as UTF-8.

    Documents stored before input checks rejected surrogates can still contain
    them, and a response with one fails to encode.
    """
    return _SURROGATE.sub("\ufffd", text)


def dumps_response(value: Any) -> str:
    """Serialise a JSON response body that is safe to encode as UTF-8."""
    return replace_surrogates(json.dumps(value, ensure_ascii=False))


def _string(body: dict, name: str, max_chars: int, required: bool, path: str | None = None) -> str | None:
    path = path or name
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidField(path, f"{path} is required")
        return None
    if not isinstance(value, str):
        raise InvalidField(path, f"{path} must be a string, found {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise InvalidField(path, f"{path} must not be empty or whitespace")
    if len(value) > max_chars:
        raise InvalidField(path, f"{path} has {len(value)} characters; the maximum is {max_chars}")
    return value or None


def _string_list(body: dict, name: str, path: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidField(path, f"{path} must be a list of non-empty strings, found {value!r}")
    if allowed is not None:
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise InvalidField(path, f"{path} has unknown values {unknown}; allowed: {list(allowed)}")
    return tuple(v.strip() for v in value)


def _date(body: dict, name: str) -> date | None:
    path = f"filters.{name}"
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidField(path, f"{path} must be a date string YYYY-MM-DD, found {value!r}")
    if not ISO_DATE.match(value):
        raise InvalidField(path, f"{path} must be a date in the form YYYY-MM-DD, "
                           f"e.g. 2020-01-31, found {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidField(path, f"{path} must be a valid calendar date YYYY-MM-DD ({exc}), "
                           f"found {value!r}") from None


def parse_filters(body: Any) -> SearchFilters:
    """Validate the ``filters`` object of a search request."""
    if body is None:
        return SearchFilters()
    if not isinstance(body, dict):
        raise InvalidField("filters", f"filters must be an object, found {type(body).__name__}")
    known = {"ipc_prefix", "six_t", "application_date_from", "application_date_to", "applicant",
             "register_status"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidField(f"filters.{unknown[0]}", f"unknown filter {unknown[0]!r}; known: {sorted(known)}")
    ipc = _string(body, "ipc_prefix", 32, False, "filters.ipc_prefix")
    if ipc is not None:
        try:
            ipc = canonical_ipc_prefix(ipc)
        except ValueError as exc:
            raise InvalidField("filters.ipc_prefix", str(exc)) from None
    date_from = _date(body, "application_date_from")
    date_to = _date(body, "application_date_to")
    if date_from and date_to and date_from > date_to:
        raise InvalidField("filters.application_date_from",
                           f"filters.application_date_from {date_from} is after "
                           f"filters.application_date_to {date_to}; swap them or widen the range")
    return SearchFilters(
        ipc_prefix=ipc,
        six_t=_string_list(body, "six_t", "filters.six_t", SIX_T_VALUES),
        application_date_from=date_from,
        application_date_to=date_to,
        applicant=_string(body, "applicant", 200, False, "filters.applicant"),
        register_status=_string_list(body, "register_status", "filters.register_status"),
    )


def parse_search_request(body: Any, default_mode: str) -> SearchRequest:
    """Validate a ``POST /v1/search`` body; raise InvalidField naming the bad field."""
    if not isinstance(body, dict):
        raise InvalidField("body", f"the request body must be a JSON object, found {type(body).__name__}")
    known = {"title", "description", "k", "mode", "filters"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidField(unknown[0], f"unknown field {unknown[0]!r}; known: {sorted(known)}")
    title = _string(body, "title", MAX_TITLE_CHARS, True)
    description = _string(body, "description", MAX_DESCRIPTION_CHARS, False)
    k = body.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidField("k", f"k must be an integer from 1 to {MAX_K}, found {k!r}")
    # Only an absent or null mode takes the default, so 0, false and "" are rejected.
    mode = body.get("mode")
    if mode is None:
        mode = default_mode
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidField("mode", f"mode must be one of {list(MODES)}, found {mode!r}")
    return SearchRequest(title=title, description=description, k=k, mode=mode,
                         filters=parse_filters(body.get("filters")))


def parse_application_number(value: str) -> str:
    """Normalise an application number the way ingest does and return the 13-digit form.

    Accepts every form ingest accepts, e.g. ``1020180173848``, ``10-2018-0173848``
    and ``KR1020180173848``.
    """
    try:
        return normalize_application_number(value)
    except ValueError as exc:
        raise InvalidField("application_number",
                           f"invalid application_number: {exc}; send 13 digits starting "
                           "with 10 or 20, e.g. 1020180173848 or 10-2018-0173848") from None


##### OpenAPI


def _error_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(version: str, max_request_bytes: int) -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of the API."""
    nullable_number = {"type": ["number", "null"]}
    nullable_string = {"type": ["string", "null"]}
    filters = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "ipc_prefix": {"type": "string", "examples": ["G06N", "H01L 21"]},
            "six_t": {"type": "array", "items": {"type": "string", "enum": list(SIX_T_VALUES)}},
            "application_date_from": {"type": "string", "format": "date"},
            "application_date_to": {"type": "string", "format": "date"},
            "applicant": {"type": "string", "description": "phrase in the applicant name"},
            "register_status": {"type": "array", "items": {"type": "string"},
                                "examples": [["등록", "공개"]]},
        },
    }
    search_request = {
        "type": "object", "required": ["title"], "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS,
                      "examples": ["딥러닝을 활용한 영상 인식"]},
            "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
            "mode": {"type": "string", "enum": list(MODES)},
            "filters": {"$ref": "#/components/schemas/Filters"},
        },
    }
    result = {
        "type": "object",
        "properties": {
            "rank": {"type": "integer"},
            "application_number": {"type": "string", "pattern": APPLICATION_NUMBER.pattern},
            "title": nullable_string, "title_en": nullable_string, "abstract": nullable_string,
            "abstract_similarity": nullable_number, "title_similarity": nullable_number,
            "bm25_score": nullable_number, "score": {"type": "number"},
            "scores": {"type": ["object", "null"]},
            "score_source": {"type": ["string", "null"], "enum": ["kpeg", "synthetic", None]},
            "six_t": nullable_string, "ipc": {"type": "array", "items": {"type": "string"}},
            "applicant": nullable_string, "application_date": nullable_string,
            "register_status": nullable_string, "kipris_url": {"type": "string", "format": "uri"},
        },
    }
    search_response = {
        "type": "object",
        "required": ["query", "mode", "no_close_match", "threshold", "took_ms", "results"],
        "properties": {
            "query": {"type": "object"}, "mode": {"type": "string"},
            "no_close_match": {"type": "boolean",
                               "description": "the best match is below the calibrated similarity "
                               "threshold or the lexical coverage threshold"},
            "threshold": {"type": "number"}, "took_ms": {"type": "number"},
            "best_similarity": {"type": ["number", "null"],
                                "description": "best two-stage similarity among the candidates"},
            "lexical_coverage": {"type": "number", "description": "share of the title's distinct "
                                 "terms found in its best keyword match"},
            "lexical_threshold": {"type": "number"},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/SearchResult"}},
        },
    }
    error = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["status", "message"], "properties": {
            "status": {"type": "integer"}, "message": {"type": "string"},
            "field": {"type": "string", "description": "dotted path of the invalid input field"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "patentmatch search API", "version": version,
                 "description": "Match technology demands to Korean patents."},
        "paths": {
            "/v1/search": {"post": {
                "operationId": "search", "summary": "Rank patents for a technology demand",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/SearchRequest"}}}},
                "responses": {
                    "200": {"description": "ranked patents", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/SearchResponse"}}}},
                    "400": _error_response("invalid input; `field` names it"),
                    "413": _error_response(f"request body over {max_request_bytes} bytes"),
                    "503": _error_response("Elasticsearch or the vector store is unavailable"),
                    "504": _error_response("the request ran past the time limit"),
                }}},
            "/v1/patents/{application_number}": {"get": {
                "operationId": "getPatent", "summary": "One patent's stored document",
                "parameters": [{"name": "application_number", "in": "path", "required": True,
                                "description": "13 digits, or any form ingest accepts: "
                                "10-2018-0173848, KR1020180173848, KR 10-2018-0173848",
                                "schema": {"type": "string"}, "example": "1020180173848"}],
                "responses": {
                    "200": {"description": "the patent", "content": {"application/json": {
                        "schema": {"type": "object"}}}},
                    "400": _error_response("invalid application number"),
                    "404": _error_response("no such patent"),
                    "503": _error_response("Elasticsearch is unavailable"),
                }}},
            "/v1/stats/scores": {"get": {
                "operationId": "scoreStats", "summary": "Score distributions of a 6T category",
                "parameters": [{"name": "six_t", "in": "query", "required": False,
                                "description": "one 6T category; without it, all patents. "
                                "Repeating the parameter is rejected with 400, so ask once "
                                "per category.",
                                "schema": {"type": "string", "enum": list(SIX_T_VALUES)}}],
                "responses": {
                    "200": {"description": "per score: count, min, max, mean, quantiles, "
                            "histogram and sampled values", "content": {"application/json": {
                                "schema": {"type": "object"}}}},
                    "400": _error_response("invalid or repeated six_t"),
                    "503": _error_response("Elasticsearch is unavailable"),
                }}},
            "/v1/health": {"get": {
                "operationId": "health", "summary": "Elasticsearch and vector index status",
                "responses": {
                    "200": {"description": "all parts ready", "content": {"application/json": {
                        "schema": {"type": "object"}}}},
                    "503": {"description": "a part is not ready; the body says which",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                }}},
            "/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1 document",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": {
            "Filters": filters, "SearchRequest": search_request, "SearchResult": result,
            "SearchResponse": search_response, "Error": error,
        }},
    }
