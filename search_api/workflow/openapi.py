"""OpenAPI 3.1 paths and security schemes of the demand workflow routes in ``routes.py``."""

from __future__ import annotations

from typing import Any

from search_api.workflow.lifecycle import Answer, Status

OPERATOR_SECURITY: list[dict[str, list[str]]] = [{"operatorKey": []}]
COMPANY_SECURITY: list[dict[str, list[str]]] = [{"demandToken": []}, {"demandTokenQuery": []}]

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "operatorKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                    "description": "the operator API key, PATENTMATCH_API_KEY; without it "
                    "configured, operator endpoints return 503"},
    "demandToken": {"type": "apiKey", "in": "header", "name": "X-Demand-Token",
                    "description": "the demand's access token from the POST /v1/demands reply"},
    "demandTokenQuery": {"type": "apiKey", "in": "query", "name": "token",
                         "description": "the demand's access token as a query parameter"},
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"type": "object"}}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "additionalProperties": False, "required": required,
              "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def _query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _operator(operation_id: str, summary: str, ok: dict[str, Any],
              **extra: Any) -> dict[str, Any]:
    """Build an operator operation with the shared credential errors."""
    responses = {"200": ok, "400": _error("invalid input; `field` names it"),
                 "401": _error("X-API-Key is missing"), "403": _error("X-API-Key is invalid"),
                 "503": _error("no API key is configured, or Elasticsearch is unavailable")}
    responses.update(extra.pop("responses", {}))
    return {"operationId": operation_id, "summary": summary, "security": OPERATOR_SECURITY,
            "responses": responses, **extra}


def workflow_paths() -> dict[str, Any]:
    """Return the OpenAPI ``paths`` of every workflow route."""
    demand_id = _path_parameter("demand_id", "the demand id from the POST /v1/demands reply")
    paging = [_query_parameter("limit", {"type": "integer", "minimum": 1, "maximum": 100,
                                         "default": 20}, "page size"),
              _query_parameter("offset", {"type": "integer", "minimum": 0, "default": 0},
                               "number of entries to skip")]
    not_found = {"404": _error("no such demand")}
    demand_view = _json("the demand with the full audit trail")
    number = {"type": "string", "examples": ["1020180173848"]}
    note = {"type": "string"}
    return {
        "/v1/demands": {
            "post": {
                "operationId": "createDemand", "security": [],
                "summary": "Register a technology demand and rank patents for it",
                "requestBody": _body({
                    "title": {"type": "string"}, "description": {"type": "string"},
                    "company": {"type": "string"}, "email": {"type": "string", "format": "email"},
                    "k": {"type": "integer", "minimum": 1, "maximum": 100},
                    "mode": {"type": "string"}, "filters": {"$ref": "#/components/schemas/Filters"},
                }, ["title", "company", "email"]),
                "responses": {
                    "201": _json("the demand id, its access token (returned only here) and "
                                 "its status URL"),
                    "400": _error("invalid input; `field` names it"),
                    "503": _error("Elasticsearch is unavailable"),
                }},
            "get": _operator(
                "listDemands", "List demands, newest first", _json("total and one page of demands"),
                parameters=[_query_parameter("status", {"type": "string", "enum": list(Status)},
                                             "only demands with this status"),
                            _query_parameter("company", {"type": "string"},
                                             "only demands of this company"), *paging]),
        },
        "/v1/demands/{demand_id}": {"get": {
            "operationId": "getDemand",
            "summary": "Read a demand: the company view with the access token, the full "
                       "audit trail with X-API-Key",
            "parameters": [demand_id],
            "security": [*OPERATOR_SECURITY, *COMPANY_SECURITY],
            "responses": {
                "200": _json("the demand"),
                "401": _error("no credential was sent"),
                "403": _error("the credential does not match"),
                "404": _error("no such demand"),
                "503": _error("Elasticsearch is unavailable"),
            }}},
        "/v1/demands/{demand_id}/selection": {"post": {
            "operationId": "selectPatents", "summary": "Select the patents to contact",
            "parameters": [demand_id], "security": COMPANY_SECURITY,
            "requestBody": _body({"application_numbers": {"type": "array", "items": number,
                                                          "minItems": 1}},
                                 ["application_numbers"]),
            "responses": {
                "200": _json("the company view of the demand"),
                "400": _error("invalid input; `field` names it"),
                "401": _error("the access token is missing"),
                "403": _error("the access token does not match"),
                "404": _error("no such demand"),
                "409": _error("the demand's status does not allow a selection, or another "
                              "write won"),
                "503": _error("Elasticsearch is unavailable"),
            }}},
        "/v1/demands/{demand_id}/recommendations": {"post": _operator(
            "rerunRecommendations", "Rank patents for the demand again", demand_view,
            parameters=[demand_id], responses={**not_found, "409": _error("invalid transition")})},
        "/v1/demands/{demand_id}/dispatch": {"post": _operator(
            "redispatch", "Queue the e-mails of the selected patents again", demand_view,
            parameters=[demand_id], responses={**not_found, "409": _error("invalid transition")})},
        "/v1/demands/{demand_id}/answers": {"post": _operator(
            "recordAnswer", "Record a rights holder's answer given outside the reply link",
            demand_view, parameters=[demand_id],
            requestBody=_body({"application_number": number,
                               "answer": {"type": "string", "enum": list(Answer)}, "note": note},
                              ["application_number", "answer"]),
            responses={**not_found, "409": _error("no e-mail was sent for the patent, or it "
                                                  "was answered already")})},
        "/v1/demands/{demand_id}/status": {"post": _operator(
            "setStatus", "Move the demand to another status", demand_view,
            parameters=[demand_id],
            requestBody=_body({"status": {"type": "string", "enum": list(Status)}, "note": note},
                              ["status"]),
            responses={**not_found, "409": _error("invalid transition")})},
        "/v1/contacts/import": {"post": _operator(
            "importContacts", "Import rights-holder contacts from CSV (applicant,email)",
            _json("number of imported contacts and the demands whose e-mails were queued"),
            parameters=[_query_parameter("source", {"type": "string"},
                                         "name of the import, kept with each contact")],
            requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
            responses={"413": _error("the CSV is over 5 MiB")})},
        "/v1/contacts": {"get": _operator(
            "listContacts", "List imported contacts", _json("total and one page of contacts"),
            parameters=paging)},
        "/v1/contacts/missing": {"get": _operator(
            "missingContacts", "List applicants of selected patents that have no contact",
            _json("the applicants without a contact"))},
        "/v1/outbox": {"get": _operator(
            "listOutbox", "List queued and sent e-mails", _json("total and one page of messages"),
            parameters=[_query_parameter("status", {"type": "string", "enum": [
                "pending", "sending", "sent", "failed"]}, "only messages with this status"),
                *paging])},
        "/v1/outbox/{outbox_id}/retry": {"post": _operator(
            "retryOutbox", "Queue a failed e-mail again", _json("the message"),
            parameters=[_path_parameter("outbox_id", "the message id from GET /v1/outbox")],
            responses={"400": _error("the message has not failed, or invalid input"),
                       "404": _error("no such message")})},
        "/v1/replies/{token}": {
            "get": {
                "operationId": "replyConfirmPage", "security": [],
                "summary": "Show the rights holder's reply confirmation page (HTML)",
                "parameters": [_path_parameter("token", "the signed token of the e-mail link")],
                "responses": {"200": _html("the confirmation form"),
                              "4XX": _html("invalid or expired link"),
                              "503": _html("Elasticsearch is unavailable")}},
            "post": {
                "operationId": "replySubmit", "security": [],
                "summary": "Record the rights holder's reply (HTML)",
                "parameters": [_path_parameter("token", "the signed token of the e-mail link")],
                "responses": {"200": _html("the reply was recorded"),
                              "409": _html("the patent was answered already"),
                              "4XX": _html("invalid or expired link"),
                              "503": _html("Elasticsearch is unavailable")}},
        },
    }


def add_workflow(document: dict[str, Any]) -> dict[str, Any]:
    """Add the workflow paths and security schemes to the API's OpenAPI ``document``."""
    document["paths"].update(workflow_paths())
    schemes = document["components"].setdefault("securitySchemes", {})
    schemes.update(SECURITY_SCHEMES)
    return document
