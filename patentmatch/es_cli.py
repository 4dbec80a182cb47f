"""``patentmatch es start|stop|status``: manage the local Elasticsearch node."""

from __future__ import annotations

import argparse

from patentmatch.config import load_settings
from patentmatch.es_runner import ElasticsearchRunnerError, LocalElasticsearch


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if settings.es_url and args.action != "status":
        print(f"ES_URL is set to {settings.es_url}; the local node is not used. "
              "Unset ES_URL to manage the local node.")
        return 2
    node = LocalElasticsearch(settings, port=args.port)
    try:
        if args.action == "start":
            status = node.start()
            print(f"Elasticsearch {settings.es_version} is {status.health} at {status.url} "
                  f"(pid {status.pid}, data in {node.node_dir})")
        elif args.action == "stop":
            stopped = node.stop()
            print("stopped" if stopped else f"no local node was running on port {node.port}")
        else:
            url = settings.es_url or node.url
            if settings.es_url:
                from elasticsearch import Elasticsearch
                try:
                    health = Elasticsearch(url).cluster.health()["status"]
                except Exception as exc:  # any transport error means "not reachable"
                    print(f"{url}: not reachable ({exc})")
                    return 1
                print(f"{url}: {health}")
                return 0
            status = node.status()
            print(f"{url}: {status.detail}" + (f", health {status.health}" if status.health else ""))
            return 0 if status.health else 1
    except ElasticsearchRunnerError as exc:
        print(f"error: {exc}")
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("es", help="start, stop or check the local Elasticsearch")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port of the local node (default: PATENTMATCH_ES_PORT, 9200)")
    parser.set_defaults(handler=_run)
