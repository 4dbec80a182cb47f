"""The aiohttp application: routes, error mapping, limits and resource lifetimes.

Handlers stay thin: parse and validate (``search_api.schema``), call
``SearchService``, return JSON. Every error leaves as
``{"error": {"status", "message", "field"?}}``. Resources (the async
Elasticsearch client, the thread pool, the encoder and the vector store) are
opened and closed in ``cleanup_ctx`` generators and stored under typed
``AppKey``s.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any

import elasticsearch
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from patentmatch.config import ConfigError, Settings
from search_api import defaults
from search_api.schema import (
    InvalidField,
    dumps_response,
    has_lone_surrogate,
    openapi_document,
    parse_application_number,
    parse_search_request,
)
from search_api.search import RankingConfig, SearchService, SearchUnavailable
from search_api.ranking import SIX_T_VALUES
from search_api.vectors import (
    SearchTuning,
    VectorStore,
    VectorStoreError,
    VectorStoreMismatch,
    check_metadata,
    store_dir,
)

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("search_api.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Readiness:
    """What loaded at start-up, and why a part did not; reported by ``/v1/health``."""

    encoder: str | None = None
    vector_store: str | None = None
    index_check: str = "pending"
    problems: dict[str, str] = field(default_factory=dict)


SETTINGS = web.AppKey("settings", Settings)
ES = web.AppKey("es", AsyncElasticsearch)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
ENCODER = web.AppKey("encoder", object)
STORE = web.AppKey("store", object)
SERVICE = web.AppKey("service", SearchService)
READINESS = web.AppKey("readiness", Readiness)
RANKING = web.AppKey("ranking", RankingConfig)
DEFAULT_MODE = web.AppKey("default_mode", str)
# The defaults the ranking config came from, so the similarity threshold can
# follow the encoder that start-up loads; None when the caller gave a config.
CALIBRATION = web.AppKey("calibration", defaults.RankingDefaults | None)


def es_url(settings: Settings) -> str:
    """URL of the cluster: ``ES_URL``, or the local node the project starts."""
    return settings.es_url or f"http://127.0.0.1:{settings.es_port}"


def _version() -> str:
    try:
        return metadata.version("patentmatch")
    except metadata.PackageNotFoundError:
        return "0.0.0"


##### errors and middlewares


def error_response(status: int, message: str, field_name: str | None = None) -> web.Response:
    error: dict[str, Any] = {"status": status, "message": message}
    if field_name is not None:
        error["field"] = field_name
    return web.json_response({"error": error}, status=status, dumps=dumps_response)


def _routing_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """Build the JSON error for a request that matched no route (404) or no method (405)."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error_response(405, f"method not allowed: {request.method} {request.path}. "
                              f"Allowed: {allowed}; see /v1/openapi.json")
    return error_response(exc.status, f"no route for {request.method} {request.path}; "
                          "see /v1/openapi.json")


def _es_reason(exc: Exception) -> str:
    return f"Elasticsearch is unavailable: {type(exc).__name__}: {str(exc)[:300]}"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every failure to a JSON error with the right status."""
    try:
        return await handler(request)
    except InvalidField as exc:
        return error_response(400, exc.message, exc.field)
    except web.HTTPRequestEntityTooLarge as exc:
        limit = request.app[SETTINGS].max_request_bytes
        return error_response(413, f"request body too large ({exc.text}); the limit is {limit} bytes "
                              "(PATENTMATCH_MAX_REQUEST_BYTES)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if request.match_info.http_exception is not None:
            return _routing_error(request, exc)
        return error_response(exc.status, exc.reason if exc.text is None else exc.text)
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
        logger.warning("%s %s: %s", request.method, request.path, _es_reason(exc))
        return error_response(503, _es_reason(exc))
    except elasticsearch.NotFoundError as exc:
        logger.warning("%s %s: index missing: %s", request.method, request.path, exc)
        return error_response(503, f"the patent index {request.app[SETTINGS].index_alias!r} does not "
                              "exist; ingest patents with `patentmatch ingest`")
    except elasticsearch.ApiError as exc:
        if exc.meta.status in (429, 502, 503, 504):
            return error_response(503, _es_reason(exc))
        logger.exception("Elasticsearch rejected a request for %s %s", request.method, request.path)
        return error_response(500, f"Elasticsearch error {exc.meta.status}: {exc.message}")
    except SearchUnavailable as exc:
        return error_response(503, str(exc))
    except TimeoutError:
        limit = request.app[SETTINGS].request_timeout_s
        logger.warning("%s %s ran past the %.1f s limit", request.method, request.path, limit)
        return error_response(504, f"the request took longer than {limit:g} s "
                              "(PATENTMATCH_REQUEST_TIMEOUT_S)")
    except Exception:
        logger.exception("Unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal error; the server log has the details")


@web.middleware
async def timeout_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    async with asyncio.timeout(request.app[SETTINGS].request_timeout_s):
        return await handler(request)


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log method, path, status, body size and latency of every request."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        access_logger.info("%s %s %s %d %.1f ms", request.remote, request.method,
                           redact_path(request), status, (time.perf_counter() - started) * 1000.0)


SECRET_QUERY_KEYS = frozenset({"token", "access_token", "api_key", "key"})
SECRET_PATH_PREFIXES = ("/v1/replies/",)


def redact_path(request: web.Request) -> str:
    """Return the request path and query with reply tokens and secret parameters masked.

    Reply links carry a signed token in the path and demand status links may carry
    the access token as ``?token=``; neither may reach a log file.
    """
    path = request.path
    for prefix in SECRET_PATH_PREFIXES:
        if path.startswith(prefix) and len(path) > len(prefix):
            rest = path[len(prefix):]
            tail = rest[rest.index("/"):] if "/" in rest else ""
            path = f"{prefix}***{tail}"
    if not request.query:
        return path
    pairs = [f"{key}=***" if key.lower() in SECRET_QUERY_KEYS else f"{key}={value}"
             for key, value in request.query.items()]
    return f"{path}?{'&'.join(pairs)}"


##### handlers


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise InvalidField("body", "the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidField("body", f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        # json.loads recurses once per nesting level, so a small body of brackets overflows it.
        raise InvalidField("body", "the request body is nested too deeply; "
                           "send a flat JSON object") from None
    if has_lone_surrogate(body):
        raise InvalidField("body", "the request body contains an unpaired UTF-16 surrogate "
                           "escape such as \\ud800; send valid Unicode text")
    return body


async def search(request: web.Request) -> web.Response:
    body = await _json_body(request)
    query = parse_search_request(body, request.app[DEFAULT_MODE])
    reply = await request.app[SERVICE].search(query)
    return web.json_response(reply, dumps=dumps_response)


async def get_patent(request: web.Request) -> web.Response:
    number = parse_application_number(request.match_info["application_number"])
    document = await request.app[SERVICE].get_patent(number)
    if document is None:
        return error_response(404, f"no patent with application number {number} in "
                              f"{request.app[SETTINGS].index_alias!r}")
    return web.json_response(document, dumps=dumps_response)


async def score_stats(request: web.Request) -> web.Response:
    # The dashboard asks for one category at a time, so a repeated parameter is an error.
    values = request.query.getall("six_t", [])
    if len(values) > 1:
        raise InvalidField("six_t", f"six_t takes one category per request, found {values}; "
                           "send one request per category")
    six_t = values[0] if values and values[0] else None
    if six_t is not None and six_t not in SIX_T_VALUES:
        raise InvalidField("six_t", f"six_t must be one of {list(SIX_T_VALUES)}, found {six_t!r}")
    return web.json_response(await request.app[SERVICE].score_stats(six_t), dumps=dumps_response)


async def health(request: web.Request) -> web.Response:
    """Report Elasticsearch, index, encoder and vector store status; 503 unless all are ready."""
    app = request.app
    settings = app[SETTINGS]
    readiness = app[READINESS]
    es_part: dict[str, Any] = {"url": es_url(settings), "index": settings.index_alias}
    try:
        cluster = await app[ES].options(request_timeout=5).cluster.health()
        es_part.update(reachable=True, status=cluster["status"])
        count = await app[ES].options(ignore_status=404).count(index=settings.index_alias)
        es_part["count"] = count.get("count")
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
        es_part.update(reachable=False, error=_es_reason(exc))
    store = app[STORE]
    store_part: dict[str, Any] = {"loaded": store is not None, "check": readiness.index_check}
    if store is not None:
        meta = store.meta
        store_part.update(count=len(store), factory=meta.factory, encoder=meta.encoder_name,
                          es_index=meta.es_index, built_at=meta.built_at, updated_at=meta.updated_at)
    encoder = app[ENCODER]
    encoder_part = {"loaded": encoder is not None,
                    "name": getattr(encoder, "name", None)}
    ready = (es_part.get("reachable") and es_part.get("count") is not None
             and store is not None and encoder is not None and readiness.index_check == "ok")
    body = {
        "status": "ok" if ready else "unavailable" if not es_part.get("reachable") else "degraded",
        "elasticsearch": es_part, "vector_store": store_part, "encoder": encoder_part,
        "problems": readiness.problems, "default_mode": app[DEFAULT_MODE],
    }
    return web.json_response(body, status=200 if ready else 503, dumps=dumps_response)


async def openapi(request: web.Request) -> web.Response:
    document = openapi_document(_version(), request.app[SETTINGS].max_request_bytes)
    if importlib.util.find_spec("search_api.workflow") is not None:
        from search_api.workflow.openapi import add_workflow

        add_workflow(document)
    return web.json_response(document, dumps=dumps_response)


##### resources


async def _es_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = AsyncElasticsearch(es_url(settings), request_timeout=settings.es_request_timeout_s,
                                max_retries=1, retry_on_timeout=False)
    app[ES] = client
    yield
    await client.close()


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="search")
    app[EXECUTOR] = executor
    yield
    executor.shutdown(wait=False, cancel_futures=True)


def _load_encoder(settings: Settings) -> Any:
    from encoder import load_encoder

    return load_encoder(settings.model or None, settings)


async def _models_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load the encoder and vector store unless given, and check them against the index."""
    settings = app[SETTINGS]
    readiness = app[READINESS]
    loop = asyncio.get_running_loop()
    if app[ENCODER] is None:
        try:
            app[ENCODER] = await loop.run_in_executor(app[EXECUTOR], _load_encoder, settings)
        except (ImportError, OSError, ValueError, RuntimeError) as exc:
            readiness.problems["encoder"] = f"encoder not loaded: {exc}"
            logger.error("Encoder not loaded, only mode 'bm25' will work: %s", exc)
        else:
            if app[CALIBRATION] is not None:
                app[RANKING] = _calibrated(app[RANKING], app[ENCODER], app[CALIBRATION])
    if app[STORE] is None:
        root = store_dir(settings.cache_dir, settings.index_alias)
        try:
            tuning = SearchTuning(nprobe=settings.faiss_nprobe,
                                  ef_search=settings.faiss_ef_search)
            app[STORE] = await loop.run_in_executor(app[EXECUTOR], VectorStore.load, root, tuning)
        except VectorStoreError as exc:
            readiness.problems["vector_store"] = str(exc)
            logger.error("Vector store not loaded, only mode 'bm25' will work: %s", exc)
    await _check_store(app)

    analyze = _analyzer()
    # Loading the Kiwi model takes seconds; do it now rather than in the first request.
    await loop.run_in_executor(app[EXECUTOR], analyze, "특허 검색")
    app[SERVICE] = SearchService(app[ES], settings.index_alias, app[STORE], app[ENCODER],
                                 analyze, app[RANKING], app[EXECUTOR])
    yield


def _calibrated(config: RankingConfig, encoder: Any,
                chosen: defaults.RankingDefaults) -> RankingConfig:
    """Return ``config`` with the similarity threshold measured for ``encoder``."""
    return replace(config, threshold=chosen.threshold_for(encoder.fingerprint, config.threshold))


def _analyzer() -> Callable[[str], str]:
    from ingest.korean import analyze

    return analyze


async def _check_store(app: web.Application) -> None:
    """Compare the vector store with the index behind the alias and with the encoder.

    Raises VectorStoreMismatch, which stops start-up, when they disagree.
    With Elasticsearch down the check stays pending and the app starts anyway.
    """
    store, encoder, readiness = app[STORE], app[ENCODER], app[READINESS]
    if store is None:
        readiness.index_check = "no vector store"
        return
    if encoder is not None:
        check_metadata(store.meta, encoder_fingerprint=encoder.fingerprint, dimension=encoder.dimension)
    alias = app[SETTINGS].index_alias
    try:
        aliases = await app[ES].indices.get_alias(name=alias)
        count = (await app[ES].count(index=alias))["count"]
    except elasticsearch.NotFoundError:
        readiness.index_check = f"alias {alias!r} not found"
        readiness.problems["index"] = readiness.index_check
        logger.error("Alias %s does not exist; searches will fail until patents are ingested", alias)
        return
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
        readiness.problems["elasticsearch"] = _es_reason(exc)
        logger.warning("Vector store not checked against Elasticsearch: %s", _es_reason(exc))
        return
    check_metadata(store.meta, es_index=sorted(aliases)[0] if len(aliases) == 1 else None, es_count=count)
    readiness.index_check = "ok"


def create_app(settings: Settings, *, encoder: Any | None = None, store: VectorStore | None = None,
               ranking_config: RankingConfig | None = None, default_mode: str | None = None,
               load_models: bool = True) -> web.Application:
    """Build the API application.

    Args:
        settings: service settings; uses es_url/es_port, index_alias, cache_dir,
            model, max_request_bytes (the body limit behind 413) and
            request_timeout_s (the limit behind 504).
        encoder: a loaded ``PatentEncoder``; None loads ``settings.model``.
        store: a loaded vector store; None loads it from the cache folder.
        ranking_config: ranking settings; None takes the benchmark-chosen defaults.
        default_mode: mode of requests that name none; None takes the chosen default.
        load_models: False skips loading what was not given (BM25-only service).
    """
    chosen = defaults.load_defaults()
    config = ranking_config or chosen.ranking_config()
    if encoder is not None and ranking_config is None:
        config = _calibrated(config, encoder, chosen)
    app = web.Application(client_max_size=settings.max_request_bytes,
                          middlewares=[access_log_middleware, error_middleware, timeout_middleware])
    app[SETTINGS] = settings
    app[ENCODER] = encoder
    app[STORE] = store
    app[READINESS] = Readiness()
    app[RANKING] = config
    app[CALIBRATION] = chosen if ranking_config is None else None
    app[DEFAULT_MODE] = default_mode or chosen.default_mode
    app.cleanup_ctx.append(_es_ctx)
    app.cleanup_ctx.append(_executor_ctx)
    if load_models:
        app.cleanup_ctx.append(_models_ctx)
    else:
        app.cleanup_ctx.append(_service_only_ctx)
    app.add_routes([
        web.post("/v1/search", search),
        web.get("/v1/patents/{application_number}", get_patent),
        web.get("/v1/stats/scores", score_stats),
        web.get("/v1/health", health),
        web.get("/v1/openapi.json", openapi),
    ])
    if importlib.util.find_spec("search_api.workflow") is not None:
        from search_api import workflow

        workflow.setup(app)
    return app


async def _service_only_ctx(app: web.Application) -> AsyncIterator[None]:
    await _check_store(app)
    app[SERVICE] = SearchService(app[ES], app[SETTINGS].index_alias, app[STORE], app[ENCODER],
                                 _analyzer(), app[RANKING], app[EXECUTOR])
    yield


def run(settings: Settings, app: web.Application | None = None) -> None:
    """Serve the API on ``settings.api_host:api_port`` until interrupted.

    Raises:
        ConfigError: when the port is already in use.
    """
    app = app or create_app(settings)

    def log_listening(_banner: str) -> None:
        # run_app calls this once every site has started, so the port is bound by then.
        logger.info("API listening on http://%s:%d", settings.api_host, settings.api_port)

    try:
        web.run_app(app, host=settings.api_host, port=settings.api_port, access_log=None,
                    print=log_listening, shutdown_timeout=5)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ConfigError(
            f"api_port {settings.api_port} on {settings.api_host} is already in use; stop the "
            "process that holds it or set PATENTMATCH_API_PORT to a free port"
        ) from None


__all__ = ["create_app", "run", "es_url", "SETTINGS", "ES", "SERVICE", "STORE", "ENCODER"]
