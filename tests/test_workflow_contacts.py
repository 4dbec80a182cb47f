"""Contacts: name normalisation, the CSV format, import by API and CLI, and the list
of applicants without a contact; real Elasticsearch and SMTP server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from test_workflow_support import (  # noqa: F401  (fixtures)
    OPERATOR,
    PATENTS,
    client,
    clock,
    create_demand,
    import_contacts,
    operator_get,
    patent_index,
    select,
    smtp_server,
    workflow_settings,
)

from search_api.workflow import WORKFLOW
from search_api.workflow.contacts import (
    ContactsImportError,
    normalize_applicant,
    parse_contacts_csv,
)

VISION, INSPECTION = PATENTS[0]["application_number"], PATENTS[1]["application_number"]


@pytest.mark.parametrize("name", ["(주)한빛전자", "주식회사 한빛전자", "㈜ 한빛전자", "한빛전자 주식회사",
                                  "( 주 )한빛전자", "（주）한빛전자", "한빛 전자", " 한빛전자\t"])
def test_normalize_company_variants(name):
    assert normalize_applicant(name) == "한빛전자"


@pytest.mark.parametrize(("name", "key"), [
    ("서울대학교 산학협력단", "서울대학교산학협력단"),
    ("재단법인 한국기계연구원", "한국기계연구원"),
    ("(재)한국기계연구원", "한국기계연구원"),
    ("Samsung Electronics Co., Ltd.", "samsungelectronics"),
    ("SAMSUNG ELECTRONICS CO.,LTD", "samsungelectronics"),
    ("Acme Holdings Inc.", "acmeholdings"),
    ("Ltd 연구소", "ltd연구소"),
])
def test_normalize_other_forms(name, key):
    assert normalize_applicant(name) == key


def test_parse_merges_same_applicant():
    rows = parse_contacts_csv("\ufeffApplicant,EMAIL,office\n"
                              "(주)한빛전자,ip@hanbit.example,IP팀\n"
                              "주식회사 한빛전자,legal@Hanbit.Example; ip@hanbit.example,\n"
                              "\n"
                              "가나대학교산학협력단,tlo@univ-a.example,\n".encode("utf-8"))

    assert [(r.applicant, r.emails, r.office) for r in rows] == [
        ("(주)한빛전자", ["ip@hanbit.example", "legal@hanbit.example"], "IP팀"),
        ("가나대학교산학협력단", ["tlo@univ-a.example"], None),
    ]


def test_parse_reports_every_bad_row():
    content = ("applicant,email\n"
               ",a@b.example\n"
               "회사,\n"
               "회사2,not-an-address\n"
               "(주),x@y.example\n"
               "회사3,a@b.example,extra\n")

    with pytest.raises(ContactsImportError) as caught:
        parse_contacts_csv(content)

    assert caught.value.problems == [
        "line 2: applicant is empty",
        "line 3: email is empty for '회사'",
        "line 4: email 'not-an-address' is not a valid e-mail address; "
        "expected name@domain.tld",
        "line 5: applicant '(주)' is empty after removing legal-form markers",
        "line 6: more fields than header columns",
    ]


@pytest.mark.parametrize(("content", "fragment"), [
    ("name,mail\nx,y@z.example\n", "header lacks ['applicant', 'email']"),
    ("applicant,email,phone\nx,y@z.example,1\n", "unknown columns ['phone']"),
    ("applicant,email\n회사,a@b.example\n".encode("cp949"), "not UTF-8"),
])
def test_parse_rejects_bad_file(content, fragment):
    with pytest.raises(ContactsImportError) as caught:
        parse_contacts_csv(content)

    assert fragment in caught.value.message


@pytest.mark.asyncio
async def test_import_replaces_and_lists(client):
    first = await import_contacts(client, "applicant,email\n(주)한빛전자,old@hanbit.example\n")
    second = await import_contacts(client, "applicant,email,note\n"
                                           "주식회사 한빛전자,new@hanbit.example,담당 변경\n")
    listing = await operator_get(client, "/v1/contacts")

    assert first["imported"] == 1
    assert second["imported"] == 1
    assert listing["total"] == 1
    contact = listing["contacts"][0]
    assert contact["emails"] == ["new@hanbit.example"]
    assert contact["applicant_key"] == "한빛전자"
    assert contact["note"] == "담당 변경"


@pytest.mark.asyncio
async def test_import_invalid_file_imports_nothing(client):
    response = await client.post("/v1/contacts/import", headers=OPERATOR,
                                 data="applicant,email\n회사,a@b.example\n회사2,bad\n".encode())

    assert response.status == 400
    error = (await response.json())["error"]
    assert error["field"] == "file"
    assert "line 3" in error["message"]
    assert (await operator_get(client, "/v1/contacts"))["total"] == 0


@pytest.mark.asyncio
async def test_missing_contact_listed_then_dispatched(client, smtp_server):
    await import_contacts(client, "applicant,email\n다른회사,x@other.example\n")
    created = await create_demand(client)
    await select(client, created, [VISION, INSPECTION])
    workflow = client.app[WORKFLOW]

    waiting = await operator_get(client, f"/v1/demands/{created['id']}")
    missing = await operator_get(client, "/v1/contacts/missing")
    assert await workflow.outbox.process_due() == 0
    summary = await import_contacts(client, "applicant,email\n(주)한빛전자,ip@hanbit.example\n")
    still_missing = await operator_get(client, "/v1/contacts/missing")
    await workflow.outbox.process_due()
    after = await operator_get(client, f"/v1/demands/{created['id']}")

    assert [e["contact_status"] for e in waiting["selection"]] == ["missing_contact"] * 2
    assert waiting["status"] == "selected"
    assert [(m["applicant"], m["demand_ids"], m["blocked_patents"]) for m in missing["missing"]] \
        == [("가나대학교산학협력단", [created["id"]], 1), ("주식회사 한빛전자", [created["id"]], 1)]
    assert summary["dispatched_demands"] == [created["id"]]
    assert [m["applicant"] for m in still_missing["missing"]] == ["가나대학교산학협력단"]
    assert [r.recipients for r in smtp_server.received] == [["ip@hanbit.example"]]
    assert [e["contact_status"] for e in after["selection"]] == ["missing_contact", "sent"]
    assert after["status"] == "contacted"


@pytest.mark.asyncio
async def test_partial_contacts_send_and_list_rest(client, smtp_server):
    await import_contacts(client, "applicant,email\n가나대학교산학협력단,tlo@univ-a.example\n")
    workflow = client.app[WORKFLOW]
    workflow.recommend_fn = lambda demand: [{
        "application_number": PATENTS[2]["application_number"], "title": PATENTS[2]["title"],
        "applicant": "다라연구원|가나대학교산학협력단", "score": 0.7}]
    created = await create_demand(client)
    await select(client, created, [PATENTS[2]["application_number"]])
    await workflow.outbox.process_due()

    missing = await operator_get(client, "/v1/contacts/missing")

    assert [r.recipients for r in smtp_server.received] == [["tlo@univ-a.example"]]
    assert [(m["applicant"], m["blocked_patents"]) for m in missing["missing"]] == [
        ("다라연구원", 0)]


def run_cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ES_URL": settings.es_url,
           "PATENTMATCH_DEMANDS_INDEX": settings.demands_index,
           "PATENTMATCH_INDEX_ALIAS": settings.index_alias}
    return subprocess.run([sys.executable, "-m", "patentmatch.cli", "-q", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_cli_contacts_import_and_missing(workflow_settings, tmp_path):
    good = tmp_path / "contacts.csv"
    good.write_text("applicant,email\n㈜한빛전자,ip@hanbit.example\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("applicant,email\n회사,nope\n", encoding="utf-8")

    imported = run_cli(workflow_settings, "contacts", "import", str(good))
    rejected = run_cli(workflow_settings, "contacts", "import", str(bad))
    listed = run_cli(workflow_settings, "contacts", "list", "--json")
    missing = run_cli(workflow_settings, "contacts", "missing")
    demands = run_cli(workflow_settings, "demands", "list", "--json")

    assert imported.returncode == 0, imported.stderr
    assert f"contacts imported from {good}: 1" in imported.stdout
    assert rejected.returncode == 1
    assert "line 2: email 'nope' is not a valid e-mail address" in rejected.stderr
    assert json.loads(listed.stdout)["contacts"][0]["emails"] == ["ip@hanbit.example"]
    assert missing.stdout.strip() == "every applicant of a selected patent has a contact"
    assert json.loads(demands.stdout) == {"total": 0, "demands": []}


@pytest.mark.asyncio
async def test_cli_demand_commands(client, workflow_settings):
    created = await create_demand(client)

    shown = await asyncio.to_thread(run_cli, workflow_settings, "demands", "show", created["id"])
    answered = await asyncio.to_thread(run_cli, workflow_settings, "demands", "answer",
                                       created["id"], "10-2018-0173848", "interested")
    closed = await asyncio.to_thread(run_cli, workflow_settings, "demands", "close",
                                     created["id"], "--note", "기업이 철회", "--actor", "operator:lee")
    again = await asyncio.to_thread(run_cli, workflow_settings, "demands", "transfer",
                                    created["id"])
    listed = await asyncio.to_thread(run_cli, workflow_settings, "demands", "list",
                                     "--status", "closed")

    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "recommended"
    assert answered.returncode == 1
    assert "cannot move the demand from recommended to interested" in answered.stderr
    assert closed.returncode == 0, closed.stderr
    assert f"demand {created['id']} is now closed" in closed.stdout
    assert again.returncode == 1
    assert "allowed from closed: none, it is final" in again.stderr
    assert created["id"] in listed.stdout
    audit = (await operator_get(client, f"/v1/demands/{created['id']}"))["audit"][-1]
    assert audit["actor"] == "operator:lee"
    assert audit["detail"] == "기업이 철회"
