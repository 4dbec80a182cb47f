"""The quality harness end to end: ingest into a throwaway alias, every method, reports."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from benchmarks.quality.__main__ import main
from benchmarks.quality.run import render_markdown

REPO_ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = REPO_ROOT / "benchmarks" / "data" / "eval"


@pytest.fixture(scope="module")
def harness_corpus(sample_path, tmp_path_factory) -> Path:
    """The FTO relevant patents, prior-art pairs of the first 10 queries, 150 others."""
    needed = set()
    pairs = [json.loads(line) for line in
             (EVAL_DIR / "dev-prior-art-pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = list(dict.fromkeys(pair["query_application_number"] for pair in pairs))[:10]
    for pair in pairs:
        if pair["query_application_number"] in queries:
            needed.update({pair["query_application_number"],
                           pair["relevant_application_number"]})
    for line in (EVAL_DIR / "dev-fto-queries.jsonl").read_text(encoding="utf-8").splitlines():
        needed.update(json.loads(line)["relevant_application_numbers"])
    kept, others = [], []
    with gzip.open(sample_path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if json.loads(line)["application_number"] in needed:
                kept.append(line)
            elif len(others) < 150:
                others.append(line)
    path = tmp_path_factory.mktemp("harness") / "corpus.jsonl"
    path.write_text("".join(kept + others), encoding="utf-8")
    return path


def test_harness_end_to_end(harness_corpus, tiny_encoder_path, es_url, es_client,
                            index_prefix, tmp_path):
    alias = f"{index_prefix}-bench"
    code = main(["-q", "--corpus", str(harness_corpus), "--model", str(tiny_encoder_path),
                 "--es-url", es_url, "--alias", alias,
                 "--output-json", str(tmp_path / "quality.json"),
                 "--output-md", str(tmp_path / "quality.md")])
    report = json.loads((tmp_path / "quality.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "quality.md").read_text(encoding="utf-8")
    prior_art = report["results"]["dev-prior-art-pairs [title+abstract]"]

    assert code == 0
    assert set(prior_art) == {"bm25-es", "bm25-rank_bm25", "dense-abstract", "dense-title",
                              "two-stage", "two-stage-split", "hybrid-rrf", "hybrid-minmax"}
    assert "two-stage-split" not in report["results"]["dev-fto-queries"]
    assert report["query_sets"]["dev-prior-art-pairs [title+abstract]"]["queries"] == 10
    for methods in report["results"].values():
        for values in methods.values():
            for name in ("ndcg@10", "recall@10", "recall@100", "mrr"):
                assert 0.0 <= values[name] <= 1.0
    # Both BM25 implementations see the same Kiwi morphemes.
    assert prior_art["bm25-es"]["recall@100"] > 0.5
    assert abs(prior_art["bm25-es"]["recall@100"]
               - prior_art["bm25-rank_bm25"]["recall@100"]) <= 0.2
    assert report["elasticsearch"]["indexed"] == report["corpus"]["patents"]
    assert not es_client.indices.exists(index=f"{alias}*", allow_no_indices=False)
    assert "## dev-fto-queries" in markdown
    assert "| method | nDCG@10 | Recall@10 | Recall@100 | MRR |" in markdown
    assert markdown == render_markdown(report)


def test_unknown_query_file_shape(tmp_path, harness_corpus, tiny_encoder_path):
    from benchmarks.quality.querysets import QuerySetError

    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"question": "x"}\n', encoding="utf-8")
    with pytest.raises(QuerySetError, match="unknown query shape"):
        main(["-q", "--queries", str(odd), "--corpus", str(harness_corpus), "--model",
              str(tiny_encoder_path), "--no-es", "--output-json", str(tmp_path / "q.json"),
              "--output-md", str(tmp_path / "q.md")])
