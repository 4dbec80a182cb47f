"""Elasticsearch storage of demands, with optimistic concurrency on every change.

Every change reads the document with its ``_seq_no`` and ``_primary_term``, applies
a plain function from :mod:`search_api.workflow.lifecycle` and writes it back with
``if_seq_no``/``if_primary_term``. When another writer got there first,
Elasticsearch returns 409 and the change is applied again to the fresh document,
so a transition is either applied on top of the other one or rejected by the
lifecycle rules; none is lost.

Writes use ``refresh=True``: demands change a few times a day each, and the
operator list and the outbox worker's search must see a change at once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError

from mappings import load_mapping
from search_api.workflow.lifecycle import Demand, WorkflowError

logger = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 10
SIGNING_KEY_ID = "reply-signing-key"


class DemandNotFound(WorkflowError):
    """No demand has the requested id."""

    status = 404


class StoreConflict(WorkflowError):
    """A change kept colliding with other writers."""

    status = 409


@dataclass(frozen=True)
class IndexNames:
    """Aliases of the workflow's indices, all derived from ``Settings.demands_index``."""

    demands: str

    @property
    def contacts(self) -> str:
        return f"{self.demands}-contacts"

    @property
    def outbox(self) -> str:
        return f"{self.demands}-outbox"

    @property
    def meta(self) -> str:
        return f"{self.demands}-meta"


async def ensure_index(es: AsyncElasticsearch, alias: str, mapping_file: str) -> str:
    """Create ``<alias>-v<schema_version>`` behind ``alias`` unless the alias exists.

    Returns the name of the index the alias points to. Safe to run from several
    processes at once: a concurrent creation of the same index is not an error.

    Raises:
        WorkflowError: when a plain index named ``alias`` is in the way.
    """
    body = load_mapping(mapping_file)
    version = body["mappings"]["_meta"]["schema_version"]
    index = f"{alias}-v{version}"

    if await es.indices.exists_alias(name=alias):
        current = sorted((await es.indices.get_alias(name=alias)).body)
        if index not in current:
            logger.warning("alias %s points to %s, not to %s of this code's schema; "
                           "migrate the documents and move the alias", alias, current, index)
        return current[0]
    if await es.indices.exists(index=alias):
        raise WorkflowError(f"an index named {alias!r} exists where an alias is expected; "
                            f"reindex it into {index!r} and add the alias {alias!r}")

    try:
        await es.indices.create(index=index, settings=body.get("settings"),
                                mappings=body["mappings"],
                                aliases={alias: {"is_write_index": True}})
        logger.info("created index %s behind alias %s", index, alias)
    except BadRequestError as exc:
        if exc.error != "resource_already_exists_exception":
            raise
        await es.indices.put_alias(index=index, name=alias)
    return index


async def load_signing_key(es: AsyncElasticsearch, meta_index: str) -> bytes:
    """Return the reply-link signing key, creating a random one on first use.

    The key lives in Elasticsearch so every API process signs and checks with the
    same key. Deleting the document and restarting the API processes invalidates every
    reply link sent so far.
    """
    if not await es.indices.exists(index=meta_index):
        try:
            await es.indices.create(index=meta_index,
                                    settings={"number_of_shards": 1, "number_of_replicas": 0},
                                    mappings={"dynamic": False, "properties": {}})
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
    try:
        await es.create(index=meta_index, id=SIGNING_KEY_ID,
                        document={"key": secrets.token_hex(32)}, refresh=True)
        logger.info("created a new reply-link signing key in %s", meta_index)
    except ConflictError:
        pass
    stored = await es.get(index=meta_index, id=SIGNING_KEY_ID)
    return bytes.fromhex(stored["_source"]["key"])


class DemandStore:
    """Demands in the index behind ``names.demands``."""

    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es = es
        self.names = names

    async def ensure(self) -> None:
        """Create the demands index and alias when missing."""
        await ensure_index(self.es, self.names.demands, "demands.json")

    async def create(self, demand: Demand) -> str:
        """Store a new demand under a fresh random id and return the id."""
        for _ in range(5):
            demand_id = secrets.token_hex(8)
            try:
                await self.es.create(index=self.names.demands, id=demand_id, document=demand,
                                     refresh=True)
                return demand_id
            except ConflictError:
                logger.warning("demand id %s already taken; drawing another", demand_id)
        raise StoreConflict("could not draw a free demand id in 5 tries")

    async def get_versioned(self, demand_id: str) -> tuple[Demand, int, int]:
        """Return (document, seq_no, primary_term) of a demand.

        Raises:
            DemandNotFound: when no demand has that id.
        """
        try:
            found = await self.es.get(index=self.names.demands, id=demand_id)
        except NotFoundError as exc:
            raise DemandNotFound(f"demand {demand_id!r} not found", field="demand_id") from exc
        return found["_source"], found["_seq_no"], found["_primary_term"]

    async def get(self, demand_id: str) -> Demand:
        """Return a demand's document."""
        return (await self.get_versioned(demand_id))[0]

    async def update(self, demand_id: str, change: Callable[[Demand], Demand]) -> Demand:
        """Apply ``change`` to the current document and write it back atomically.

        ``change`` may run several times, each time on the freshest document, and
        must not have side effects. Its exceptions propagate unchanged.

        Raises:
            DemandNotFound: when no demand has that id.
            StoreConflict: when other writers won ``MAX_CONFLICT_RETRIES`` times in a row.
        """
        for attempt in range(1, MAX_CONFLICT_RETRIES + 1):
            current, seq_no, primary_term = await self.get_versioned(demand_id)
            changed = change(current)
            if changed == current:
                return current
            try:
                await self.es.index(index=self.names.demands, id=demand_id, document=changed,
                                    if_seq_no=seq_no, if_primary_term=primary_term,
                                    refresh=True)
                return changed
            except ConflictError:
                logger.info("demand %s changed concurrently (attempt %d); re-applying",
                            demand_id, attempt)
        raise StoreConflict(f"demand {demand_id!r} kept changing concurrently; try again")

    async def search(self, *, status: str | None = None, company: str | None = None,
                     contact_status: str | None = None, size: int = 20,
                     offset: int = 0) -> tuple[int, list[tuple[str, Demand]]]:
        """Return (total, [(id, document)]) of demands, newest first."""
        filters: list[dict[str, Any]] = []
        if status:
            filters.append({"term": {"status": status}})
        if company:
            filters.append({"match": {"company": {"query": company, "operator": "and"}}})
        if contact_status:
            filters.append({"term": {"selection.contact_status": contact_status}})
        result = await self.es.search(
            index=self.names.demands,
            query={"bool": {"filter": filters}},
            sort=[{"created_at": "desc"}],
            size=size, from_=offset, track_total_hits=True,
        )
        hits = [(hit["_id"], hit["_source"]) for hit in result["hits"]["hits"]]
        return result["hits"]["total"]["value"], hits

    async def scan(self, query: dict[str, Any], page_size: int = 500,
                   ) -> AsyncIterator[tuple[str, Demand]]:
        """Yield (id, document) of every demand matching ``query``, oldest first."""
        search_after: list[Any] | None = None
        while True:
            result = await self.es.search(
                index=self.names.demands, query=query,
                sort=[{"created_at": "asc"}, {"_doc": "asc"}], size=page_size,
                search_after=search_after,
            )
            hits = result["hits"]["hits"]
            for hit in hits:
                yield hit["_id"], hit["_source"]
            if len(hits) < page_size:
                return
            search_after = hits[-1]["sort"]
