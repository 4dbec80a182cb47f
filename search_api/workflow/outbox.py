"""Outbox of e-mails: stored in Elasticsearch before sending, delivered by a worker.

A message goes ``pending -> sending -> sent``. A worker claims a due message by
writing ``sending`` with ``if_seq_no``/``if_primary_term``, so of several workers
(several API processes) exactly one sends it. A temporary failure puts it back to
``pending`` with ``next_attempt_at`` pushed out by a capped exponential backoff.
A permanent failure, or too many attempts, makes it ``failed`` for the operator.

Delivery is at least once. The Message-ID is fixed when the message is queued,
and a message is marked ``sent`` only after the SMTP server accepted it, so a
restarted worker never resends a ``sent`` message. One window remains: if the
process dies after the server accepted the message but before ``sent`` is
written, the claim expires (``claim_timeout_s``) and the message is sent again
with the same Message-ID, which lets receiving systems drop the duplicate. The
window is narrowed by writing ``sent`` right after the SMTP reply, retrying that
write within the claim, and by a reply link clicked in the meantime counting as
proof of delivery (see ``Workflow.record_reply``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, ConflictError, NotFoundError, TransportError

from patentmatch.config import Settings
from search_api.workflow.lifecycle import WorkflowError, iso, utc_now
from search_api.workflow.mail import (
    SmtpPermanentError,
    SmtpResult,
    SmtpTemporaryError,
    build_message,
    new_message_id,
    send_message,
)
from search_api.workflow.store import IndexNames, ensure_index

logger = logging.getLogger(__name__)

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
MAX_ROUNDS_PER_WAKE = 10
MIN_WAIT_S = 0.1  # floor of the worker's sleep, so clock skew cannot make it spin

OutboxMessage = dict[str, Any]
Callback = Callable[[str, OutboxMessage], Awaitable[None]]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RetryPolicy:
    """When the outbox retries and when it gives up.

    With the defaults, attempts are spaced 30 s, 1, 2, 4, 8, 16, 32 min, then 1 h,
    and a message fails after 12 attempts, about 5 hours after the first one.
    """

    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    max_attempts: int = 12
    claim_timeout_s: float = 300.0
    poll_interval_s: float = 10.0
    batch_size: int = 20

    def __post_init__(self) -> None:
        if self.base_delay_s <= 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("base_delay_s must be positive and max_delay_s at least "
                             f"base_delay_s, found {self.base_delay_s!r}, {self.max_delay_s!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, found {self.max_attempts!r}")
        if self.claim_timeout_s <= 0 or self.poll_interval_s <= 0 or self.batch_size < 1:
            raise ValueError("claim_timeout_s, poll_interval_s and batch_size must be positive")

    def delay_s(self, attempts: int) -> float:
        """Return the wait after the ``attempts``-th failed attempt (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts - 1))


class OutboxMessageNotFound(WorkflowError):
    """No outbox message has the requested id."""

    status = 404


class Outbox:
    """Messages in the index behind ``names.outbox`` and their delivery.

    Args:
        es: the Elasticsearch client.
        names: the workflow's index aliases.
        settings: SMTP host, port, TLS mode, credentials and sender.
        policy: retry timing.
        on_sent: awaited with (outbox id, message) after the SMTP server accepted
            a message; until it returns without error the message keeps
            ``demand_updated: false`` and later rounds call it again.
        on_failed: awaited with (outbox id, message) when a message fails for good.
        clock: the current time; tests pass a fake clock to step through retries.
    """

    def __init__(self, es: AsyncElasticsearch, names: IndexNames, settings: Settings,
                 policy: RetryPolicy, on_sent: Callback, on_failed: Callback,
                 clock: Clock = utc_now) -> None:
        self.es = es
        self.index = names.outbox
        self.settings = settings
        self.policy = policy
        self.on_sent = on_sent
        self.on_failed = on_failed
        self.clock = clock
        self.wake = asyncio.Event()

    async def ensure(self) -> None:
        """Create the outbox index and alias when missing."""
        await ensure_index(self.es, self.index, "demand_outbox.json")

    async def enqueue(self, outbox_id: str, *, demand_id: str, application_number: str,
                      to: list[str], subject: str, body: str,
                      extra: dict[str, Any] | None = None) -> tuple[OutboxMessage, bool]:
        """Store a message for delivery unless one with ``outbox_id`` exists.

        Returns (the stored message, whether this call created it). Queuing the
        same id twice stores and sends one message.
        """
        now = iso(self.clock())
        message = {
            "demand_id": demand_id,
            "application_number": application_number,
            "message_id": new_message_id(self.settings.mail_from),
            "mail_from": self.settings.mail_from,
            "to": to,
            "subject": subject,
            "body": body,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "claim_expires_at": None,
            "last_error": None,
            "smtp_response": None,
            "refused_recipients": [],
            "demand_updated": False,
            "created_at": now,
            "sent_at": None,
            "updated_at": now,
            **(extra or {}),
        }
        try:
            await self.es.create(index=self.index, id=outbox_id, document=message, refresh=True)
        except ConflictError:
            existing = await self.get(outbox_id)
            logger.info("outbox message %s already queued; not queuing it again", outbox_id)
            return existing, False
        logger.info("queued outbox message %s for demand %s, patent %s",
                    outbox_id, demand_id, application_number)
        self.wake.set()
        return message, True

    async def get(self, outbox_id: str) -> OutboxMessage:
        """Return one message.

        Raises:
            OutboxMessageNotFound: when no message has that id.
        """
        try:
            found = await self.es.get(index=self.index, id=outbox_id)
        except NotFoundError as exc:
            raise OutboxMessageNotFound(f"outbox message {outbox_id!r} not found",
                                        field="outbox_id") from exc
        return found["_source"]

    async def search(self, status: str | None = None, size: int = 50,
                     offset: int = 0) -> tuple[int, list[tuple[str, OutboxMessage]]]:
        """Return (total, [(id, message)]) newest first, optionally of one status."""
        query = {"term": {"status": status}} if status else {"match_all": {}}
        result = await self.es.search(index=self.index, query=query,
                                      sort=[{"created_at": "desc"}], size=size, from_=offset,
                                      track_total_hits=True,
                                      source_excludes=["body"])
        return (result["hits"]["total"]["value"],
                [(hit["_id"], hit["_source"]) for hit in result["hits"]["hits"]])

    async def retry(self, outbox_id: str) -> OutboxMessage:
        """Make a failed message pending again with a fresh attempt count (operator action)."""
        message = await self.get(outbox_id)
        if message["status"] != FAILED:
            raise WorkflowError(
                f"outbox message {outbox_id!r} is {message['status']}; only failed messages "
                "can be retried", field="outbox_id")
        now = iso(self.clock())
        changes = {"status": PENDING, "attempts": 0, "next_attempt_at": now, "updated_at": now}
        await self.es.update(index=self.index, id=outbox_id, doc=changes, refresh=True)
        self.wake.set()
        return {**message, **changes}

    async def mark_delivered(self, outbox_id: str, evidence: str) -> None:
        """Mark a message sent on other proof of delivery, so it is not sent again."""
        message = await self.get(outbox_id)
        if message["status"] == SENT:
            return
        now = iso(self.clock())
        await self.es.update(index=self.index, id=outbox_id, refresh=True, doc={
            "status": SENT, "sent_at": now, "updated_at": now, "claim_expires_at": None,
            "demand_updated": True, "smtp_response": f"not confirmed by SMTP; {evidence}"})
        logger.info("outbox message %s marked sent because %s", outbox_id, evidence)

    ##### delivery

    async def process_due(self) -> int:
        """Deliver every message that is due now; return how many were handled.

        Due are: pending messages whose ``next_attempt_at`` has come, ``sending``
        messages whose claim expired (their worker died), and sent messages whose
        demand was not updated yet.
        """
        now = iso(self.clock())
        result = await self.es.search(
            index=self.index,
            query={"bool": {"should": [
                {"bool": {"filter": [{"term": {"status": PENDING}},
                                     {"range": {"next_attempt_at": {"lte": now}}}]}},
                {"bool": {"filter": [{"term": {"status": SENDING}},
                                     {"range": {"claim_expires_at": {"lte": now}}}]}},
                {"bool": {"filter": [{"term": {"status": SENT}},
                                     {"term": {"demand_updated": False}}]}},
            ], "minimum_should_match": 1}},
            sort=[{"next_attempt_at": "asc"}],
            size=self.policy.batch_size,
            seq_no_primary_term=True,
        )
        handled = 0
        for hit in result["hits"]["hits"]:
            if hit["_source"]["status"] == SENT:
                await self._notify_sent(hit["_id"], hit["_source"])
            else:
                await self._deliver(hit)
            handled += 1
        return handled

    async def next_due_in_s(self) -> float | None:
        """Return seconds until the earliest pending retry, or None when none is pending."""
        result = await self.es.search(
            index=self.index, query={"term": {"status": PENDING}},
            sort=[{"next_attempt_at": "asc"}], size=1, source=["next_attempt_at"])
        hits = result["hits"]["hits"]
        if not hits:
            return None
        due = datetime.fromisoformat(hits[0]["_source"]["next_attempt_at"])
        return max(0.0, (due - self.clock()).total_seconds())

    async def _deliver(self, hit: dict[str, Any]) -> None:
        outbox_id, message = hit["_id"], hit["_source"]
        if message["status"] == SENDING:
            logger.warning("outbox message %s was claimed by a worker that did not finish "
                           "(attempt %d); sending it again with the same Message-ID",
                           outbox_id, message["attempts"])
        claimed = await self._claim(hit)
        if claimed is None:
            return
        message = claimed

        mime = build_message(mail_from=message["mail_from"], to=message["to"],
                             subject=message["subject"], body=message["body"],
                             message_id=message["message_id"])
        try:
            async with asyncio.timeout(self.policy.claim_timeout_s / 2):
                result = await send_message(self.settings, mime)
        except SmtpPermanentError as exc:
            await self._fail(outbox_id, message, f"rejected by the mail server: {exc}")
            return
        except (SmtpTemporaryError, TimeoutError) as exc:
            await self._retry_later(outbox_id, message, str(exc) or type(exc).__name__)
            return
        await self._mark_sent(outbox_id, message, result)

    async def _claim(self, hit: dict[str, Any]) -> OutboxMessage | None:
        now = self.clock()
        message = {
            **hit["_source"],
            "status": SENDING,
            "attempts": hit["_source"]["attempts"] + 1,
            "claim_expires_at": iso(now + timedelta(seconds=self.policy.claim_timeout_s)),
            "updated_at": iso(now),
        }
        try:
            await self.es.index(index=self.index, id=hit["_id"], document=message,
                                if_seq_no=hit["_seq_no"], if_primary_term=hit["_primary_term"],
                                refresh=True)
        except ConflictError:
            logger.debug("outbox message %s was claimed by another worker", hit["_id"])
            return None
        return message

    async def _mark_sent(self, outbox_id: str, message: OutboxMessage,
                         result: SmtpResult) -> None:
        now = iso(self.clock())
        changes = {"status": SENT, "sent_at": now, "updated_at": now, "claim_expires_at": None,
                   "smtp_response": result.response[:500],
                   "refused_recipients": sorted(result.refused), "last_error": None}
        if result.refused:
            logger.warning("outbox message %s: the mail server refused %d of %d recipients",
                           outbox_id, len(result.refused), len(message["to"]))
        # The server has the message: writing "sent" must not give up at the first
        # Elasticsearch hiccup, or the claim expires and the message goes out twice.
        delay = 0.5
        for attempt in range(1, 8):
            try:
                await self.es.update(index=self.index, id=outbox_id, doc=changes, refresh=True)
                break
            except (TransportError, ApiError) as exc:
                logger.error("outbox message %s was accepted by the mail server but could "
                             "not be marked sent (attempt %d): %s", outbox_id, attempt, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        else:
            logger.error("outbox message %s is still not marked sent; it will be sent "
                         "again with Message-ID %s when its claim expires",
                         outbox_id, message["message_id"])
            return
        logger.info("outbox message %s accepted by the mail server (attempt %d)",
                    outbox_id, message["attempts"])
        await self._notify_sent(outbox_id, {**message, **changes})

    async def _notify_sent(self, outbox_id: str, message: OutboxMessage) -> None:
        try:
            await self.on_sent(outbox_id, message)
        except Exception:
            logger.exception("outbox message %s was sent but its demand %s was not updated; "
                             "retrying in the next round", outbox_id, message["demand_id"])
            return
        await self.es.update(index=self.index, id=outbox_id, doc={"demand_updated": True},
                             refresh=True)

    async def _retry_later(self, outbox_id: str, message: OutboxMessage, error: str) -> None:
        attempts = message["attempts"]
        if attempts >= self.policy.max_attempts:
            await self._fail(outbox_id, message, f"gave up after {attempts} attempts: {error}")
            return
        now = self.clock()
        delay = self.policy.delay_s(attempts)
        changes = {"status": PENDING, "claim_expires_at": None, "last_error": error[:2000],
                   "next_attempt_at": iso(now + timedelta(seconds=delay)), "updated_at": iso(now)}
        await self.es.update(index=self.index, id=outbox_id, doc=changes, refresh=True)
        logger.warning("outbox message %s not delivered (attempt %d of %d): %s; next attempt "
                       "in %.0f s", outbox_id, attempts, self.policy.max_attempts, error, delay)

    async def _fail(self, outbox_id: str, message: OutboxMessage, error: str) -> None:
        now = iso(self.clock())
        changes = {"status": FAILED, "claim_expires_at": None, "last_error": error[:2000],
                   "updated_at": now}
        await self.es.update(index=self.index, id=outbox_id, doc=changes, refresh=True)
        logger.error("outbox message %s failed for good: %s", outbox_id, error)
        try:
            await self.on_failed(outbox_id, {**message, **changes})
        except Exception:
            logger.exception("outbox message %s failed and its demand %s was not updated",
                             outbox_id, message["demand_id"])

    ##### background worker

    async def run(self) -> None:
        """Deliver due messages until cancelled; meant for a ``cleanup_ctx`` task."""
        logger.info("outbox worker started on %s (SMTP %s:%d, TLS %s)", self.index,
                    self.settings.smtp_host, self.settings.smtp_port, self.settings.smtp_tls)
        while True:
            wait_s = self.policy.poll_interval_s
            self.wake.clear()
            try:
                # A full batch means more may be due; a bounded number of extra
                # rounds keeps a stuck batch from spinning the loop.
                for _ in range(MAX_ROUNDS_PER_WAKE):
                    if await self.process_due() < self.policy.batch_size:
                        break
                next_due = await self.next_due_in_s()
                if next_due is not None:
                    wait_s = max(MIN_WAIT_S, min(wait_s, next_due))
            except (TransportError, ApiError) as exc:
                logger.warning("outbox worker cannot reach Elasticsearch: %s; retrying in "
                               "%.0f s", exc, wait_s)
            except Exception:
                logger.exception("outbox worker round failed; retrying in %.0f s", wait_s)
            try:
                async with asyncio.timeout(wait_s):
                    await self.wake.wait()
            except TimeoutError:
                pass
