"""Patent records and the text pairs the training steps learn from.

Records come from the project's JSONL format (``.jsonl`` or ``.jsonl.gz``), one
object per line with at least ``application_number``, ``title`` and ``abstract``.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from encoder.model import clean_text

logger = logging.getLogger(__name__)

# A sentence ends at '.', '?' or '!' followed by whitespace or a Hangul or Latin
# letter: KIPO abstracts often omit the space after the period ("...있다.카트리지는").
# Decimal points ("0.5") and reference signs ("(214).") do not match because
# a digit or ')' follows them, or no letter does.
_SENTENCE_END = re.compile(r"(?<=[.?!])(?:\s+|(?=[가-힣A-Za-z]))")

# Shortest text, in characters, that a pair side may have.
MIN_PAIR_CHARS = 10


@dataclass(frozen=True)
class Patent:
    """The fields of one patent that training and evaluation read."""

    application_number: str
    title: str
    abstract: str


@dataclass(frozen=True)
class TextPair:
    """An (anchor, positive) pair for contrastive training.

    ``patent`` is the source application number (two pairs of one patent never
    share a batch) and ``kind`` names how the pair was built.
    """

    anchor: str
    positive: str
    kind: str
    patent: str


def open_text(path: Path):
    """Open a UTF-8 text file, decompressing it when the name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def read_patents(path: str | Path, limit: int | None = None) -> list[Patent]:
    """Read patents from a JSONL file, skipping and counting unusable lines.

    A line is skipped (and counted in one warning) when it is not valid JSON, has no
    application number, or has neither a title nor an abstract.

    Args:
        path: ``.jsonl`` or ``.jsonl.gz`` file.
        limit: stop after this many patents (default: all).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"patent file not found: {str(path)!r}")
    patents: list[Patent] = []
    skipped = 0
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                logger.debug("%s:%d: invalid JSON: %s", path, line_number, exc)
                skipped += 1
                continue
            number = str(record.get("application_number") or "").strip()
            title = clean_text(str(record.get("title") or ""))
            abstract = clean_text(str(record.get("abstract") or ""))
            if not number or not (title or abstract):
                skipped += 1
                continue
            patents.append(Patent(number, title, abstract))
            if limit is not None and len(patents) >= limit:
                break
    if skipped:
        logger.warning("%s: skipped %d lines without an application number, a title "
                       "or an abstract, or with invalid JSON", path, skipped)
    if not patents:
        raise ValueError(f"no usable patents in {str(path)!r}")
    logger.info("read %d patents from %s", len(patents), path)
    return patents


def patent_texts(patents: Sequence[Patent]) -> Iterator[str]:
    """Yield every non-empty title and abstract, the text of vocabulary and MLM training."""
    for patent in patents:
        if patent.title:
            yield patent.title
        if patent.abstract:
            yield patent.abstract


def split_sentences(text: str) -> list[str]:
    """Split Korean or English patent prose into sentences (see ``_SENTENCE_END``)."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def build_pairs(
    patents: Sequence[Patent],
    *,
    sentence_pairs: bool = True,
    exclude: frozenset[str] = frozenset(),
) -> list[TextPair]:
    """Build positive pairs from each patent's own text, never from labels.

    Kinds:
        ``title-abstract``: a title with its own abstract; a user's short demand
            text should land near the abstracts that describe it.
        ``sentence-rest``: the abstract's first sentence with the rest of the
            abstract (inverse-cloze style), which teaches the model that two parts
            of one description belong together. Only when the abstract has at least
            two sentences and each side has ``MIN_PAIR_CHARS`` characters.

    Args:
        sentence_pairs: add the ``sentence-rest`` kind (default True).
        exclude: application numbers whose text must not be used.
    """
    pairs: list[TextPair] = []
    for patent in patents:
        if patent.application_number in exclude:
            continue
        if len(patent.title) >= 2 and len(patent.abstract) >= MIN_PAIR_CHARS:
            pairs.append(TextPair(patent.title, patent.abstract, "title-abstract",
                                  patent.application_number))
        if not sentence_pairs:
            continue
        sentences = split_sentences(patent.abstract)
        if len(sentences) < 2:
            continue
        first, rest = sentences[0], " ".join(sentences[1:])
        if len(first) >= MIN_PAIR_CHARS and len(rest) >= MIN_PAIR_CHARS:
            pairs.append(TextPair(first, rest, "sentence-rest", patent.application_number))
    return pairs


def sample_patents(
    patents: Sequence[Patent], size: int | None, seed: int, keep: frozenset[str] = frozenset()
) -> list[Patent]:
    """Return ``size`` patents drawn with ``seed``, always including those in ``keep``.

    ``size=None`` or a size at least the corpus size returns every patent, in order.
    """
    if size is None or size >= len(patents):
        return list(patents)
    kept = [patent for patent in patents if patent.application_number in keep]
    rest = [patent for patent in patents if patent.application_number not in keep]
    random.Random(seed).shuffle(rest)
    chosen = kept + rest[: max(0, size - len(kept))]
    order = {patent.application_number: index for index, patent in enumerate(patents)}
    return sorted(chosen, key=lambda patent: order[patent.application_number])
