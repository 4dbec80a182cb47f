"""Retrieval quality harness: BM25, dense and combined rankings on JSONL query sets.

Run ``python -m benchmarks.quality --help``. The metric and ranking functions in
``metrics``, ``querysets`` and ``dense`` are plain functions that other packages
import.
"""
