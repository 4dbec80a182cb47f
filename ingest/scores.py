"""KPEG patent evaluation files: CSV columns, reader and checks.

One row per evaluated patent. Columns (header names are matched like the patent
CSV headers: case, spaces and underscores do not matter; Korean names work):

============================  ==========  ==========================================
column                        required    meaning
============================  ==========  ==========================================
``application_number``        yes         any form ``normalize_application_number``
(출원번호)                                accepts, e.g. ``10-2018-0173848``
``pqi`` (PQI, 특허품질지수)   yes         patent quality index, 0-10 (a ratio around 1)
``rights`` (권리성)           yes         rights score, 0-100
``technology`` (기술성)       yes         technology score, 0-100
``commercial`` (사업성)       yes         commercial-value score, 0-100
``grade`` (등급)              no          evaluation grade as published (AAA, BB ...)
``evaluation_date`` (평가일)  no          any date form ``normalize_date`` accepts
``source``                    no          ``kpeg`` (default) or ``synthetic`` (demo data)
============================  ==========  ==========================================

A value outside its range, a non-number or a bad application number rejects the
row with a reason; the other rows are still read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.normalize import normalize_application_number, normalize_date
from ingest.readers import ReaderItem, iter_csv_rows
from ingest.records import Reject, SourceRecord

SCORE_FIELDS = {
    "application_number": ["출원번호", "applicationnumber", "appno", "applno"],
    "pqi": ["pqi", "특허품질지수", "pqi지수"],
    "rights": ["rights", "권리성", "rightsscore", "권리성점수"],
    "technology": ["technology", "기술성", "technologyscore", "기술성점수"],
    "commercial": ["commercial", "사업성", "시장성", "commercialscore", "사업성점수"],
    "grade": ["grade", "등급", "평가등급"],
    "evaluation_date": ["evaluationdate", "평가일", "평가일자", "evaldate"],
    "source": ["source", "출처"],
}
REQUIRED_SCORE_FIELDS = ("application_number", "pqi", "rights", "technology", "commercial")

# Field -> inclusive (low, high) range.
SCORE_RANGES = {"pqi": (0.0, 10.0), "rights": (0.0, 100.0), "technology": (0.0, 100.0),
                "commercial": (0.0, 100.0)}
SCORE_SOURCES = ("kpeg", "synthetic")


def parse_scores(values: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """Return (13-digit application number, ``scores`` object) for one row.

    Raises:
        ValueError: the first problem found, naming the column and the value.
    """
    number = normalize_application_number(values.get("application_number"))
    scores: dict[str, Any] = {}
    for name, (low, high) in SCORE_RANGES.items():
        raw = (values.get(name) or "").strip()
        if not raw:
            raise ValueError(f"{name} is empty; every row needs pqi, rights, "
                             "technology and commercial")
        try:
            value = float(raw.replace(",", ""))
        except ValueError:
            raise ValueError(f"{name} {raw!r} is not a number") from None
        if math.isnan(value) or not low <= value <= high:
            raise ValueError(f"{name} {raw!r} is outside {low:g}-{high:g}")
        scores[name] = value
    grade = (values.get("grade") or "").strip()
    if grade:
        scores["grade"] = grade
    evaluation_date = normalize_date(values.get("evaluation_date"))
    if evaluation_date:
        scores["evaluation_date"] = evaluation_date
    source = (values.get("source") or "").strip().lower() or "kpeg"
    if source not in SCORE_SOURCES:
        raise ValueError(f"source {source!r} is not one of {', '.join(SCORE_SOURCES)}")
    scores["source"] = source
    return number, scores


def read_scores(path: str | Path, encoding: str | None = None) -> Iterator[ReaderItem]:
    """Read a KPEG evaluation CSV (columns in the module docstring).

    Yields a :class:`SourceRecord` with fields ``application_number`` (13 digits)
    and ``scores`` per valid row, a :class:`Reject` per invalid row.

    Raises:
        ReaderError: encoding not detected or required columns missing.
    """
    path = Path(path)
    for index, line, values, problem in iter_csv_rows(path, SCORE_FIELDS,
                                                      REQUIRED_SCORE_FIELDS, encoding):
        source = f"{path}:{line}"
        if problem:
            yield Reject(source, problem, position=index)
            continue
        try:
            number, scores = parse_scores(values)
        except ValueError as exc:
            yield Reject(source, str(exc), application_number=values.get("application_number"),
                         raw=values, position=index)
            continue
        yield SourceRecord(source, {"application_number": number, "scores": scores},
                           position=index)
