"""The demand workflow as one object: registry, recommendations, contacts, e-mail, answers.

Route handlers and the CLI call :class:`Workflow`; it combines the stores with the
plain lifecycle functions and owns no web code.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from patentmatch.config import Settings
from search_api.workflow import lifecycle
from search_api.workflow.contacts import ContactStore, normalize_applicant
from search_api.workflow.lifecycle import (
    CONTACT_MISSING,
    CONTACT_PENDING,
    CONTACT_QUEUED,
    CONTACT_SENT,
    TERMINAL_STATUSES,
    Actor,
    Answer,
    Demand,
    Status,
    WorkflowError,
    utc_now,
)
from search_api.workflow.mail import kipris_url, render_request
from search_api.workflow.outbox import Clock, Outbox, OutboxMessage, RetryPolicy
from search_api.workflow.store import DemandNotFound, DemandStore, IndexNames, load_signing_key
from search_api.workflow.tokens import (
    REPLY_NONCE_BYTES,
    ReplyClaim,
    TokenError,
    hash_secret,
    new_secret,
    secret_matches,
    sign_reply,
    verify_reply,
)

logger = logging.getLogger(__name__)

Recommend = Callable[[dict[str, Any]], Awaitable[list[dict[str, Any]]] | list[dict[str, Any]]]
"""Ranking function: a demand (title, description, filters, k, mode) -> ranked patents.

Each patent is a dict with at least ``application_number``. The fields
``title``, ``score``, ``abstract_similarity``, ``title_similarity``,
``applicants`` (list) or ``applicant`` (``|``-separated string) and
``kipris_url`` are kept when present, as in the results of ``POST /v1/search``.
A plain (not async) function runs in a thread.
"""

UNKNOWN_APPLICANT = "(출원인 정보 없음)"
RECOMMENDED_FIELDS = ("rank", "application_number", "title", "applicants", "score",
                      "abstract_similarity", "title_similarity", "bm25_score", "six_t",
                      "kipris_url", "scores")


class Workflow:
    """Registry of demands and the match workflow on top of Elasticsearch.

    Args:
        settings: uses demands_index, index_alias (to complete applicant names a
            ranking result lacks), the SMTP settings, mail_from and public_url.
        es: an async Elasticsearch client; the caller closes it.
        recommend: the ranking function; None leaves new demands registered until
            an operator asks for recommendations again with a ranking available.
        policy: outbox retry timing.
        clock: the current time in UTC.
    """

    def __init__(self, settings: Settings, es: AsyncElasticsearch, *,
                 recommend: Recommend | None, policy: RetryPolicy | None = None,
                 clock: Clock = utc_now) -> None:
        self.settings = settings
        self.es = es
        self.names = IndexNames(settings.demands_index)
        self.recommend_fn = recommend
        self.clock = clock
        self.demands = DemandStore(es, self.names)
        self.contacts = ContactStore(es, self.names)
        self.outbox = Outbox(es, self.names, settings, policy or RetryPolicy(),
                             on_sent=self._on_sent, on_failed=self._on_failed, clock=clock)
        self._signing_key: bytes | None = None
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Create the indices when missing and load the reply-link signing key.

        Runs once; later calls return at once. Raises Elasticsearch's errors when
        the cluster is unreachable, so the caller can try again later.
        """
        async with self._start_lock:
            if self._signing_key is not None:
                return
            await self.demands.ensure()
            await self.contacts.ensure()
            await self.outbox.ensure()
            self._signing_key = await load_signing_key(self.es, self.names.meta)

    async def start_if_created(self) -> bool:
        """Run :meth:`start` only when the workflow's indices exist; return whether it ran.

        The outbox worker uses this so that an API that never receives a demand
        creates no indices (test apps, read-only deployments).
        """
        if self._signing_key is None and not await self.es.indices.exists_alias(
                name=self.names.outbox):
            return False
        await self.start()
        return True

    @property
    def signing_key(self) -> bytes:
        if self._signing_key is None:
            raise RuntimeError("Workflow.start() must run before reply links are signed")
        return self._signing_key

    @property
    def public_base_url(self) -> str:
        """Base URL of links in e-mails: ``public_url``, else the API's own URL."""
        return (self.settings.public_url or self.settings.effective_api_url).rstrip("/")

    def reply_url(self, token: str) -> str:
        return f"{self.public_base_url}/v1/replies/{token}"

    ##### registration and recommendations

    async def register(self, fields: dict[str, Any]) -> tuple[str, str, Demand]:
        """Store a new demand, then attach recommendations when a ranking is available.

        Returns (demand id, access token, demand). The token is returned only here;
        only its hash is stored.
        """
        token = new_secret()
        demand = lifecycle.new_demand(fields, hash_secret(token), Actor.COMPANY, self.clock())
        demand_id = await self.demands.create(demand)
        logger.info("registered demand %s", demand_id)
        demand = await self.recommend(demand_id)
        return demand_id, token, demand

    async def recommend(self, demand_id: str, actor: str = Actor.SYSTEM) -> Demand:
        """Rank patents for a registered demand and store them with their scores.

        A failing ranking leaves the demand registered with ``recommend_error`` set,
        so the operator can try again.

        Raises:
            InvalidTransition: when the demand is no longer registered.
        """
        demand = await self.demands.get(demand_id)
        lifecycle.check_transition(demand["status"], Status.RECOMMENDED)
        try:
            patents = await self._rank(demand)
        except Exception as exc:  # the ranking is pluggable; any failure is reported the same way
            logger.exception("ranking failed for demand %s", demand_id)
            error = f"{type(exc).__name__}: {exc}"[:1000]
            return await self.demands.update(demand_id, lambda d: {
                **lifecycle.record_event(d, actor, "recommend_failed", self.clock(), error),
                "recommend_error": error,
            })

        def attach(current: Demand) -> Demand:
            changed = lifecycle.attach_recommendations(current, patents, self.clock(), actor)
            changed.pop("recommend_error", None)
            return changed

        demand = await self.demands.update(demand_id, attach)
        logger.info("attached %d recommendations to demand %s", len(patents), demand_id)
        return demand

    async def _rank(self, demand: Demand) -> list[dict[str, Any]]:
        if self.recommend_fn is None:
            raise WorkflowError("no ranking function is configured for this service",
                                field="recommend")
        query = {key: demand.get(key) for key in ("title", "description", "filters", "k", "mode")}
        if inspect.iscoroutinefunction(self.recommend_fn):
            results = await self.recommend_fn(query)
        else:
            results = await asyncio.to_thread(self.recommend_fn, query)
            if inspect.isawaitable(results):
                results = await results
        patents = [_recommended_patent(rank, item) for rank, item in enumerate(results, 1)]
        await self._complete_applicants(patents)
        return patents

    async def _complete_applicants(self, patents: list[dict[str, Any]]) -> None:
        """Fill applicants (and titles) that the ranking left out from the patents index."""
        lacking = [p["application_number"] for p in patents
                   if not p["applicants"] or not p.get("title")]
        if not lacking:
            return
        try:
            found = await self.es.mget(index=self.settings.index_alias, ids=lacking,
                                       source_includes=["title", "applicants", "applicant"])
        except NotFoundError:
            logger.warning("patents index %s not found; %d recommended patents keep no "
                           "applicant", self.settings.index_alias, len(lacking))
            return
        sources = {doc["_id"]: doc["_source"] for doc in found["docs"] if doc.get("found")}
        for patent in patents:
            source = sources.get(patent["application_number"])
            if source is None:
                continue
            patent["title"] = patent.get("title") or source.get("title")
            patent["applicants"] = patent["applicants"] or _applicant_list(source)

    ##### selection and e-mail

    async def select(self, demand_id: str, application_numbers: list[str]) -> Demand:
        """Record the company's choice and queue an e-mail per selected patent."""
        await self.demands.update(demand_id, lambda d: lifecycle.select_patents(
            d, application_numbers, self.clock(), Actor.COMPANY))
        logger.info("demand %s: company selected %s", demand_id, application_numbers)
        return await self.dispatch(demand_id)

    async def dispatch(self, demand_id: str) -> Demand:
        """Queue e-mails for selected patents that are waiting for one.

        A patent waits when it was just selected or when none of its applicants had
        a contact. Patents whose applicants still have no contact stay
        ``missing_contact`` and appear in :meth:`missing_contacts`.
        """
        demand = await self.demands.get(demand_id)
        if Status(demand["status"]) in TERMINAL_STATUSES:
            return demand
        for entry in demand["selection"]:
            if entry["contact_status"] in (CONTACT_PENDING, CONTACT_MISSING):
                demand = await self._dispatch_entry(demand_id, demand, entry)
        return demand

    async def _dispatch_entry(self, demand_id: str, demand: Demand,
                              entry: dict[str, Any]) -> Demand:
        number = entry["application_number"]
        applicants = entry["applicants"] or [UNKNOWN_APPLICANT]
        found = await self.contacts.lookup(applicants)
        missing = [name for name in applicants if name not in found]
        recipients = list(dict.fromkeys(email for name in applicants
                                        for email in found.get(name, [])))
        if not recipients:
            logger.warning("demand %s: no contact for the applicants %s of patent %s",
                           demand_id, missing, number)
            return await self.demands.update(
                demand_id, lambda d: _set_contact(d, number, self.clock(), CONTACT_MISSING,
                                                  missing_applicants=missing))

        nonce = new_secret(REPLY_NONCE_BYTES)
        links = {answer: self.reply_url(sign_reply(self.signing_key,
                                                   ReplyClaim(demand_id, number, answer, nonce)))
                 for answer in Answer}
        subject, body = render_request(demand_id, demand, entry, [a for a in applicants
                                                                   if a in found],
                                       links[Answer.INTERESTED], links[Answer.DECLINED])
        message, _ = await self.outbox.enqueue(
            outbox_id(demand_id, number), demand_id=demand_id, application_number=number,
            to=recipients, subject=subject, body=body,
            extra={"reply_nonce_hash": hash_secret(nonce)})
        return await self.demands.update(
            demand_id, lambda d: _set_contact(
                d, number, self.clock(), CONTACT_QUEUED, missing_applicants=missing,
                recipients=message["to"], outbox_id=outbox_id(demand_id, number),
                reply_nonce_hash=message["reply_nonce_hash"],
                message_id=message["message_id"]))

    async def dispatch_waiting(self) -> list[str]:
        """Run :meth:`dispatch` for every open demand with a patent waiting for e-mail.

        Returns the ids of the demands that got at least one e-mail queued.
        """
        dispatched: list[str] = []
        for status in (CONTACT_PENDING, CONTACT_MISSING):
            query = {"term": {"selection.contact_status": status}}
            async for demand_id, _ in self.demands.scan(query):
                demand = await self.dispatch(demand_id)
                if any(e["contact_status"] == CONTACT_QUEUED for e in demand["selection"]):
                    dispatched.append(demand_id)
        return sorted(set(dispatched))

    async def _on_sent(self, outbox_id: str, message: OutboxMessage) -> None:
        try:
            await self.demands.update(message["demand_id"], lambda d: lifecycle.mark_sent(
                d, message["application_number"], message["message_id"], self.clock()))
        except DemandNotFound:
            # A deleted demand cannot be updated; retrying every round would only
            # repeat this line.
            logger.warning("outbox message %s was sent for demand %s, which no longer "
                           "exists", outbox_id, message["demand_id"])

    async def _on_failed(self, outbox_id: str, message: OutboxMessage) -> None:
        try:
            await self.demands.update(message["demand_id"], lambda d: lifecycle.mark_send_failed(
                d, message["application_number"], message.get("last_error") or "unknown error",
                self.clock()))
        except DemandNotFound:
            logger.warning("outbox message %s failed for demand %s, which no longer exists",
                           outbox_id, message["demand_id"])

    ##### answers and operator transitions

    async def reply_preview(self, token: str) -> dict[str, Any]:
        """Check a reply token and return what its confirmation page shows."""
        claim = verify_reply(self.signing_key, token)
        demand = await self._demand_for_reply(claim)
        entry = lifecycle.selection_entry(demand, claim.application_number)
        return {"demand_id": claim.demand_id, "answer": str(claim.answer),
                "company": demand["company"], "demand_title": demand["title"],
                "application_number": claim.application_number, "patent_title": entry["title"],
                "already_answered": entry["answer"], "answered_at": entry["answered_at"]}

    async def record_reply(self, token: str) -> Demand:
        """Record the answer a rights holder sent through a reply link.

        A valid link proves that the e-mail arrived, so a patent whose e-mail was
        not yet marked sent (the outbox write after the SMTP reply is pending or was
        lost) is marked sent first.

        Raises:
            TokenError: for a forged or replaced link.
            AlreadyAnswered: when the patent's answer was recorded before.
        """
        claim = verify_reply(self.signing_key, token)
        demand = await self._demand_for_reply(claim)
        number = claim.application_number
        entry = lifecycle.selection_entry(demand, number)
        message_id = entry["message_id"]
        if message_id is None:
            message_id = (await self.outbox.get(entry["outbox_id"]))["message_id"]

        def answer(current: Demand) -> Demand:
            current_entry = lifecycle.selection_entry(current, number)
            if not secret_matches(claim.nonce, current_entry["reply_nonce_hash"]):
                raise TokenError("this reply link was replaced by a newer e-mail; use the "
                                 "link in the latest e-mail")
            if current_entry["contact_status"] != CONTACT_SENT:
                current = lifecycle.mark_sent(current, number, message_id, self.clock())
            return lifecycle.record_answer(current, number, claim.answer, Actor.RIGHTS_HOLDER,
                                           self.clock(), note="reply link")

        demand = await self.demands.update(claim.demand_id, answer)
        logger.info("demand %s: rights holder answered %s for %s", claim.demand_id,
                    claim.answer, number)
        await self.outbox.mark_delivered(entry["outbox_id"], "a reply link was used")
        return demand

    async def _demand_for_reply(self, claim: ReplyClaim) -> Demand:
        demand = await self.demands.get(claim.demand_id)
        entry = lifecycle.selection_entry(demand, claim.application_number)
        if not secret_matches(claim.nonce, entry["reply_nonce_hash"]):
            raise TokenError("this reply link was replaced by a newer e-mail; use the link "
                             "in the latest e-mail")
        return demand

    async def record_answer(self, demand_id: str, application_number: str, answer: Answer,
                            note: str | None, actor: str) -> Demand:
        """Record an answer the operator received by other means (phone, letter)."""
        return await self.demands.update(demand_id, lambda d: lifecycle.record_answer(
            d, application_number, answer, actor, self.clock(), note))

    async def set_status(self, demand_id: str, status: str, note: str | None,
                         actor: str) -> Demand:
        """Move a demand to transferred or closed on the operator's word."""
        return await self.demands.update(demand_id, lambda d: lifecycle.transition(
            d, status, actor, self.clock(), note))

    ##### operator views

    async def missing_contacts(self) -> list[dict[str, Any]]:
        """List applicants of selected patents that have no contact, with what waits on them.

        Open demands only (not transferred or closed). Contacts imported since the
        e-mail was queued are taken into account.
        """
        query = {"exists": {"field": "selection.missing_applicants"}}
        waiting: dict[str, dict[str, Any]] = {}
        async for demand_id, demand in self.demands.scan(query):
            if Status(demand["status"]) in TERMINAL_STATUSES:
                continue
            for entry in demand["selection"]:
                for name in entry.get("missing_applicants") or []:
                    item = waiting.setdefault(name, {
                        "applicant": name, "applicant_key": normalize_applicant(name),
                        "demand_ids": [], "application_numbers": [], "blocked_patents": 0})
                    item["demand_ids"] = sorted(set(item["demand_ids"]) | {demand_id})
                    item["application_numbers"] = sorted(
                        set(item["application_numbers"]) | {entry["application_number"]})
                    if entry["contact_status"] == CONTACT_MISSING:
                        item["blocked_patents"] += 1
        known = await self.contacts.lookup(list(waiting))
        return sorted((item for name, item in waiting.items() if name not in known),
                      key=lambda item: (-item["blocked_patents"], item["applicant_key"]))


def outbox_id(demand_id: str, application_number: str) -> str:
    """Return the outbox id of a demand's e-mail about one patent: one per pair."""
    return f"{demand_id}-{application_number}"


def _applicant_list(patent: dict[str, Any]) -> list[str]:
    applicants = patent.get("applicants")
    if isinstance(applicants, list):
        return [str(a).strip() for a in applicants if str(a).strip()]
    text = patent.get("applicant") or ""
    return [part.strip() for part in str(text).split("|") if part.strip()]


def _recommended_patent(rank: int, item: dict[str, Any]) -> dict[str, Any]:
    number = item.get("application_number")
    if not isinstance(number, str) or not number:
        raise WorkflowError(f"ranking result {rank} has no application_number: {item!r:.200}")
    patent = {key: item.get(key) for key in RECOMMENDED_FIELDS}
    patent["rank"] = item.get("rank") or rank
    patent["applicants"] = _applicant_list(item)
    patent["kipris_url"] = kipris_url(item)
    return patent


def _set_contact(demand: Demand, number: str, at: Any, contact_status: str,
                 **fields: Any) -> Demand:
    """Return a copy with one patent's contact bookkeeping updated.

    A patent already sent (the worker may finish before this write) keeps its status.
    """
    changed = lifecycle.record_event(
        demand, Actor.SYSTEM,
        "email_queued" if contact_status == CONTACT_QUEUED else "contact_missing", at,
        f"{number}: " + ("e-mail queued" if contact_status == CONTACT_QUEUED else
                         "no contact for " + ", ".join(fields.get("missing_applicants", []))))
    entry = lifecycle.selection_entry(changed, number)
    unchanged = (entry["contact_status"] == CONTACT_MISSING == contact_status
                 and entry["missing_applicants"] == fields.get("missing_applicants"))
    if unchanged:
        return demand
    entry.update(fields)
    if entry["contact_status"] != CONTACT_SENT:
        entry["contact_status"] = contact_status
    return changed
