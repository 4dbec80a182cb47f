"""Comparison charts of the checked patents' evaluation scores.

Two figures: a bar chart of each score min-max scaled within the patent's own 6T
category, so patents of different fields compare fairly, and violin plots of each
score's distribution per category with the checked patents marked on them. The
category statistics come from ``GET /v1/stats/scores`` (histogram, min, max,
quantiles, and optionally a random sample of values). The violins are drawn
from that sample, or from one rebuilt from the histogram when the API sends none,
because the API never sends the raw values of a whole category.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.results import (
    MISSING_TEXT,
    SCORE_KEYS,
    SCORE_LABELS,
    SYNTHETIC_SOURCE,
    Result,
    category_of,
    score_source,
    score_value,
)

logger = logging.getLogger(__name__)

FONT_FAMILY = "'Noto Sans CJK KR', 'Noto Sans KR', 'Apple SD Gothic Neo', 'Malgun Gothic', sans-serif"
VIOLIN_SAMPLE_SIZE = 2000
PATENT_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
HIGHLIGHT_COLOUR = "#d62728"


class StatsFormatError(ValueError):
    """A ``/v1/stats/scores`` reply does not have the documented shape."""


@dataclass(frozen=True)
class ScoreStats:
    """Distribution of one score within one 6T category."""

    count: int
    minimum: float | None
    maximum: float | None
    edges: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    quantiles: dict[str, float] = field(default_factory=dict)
    values: tuple[float, ...] = ()

    def violin_sample(self) -> list[float]:
        """Return the values to draw the violin from: the API's sample, else the histogram's."""
        if self.values:
            return list(self.values)
        return sample_from_histogram(self.edges, self.counts)


@dataclass(frozen=True)
class CategoryStats:
    """Score distributions of one 6T category."""

    six_t: str
    count: int
    scores: dict[str, ScoreStats]


def parse_category_stats(reply: dict[str, Any]) -> CategoryStats:
    """Check a ``GET /v1/stats/scores`` reply and return its statistics.

    Raises:
        StatsFormatError: a field is missing or has the wrong type; the message names it.
    """
    if not isinstance(reply, dict):
        raise StatsFormatError(f"stats reply must be an object, found {type(reply).__name__}")
    six_t = reply.get("six_t")
    scores = reply.get("scores")
    if not isinstance(six_t, str) or not six_t:
        raise StatsFormatError(f"stats reply: six_t must be a non-empty string, found {six_t!r}")
    if not isinstance(scores, dict):
        raise StatsFormatError(f"stats reply for {six_t}: scores must be an object")
    parsed = {}
    for key in SCORE_KEYS:
        if key not in scores:
            raise StatsFormatError(f"stats reply for {six_t}: scores.{key} is missing")
        parsed[key] = _parse_score_stats(f"{six_t} scores.{key}", scores[key])
    return CategoryStats(six_t=six_t, count=_int(reply.get("count", 0), f"{six_t} count"),
                         scores=parsed)


def _parse_score_stats(where: str, raw: Any) -> ScoreStats:
    if not isinstance(raw, dict):
        raise StatsFormatError(f"{where} must be an object")
    count = _int(raw.get("count", 0), f"{where}.count")
    if count == 0:
        return ScoreStats(count=0, minimum=None, maximum=None)

    minimum = _float(raw.get("min"), f"{where}.min")
    maximum = _float(raw.get("max"), f"{where}.max")
    if minimum > maximum:
        raise StatsFormatError(f"{where}: min {minimum} is above max {maximum}")
    histogram = raw.get("histogram") or {}
    if not isinstance(histogram, dict):
        raise StatsFormatError(f"{where}.histogram must be an object")
    edges = tuple(_float(v, f"{where}.histogram.edges") for v in histogram.get("edges") or ())
    counts = tuple(_int(v, f"{where}.histogram.counts") for v in histogram.get("counts") or ())
    if counts and len(edges) != len(counts) + 1:
        raise StatsFormatError(
            f"{where}.histogram: {len(edges)} edges for {len(counts)} bins, "
            "expected one more edge than bins"
        )
    if any(b < a for a, b in itertools.pairwise(edges)):
        raise StatsFormatError(f"{where}.histogram.edges must be ascending")

    quantiles_raw = raw.get("quantiles") or {}
    if not isinstance(quantiles_raw, dict):
        raise StatsFormatError(f"{where}.quantiles must be an object")
    quantiles = {str(k): _float(v, f"{where}.quantiles.{k}") for k, v in quantiles_raw.items()
                 if v is not None}

    raw_values = raw.get("values") or ()
    if not isinstance(raw_values, (list, tuple)):
        raise StatsFormatError(f"{where}.values must be a list of numbers")
    values = tuple(_float(v, f"{where}.values") for v in raw_values)
    return ScoreStats(count, minimum, maximum, edges, counts, quantiles, values)


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StatsFormatError(f"{where} must be a finite number, found {value!r}")
    return float(value)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StatsFormatError(f"{where} must be a non-negative integer, found {value!r}")
    return value


def min_max_scale(value: float | None, minimum: float | None, maximum: float | None) -> float | None:
    """Scale ``value`` to 0..1 within [minimum, maximum]; None when any is unknown.

    A category whose scores are all equal gives 0.5, the middle, because the
    patent is neither better nor worse than its field. Values outside the range
    (statistics older than the result) are clipped.
    """
    if value is None or minimum is None or maximum is None:
        return None
    if maximum == minimum:
        return 0.5
    return min(1.0, max(0.0, (value - minimum) / (maximum - minimum)))


def sample_from_histogram(
    edges: tuple[float, ...] | list[float],
    counts: tuple[int, ...] | list[int],
    size: int = VIOLIN_SAMPLE_SIZE,
) -> list[float]:
    """Return about ``size`` values spread evenly within each bin, in proportion to its count.

    The sample reproduces the histogram's shape (so the violin's kernel density
    matches the category) without the raw values. Deterministic.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, found {size!r}")
    total = sum(counts)
    if total == 0:
        return []
    sample: list[float] = []
    for (low, high), count in zip(itertools.pairwise(edges), counts):
        points = round(count / total * size)
        if count and points == 0:
            points = 1
        step = (high - low) / points if points else 0.0
        sample.extend(low + step * (i + 0.5) for i in range(points))
    return sample


def short_title(title: str, limit: int = 18) -> str:
    """Cut a title to ``limit`` characters for legends, marking the cut with an ellipsis."""
    title = " ".join((title or "").split())
    return title if len(title) <= limit else title[: limit - 1] + "…"


def patent_label(result: Result) -> str:
    """Return the legend label of a patent: application number and short title."""
    return f"{result.get('application_number')} {short_title(result.get('title') or '')}"


def synthetic_label(patents: list[Result]) -> str:
    """Return a title suffix that marks synthetic scores, or "" when none are shown."""
    if any(score_source(p) == SYNTHETIC_SOURCE for p in patents):
        return " · 합성(데모) 점수"
    return ""


def _base_layout(figure: go.Figure, title: str) -> None:
    figure.update_layout(
        title={"text": title, "x": 0.01},
        font={"family": FONT_FAMILY, "size": 13},
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 70, "b": 40},
        legend={"orientation": "h", "y": -0.15},
    )


def empty_figure(message: str) -> go.Figure:
    """Return a blank figure that shows ``message`` in its middle."""
    figure = go.Figure()
    _base_layout(figure, "")
    figure.update_layout(
        xaxis={"visible": False}, yaxis={"visible": False}, height=260,
        annotations=[{"text": message, "showarrow": False, "font": {"size": 15},
                      "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}],
    )
    return figure


def scaled_scores(
    result: Result, stats: CategoryStats | None
) -> dict[str, tuple[float | None, float | None]]:
    """Return {score key: (raw value, value scaled within the category)} of one patent."""
    values = {}
    for key in SCORE_KEYS:
        raw = score_value(result, key)
        score_stats = stats.scores.get(key) if stats else None
        scaled = min_max_scale(
            raw,
            score_stats.minimum if score_stats else None,
            score_stats.maximum if score_stats else None,
        )
        values[key] = (raw, scaled)
    return values


def bar_figure(patents: list[Result], stats: dict[str, CategoryStats]) -> go.Figure:
    """Return the bar chart of the patents' scores, min-max scaled within their 6T category.

    One trace per patent; each bar's ``customdata`` is
    ``[application number, raw value, category min, category max, 6T]`` so a hover
    names the patent. A missing score has no bar, and its hover text reads "없음".
    """
    if not patents:
        return empty_figure("표에서 특허를 선택하면 평가 점수를 비교합니다.")
    figure = go.Figure()
    labels = [SCORE_LABELS[key] for key in SCORE_KEYS]
    for index, patent in enumerate(patents):
        six_t = category_of(patent)
        category = stats.get(six_t)
        values = scaled_scores(patent, category)
        customdata, hover, ys = [], [], []
        for key in SCORE_KEYS:
            raw, scaled = values[key]
            score_stats = category.scores.get(key) if category else None
            low = score_stats.minimum if score_stats else None
            high = score_stats.maximum if score_stats else None
            customdata.append([patent.get("application_number"), raw, low, high, six_t])
            ys.append(scaled)
            if raw is None:
                hover.append(f"{SCORE_LABELS[key]}: {MISSING_TEXT}")
            elif scaled is None:
                hover.append(f"{SCORE_LABELS[key]}: {raw:g} ({six_t} 분포 없음)")
            else:
                hover.append(f"{SCORE_LABELS[key]}: {raw:g} ({six_t} 범위 {low:g}~{high:g}, "
                             f"척도 {scaled:.2f})")
        figure.add_trace(go.Bar(
            name=patent_label(patent),
            x=labels,
            y=ys,
            customdata=customdata,
            hovertext=hover,
            hovertemplate="%{hovertext}<extra>%{fullData.name}</extra>",
            marker_color=PATENT_COLOURS[index % len(PATENT_COLOURS)],
            text=[MISSING_TEXT if y is None else "" for y in ys],
            textposition="outside",
        ))
    _base_layout(figure, "6T 분류 내 Min-Max 척도 평가 점수 (0 = 분류 최저, 1 = 분류 최고)"
                 + synthetic_label(patents))
    figure.update_layout(barmode="group", yaxis={"range": [0, 1.1], "title": "척도 값"},
                         height=380)
    return figure


def hovered_patent(hover_data: dict[str, Any] | None) -> str | None:
    """Return the application number of the bar under the mouse, from Dash ``hoverData``."""
    if not isinstance(hover_data, dict):
        return None
    points = hover_data.get("points") or []
    if not points or not isinstance(points[0], dict):
        return None
    customdata = points[0].get("customdata")
    if isinstance(customdata, list) and customdata and customdata[0]:
        return str(customdata[0])
    return None


def violin_figure(
    patents: list[Result],
    stats: dict[str, CategoryStats],
    highlight: str | None = None,
) -> go.Figure:
    """Return violin plots of each score per 6T category with the patents marked.

    One panel per score; in each, one violin per category of the checked patents
    and one marker per patent at its raw value. The patent named by ``highlight``
    (an application number) gets a large red marker with its number as a label.
    """
    categories = sorted({category_of(p) for p in patents})
    usable = [c for c in categories if c in stats and stats[c].count > 0]
    if not patents:
        return empty_figure("선택한 특허가 없습니다.")
    if not usable:
        return empty_figure(f"{', '.join(categories)} 분류에는 평가 점수 분포가 없습니다.")

    figure = make_subplots(rows=1, cols=len(SCORE_KEYS),
                           subplot_titles=[f"{SCORE_LABELS[k]} 분포" for k in SCORE_KEYS])
    for column, key in enumerate(SCORE_KEYS, start=1):
        for six_t in usable:
            score_stats = stats[six_t].scores[key]
            sample = score_stats.violin_sample()
            if not sample:
                continue
            figure.add_trace(go.Violin(
                x=[six_t] * len(sample), y=sample, name=six_t, legendgroup=six_t,
                showlegend=False, points=False, box_visible=True, meanline_visible=False,
                line_color="#6b7b8c", fillcolor="rgba(107,123,140,0.25)",
                hoverinfo="skip", spanmode="hard",
                # Plotly links violins of the same name across panels by default,
                # which would shrink the 0-100 scores next to PQI's 0-2.5 range.
                scalegroup=key,
            ), row=1, col=column)
        _add_patent_markers(figure, patents, key, column, highlight, set(usable))
    _base_layout(figure, "선택한 특허와 같은 6T 분류의 평가 점수 분포" + synthetic_label(patents))
    figure.update_layout(height=420, showlegend=False)
    return figure


def _add_patent_markers(
    figure: go.Figure,
    patents: list[Result],
    key: str,
    column: int,
    highlight: str | None,
    categories: set[str],
) -> None:
    for index, patent in enumerate(patents):
        six_t = category_of(patent)
        value = score_value(patent, key)
        if value is None or six_t not in categories:
            continue
        number = str(patent.get("application_number"))
        highlighted = number == highlight
        figure.add_trace(go.Scatter(
            x=[six_t], y=[value], mode="markers+text" if highlighted else "markers",
            name=number,
            text=[number] if highlighted else None,
            textposition="middle right",
            customdata=[number],
            marker={
                "size": 18 if highlighted else 9,
                "color": HIGHLIGHT_COLOUR if highlighted
                else PATENT_COLOURS[index % len(PATENT_COLOURS)],
                "line": {"width": 2 if highlighted else 1, "color": "#222"},
                "symbol": "diamond" if highlighted else "circle",
            },
            hovertemplate=f"{patent_label(patent)}<br>{SCORE_LABELS[key]}: %{{y:g}}<extra></extra>",
            showlegend=False,
        ), row=1, col=column)
