"""``python -m benchmarks.quality``: retrieval quality of BM25, dense and hybrid ranking."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from benchmarks.quality.run import (
    HarnessConfig,
    render_markdown,
    run_harness,
    summarise,
    write_json,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_QUERIES = sorted((REPO_ROOT / "benchmarks" / "data" / "eval").glob("*.jsonl"))
DEFAULT_CORPUS = REPO_ROOT / "ingest" / "data" / "kipris-sample.jsonl.gz"
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality",
                                     description=__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--queries", nargs="+", type=Path, default=DEFAULT_QUERIES,
                      metavar="FILE.jsonl",
                      help="query sets: prior-art pair or question JSONL files "
                           "(default: benchmarks/data/eval/*.jsonl)")
    data.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                      help="patent JSONL(.gz) searched by every method "
                           "(default: the bundled sample)")
    dense = parser.add_argument_group("dense retrieval")
    dense.add_argument("--model", default=None,
                       help="sentence encoder folder or hub id (default: the shipped model)")
    dense.add_argument("--max-seq-length", type=int, default=None,
                       help="encoder token limit (default: PATENTMATCH_MAX_SEQ_LENGTH, "
                            "lowered to the model's limit)")
    dense.add_argument("--batch-size", type=int, default=64, help="texts per encoder batch")
    dense.add_argument("--candidates", type=int, default=1000,
                       help="two-stage: abstracts kept before title re-scoring (default 1000)")
    bm25 = parser.add_argument_group("BM25")
    bm25.add_argument("--es-url", default=None,
                      help="Elasticsearch URL (default: PATENTMATCH_ES_URL or ES_URL)")
    bm25.add_argument("--alias", default="bench-quality-patents",
                      help="throwaway alias the corpus is ingested into; it and its "
                           "indices are deleted at the end (default: bench-quality-patents)")
    bm25.add_argument("--no-es", action="store_true",
                      help="skip the Elasticsearch baseline (rank_bm25 still runs)")
    bm25.add_argument("--no-rank-bm25", action="store_true",
                      help="skip the in-memory rank_bm25 baseline")
    fusion = parser.add_argument_group("fusion")
    fusion.add_argument("--depth", type=int, default=1000,
                        help="results per method and query, also the fusion depth")
    fusion.add_argument("--rrf-k", type=float, default=60.0, help="RRF constant (default 60)")
    fusion.add_argument("--bm25-weight", type=float, default=0.5,
                        help="weight of BM25 in min-max fusion, in [0, 1] (default 0.5)")
    output = parser.add_argument_group("output")
    output.add_argument("--output-json", type=Path, default=DEFAULT_RESULTS / "quality.json")
    output.add_argument("--output-md", type=Path, default=DEFAULT_RESULTS / "quality.md")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only, no bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One INFO line per Elasticsearch request would bury the progress lines.
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    if not 0.0 <= args.bm25_weight <= 1.0:
        raise SystemExit(f"--bm25-weight must be in [0, 1], found {args.bm25_weight!r}")
    es_url = args.es_url
    if es_url is None and not args.no_es:
        from patentmatch.config import load_settings

        es_url = load_settings().es_url
    config = HarnessConfig(
        queries=args.queries, corpus=args.corpus, model=args.model, es_url=es_url or "",
        alias=args.alias, use_es=not args.no_es, use_rank_bm25=not args.no_rank_bm25,
        candidates=args.candidates, depth=args.depth, batch_size=args.batch_size,
        max_seq_length=args.max_seq_length, rrf_k=args.rrf_k, bm25_weight=args.bm25_weight,
        command=" ".join(["python -m benchmarks.quality",
                          *(argv if argv is not None else sys.argv[1:])]),
    )
    report = run_harness(config)
    write_json(report, args.output_json)
    args.output_md.parent.mkdir(parents=True, exist_ok=True)
    args.output_md.write_text(render_markdown(report), encoding="utf-8")
    print(summarise(report))
    print(f"written: {args.output_json} and {args.output_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
