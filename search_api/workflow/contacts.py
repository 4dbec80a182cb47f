"""Contacts table: applicant name -> e-mail addresses of its technology-transfer office.

CSV format (UTF-8, with or without a byte-order mark, comma-separated, header row
required; column order free)::

    applicant,email,office,note
    서울대학교산학협력단,tlo@snu.example,서울대 기술이전센터,
    (주)한국전자,ip@hanguk.example;legal@hanguk.example,,두 주소 모두 받음

- ``applicant`` (required): the rights holder as KIPRIS writes it.
- ``email`` (required): one or more addresses separated by ``;``.
- ``office``, ``note`` (optional): shown to the operator only.

Names are matched after :func:`normalize_applicant`, so ``(주)한국전자``,
``주식회사 한국전자``, ``㈜ 한국전자`` and ``한국전자 주식회사`` are one applicant,
and so are ``Samsung Electronics Co., Ltd.`` and ``SAMSUNG ELECTRONICS``.
Importing a row for an applicant that already has a contact replaces it. A file
with any invalid row imports nothing and reports every invalid row with its line
number, so the operator fixes the file and imports it again.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from search_api.workflow import validation
from search_api.workflow.lifecycle import WorkflowError, iso, utc_now
from search_api.workflow.store import IndexNames, ensure_index

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("applicant", "email")
OPTIONAL_COLUMNS = ("office", "note")
MAX_EMAILS_PER_APPLICANT = 10

# Legal-form markers dropped before matching. Parenthesised and circled forms
# come first so that "(주)" is removed whole rather than leaving "()" behind.
_LEGAL_FORMS = (
    r"\(\s*주\s*\)", r"㈜", r"주식\s*회사",
    r"\(\s*유\s*\)", r"유한\s*회사",
    r"\(\s*재\s*\)", r"재단\s*법인",
    r"\(\s*사\s*\)", r"사단\s*법인",
    r"\(\s*학\s*\)", r"학교\s*법인",
)
_LEGAL_FORM_RE = re.compile("|".join(_LEGAL_FORMS))
# English legal forms at the end of a name, as foreign applicants are published
# ("Samsung Electronics Co., Ltd."); matched after case folding.
_ENGLISH_SUFFIX_RE = re.compile(
    r"[\s,.]*(co\.?,?\s*ltd\.?|company\s+limited|limited|ltd\.?|inc\.?|incorporated"
    r"|corp\.?|corporation|llc|gmbh|ag|s\.a\.|plc)\.?$")
_SPACE_RE = re.compile(r"\s+")


def normalize_applicant(name: str) -> str:
    """Return the matching key of an applicant name.

    Steps: Unicode NFKC turns full-width letters and brackets into ASCII. The
    Korean legal-form markers (주), ㈜, 주식회사, (유), 유한회사, (재), 재단법인,
    (사), 사단법인, (학) and 학교법인 are removed and the case is folded. English
    legal forms at the end (Co., Ltd., Inc., Corp., Corporation, Limited, LLC,
    GmbH, AG, S.A., PLC) are removed, then all whitespace. 산학협력단 stays, because a university's
    transfer office is that legal entity.
    """
    key = unicodedata.normalize("NFKC", name)
    key = key.replace("\u3231", "㈜")
    key = _LEGAL_FORM_RE.sub("", key).casefold().strip()
    previous = None
    while key != previous:
        previous, key = key, _ENGLISH_SUFFIX_RE.sub("", key).strip()
    return _SPACE_RE.sub("", key)


class ContactsImportError(WorkflowError):
    """The CSV file has invalid rows; nothing was imported."""

    status = 400

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"contacts file rejected, nothing imported: {shown}{more}",
                         field="file")


@dataclass
class ContactRow:
    """One valid row of a contacts file."""

    applicant: str
    emails: list[str]
    office: str | None = None
    note: str | None = None
    line: int = 0

    @property
    def key(self) -> str:
        return normalize_applicant(self.applicant)


def parse_contacts_csv(content: str | bytes, source: str = "upload") -> list[ContactRow]:
    """Parse and check a contacts file.

    Rows for the same normalised applicant are merged (addresses united, the
    later office and note win).

    Raises:
        ContactsImportError: listing every invalid row with its line number.
    """
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ContactsImportError([f"{source} is not UTF-8 text ({exc}); save it as "
                                       "UTF-8 (Excel: CSV UTF-8)"]) from exc
    content = content.removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(content, newline=""))
    header = [(name or "").strip().lower() for name in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ContactsImportError([f"{source} line 1: header lacks {missing}; the header "
                                   f"must name {', '.join(REQUIRED_COLUMNS)} and may name "
                                   f"{', '.join(OPTIONAL_COLUMNS)}"])
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise ContactsImportError([f"{source} line 1: unknown columns {unknown}; allowed: "
                                   f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"])
    reader.fieldnames = header

    rows: dict[str, ContactRow] = {}
    problems: list[str] = []
    for record in reader:
        line = reader.line_num
        if None in record:
            problems.append(f"line {line}: more fields than header columns")
            continue
        values = {k: (v or "").strip() for k, v in record.items()}
        if not any(values.values()):
            continue
        row = _parse_row(values, line, problems)
        if row is None:
            continue
        if not row.key:
            problems.append(f"line {line}: applicant {row.applicant!r} is empty after "
                            "removing legal-form markers")
            continue
        if row.key in rows:
            earlier = rows[row.key]
            earlier.emails = list(dict.fromkeys(earlier.emails + row.emails))
            earlier.office = row.office or earlier.office
            earlier.note = row.note or earlier.note
            earlier.line = line
            continue
        rows[row.key] = row
    if problems:
        raise ContactsImportError(problems)
    return list(rows.values())


def _parse_row(values: dict[str, str], line: int, problems: list[str]) -> ContactRow | None:
    applicant = values.get("applicant", "")
    if not applicant:
        problems.append(f"line {line}: applicant is empty")
        return None
    raw_emails = [e.strip() for e in values.get("email", "").split(";") if e.strip()]
    if not raw_emails:
        problems.append(f"line {line}: email is empty for {applicant!r}")
        return None
    if len(raw_emails) > MAX_EMAILS_PER_APPLICANT:
        problems.append(f"line {line}: {len(raw_emails)} addresses for {applicant!r}; "
                        f"at most {MAX_EMAILS_PER_APPLICANT}")
        return None
    emails = []
    for raw in raw_emails:
        try:
            emails.append(validation.email(raw, "email"))
        except validation.ValidationError as exc:
            problems.append(f"line {line}: {exc.message}")
            return None
    return ContactRow(applicant, list(dict.fromkeys(emails)), values.get("office") or None,
                      values.get("note") or None, line)


class ContactStore:
    """Contacts in the index behind ``names.contacts``, keyed by normalised applicant."""

    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es = es
        self.names = names

    async def ensure(self) -> None:
        """Create the contacts index and alias when missing."""
        await ensure_index(self.es, self.names.contacts, "demand_contacts.json")

    async def import_rows(self, rows: list[ContactRow], source: str) -> int:
        """Store parsed rows, replacing earlier contacts of the same applicants."""
        now = iso(utc_now())
        actions = [
            {"_op_type": "index", "_index": self.names.contacts, "_id": row.key,
             "_source": {"applicant": row.applicant, "applicant_key": row.key,
                         "emails": row.emails, "office": row.office, "note": row.note,
                         "source": f"{source}:{row.line}", "updated_at": now}}
            for row in rows
        ]
        imported, _ = await async_bulk(self.es, actions, refresh=True)
        logger.info("imported %d contacts from %s", imported, source)
        return imported

    async def lookup(self, applicants: list[str]) -> dict[str, list[str]]:
        """Return {applicant as given: e-mail addresses} for those that have a contact."""
        keys = {name: normalize_applicant(name) for name in applicants if name.strip()}
        if not keys:
            return {}
        found = await self.es.mget(index=self.names.contacts, ids=sorted(set(keys.values())))
        emails = {doc["_id"]: doc["_source"]["emails"] for doc in found["docs"]
                  if doc.get("found")}
        return {name: emails[key] for name, key in keys.items() if key in emails}

    async def list(self, size: int = 100, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """Return (total, contacts) sorted by applicant."""
        result = await self.es.search(index=self.names.contacts, query={"match_all": {}},
                                      sort=[{"applicant_key": "asc"}], size=size,
                                      from_=offset, track_total_hits=True)
        return (result["hits"]["total"]["value"],
                [hit["_source"] for hit in result["hits"]["hits"]])
