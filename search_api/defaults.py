"""Ranking defaults chosen by the quality benchmark, read from ``ranking_defaults.json``.

``benchmarks/ranking_quality.py --write-defaults`` rewrites that file from its
measurements on the development query sets: the default mode, the fusion and
its weight, the description mode, and the "no close match" threshold of each
encoder (by fingerprint, because similarities are only comparable within one
encoder).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from search_api.search import RankingConfig

logger = logging.getLogger(__name__)

DEFAULTS_FILE = Path(__file__).with_name("ranking_defaults.json")


@dataclass
class RankingDefaults:
    """Contents of ``ranking_defaults.json``.

    Attributes:
        default_mode: mode used when a request names none.
        config: overrides of ``RankingConfig`` fields.
        thresholds: encoder fingerprint -> calibrated "no close match" threshold.
        measured: free-form record of the measurement that chose these values.
    """

    default_mode: str = "two_stage"
    config: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    def ranking_config(self) -> RankingConfig:
        known = {f.name for f in fields(RankingConfig)}
        return replace(RankingConfig(), **{k: v for k, v in self.config.items() if k in known})

    def threshold_for(self, fingerprint: str, fallback: float) -> float:
        if fingerprint in self.thresholds:
            return float(self.thresholds[fingerprint])
        logger.warning("No calibrated no-close-match threshold for encoder %s; using %.3f. "
                       "Calibrate with `python benchmarks/ranking_quality.py --write-defaults`",
                       fingerprint[:12], fallback)
        return fallback


def load_defaults(path: Path = DEFAULTS_FILE) -> RankingDefaults:
    """Read the defaults file; a missing file gives the built-in defaults."""
    if not path.is_file():
        return RankingDefaults()
    data = json.loads(path.read_text())
    known = {f.name for f in fields(RankingDefaults)}
    return RankingDefaults(**{k: v for k, v in data.items() if k in known})


def save_defaults(defaults: RankingDefaults, path: Path = DEFAULTS_FILE) -> None:
    """Write the defaults file atomically."""
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(defaults.__dict__, indent=2, ensure_ascii=False) + "\n")
    temporary.replace(path)
