"""Tests of the synthetic KPEG-format scores that the demo dashboard shows."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from ingest import BUNDLED_SAMPLE
from ingest.records import Reject
from ingest.scores import read_scores
from ingest.synthetic_scores import (
    COLUMNS,
    DEFAULT_OUTPUT,
    PQI_RANGE,
    SCORE_RANGE,
    SamplePatent,
    generate_scores,
    read_sample_patents,
    write_scores_csv,
)


def sample_patents(count: int) -> list[SamplePatent]:
    return [SamplePatent(f"10{2000 + i % 25}{i:07d}", f"{2000 + i % 25}-03-01")
            for i in range(count)]


def test_generator_is_deterministic():
    patents = sample_patents(300)
    first = list(generate_scores(patents, seed=5))
    second = list(generate_scores(patents, seed=5))
    other = list(generate_scores(patents, seed=6))
    assert first == second
    assert first != other


def test_generator_ranges_and_labels():
    rows = list(generate_scores(sample_patents(3000), seed=1))
    pqi = np.array([float(r["pqi"]) for r in rows])
    assert pqi.min() >= PQI_RANGE[0]
    assert pqi.max() <= PQI_RANGE[1]
    assert 0.8 <= np.median(pqi) <= 1.2
    for name in ("rights", "technology", "commercial"):
        values = np.array([float(r[name]) for r in rows])
        assert values.min() >= SCORE_RANGE[0], name
        assert values.max() <= SCORE_RANGE[1], name
    assert {r["source"] for r in rows} == {"synthetic"}
    assert all(r["evaluation_date"] for r in rows)
    graded = sum(1 for r in rows if r["grade"])
    assert 0 < graded < len(rows)


def test_generator_scores_correlate_mildly():
    rows = list(generate_scores(sample_patents(4000), seed=2))
    matrix = np.array([[float(r[n]) for n in ("rights", "technology", "commercial")]
                       for r in rows]).T
    correlation = np.corrcoef(matrix)
    off_diagonal = correlation[~np.eye(3, dtype=bool)]
    assert off_diagonal.min() > 0.05
    assert off_diagonal.max() < 0.45


def test_generator_leaves_some_patents_without_scores():
    patents = sample_patents(4000)
    rows = list(generate_scores(patents, seed=3, missing_fraction=0.15))
    missing = 1 - len(rows) / len(patents)
    assert 0.12 < missing < 0.18
    assert list(generate_scores(patents[:50], missing_fraction=1.0)) == []
    assert len(list(generate_scores(patents[:50], missing_fraction=0.0))) == 50


def test_generator_rejects_bad_fraction():
    with pytest.raises(ValueError, match="missing_fraction"):
        list(generate_scores(sample_patents(1), missing_fraction=1.5))


def test_evaluation_date_after_filing():
    patents = [SamplePatent("1020240000001", "2024-12-01")]
    row = next(generate_scores(patents, missing_fraction=0.0))
    assert row["evaluation_date"] >= "2025-12-01" or row["evaluation_date"] == "2025-06-30"


def test_written_file_reads_as_kpeg(tmp_path):
    path = tmp_path / "scores.csv.gz"
    rows = list(generate_scores(sample_patents(200), seed=4))
    assert write_scores_csv(rows, path) == len(rows)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        assert handle.readline().strip() == ",".join(COLUMNS)
    items = list(read_scores(path))
    rejects = [item for item in items if isinstance(item, Reject)]
    assert rejects == []
    assert len(items) == len(rows)
    first = items[0].fields
    assert first["application_number"] == rows[0]["application_number"]
    assert first["scores"]["source"] == "synthetic"
    assert first["scores"]["pqi"] == float(rows[0]["pqi"])


def test_shipped_file_matches_generator(tmp_path):
    """The committed file is what the generator writes from the bundled sample."""
    regenerated = tmp_path / "scores.csv.gz"
    patents = read_sample_patents(BUNDLED_SAMPLE)
    write_scores_csv(generate_scores(patents), regenerated)
    assert DEFAULT_OUTPUT.read_bytes() == regenerated.read_bytes()

    numbers = {p.application_number for p in patents}
    rows = [item for item in read_scores(DEFAULT_OUTPUT) if not isinstance(item, Reject)]
    assert rows
    assert {row.fields["application_number"] for row in rows} <= numbers
    assert len(rows) < len(numbers)
