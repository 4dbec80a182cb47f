"""Turn a ``POST /v1/search`` reply into what the dashboard shows and exports.

Everything here is a plain function of the reply: table rows, the notices above
the table, the detail panel's fields and the CSV export. A missing evaluation
score stays ``None`` all the way to the screen and the file, never 0.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

logger = logging.getLogger(__name__)

Result = dict[str, Any]
Row = dict[str, Any]

SCORE_KEYS: tuple[str, ...] = ("pqi", "rights", "technology", "commercial")
SCORE_LABELS: dict[str, str] = {
    "pqi": "PQI 지수",
    "rights": "권리성",
    "technology": "기술성",
    "commercial": "상업성",
}
SYNTHETIC_SOURCE = "synthetic"
MISSING_TEXT = "없음"

# (row key, CSV header) in export order; the table shows a subset.
EXPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "순위"),
    ("application_number", "출원번호"),
    ("title", "특허명"),
    ("pqi", "PQI 지수"),
    ("rights", "권리성 평가지수"),
    ("technology", "기술성 평가지수"),
    ("commercial", "상업성 평가지수"),
    ("grade", "평가 등급"),
    ("score_source", "평가 점수 출처"),
    ("similarity", "유사도 (초록·제목 평균)"),
    ("score", "순위 점수"),
    ("abstract_similarity", "초록 유사도"),
    ("title_similarity", "제목 유사도"),
    ("six_t", "6T 분류"),
    ("ipc", "IPC"),
    ("applicant", "출원인"),
    ("application_date", "출원일"),
    ("register_status", "권리 상태"),
    ("kipris_url", "KIPRIS 링크"),
)


@dataclass(frozen=True)
class Notice:
    """A message shown above the results; ``kind`` picks its colour."""

    kind: str  # "warning", "info" or "error"
    text: str
    notice_id: str


def score_source(result: Result) -> str | None:
    """Return where a result's evaluation scores come from (``kpeg``, ``synthetic``)."""
    source = result.get("score_source")
    if not source and isinstance(result.get("scores"), dict):
        source = result["scores"].get("source")
    return str(source) if source else None


def two_stage_similarity(result: Result) -> float | None:
    """Return the mean of the abstract and title cosine similarities, or None.

    This is the similarity the API's "no close match" flag compares with its
    threshold. It means the same in every mode, unlike ``score``, which is a BM25
    or fused value in the ``bm25`` and ``hybrid`` modes.
    """
    abstract = _number(result.get("abstract_similarity"))
    title = _number(result.get("title_similarity"))
    if abstract is None or title is None:
        return None
    return (abstract + title) / 2.0


def category_of(result: Result) -> str:
    """Return a result's 6T category, ``unclassified`` when it has none."""
    return str(result.get("six_t") or "unclassified")


def score_value(result: Result, key: str) -> float | None:
    """Return one evaluation score of a result, or None when the patent has none."""
    scores = result.get("scores")
    if not isinstance(scores, dict):
        return None
    value = scores.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        logger.warning("score %s of %s is not a number: %r",
                       key, result.get("application_number"), value)
        return None


def safe_kipris_url(url: Any) -> str | None:
    """Return ``url`` when it is an http(s) URL safe to put in a Markdown link."""
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    # Parentheses and spaces would end the Markdown link target early.
    return quote(url, safe=":/?&=#%+,;@~!*'.-_")


def result_rows(results: list[Result]) -> list[Row]:
    """Return one table row per result; the row ``id`` is the application number."""
    rows = []
    for result in results:
        number = str(result.get("application_number") or "")
        url = safe_kipris_url(result.get("kipris_url"))
        row: Row = {
            "id": number,
            "rank": result.get("rank"),
            "application_number": number,
            "title": result.get("title") or "",
            "similarity": two_stage_similarity(result),
            "score": _number(result.get("score")),
            "six_t": result.get("six_t") or "",
            "score_source": score_source(result) or "",
            "kipris": f"[KIPRIS]({url})" if url else "",
        }
        for key in SCORE_KEYS:
            row[key] = score_value(result, key)
        rows.append(row)
    return rows


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def no_close_match_detail(reply: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """Say which of the API's two checks failed, with the values and thresholds."""
    parts = []
    best = _number(reply.get("best_similarity"))
    threshold = _number(reply.get("threshold"))
    if best is None:
        # Older API replies carry no best similarity; the shown results are a subset
        # of the candidates the API decided over.
        similarities = [s for s in map(two_stage_similarity, results) if s is not None]
        best = max(similarities) if similarities else None
    if best is not None and threshold is not None and best < threshold:
        parts.append(f" 가장 가까운 특허의 유사도(초록·제목 평균)는 {best:.3f}로 "
                     f"기준 {threshold:.3f}보다 낮습니다.")
    coverage = _number(reply.get("lexical_coverage"))
    lexical = _number(reply.get("lexical_threshold"))
    if coverage is not None and lexical is not None and coverage < lexical:
        parts.append(f" 수요기술 제목의 단어 중 {coverage:.0%}만 가장 가까운 특허에 나옵니다"
                     f"(기준 {lexical:.0%}).")
    return "".join(parts)


def result_notices(reply: dict[str, Any]) -> list[Notice]:
    """Return the notices for a search reply, most important first.

    - no close match: the API's flag, with the best score and the threshold
      (left out for an empty result, which has its own notice);
    - empty result;
    - synthetic scores on screen;
    - results without evaluation scores.
    """
    results = reply.get("results") or []
    notices: list[Notice] = []
    if reply.get("no_close_match") and results:
        detail = no_close_match_detail(reply, results)
        notices.append(Notice(
            "warning",
            "수요기술과 가까운 특허를 찾지 못했습니다." + detail
            + " 아래 결과는 관련이 약할 수 있습니다.",
            "no-close-match",
        ))
    if not results:
        notices.append(Notice(
            "info",
            "조건에 맞는 특허가 없습니다. 필터를 줄이거나 다른 표현으로 검색해 보세요.",
            "empty-result",
        ))
        return notices
    synthetic = sum(1 for r in results if score_source(r) == SYNTHETIC_SOURCE)
    if synthetic:
        notices.append(Notice(
            "warning",
            f"합성 평가 점수: 결과 {synthetic}건의 PQI·권리성·기술성·상업성 점수는 "
            "데모용으로 생성한 값이며 실제 KPEG 평가가 아닙니다.",
            "synthetic-scores",
        ))
    missing = sum(1 for r in results if all(score_value(r, k) is None for k in SCORE_KEYS))
    if missing:
        notices.append(Notice(
            "info",
            f"결과 {missing}건은 평가 점수가 없어 '{MISSING_TEXT}'으로 표시합니다.",
            "missing-scores",
        ))
    return notices


def find_result(results: list[Result], application_number: str) -> Result | None:
    """Return the result with this application number, or None."""
    for result in results:
        if str(result.get("application_number")) == application_number:
            return result
    return None


def detail_fields(result: Result, document: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """Return (label, text) pairs for the detail panel of one result.

    ``document`` is the full patent from ``GET /v1/patents/{number}`` when it could
    be read; it adds the register, publication and open dates the search reply
    leaves out.
    """
    merged: dict[str, Any] = dict(document or {})
    merged.update({k: v for k, v in result.items() if v not in (None, "", [])})

    def text(value: Any) -> str:
        if value in (None, "", []):
            return MISSING_TEXT
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return str(value)

    def three_decimals(value: Any) -> str:
        number = _number(value)
        return MISSING_TEXT if number is None else f"{number:.3f}"

    fields = [
        ("출원번호", text(merged.get("application_number"))),
        ("6T 분류", text(merged.get("six_t"))),
        ("IPC", text(merged.get("ipc"))),
        ("출원인", text(merged.get("applicant") or merged.get("applicants"))),
        ("출원일", text(merged.get("application_date"))),
        ("공개일", text(merged.get("open_date"))),
        ("등록일", text(merged.get("register_date"))),
        ("권리 상태", text(merged.get("register_status"))),
        ("유사도 (초록·제목 평균)", three_decimals(two_stage_similarity(merged))),
        ("순위 점수", three_decimals(merged.get("score"))),
        ("초록 유사도", three_decimals(merged.get("abstract_similarity"))),
        ("제목 유사도", three_decimals(merged.get("title_similarity"))),
    ]
    for key in SCORE_KEYS:
        value = score_value(merged, key)
        fields.append((SCORE_LABELS[key], MISSING_TEXT if value is None else f"{value:g}"))
    fields.append(("평가 점수 출처", text(score_source(merged))))
    return fields


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = "; ".join(str(v) for v in value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # Spreadsheets run a cell that starts like this as a formula.
        return "'" + value
    return value


def export_csv(results: list[Result]) -> bytes:
    """Return the results as CSV in UTF-8 with a byte order mark.

    Excel reads a CSV file without the mark in the system code page and garbles
    Korean, so the mark is written. Missing scores are empty cells.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header for _, header in EXPORT_COLUMNS])
    for result in results:
        row = dict(result)
        for key in SCORE_KEYS:
            row[key] = score_value(result, key)
        row["similarity"] = two_stage_similarity(result)
        scores = result.get("scores") if isinstance(result.get("scores"), dict) else {}
        row["grade"] = scores.get("grade")
        row["score_source"] = score_source(result)
        writer.writerow([_csv_cell(row.get(key)) for key, _ in EXPORT_COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")
