"""Generate SYNTHETIC evaluation scores for the bundled sample, for the demo only.

No KPEG evaluation data is public, but the dashboard compares patents by their
PQI, rights, technology and commercial-value scores. This module writes a seeded,
clearly labelled stand-in in the KPEG CSV format that ``ingest.scores`` reads:
every row has ``source`` = ``synthetic``, and the API and dashboard show that
label. A real KPEG file (``source`` absent or ``kpeg``) replaces it through the
ingest job.

The values are invented, not estimated from anything. One latent "quality" draw
per patent moves all four scores a little, so they correlate mildly. PQI is
log-normal around 1 within 0.2-2.5, and the other scores lie within 40-100. A
share of the patents gets no row, so the dashboard's "missing scores" state shows.

Run ``python -m ingest.synthetic_scores`` to rebuild
``ingest/data/synthetic-kpeg-scores.csv.gz`` from the bundled sample.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest import BUNDLED_SAMPLE
from ingest.normalize import normalize_application_number, normalize_date

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "data" / "synthetic-kpeg-scores.csv.gz"
DEFAULT_SEED = 20240601
DEFAULT_MISSING_FRACTION = 0.15
COLUMNS = ("application_number", "pqi", "rights", "technology", "commercial",
           "grade", "evaluation_date", "source")
SOURCE = "synthetic"

PQI_RANGE = (0.2, 2.5)
SCORE_RANGE = (40.0, 100.0)
# (centre, spread) of each 0-100 score before clipping. The numbers are invented;
# technology sits highest and commercial value lowest, as in KPEG-style reports.
SCORE_SHAPES = {"rights": (72.0, 9.0), "technology": (79.0, 6.0), "commercial": (60.0, 8.0)}
# How much of each score's noise comes from the shared quality draw (0: none).
QUALITY_WEIGHT = 0.45
# Composite-score cut points (0-1, best first) for the optional grade column.
GRADES = (("AAA", 0.9), ("AA", 0.78), ("A", 0.64), ("BBB", 0.5), ("BB", 0.36),
          ("B", 0.24), ("CCC", 0.14), ("CC", 0.06), ("C", 0.0))
GRADE_FRACTION = 0.8
FIRST_EVALUATION = dt.date(2015, 1, 1)
LAST_EVALUATION = dt.date(2025, 6, 30)


@dataclass(frozen=True)
class SamplePatent:
    """Application number and date of one sample patent, all the generator reads."""

    application_number: str
    application_date: str | None


def read_sample_patents(path: Path) -> list[SamplePatent]:
    """Read application numbers and dates from a JSON-lines sample (``.gz`` or plain).

    Records without a valid application number are skipped and counted in the log.

    Raises:
        FileNotFoundError: the sample does not exist.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    patents: dict[str, SamplePatent] = {}
    skipped = 0
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                number = normalize_application_number(record.get("application_number"))
            except (ValueError, AttributeError) as exc:
                skipped += 1
                logger.debug("%s:%d skipped: %s", path, line_number, exc)
                continue
            try:
                date = normalize_date(record.get("application_date"))
            except ValueError:
                date = None
            patents.setdefault(number, SamplePatent(number, date))
    if skipped:
        logger.warning("%s: skipped %d records without a valid application number",
                       path, skipped)
    return sorted(patents.values(), key=lambda p: p.application_number)


def _grade(composite: float) -> str:
    for grade, cut in GRADES:
        if composite >= cut:
            return grade
    return GRADES[-1][0]


def _evaluation_date(rng: np.random.Generator, application_date: str | None) -> str:
    start = FIRST_EVALUATION
    if application_date:
        filed = dt.date.fromisoformat(application_date)
        start = max(start, filed + dt.timedelta(days=365))
    if start >= LAST_EVALUATION:
        return LAST_EVALUATION.isoformat()
    offset = int(rng.integers(0, (LAST_EVALUATION - start).days + 1))
    return (start + dt.timedelta(days=offset)).isoformat()


def generate_scores(
    patents: Iterable[SamplePatent],
    seed: int = DEFAULT_SEED,
    missing_fraction: float = DEFAULT_MISSING_FRACTION,
) -> Iterator[dict[str, str]]:
    """Yield one synthetic KPEG row per patent that gets scores, in input order.

    The same patents, seed and fraction give the same rows.

    Raises:
        ValueError: ``missing_fraction`` is outside 0..1.
    """
    if not 0.0 <= missing_fraction <= 1.0:
        raise ValueError(f"missing_fraction must be within 0..1, found {missing_fraction!r}")
    rng = np.random.default_rng(seed)
    own_weight = math.sqrt(1.0 - QUALITY_WEIGHT**2)
    for patent in patents:
        # Draw every value even for skipped patents, so one patent's draws do not
        # depend on whether an earlier one was skipped.
        skip = rng.random() < missing_fraction
        quality = rng.standard_normal()
        noise = rng.standard_normal(4)
        has_grade = rng.random() < GRADE_FRACTION
        date = _evaluation_date(rng, patent.application_date)
        if skip:
            continue

        mixed = QUALITY_WEIGHT * quality + own_weight * noise
        pqi = float(np.clip(math.exp(0.42 * mixed[0] - 0.05), *PQI_RANGE))
        row = {"application_number": patent.application_number, "pqi": f"{pqi:.2f}"}
        for i, (name, (centre, spread)) in enumerate(SCORE_SHAPES.items(), start=1):
            value = float(np.clip(centre + spread * mixed[i], *SCORE_RANGE))
            row[name] = f"{value:.1f}"
        composite = (
            (pqi - PQI_RANGE[0]) / (PQI_RANGE[1] - PQI_RANGE[0])
            + sum((float(row[n]) - SCORE_RANGE[0]) / (SCORE_RANGE[1] - SCORE_RANGE[0])
                  for n in SCORE_SHAPES)
        ) / 4
        row["grade"] = _grade(composite) if has_grade else ""
        row["evaluation_date"] = date
        row["source"] = SOURCE
        yield row


def write_scores_csv(rows: Iterable[dict[str, str]], path: Path) -> int:
    """Write rows as a gzip-compressed UTF-8 CSV in the KPEG column order; return the count.

    The file is written next to ``path`` and moved into place, so a failed run
    leaves the old file intact. The gzip header has no time stamp, so the same
    rows give the same bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    count = 0
    with open(partial, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0
    ) as compressed, io.TextIOWrapper(compressed, encoding="utf-8", newline="") as text:
        writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    os.replace(partial, path)
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ingest.synthetic_scores",
        description="Write SYNTHETIC KPEG-format evaluation scores for a patent sample "
                    "(demo data, labelled source=synthetic on every row).",
    )
    parser.add_argument("--sample", type=Path, default=BUNDLED_SAMPLE,
                        help="JSON-lines patent sample, .gz or plain (default: the bundled sample)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="CSV file to write, gzip-compressed (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="random seed (default: %(default)s)")
    parser.add_argument("--missing-fraction", type=float, default=DEFAULT_MISSING_FRACTION,
                        help="share of patents left without scores, 0..1 (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.sample.is_file():
        logger.error("sample %s not found; pass --sample with a JSON-lines patent file",
                     args.sample)
        return 2
    patents = read_sample_patents(args.sample)
    rows = generate_scores(patents, seed=args.seed, missing_fraction=args.missing_fraction)
    written = write_scores_csv(rows, args.output)
    logger.info("wrote %d synthetic score rows for %d patents to %s",
                written, len(patents), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
