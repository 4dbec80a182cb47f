"""The versioned patents index behind its alias: create, resolve, swap."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from mappings import load_mapping
from patentmatch.config import Settings

logger = logging.getLogger(__name__)

MAPPING_FILE = "patents.json"


class AliasStateError(RuntimeError):
    """The alias or index is in a state the ingest cannot work with."""


def es_client(settings: Settings) -> Elasticsearch:
    """Client for ``settings.es_url``, or the local node on ``settings.es_port``."""
    url = settings.es_url or f"http://127.0.0.1:{settings.es_port}"
    return Elasticsearch(url, request_timeout=settings.es_request_timeout_s,
                         max_retries=settings.bulk_max_retries, retry_on_timeout=True)


def patents_index_body() -> dict[str, Any]:
    """Settings and mappings of a patents index, from ``mappings/patents.json``."""
    return load_mapping(MAPPING_FILE)


def new_index_name(alias: str) -> str:
    """``<alias>-v<UTC timestamp to the microsecond>``, sortable by creation time."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S%f")
    return f"{alias}-v{stamp}"


def create_index(client: Elasticsearch, name: str) -> None:
    """Create the patents index ``name`` with the bundled mapping."""
    body = patents_index_body()
    client.indices.create(index=name, settings=body["settings"], mappings=body["mappings"])
    logger.info("created index %s", name)


def alias_indices(client: Elasticsearch, alias: str) -> list[str]:
    """Indices the alias points to; ``[]`` when it does not exist.

    Raises:
        AliasStateError: ``alias`` is the name of a concrete index, not an alias.
    """
    try:
        return sorted(client.indices.get_alias(name=alias).body)
    except NotFoundError:
        pass
    if client.indices.exists(index=alias):
        raise AliasStateError(
            f"{alias!r} is a concrete index, not an alias; reindex it into a versioned "
            f"index and alias it, or choose another PATENTMATCH_INDEX_ALIAS"
        )
    return []


def current_index(client: Elasticsearch, alias: str) -> str | None:
    """Return the one index behind ``alias``, ``None`` when the alias is missing.

    Raises:
        AliasStateError: the alias points to several indices.
    """
    indices = alias_indices(client, alias)
    if len(indices) > 1:
        raise AliasStateError(f"alias {alias!r} points to {len(indices)} indices {indices}; "
                          "remove it from all but one, or rebuild with --new-index")
    return indices[0] if indices else None


def swap_alias(client: Elasticsearch, alias: str, index: str, keep_old: bool = False
               ) -> list[str]:
    """Point ``alias`` at ``index`` in one atomic request; return the old indices.

    The old indices are deleted afterwards unless ``keep_old``.
    """
    old = [name for name in alias_indices(client, alias) if name != index]
    actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": alias}}
                                     for name in old]
    actions.append({"add": {"index": index, "alias": alias}})
    client.indices.refresh(index=index)
    client.indices.update_aliases(actions=actions)
    logger.info("alias %s now points to %s (was %s)", alias, index, old or "nothing")
    if old and not keep_old:
        client.indices.delete(index=",".join(old))
        logger.info("deleted old indices %s", old)
    return old
