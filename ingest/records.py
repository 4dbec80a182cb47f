"""Reader output: source records with their location, and rejects with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SourceRecord:
    """One patent (or evaluation) as read, before normalisation.

    Attributes:
        source: where it was read, ``path:line`` for line-based files or
            ``path#index`` (0-based record index) for XML and JSON documents.
        fields: values under the canonical raw names (``application_number``,
            ``title``, ``title_en``, ``abstract``, ``ipc``, ``cpc``, ``applicant``,
            ``application_date``, ``register_date``, ``open_date``,
            ``publication_date``, ``register_status``, ``register_number``,
            ``open_number``, ``claim_count``, ``abstract_truncated``, ``six_t``,
            ``sources``), as strings, lists or numbers straight from the input.
        position: index of the record in its file (0-based), used to resume.
    """

    source: str
    fields: dict[str, Any]
    position: int = 0


@dataclass
class Reject:
    """An input entry that could not be used.

    Attributes:
        source: ``path:line`` or ``path#index`` of the entry.
        reason: what is wrong and, where possible, how to fix it.
        application_number: the number as read, when one was found.
        kind: ``reject`` (entry skipped), ``conflict`` (a duplicate disagreed;
            the kept value is named in the reason), ``warning`` (a field was
            dropped, the record was kept) or ``unknown_patent`` (evaluation
            scores for a patent not in the index).
        raw: an excerpt of the entry, for the rejects file.
        position: index of the entry in its file (0-based).
    """

    source: str
    reason: str
    application_number: str | None = None
    kind: str = "reject"
    raw: Any = None
    position: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "source": self.source,
                               "reason": self.reason}
        if self.application_number:
            out["application_number"] = self.application_number
        if self.raw is not None:
            out["raw"] = _excerpt(self.raw)
        return out


class RecordError(ValueError):
    """A record cannot be indexed; ``args[0]`` is the reason."""


@dataclass
class Normalized:
    """A normalised patent document plus the non-fatal problems found in it."""

    doc: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _excerpt(raw: Any, limit: int = 500) -> Any:
    """Shorten long strings inside ``raw`` so one bad 2 GB line cannot flood the file."""
    if isinstance(raw, str):
        return raw if len(raw) <= limit else raw[:limit] + f"... ({len(raw)} chars)"
    if isinstance(raw, dict):
        return {str(k): _excerpt(v, limit) for k, v in list(raw.items())[:50]}
    if isinstance(raw, (list, tuple)):
        return [_excerpt(v, limit) for v in raw[:50]]
    return raw
