"""Elasticsearch mappings (JSON) and the approximate IPC-to-6T table, as package data.

Read them with :func:`mapping_path` or ``importlib.resources.files("mappings")``
so they are found both in a source checkout and in an installed wheel.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any


def mapping_path(name: str) -> Path:
    """Path of a bundled file, e.g. ``mapping_path("patents.json")``."""
    return Path(str(resources.files(__name__).joinpath(name)))


def load_mapping(name: str) -> dict[str, Any]:
    """Parsed JSON body (settings and mappings) of a bundled index definition.

    Keys starting with ``_comment`` are documentation and are removed.
    """
    with mapping_path(name).open(encoding="utf-8") as handle:
        body = json.load(handle)
    return _strip_comments(body)


def _strip_comments(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_comments(v) for k, v in value.items() if not k.startswith("_comment")}
    if isinstance(value, list):
        return [_strip_comments(v) for v in value]
    return value
