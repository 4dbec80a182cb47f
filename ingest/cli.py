"""``patentmatch ingest``: load patent and evaluation files into Elasticsearch."""

from __future__ import annotations

import argparse
import json
import logging

from elasticsearch import ApiError, TransportError

from ingest.job import IngestError, run_ingest
from patentmatch.config import load_settings

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="index patent files (JSONL, KIPRIS XML/JSON, bulk ¶ folders, CSV) and KPEG scores",
        description="Read patent files, normalise them, index them behind the alias "
                    "PATENTMATCH_INDEX_ALIAS and join KPEG evaluation scores. Re-running "
                    "is safe; an interrupted run resumes from its checkpoint.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="patent inputs: files (.jsonl, .xml, .json, .csv, optionally "
                             ".gz) or KIPRIS Plus bulk folders")
    parser.add_argument("--scores", action="append", default=[], metavar="KPEG.csv",
                        help="KPEG evaluation CSV, joined onto the patents (repeatable)")
    parser.add_argument("--rejects", metavar="FILE",
                        help="JSONL file for rejects, conflicts and warnings "
                             "(default: <cache_dir>/ingest/<alias>-rejects.jsonl)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--new-index", action="store_true",
                        help="build a fresh versioned index from the given inputs only "
                             "(pass --scores again) and swap the alias to it at the end; "
                             "readers never see a half-built index")
    target.add_argument("--into-alias", action="store_true",
                        help="update the index behind the alias in place (the default; "
                             "a missing alias is built as with --new-index)")
    parser.add_argument("--keep-old", action="store_true",
                        help="with --new-index, keep the previous index instead of deleting it")
    parser.add_argument("--restart", action="store_true",
                        help="ignore a checkpoint of an interrupted run and start over")
    parser.add_argument("--sample", action="store_true",
                        help="also ingest the bundled real sample (ingest/data/kipris-sample.jsonl.gz)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ingest import BUNDLED_SAMPLE

    settings = load_settings(args.config)
    # One INFO line per HTTP request would bury the progress bar and the summary;
    # -v keeps them.
    if not args.verbose:
        logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    paths = list(args.paths)
    if args.sample:
        paths.append(BUNDLED_SAMPLE)
    try:
        summary = run_ingest(
            paths, settings, scores=args.scores, rejects_path=args.rejects,
            new_index=args.new_index, keep_old=args.keep_old, resume=not args.restart,
            show_progress=None if not args.quiet else False,
        )
    except IngestError as exc:
        logger.error("%s", exc)
        return 2
    except (ApiError, TransportError) as exc:
        logger.error("Elasticsearch at %s failed: %s; check `patentmatch es status`, then "
                     "run the same command again to resume", settings.es_url or
                     f"http://127.0.0.1:{settings.es_port}", exc)
        return 1
    if args.json:
        print(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"read {summary.read}, indexed {summary.indexed}, updated {summary.updated}, "
              f"unchanged {summary.unchanged}, rejected {summary.rejected} "
              f"({summary.docs_per_s:.0f} docs/s); rejects in {summary.rejects_path}")
    return 1 if summary.rejected and not (summary.indexed or summary.updated
                                          or summary.unchanged) else 0
