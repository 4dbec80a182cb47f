"""Subcommands ``patentmatch index build|update``, ``patentmatch serve`` and ``patentmatch demo``."""

from __future__ import annotations

import argparse
import logging

from patentmatch.config import load_settings

logger = logging.getLogger(__name__)


def _quiet_transport_log() -> None:
    # elastic_transport logs every request at INFO; the access log covers that.
    if logging.getLogger().getEffectiveLevel() >= logging.INFO:
        logging.getLogger("elastic_transport").setLevel(logging.WARNING)


def _settings(args: argparse.Namespace):
    _quiet_transport_log()
    overrides = {}
    for name in ("faiss_factory", "api_host", "api_port", "index_alias", "model"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return load_settings(args.config, **overrides)


def _index(args: argparse.Namespace) -> int:
    from elasticsearch import Elasticsearch

    from encoder import load_encoder
    from search_api.app import es_url
    from search_api.indexing import run_indexing

    settings = _settings(args)
    encoder = load_encoder(settings.model or None, settings)
    es = Elasticsearch(es_url(settings), request_timeout=settings.es_request_timeout_s)
    try:
        summary = run_indexing(settings, encoder, es, rebuild=args.action == "build",
                               batch_size=args.batch_size)
    finally:
        es.close()
    print(summary.line())
    return 0


def _serve(args: argparse.Namespace) -> int:
    from search_api.app import create_app, run
    from search_api.vectors import VectorStoreMismatch

    settings = _settings(args)
    try:
        run(settings, create_app(settings, default_mode=args.mode))
    except VectorStoreMismatch as exc:
        logger.error("API not started: %s", exc)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from search_api.demo import DemoError, run_demo

    settings = _settings(args)
    try:
        run_demo(settings, serve=not args.prepare_only, dashboard=not args.no_dashboard)
    except DemoError as exc:
        logger.error("%s", exc)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the matching-service subcommands to the ``patentmatch`` parser."""
    index = subparsers.add_parser("index", help="build or update the Faiss vector store from "
                                  "the patents in Elasticsearch")
    index.add_argument("action", choices=["build", "update"],
                       help="build: encode every patent into a fresh store; update: encode "
                       "only new and changed patents (by content_hash) and drop removed ones")
    index.add_argument("--faiss-factory", dest="faiss_factory",
                       help="Faiss factory string, e.g. Flat, auto, IVFauto,SQ8, HNSW32_SQ8 "
                       "(default: PATENTMATCH_FAISS_FACTORY)")
    index.add_argument("--index-alias", dest="index_alias", help="Elasticsearch alias to read "
                       "(default: PATENTMATCH_INDEX_ALIAS)")
    index.add_argument("--model", help="encoder folder (default: PATENTMATCH_MODEL, else the shipped model)")
    index.add_argument("--batch-size", type=int, default=1024,
                       help="patents per resumable checkpoint file (default 1024)")
    index.set_defaults(handler=_index)

    serve = subparsers.add_parser("serve", help="run the search API")
    serve.add_argument("--host", dest="api_host", help="bind address (default: PATENTMATCH_API_HOST)")
    serve.add_argument("--port", dest="api_port", type=int, help="port (default: PATENTMATCH_API_PORT)")
    serve.add_argument("--mode", choices=["two_stage", "hybrid", "bm25", "dense"],
                       help="mode of requests that name none (default: the benchmark-chosen mode)")
    serve.set_defaults(handler=_serve)

    demo = subparsers.add_parser(
        "demo", help="start everything on the bundled sample: Elasticsearch (unless ES_URL is "
        "set), ingest, vector index, the API and the dashboard; a second run reuses what exists")
    demo.add_argument("--prepare-only", action="store_true",
                      help="build what is missing, print the state and exit without serving")
    demo.add_argument("--no-dashboard", action="store_true", help="start the API only")
    demo.add_argument("--port", dest="api_port", type=int, help="API port (default: PATENTMATCH_API_PORT)")
    demo.set_defaults(handler=_demo)
