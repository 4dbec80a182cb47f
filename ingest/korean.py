"""Korean morphological analysis for the whitespace-analysed ``*_terms`` fields.

The Elasticsearch node has no Korean analyser, so text is analysed here, with
Kiwi (kiwipiepy, which ships its own model), and indexed as space-joined terms.
Search code calls :func:`analyze` on the query so both sides see the same terms.

Kept: nouns (NNG, NNP), verb and adjective stems (VV, VA), roots (XR), Chinese
characters (SH), foreign words (SL, lowercased) and numbers (SN). Particles,
endings, suffixes, punctuation and dependent nouns (NNB: 것, 수) are dropped.

The analysis is deterministic: same text, same Kiwi version, same terms. Kiwi is
created once per process on first use (about 1 s and 100 MB).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)

KEPT_TAGS = frozenset({"NNG", "NNP", "VV", "VA", "XR", "SH", "SL", "SN"})

_kiwi = None
_kiwi_lock = threading.Lock()


def _num_workers() -> int:
    """Kiwi threads: ``PATENTMATCH_KIWI_THREADS`` or up to 4 (default: CPU count, max 4)."""
    raw = os.environ.get("PATENTMATCH_KIWI_THREADS", "")
    if raw:
        try:
            value = int(raw)
        except ValueError as exc:
            raise ValueError(
                f"PATENTMATCH_KIWI_THREADS must be a positive integer, found {raw!r}"
            ) from exc
        if value < 1:
            raise ValueError(f"PATENTMATCH_KIWI_THREADS must be >= 1, found {value}")
        return value
    return max(1, min(4, os.cpu_count() or 1))


def get_kiwi():
    """Return the process-wide Kiwi instance, creating it on first call."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                workers = _num_workers()
                logger.debug("loading Kiwi with %d worker threads", workers)
                _kiwi = Kiwi(num_workers=workers)
    return _kiwi


def _terms(tokens) -> str:
    out = []
    for token in tokens:
        # Irregular conjugations carry a suffix on the tag: VV-R, VA-I.
        tag = token.tag.split("-", 1)[0]
        if tag not in KEPT_TAGS:
            continue
        form = token.form.lower() if tag == "SL" else token.form
        out.append(form)
    return " ".join(out)


def analyze(text: str | None) -> str:
    """Return the kept morphemes of ``text``, space-joined; ``""`` for empty input.

    >>> analyze("공기정화장치를 이용한 RFID 리더")
    '공기 정화 장치 이용 rfid 리더'
    """
    if not text or not text.strip():
        return ""
    return _terms(get_kiwi().tokenize(text))


def analyze_many(texts: Iterable[str | None]) -> Iterator[str]:
    """Analyse many texts with Kiwi's multi-threaded batch API, in input order.

    Faster than calling :func:`analyze` in a loop when Kiwi has more than one
    worker thread; the results are identical.
    """
    kiwi = get_kiwi()
    items = list(texts)
    # Blank texts skip Kiwi and map to "" directly.
    work = [(i, t) for i, t in enumerate(items) if t and t.strip()]
    results = [""] * len(items)
    if work:
        analysed = kiwi.tokenize([t for _, t in work])
        for (i, _), tokens in zip(work, analysed):
            results[i] = _terms(tokens)
    yield from results
