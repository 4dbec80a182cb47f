"""``patentmatch dashboard``: serve the Dash dashboard."""

from __future__ import annotations

import argparse
import logging

from patentmatch.config import load_settings

logger = logging.getLogger(__name__)


def _serve(args: argparse.Namespace) -> int:
    from dashboard.api_client import ApiClient, ApiError, ApiUnavailable
    from dashboard.app import create_dash_app

    if args.threads < 1:
        logger.error("--threads must be at least 1, found %d", args.threads)
        return 2
    overrides = {"dashboard_port": args.port, "api_url": args.api_url}
    settings = load_settings(args.config, **overrides)
    host = args.host or settings.api_host
    client = ApiClient(settings.effective_api_url, timeout_s=settings.request_timeout_s + 5.0)
    try:
        health = client.health()
        logger.info("search API at %s: %s", client.base_url, health.get("status", health))
    except (ApiUnavailable, ApiError) as exc:
        # The dashboard still starts and shows the problem on each search.
        logger.warning("%s; the dashboard starts anyway and reports it on every search", exc)

    app = create_dash_app(settings, client=client)
    url = f"http://{host}:{settings.dashboard_port}/"
    if args.debug:
        logger.info("dashboard (Flask development server, debug) at %s", url)
        app.run(host=host, port=settings.dashboard_port, debug=True)
        return 0

    from waitress import serve

    logger.info("dashboard at %s (search API %s)", url, client.base_url)
    print(f"dashboard: {url}", flush=True)
    serve(app.server, host=host, port=settings.dashboard_port, threads=args.threads,
          ident="patentmatch-dashboard")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dashboard", help="serve the Dash dashboard (talks to "
                                   "the search API over HTTP)")
    parser.add_argument("--host", default=None,
                        help="address to bind (default: PATENTMATCH_API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="port to bind (default: PATENTMATCH_DASHBOARD_PORT, 8050)")
    parser.add_argument("--api-url", default=None,
                        help="URL of the search API (default: PATENTMATCH_API_URL, or "
                        "http://<api_host>:<api_port>)")
    parser.add_argument("--threads", type=int, default=8,
                        help="worker threads of the WSGI server; each runs one "
                        "callback at a time (default: %(default)s)")
    parser.add_argument("--debug", action="store_true",
                        help="run Flask's development server with Dash's debug tools "
                        "and hot reload instead of waitress")
    parser.set_defaults(handler=_serve)
