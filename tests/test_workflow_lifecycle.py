"""The demand lifecycle as plain functions: every transition, valid and invalid."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from search_api.workflow import lifecycle
from search_api.workflow.lifecycle import (
    ALLOWED_TRANSITIONS,
    AlreadyAnswered,
    InvalidTransition,
    SelectionError,
    Status,
)

AT = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
PATENTS = [{"application_number": f"10201800000{i:02d}", "title": f"특허 {i}", "score": 0.9 - i / 10,
            "applicants": [f"출원인{i}"]} for i in range(3)]
VALID = [(current, requested) for current, allowed in ALLOWED_TRANSITIONS.items()
         for requested in allowed]
INVALID = [(current, requested) for current, requested in itertools.product(Status, Status)
           if requested not in ALLOWED_TRANSITIONS[current]]


def demand_in(status: Status) -> dict:
    demand = lifecycle.new_demand({"title": "딥러닝", "company": "회사", "email": "a@b.example"},
                                  "hash", "company", AT)
    demand["status"] = str(status)
    return demand


def test_lifecycle_documented_transitions():
    assert set(VALID) == {
        (Status.REGISTERED, Status.RECOMMENDED), (Status.REGISTERED, Status.CLOSED),
        (Status.RECOMMENDED, Status.SELECTED), (Status.RECOMMENDED, Status.CLOSED),
        (Status.SELECTED, Status.CONTACTED), (Status.SELECTED, Status.CLOSED),
        (Status.CONTACTED, Status.INTERESTED), (Status.CONTACTED, Status.DECLINED),
        (Status.CONTACTED, Status.CLOSED),
        (Status.INTERESTED, Status.TRANSFERRED), (Status.INTERESTED, Status.CLOSED),
        (Status.DECLINED, Status.SELECTED), (Status.DECLINED, Status.CLOSED),
    }


@pytest.mark.parametrize(("current", "requested"), VALID)
def test_transition_valid(current, requested):
    demand = demand_in(current)

    moved = lifecycle.transition(demand, requested, "operator:kim", AT, "note")

    assert moved["status"] == requested
    assert moved["audit"][-1] == {"at": "2026-03-02T09:00:00Z", "actor": "operator:kim",
                                  "action": "transition", "from_status": str(current),
                                  "to_status": str(requested), "detail": "note"}
    assert moved["status_times"][requested] == "2026-03-02T09:00:00Z"
    assert demand["status"] == current  # the input is unchanged


@pytest.mark.parametrize(("current", "requested"), INVALID)
def test_transition_invalid(current, requested):
    with pytest.raises(InvalidTransition) as caught:
        lifecycle.transition(demand_in(current), requested, "operator", AT)

    error = caught.value
    assert error.status == 409
    assert error.current == current
    assert error.requested == requested
    assert f"from {current} to {requested}" in error.message
    allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none, it is final"
    assert error.message.endswith(f"allowed from {current}: {allowed}")


def test_new_demand_registered_with_audit():
    demand = lifecycle.new_demand({"title": "t"}, "h", "company", AT)

    assert demand["status"] == "registered"
    assert demand["access_token_hash"] == "h"
    assert demand["audit"] == [{"at": "2026-03-02T09:00:00Z", "actor": "company",
                                "action": "register", "from_status": "registered",
                                "to_status": "registered", "detail": None}]


def recommended() -> dict:
    return lifecycle.attach_recommendations(demand_in(Status.REGISTERED), PATENTS, AT)


def test_attach_recommendations_keeps_scores():
    demand = recommended()

    assert demand["status"] == "recommended"
    assert [p["score"] for p in demand["recommended"]] == [0.9, 0.8, 0.7]
    assert demand["recommended_at"] == "2026-03-02T09:00:00Z"


def test_select_unknown_patent_rejected():
    with pytest.raises(SelectionError, match="not among this demand's recommended"):
        lifecycle.select_patents(recommended(), ["1020990000001"], AT)


def test_select_twice_rejected():
    selected = lifecycle.select_patents(recommended(), [PATENTS[0]["application_number"]], AT)

    with pytest.raises(InvalidTransition, match="from selected to selected"):
        lifecycle.select_patents(selected, [PATENTS[1]["application_number"]], AT)


def sent(numbers: list[str]) -> dict:
    demand = lifecycle.select_patents(recommended(), numbers, AT)
    for number in numbers:
        demand = lifecycle.mark_sent(demand, number, f"<{number}@x>", AT)
    return demand


def test_mark_sent_first_moves_to_contacted():
    a, b = PATENTS[0]["application_number"], PATENTS[1]["application_number"]
    demand = lifecycle.select_patents(recommended(), [a, b], AT)
    first = lifecycle.mark_sent(demand, a, "<a@x>", AT)
    second = lifecycle.mark_sent(first, b, "<b@x>", AT)

    assert first["status"] == "contacted"
    assert second["status"] == "contacted"
    assert second["audit"][-1]["action"] == "email_sent"
    assert lifecycle.mark_sent(second, b, "<b@x>", AT) == second


def test_answer_before_sent_rejected():
    number = PATENTS[0]["application_number"]
    demand = lifecycle.select_patents(recommended(), [number], AT)

    with pytest.raises(InvalidTransition, match="from selected to interested"):
        lifecycle.record_answer(demand, number, "interested", "rights_holder", AT)


def test_declined_waits_for_every_patent():
    a, b = PATENTS[0]["application_number"], PATENTS[1]["application_number"]
    demand = sent([a, b])

    one = lifecycle.record_answer(demand, a, "declined", "rights_holder", AT)
    both = lifecycle.record_answer(one, b, "declined", "operator", AT, "전화로 거절")

    assert one["status"] == "contacted"
    assert both["status"] == "declined"
    assert both["audit"][-1]["detail"] == f"{b}: declined (전화로 거절)"


def test_interested_after_decline_moves_to_interested():
    a, b = PATENTS[0]["application_number"], PATENTS[1]["application_number"]
    demand = lifecycle.record_answer(sent([a, b]), a, "declined", "rights_holder", AT)

    demand = lifecycle.record_answer(demand, b, "interested", "rights_holder", AT)

    assert demand["status"] == "interested"


def test_answer_twice_rejected():
    number = PATENTS[0]["application_number"]
    demand = lifecycle.record_answer(sent([number]), number, "interested", "rights_holder", AT)

    with pytest.raises(AlreadyAnswered, match="already has the answer 'interested'"):
        lifecycle.record_answer(demand, number, "declined", "operator", AT)


def test_answer_for_unselected_patent_rejected():
    demand = sent([PATENTS[0]["application_number"]])

    with pytest.raises(SelectionError, match="was not selected"):
        lifecycle.record_answer(demand, PATENTS[2]["application_number"], "declined", "x", AT)


def test_reselection_after_decline():
    a, b = PATENTS[0]["application_number"], PATENTS[1]["application_number"]
    declined = lifecycle.record_answer(sent([a]), a, "declined", "rights_holder", AT)

    with pytest.raises(SelectionError, match="selected before"):
        lifecycle.select_patents(declined, [a], AT)
    again = lifecycle.select_patents(declined, [b], AT)

    assert again["status"] == "selected"
    assert [e["application_number"] for e in again["selection"]] == [a, b]
    assert again["selection"][1]["contact_status"] == "pending"
