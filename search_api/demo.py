"""``patentmatch demo``: the whole service on the bundled sample, in one command.

Steps, each skipped when its result already exists:

1. Elasticsearch: ``ES_URL`` when set, otherwise the local node on
   ``PATENTMATCH_ES_PORT`` (started through ``LocalElasticsearch``).
2. Ingest of the bundled sample, plus the synthetic evaluation scores when the
   project ships them (``ingest/data/*scores*``). Skipped when the alias points
   to the index this step recorded last time, with the same document count and
   the same input files.
3. The encoder: ``PATENTMATCH_MODEL`` or the shipped model.
4. The vector store: skipped when its metadata matches the index, the count and
   the encoder fingerprint; otherwise ``index update`` runs.
5. The dashboard (when the ``dashboard`` package provides ``create_dash_app``)
   in a background thread, then the API in the foreground.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from patentmatch.config import PROJECT_ROOT, Settings
from search_api.vectors import VectorStore, VectorStoreError, VectorStoreMismatch, check_metadata, read_metadata, store_dir

logger = logging.getLogger(__name__)

DATA_DIR = PROJECT_ROOT / "ingest" / "data"


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and the fix."""


@dataclass
class DemoState:
    """Resources the demo prepared for the API."""

    es_url: str
    es_index: str
    count: int
    ingested: bool
    indexed: bool
    encoder: Any
    store: VectorStore


def demo_inputs() -> list[Path]:
    """Return the bundled sample, then the synthetic scores files when present."""
    sample = DATA_DIR / "kipris-sample.jsonl.gz"
    if not sample.is_file():
        raise DemoError(f"the bundled sample {sample} is missing; reinstall the project")
    scores = sorted(p for p in DATA_DIR.glob("*scores*.csv*") if p.is_file())
    return [sample, *scores]


def _inputs_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}\n".encode())
    return digest.hexdigest()


def _state_file(settings: Settings, url: str) -> Path:
    key = hashlib.sha256(f"{url}|{settings.index_alias}".encode()).hexdigest()[:16]
    return settings.cache_dir / "demo" / f"ingest-{key}.json"


def start_elasticsearch(settings: Settings) -> str:
    """Return the cluster URL, starting the local node when ``ES_URL`` is empty."""
    if settings.es_url:
        return settings.es_url
    from patentmatch.es_runner import ElasticsearchRunnerError, LocalElasticsearch

    node = LocalElasticsearch(settings)
    try:
        node.start()
    except (ElasticsearchRunnerError, OSError) as exc:
        raise DemoError(f"could not start the local Elasticsearch on port {settings.es_port}: {exc}; "
                        "set ES_URL to use an existing cluster") from exc
    return node.url


def _alias_state(es: Elasticsearch, alias: str) -> tuple[str | None, int]:
    if not es.indices.exists_alias(name=alias):
        return None, 0
    names = sorted(es.indices.get_alias(name=alias))
    return names[0], int(es.count(index=alias)["count"])


def ensure_ingested(settings: Settings, es: Elasticsearch, url: str) -> tuple[str, int, bool]:
    """Ingest the demo inputs unless the alias already contains them; return (index, count, ingested)."""
    inputs = demo_inputs()
    digest = _inputs_digest(inputs)
    state_path = _state_file(settings, url)
    index, count = _alias_state(es, settings.index_alias)
    if index is not None and state_path.is_file():
        state = json.loads(state_path.read_text())
        if state == {"index": index, "count": count, "inputs": digest}:
            logger.info("Reusing %s (%d patents) behind alias %s", index, count, settings.index_alias)
            return index, count, False

    try:
        from ingest.job import run_ingest
    except ImportError as exc:
        raise DemoError(f"the ingest job is not available ({exc}); the project install is incomplete") from exc
    logger.info("Ingesting %s into alias %s", ", ".join(p.name for p in inputs), settings.index_alias)
    summary = run_ingest(inputs[:1], settings, scores=inputs[1:], client=es)
    logger.info("Ingest finished: %s", summary)
    es.indices.refresh(index=settings.index_alias)
    index, count = _alias_state(es, settings.index_alias)
    if index is None or count == 0:
        raise DemoError(f"ingest left no patents behind alias {settings.index_alias!r}; see the log above")
    state_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = state_path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"index": index, "count": count, "inputs": digest}))
    os.replace(temporary, state_path)
    return index, count, True


def load_demo_encoder(settings: Settings) -> Any:
    """Load ``settings.model`` or the shipped model, with a clear error when neither exists."""
    try:
        from encoder import load_encoder
    except ImportError as exc:
        raise DemoError(f"the encoder package is not available ({exc})") from exc
    try:
        return load_encoder(settings.model or None, settings)
    except (OSError, ValueError, RuntimeError) as exc:
        raise DemoError(
            f"no sentence encoder could be loaded: {str(exc).rstrip('.')}. The demo needs the model shipped in "
            "encoder/models/ or PATENTMATCH_MODEL pointing to a sentence-transformers folder"
        ) from exc


def ensure_indexed(settings: Settings, es: Elasticsearch, encoder: Any, es_index: str,
                   count: int) -> tuple[VectorStore, bool]:
    """Load the vector store when it matches the index and encoder; otherwise update it."""
    root = store_dir(settings.cache_dir, settings.index_alias)
    try:
        check_metadata(read_metadata(root), es_index=es_index, es_count=count,
                       encoder_fingerprint=encoder.fingerprint, dimension=encoder.dimension)
    except VectorStoreMismatch as exc:
        logger.info("Vector store out of date (%s); updating", exc)
    except VectorStoreError:
        logger.info("No vector store yet; building it")
    else:
        return VectorStore.load(root), False

    from search_api.indexing import run_indexing

    run_indexing(settings, encoder, es, rebuild=False)
    return VectorStore.load(root), True


def prepare(settings: Settings, encoder: Any | None = None) -> DemoState:
    """Run steps 1 to 4 and return what the API needs."""
    url = start_elasticsearch(settings)
    es = Elasticsearch(url, request_timeout=max(settings.es_request_timeout_s, 120.0))
    try:
        es_index, count, ingested = ensure_ingested(settings, es, url)
        encoder = encoder or load_demo_encoder(settings)
        store, indexed = ensure_indexed(settings, es, encoder, es_index, count)
    finally:
        es.close()
    return DemoState(url, es_index, count, ingested, indexed, encoder, store)


def start_dashboard(settings: Settings) -> str | None:
    """Start the dashboard in a daemon thread when the package provides it; return its URL."""
    if importlib.util.find_spec("dashboard.app") is None:
        logger.info("The dashboard is not installed; starting the API only")
        return None
    from dashboard.app import create_dash_app

    dash_app = create_dash_app(settings)
    try:
        from waitress import serve
    except ImportError:
        target, kwargs = dash_app.run, {"host": settings.api_host, "port": settings.dashboard_port,
                                        "debug": False}
    else:
        target, kwargs = serve, {"app": dash_app.server, "host": settings.api_host,
                                 "port": settings.dashboard_port, "ident": "patentmatch-dashboard"}
    thread = threading.Thread(target=target, kwargs=kwargs, name="dashboard", daemon=True)
    thread.start()
    return f"http://{settings.api_host}:{settings.dashboard_port}/"


def run_demo(settings: Settings, serve: bool = True, dashboard: bool = True) -> DemoState:
    """Prepare everything, print the URLs and serve until interrupted (unless ``serve`` is False)."""
    state = prepare(settings)
    api = f"http://{settings.api_host}:{settings.api_port}"
    print(f"Elasticsearch  {state.es_url}  ({state.es_index}, {state.count} patents"
          f"{', ingested now' if state.ingested else ', reused'})")
    print(f"Vector store   {len(state.store)} patents, {state.store.meta.factory}, encoder "
          f"{state.store.meta.encoder_name}{' (built now)' if state.indexed else ' (reused)'}")
    if not serve:
        return state

    from search_api.app import create_app, run

    dashboard_url = start_dashboard(settings) if dashboard else None
    print(f"API            {api}/v1/health   (OpenAPI: {api}/v1/openapi.json)")
    if dashboard_url:
        print(f"Dashboard      {dashboard_url}")
    print(f"Try: curl -s {api}/v1/search -H 'Content-Type: application/json' "
          "-d '{\"title\": \"딥러닝을 활용한 영상 인식\", \"k\": 5}'")
    run(settings, create_app(settings, encoder=state.encoder, store=state.store))
    return state
