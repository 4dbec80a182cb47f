"""Lifecycle of a technology demand: statuses, allowed transitions, the audit trail.

Plain functions over the demand document (a dict as stored in Elasticsearch); no
web or storage code. Each function returns a new document and leaves its input
unchanged, so the store can retry it on a fresh copy after a version conflict.

Statuses and who moves a demand between them::

    registered --system--> recommended --company--> selected --system--> contacted
    contacted --rights holder/operator--> interested | declined
    interested --operator--> transferred
    declined --company--> selected          (the company picks other patents)
    any status except transferred and closed --operator--> closed
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

Demand = dict[str, Any]


class Status(StrEnum):
    """Status of a demand."""

    REGISTERED = "registered"
    RECOMMENDED = "recommended"
    SELECTED = "selected"
    CONTACTED = "contacted"
    INTERESTED = "interested"
    DECLINED = "declined"
    TRANSFERRED = "transferred"
    CLOSED = "closed"


class Answer(StrEnum):
    """A rights holder's answer to a transfer-talk request."""

    INTERESTED = "interested"
    DECLINED = "declined"


class Actor(StrEnum):
    """Kind of party that changed a demand; the audit trail records it."""

    COMPANY = "company"
    OPERATOR = "operator"
    RIGHTS_HOLDER = "rights_holder"
    SYSTEM = "system"


ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.REGISTERED: frozenset({Status.RECOMMENDED, Status.CLOSED}),
    Status.RECOMMENDED: frozenset({Status.SELECTED, Status.CLOSED}),
    Status.SELECTED: frozenset({Status.CONTACTED, Status.CLOSED}),
    Status.CONTACTED: frozenset({Status.INTERESTED, Status.DECLINED, Status.CLOSED}),
    Status.INTERESTED: frozenset({Status.TRANSFERRED, Status.CLOSED}),
    Status.DECLINED: frozenset({Status.SELECTED, Status.CLOSED}),
    Status.TRANSFERRED: frozenset(),
    Status.CLOSED: frozenset(),
}

TERMINAL_STATUSES = frozenset({Status.TRANSFERRED, Status.CLOSED})

# Contact status of one selected patent.
CONTACT_PENDING = "pending"  # selected; contacts not looked up yet
CONTACT_QUEUED = "queued"  # an e-mail is in the outbox
CONTACT_MISSING = "missing_contact"  # no applicant of the patent has a contact e-mail
CONTACT_SENT = "sent"  # the SMTP server accepted the e-mail
CONTACT_FAILED = "failed"  # the outbox gave up; the operator must act


class WorkflowError(Exception):
    """Base of the errors the workflow raises for a request it cannot carry out."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidTransition(WorkflowError):
    """The demand's current status does not allow the requested one."""

    status = 409

    def __init__(self, current: Status, requested: Status, allowed: Iterable[Status]) -> None:
        self.current = Status(current)
        self.requested = Status(requested)
        self.allowed = sorted(Status(s) for s in allowed)
        allowed_text = ", ".join(self.allowed) if self.allowed else "none, it is final"
        super().__init__(
            f"cannot move the demand from {self.current} to {self.requested}; "
            f"allowed from {self.current}: {allowed_text}",
            field="status",
        )


class SelectionError(WorkflowError):
    """A selection or answer names a patent it may not name."""

    status = 400


class AlreadyAnswered(WorkflowError):
    """The patent's rights holder has answered already; answers are final."""

    status = 409


def utc_now() -> datetime:
    """Return the current time in UTC, with microseconds dropped."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """Format a UTC moment as Elasticsearch's default date format reads it."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def check_transition(current: Status | str, requested: Status | str) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> requested`` is allowed."""
    current, requested = Status(current), Status(requested)
    if requested not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(current, requested, ALLOWED_TRANSITIONS[current])


def _audit(demand: Demand, at: datetime, actor: str, action: str,
           to_status: Status | None = None, detail: str | None = None) -> None:
    demand.setdefault("audit", []).append({
        "at": iso(at),
        "actor": actor,
        "action": action,
        "from_status": demand["status"],
        "to_status": str(to_status) if to_status else demand["status"],
        "detail": detail,
    })
    demand["updated_at"] = iso(at)


def transition(demand: Demand, requested: Status | str, actor: str, at: datetime,
               detail: str | None = None) -> Demand:
    """Return a copy of ``demand`` moved to ``requested``, with an audit entry.

    Raises:
        InvalidTransition: when the current status does not allow ``requested``.
    """
    requested = Status(requested)
    check_transition(demand["status"], requested)
    moved = copy.deepcopy(demand)
    _audit(moved, at, actor, "transition", requested, detail)
    moved["status"] = str(requested)
    moved.setdefault("status_times", {})[str(requested)] = iso(at)
    return moved


def record_event(demand: Demand, actor: str, action: str, at: datetime,
                 detail: str | None = None) -> Demand:
    """Return a copy of ``demand`` with an audit entry that changes no status."""
    changed = copy.deepcopy(demand)
    _audit(changed, at, actor, action, None, detail)
    return changed


def new_demand(fields: Mapping[str, Any], token_hash: str, actor: str, at: datetime) -> Demand:
    """Build the document of a newly registered demand from validated fields."""
    demand: Demand = {
        **fields,
        "status": str(Status.REGISTERED),
        "access_token_hash": token_hash,
        "recommended": [],
        "recommended_at": None,
        "selection": [],
        "audit": [],
        "created_at": iso(at),
        "updated_at": iso(at),
        "status_times": {str(Status.REGISTERED): iso(at)},
    }
    _audit(demand, at, actor, "register", Status.REGISTERED)
    return demand


def attach_recommendations(demand: Demand, patents: list[dict[str, Any]], at: datetime,
                           actor: str = Actor.SYSTEM) -> Demand:
    """Store the ranked patents with their scores and move the demand to recommended."""
    moved = transition(demand, Status.RECOMMENDED, actor, at,
                       detail=f"{len(patents)} patents recommended")
    moved["recommended"] = copy.deepcopy(patents)
    moved["recommended_at"] = iso(at)
    return moved


def select_patents(demand: Demand, application_numbers: list[str], at: datetime,
                   actor: str = Actor.COMPANY) -> Demand:
    """Record the company's choice of recommended patents and move to selected.

    A patent selected earlier (before a round of declines) cannot be chosen again,
    because its rights holder has already been asked.

    Raises:
        InvalidTransition: when the demand is neither recommended nor declined.
        SelectionError: when a number is not among the recommended patents or was
            selected before.
    """
    check_transition(demand["status"], Status.SELECTED)
    recommended = {p["application_number"]: p for p in demand.get("recommended", [])}
    unknown = [n for n in application_numbers if n not in recommended]
    if unknown:
        raise SelectionError(
            f"patents {unknown} are not among this demand's recommended patents; "
            f"choose from {sorted(recommended)}",
            field="application_numbers",
        )
    earlier = {entry["application_number"] for entry in demand.get("selection", [])}
    repeated = [n for n in application_numbers if n in earlier]
    if repeated:
        raise SelectionError(
            f"patents {repeated} were selected before and their rights holders "
            "already asked; choose other patents",
            field="application_numbers",
        )

    moved = transition(demand, Status.SELECTED, actor, at,
                       detail="selected " + ", ".join(application_numbers))
    for number in application_numbers:
        patent = recommended[number]
        moved["selection"].append({
            "application_number": number,
            "title": patent.get("title"),
            "applicants": list(patent.get("applicants") or []),
            "kipris_url": patent.get("kipris_url"),
            "score": patent.get("score"),
            "selected_at": iso(at),
            "contact_status": CONTACT_PENDING,
            "recipients": [],
            "missing_applicants": [],
            "outbox_id": None,
            "message_id": None,
            "sent_at": None,
            "reply_nonce_hash": None,
            "answer": None,
            "answered_at": None,
            "answered_by": None,
            "answer_note": None,
        })
    return moved


def selection_entry(demand: Demand, application_number: str) -> dict[str, Any]:
    """Return the selection entry of one patent.

    Raises:
        SelectionError: when the patent was not selected for this demand.
    """
    for entry in demand.get("selection", []):
        if entry["application_number"] == application_number:
            return entry
    selected = [e["application_number"] for e in demand.get("selection", [])]
    raise SelectionError(
        f"patent {application_number!r} was not selected for this demand; "
        f"selected: {selected}",
        field="application_number",
    )


def mark_sent(demand: Demand, application_number: str, message_id: str, at: datetime) -> Demand:
    """Record that the e-mail for one patent went out; the first one moves to contacted."""
    changed = copy.deepcopy(demand)
    entry = selection_entry(changed, application_number)
    if entry["contact_status"] == CONTACT_SENT:
        return changed
    entry["contact_status"] = CONTACT_SENT
    entry["message_id"] = message_id
    entry["sent_at"] = iso(at)
    detail = f"e-mail for {application_number} accepted by the mail server"
    if changed["status"] == Status.SELECTED:
        return transition(changed, Status.CONTACTED, Actor.SYSTEM, at, detail)
    _audit(changed, at, Actor.SYSTEM, "email_sent", None, detail)
    return changed


def mark_send_failed(demand: Demand, application_number: str, error: str,
                     at: datetime) -> Demand:
    """Record that the outbox gave up on the e-mail for one patent."""
    changed = copy.deepcopy(demand)
    entry = selection_entry(changed, application_number)
    entry["contact_status"] = CONTACT_FAILED
    _audit(changed, at, Actor.SYSTEM, "email_failed", None,
           f"e-mail for {application_number} failed: {error}")
    return changed


def record_answer(demand: Demand, application_number: str, answer: Answer | str,
                  actor: str, at: datetime, note: str | None = None) -> Demand:
    """Record a rights holder's answer for one patent and move the demand if due.

    The first ``interested`` answer moves a contacted demand to interested. A
    ``declined`` answer moves it to declined only once every selected patent has
    been declined, so one refusal does not hide another holder's pending answer.

    Raises:
        SelectionError: when the patent was not selected, its e-mail was never
            sent, or it already has an answer.
        InvalidTransition: when the demand's status does not accept answers.
    """
    answer = Answer(answer)
    status = Status(demand["status"])
    if status not in (Status.CONTACTED, Status.INTERESTED, Status.DECLINED):
        requested = Status.INTERESTED if answer is Answer.INTERESTED else Status.DECLINED
        raise InvalidTransition(status, requested, ALLOWED_TRANSITIONS[status])

    changed = copy.deepcopy(demand)
    entry = selection_entry(changed, application_number)
    if entry["contact_status"] != CONTACT_SENT:
        raise SelectionError(
            f"patent {application_number} has contact status {entry['contact_status']!r}; "
            "an answer can be recorded only after its e-mail was sent",
            field="application_number",
        )
    if entry["answer"] is not None:
        raise AlreadyAnswered(
            f"patent {application_number} already has the answer {entry['answer']!r} "
            f"recorded at {entry['answered_at']}",
            field="application_number",
        )
    entry["answer"] = str(answer)
    entry["answered_at"] = iso(at)
    entry["answered_by"] = actor
    entry["answer_note"] = note
    detail = f"{application_number}: {answer}" + (f" ({note})" if note else "")

    if answer is Answer.INTERESTED and status is Status.CONTACTED:
        return transition(changed, Status.INTERESTED, actor, at, detail)
    open_entries = [e for e in changed["selection"] if e["answer"] != Answer.DECLINED]
    if answer is Answer.DECLINED and status is Status.CONTACTED and not open_entries:
        return transition(changed, Status.DECLINED, actor, at, detail)
    _audit(changed, at, actor, "answer", None, detail)
    return changed
