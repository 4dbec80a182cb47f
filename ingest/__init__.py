"""Read KIPRIS and KPEG exports, normalise them and index them in Elasticsearch.

Modules: ``readers`` (one generator per input format), ``scores`` (KPEG
evaluation files), ``normalize`` (field normalisation and the IPC-to-6T table),
``korean`` (Kiwi analysis for the ``*_terms`` fields and BM25 queries),
``index`` (versioned index and alias), ``job`` (the ``patentmatch ingest`` run).
"""

from pathlib import Path

BUNDLED_SAMPLE = Path(__file__).resolve().parent / "data" / "kipris-sample.jsonl.gz"

__all__ = ["BUNDLED_SAMPLE"]
