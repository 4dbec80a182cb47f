"""Turn raw field values from any reader into the patent document of docs/architecture.md.

Each ``normalize_*`` function takes one raw value and returns the canonical form,
or raises :class:`ValueError` with a message that names the value and the
accepted forms. :func:`normalize_record` applies them to a whole record.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import hashlib
import html
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ingest.records import Normalized, RecordError, SourceRecord

logger = logging.getLogger(__name__)

SIX_T_VALUES = ("IT", "BT", "NT", "ST", "ET", "CT")
UNCLASSIFIED = "unclassified"

# Kind codes of KIPRIS application numbers that this index accepts.
PATENT_KINDS = {"10": "patent", "20": "utility model"}
OTHER_KINDS = {"30": "design", "40": "trademark", "41": "service mark",
               "45": "trademark", "50": "trademark"}

#####################################################################
# Application numbers
#####################################################################

_NUMBER_SEPARATORS = re.compile(r"[\s\-./]+")


def normalize_application_number(value: Any, default_kind: str = "10") -> str:
    """Return the 13-digit KIPRIS application number: kind (2), year (4), serial (7).

    Accepted: ``1020180173848``, ``10-2018-0173848``, ``KR 10-2018-0173848``,
    ``10 2018 0173848`` and the 11-digit year-serial form ``2018-7000533``, which
    gets ``default_kind`` (``10``, patent) in front, the way KIPRIS shows old
    numbers. Integers and floats from spreadsheets (``1.020180173848e12``) work too.

    Raises:
        ValueError: empty, wrong length, unknown kind code or implausible year.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("application number is empty")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"application number {value!r} is not a whole number")
        value = int(value)
    text = str(value).strip()
    if text.upper().startswith("KR"):
        text = text[2:]
    digits = _NUMBER_SEPARATORS.sub("", text)
    if not digits.isdigit():
        raise ValueError(
            f"application number {value!r} has characters other than digits and "
            "separators; expected e.g. 10-2018-0173848 or 1020180173848"
        )
    if len(digits) == 11:
        digits = default_kind + digits
    if len(digits) != 13:
        raise ValueError(
            f"application number {value!r} has {len(digits)} digits; expected 13 "
            "(kind 2 + year 4 + serial 7, e.g. 10-2018-0173848) or 11 (year + serial)"
        )
    kind, year = digits[:2], int(digits[2:6])
    if kind not in PATENT_KINDS:
        kind_name = OTHER_KINDS.get(kind)
        hint = f" ({kind_name}, not a patent)" if kind_name else ""
        raise ValueError(
            f"application number {value!r} has kind code {kind}{hint}; "
            "only 10 (patent) and 20 (utility model) are indexed"
        )
    if not 1948 <= year <= dt.date.today().year + 1:
        raise ValueError(f"application number {value!r} has implausible year {year}")
    return digits


def normalize_document_number(value: Any) -> str | None:
    """Return a register/open/publication number as digits only, ``None`` when empty."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _NUMBER_SEPARATORS.sub("", str(value))
    return text or None


#####################################################################
# Text
#####################################################################

# A tag: <name>, </name>, <name/>, <name attr="v" ...>. Text such as "x<y and y>z"
# is no tag because its words carry no "=".
_TAG = re.compile(
    r"</?[A-Za-z][\w:-]*"
    r"(?:\s+[\w:.-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'<>]+))*\s*/?>"
)
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
_ASCII_WORD = re.compile(r"[A-Za-z]{2,}")


def clean_text(value: Any) -> str:
    """Strip HTML/XML tags and entities and collapse whitespace.

    ``<b>공기정화장치</b>`` becomes ``공기정화장치``; ``&lt;`` becomes ``<``;
    entities are decoded after tags are removed, so an escaped ``&lt;b&gt;``
    survives as the literal text ``<b>``.
    """
    if value is None:
        return ""
    text = str(value)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _CONTROL.sub("", text)
    return _SPACES.sub(" ", text).strip()


def split_title(title: str) -> tuple[str, str | None]:
    """Split an appended English title: ``한글 제목(ENGLISH TITLE)`` -> both parts.

    The trailing parenthesis counts as an English title when the part before
    it has Hangul, the part inside has none and has at least two words of two
    or more Latin letters (``가바(GABA)`` stays whole). Titles cut inside the
    English part (``...제조방법(PREPARATION METHOD OF 3D GRAPH``) are split too.
    """
    title = title.strip()
    start = _english_start(title)
    if start is None:
        return title, None
    korean = title[:start].strip()
    english = title[start + 1:].strip()
    if english.endswith(")"):
        english = english[:-1].strip()
    if not _HANGUL.search(korean) or _HANGUL.search(english):
        return title, None
    if len(_ASCII_WORD.findall(english)) < 2:
        return title, None
    return korean, english


def _english_start(title: str) -> int | None:
    """Index of the "(" that opens the trailing parenthesis, closed or cut off."""
    if title.endswith(")"):
        depth = 0
        for i in range(len(title) - 1, -1, -1):
            if title[i] == ")":
                depth += 1
            elif title[i] == "(":
                depth -= 1
                if depth == 0:
                    return i
        return None
    # Cut-off title: the last "(" that is never closed.
    depth = 0
    for i in range(len(title) - 1, -1, -1):
        if title[i] == ")":
            depth += 1
        elif title[i] == "(":
            if depth == 0:
                return i
            depth -= 1
    return None


_TRUNCATION_MARKS = ("...", "…", "(이하생략)", "(이하 생략)")


def looks_truncated(text: str) -> bool:
    """True when the text ends in a cut mark (``...``, ``…``, ``(이하생략)``)."""
    return text.rstrip().endswith(_TRUNCATION_MARKS)


def content_hash(title: str, abstract: str) -> str:
    """SHA-256 (hex) of title and abstract; the vector index re-encodes when it changes."""
    return hashlib.sha256(f"{title}\n{abstract}".encode("utf-8")).hexdigest()


#####################################################################
# Dates
#####################################################################

_DATE = re.compile(r"^\(?\s*(\d{4})\s*[.\-/]?\s*(\d{1,2})\s*[.\-/]?\s*(\d{1,2})\s*\.?\s*\)?"
                   r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")


def normalize_date(value: Any) -> str | None:
    """Return ``YYYY-MM-DD``; ``None`` for an empty value.

    Accepted: ``2016.10.24``, ``20161024``, ``2016-10-24``, ``2016/10/24``,
    ``(2006.01.01)``, ``2016-10-24 00:00:00`` and ``2016-10-24T00:00:00Z``.

    Raises:
        ValueError: a value in another form, or not a calendar date.
    """
    if value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    text = str(value).strip()
    if not text:
        return None
    match = _DATE.match(text)
    if match is None or (len(text) >= 8 and text.isdigit() and len(text) != 8):
        raise ValueError(f"date {value!r} is not in a known form "
                         "(2016-10-24, 2016.10.24, 20161024)")
    year, month, day = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError as exc:
        raise ValueError(f"date {value!r} is not a calendar date: {exc}") from exc


#####################################################################
# IPC and CPC codes
#####################################################################

# Section, class, subclass, then main group / subgroup, in any spacing and
# zero padding seen in exports: H01L 21/67, H01L21/67, H01J-037/32, A61K  8/02.
_IPC_CODE = re.compile(
    r"(?<![A-Za-z0-9])([A-H])\s*(\d{2})\s*([A-Z])\s*[-\s]?\s*(\d{1,4})\s*/\s*(\d{1,6})(?!\d)"
)
_IPC_SUBCLASS_ONLY = re.compile(r"^([A-H])(\d{2})([A-Z])$")


def normalize_ipc(value: Any) -> list[str]:
    """Return the IPC (or CPC) codes in ``value`` in canonical form, in order, deduplicated.

    ``value`` may be a list, a ``|``/``,``/``;``-separated string, or a Python
    list written as a string (``"['H01G 11/86', 'H01L 21/67']"``). Each code
    becomes ``H01L 21/67`` (subclass, one space, main group without leading
    zeros, ``/``, subgroup): ``H01J-037/32`` -> ``H01J 37/32``. A bare
    subclass (``H01L``) is kept as is. Fragments that are not codes (a cut-off
    ``B05`` at the end of an export) are ignored.
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        parts: Iterable[Any] = value
    else:
        text = str(value).strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                literal = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                literal = None
            if isinstance(literal, (list, tuple)):
                parts = literal
            else:
                parts = [text]
        else:
            parts = [text]
    codes: list[str] = []
    for part in parts:
        if part is None:
            continue
        text = str(part).upper()
        found = False
        for match in _IPC_CODE.finditer(text):
            section, klass, subclass, group, subgroup = match.groups()
            code = f"{section}{klass}{subclass} {int(group)}/{subgroup}"
            found = True
            if code not in codes:
                codes.append(code)
        if not found:
            bare = _IPC_SUBCLASS_ONLY.match(text.strip())
            if bare and text.strip() not in codes:
                codes.append(text.strip())
    return codes


#####################################################################
# IPC to 6T table
#####################################################################


@dataclass(frozen=True)
class SixTRow:
    prefix: str
    six_t: str
    reason: str


class SixTTable:
    """Longest-prefix lookup from IPC codes to a 6T category.

    Prefixes: a section (``A``), class (``A61``), subclass (``A61K``), main
    group (``A61K 8``, matching ``A61K 8/...``) or subgroup (``A61K 8/02``).
    For a patent the first IPC code with any matching row decides.
    """

    def __init__(self, rows: Iterable[SixTRow], origin: str = "<rows>") -> None:
        self.origin = origin
        self._rows: dict[str, SixTRow] = {}
        for row in rows:
            self._rows[self._key(row.prefix)] = row
        self._lengths = sorted({len(k) for k in self._rows}, reverse=True)

    @staticmethod
    def _key(prefix: str) -> str:
        key = _SPACES.sub(" ", prefix.strip().upper())
        if " " in key and "/" not in key:
            key += "/"
        return key

    def __len__(self) -> int:
        return len(self._rows)

    def lookup_code(self, code: str) -> SixTRow | None:
        """Return the row with the longest prefix of ``code`` (canonical form)."""
        for length in self._lengths:
            row = self._rows.get(code[:length])
            if row is not None:
                return row
        return None

    def classify(self, codes: Iterable[str]) -> str | None:
        """Return the 6T category of the first code with a matching row, else ``None``."""
        for code in codes:
            row = self.lookup_code(code)
            if row is not None:
                return row.six_t
        return None


def bundled_six_t_path() -> Path:
    """Path of the approximate table shipped in ``mappings/ipc_6t.csv``."""
    return Path(str(resources.files("mappings").joinpath("ipc_6t.csv")))


def load_six_t_table(path: str | Path | None = None) -> SixTTable:
    """Read an IPC-to-6T CSV (``ipc_prefix,six_t,reason``; ``#`` lines are comments).

    Args:
        path: the operator's table (``Settings.six_t_table``); ``None``: the
            bundled approximation.

    Raises:
        ValueError: a missing column, an unknown 6T value or a malformed prefix,
            naming the file and line.
    """
    path = Path(path) if path is not None else bundled_six_t_path()
    if not path.is_file():
        raise ValueError(f"6T table {str(path)!r} not found; fix PATENTMATCH_SIX_T_TABLE "
                         "or leave it empty for the bundled table")
    rows: list[SixTRow] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        lines = ((n, line) for n, line in enumerate(handle, 1)
                 if line.strip() and not line.lstrip().startswith("#"))
        numbered = list(lines)
    reader = csv.DictReader(line for _, line in numbered)
    expected = {"ipc_prefix", "six_t", "reason"}
    if reader.fieldnames is None or not expected <= set(reader.fieldnames):
        raise ValueError(f"{path}: header must have columns ipc_prefix,six_t,reason, "
                         f"found {reader.fieldnames!r}")
    for (line_no, _), row in zip(numbered[1:], reader):
        prefix = (row["ipc_prefix"] or "").strip().upper()
        six_t = (row["six_t"] or "").strip().upper()
        if six_t not in SIX_T_VALUES:
            raise ValueError(f"{path}:{line_no}: six_t {row['six_t']!r} is not one of "
                             f"{', '.join(SIX_T_VALUES)}")
        if not re.fullmatch(r"[A-H](\d{2}([A-Z]( \d{1,4}(/\d{1,6})?)?)?)?", prefix):
            raise ValueError(f"{path}:{line_no}: ipc_prefix {row['ipc_prefix']!r} is not "
                             "a section, class, subclass or group (A, A61, A61K, A61K 8)")
        rows.append(SixTRow(prefix, six_t, (row.get("reason") or "").strip()))
    logger.debug("loaded %d IPC-to-6T rows from %s", len(rows), path)
    return SixTTable(rows, origin=str(path))


def normalize_six_t(value: Any) -> str | None:
    """Return IT/BT/NT/ST/ET/CT for a 6T value given in the input, ``None`` when empty.

    Raises:
        ValueError: a value outside the six categories.
    """
    if value is None:
        return None
    text = str(value).strip().upper()
    if not text:
        return None
    if text not in SIX_T_VALUES:
        raise ValueError(f"6T value {value!r} is not one of {', '.join(SIX_T_VALUES)}")
    return text


#####################################################################
# Whole records
#####################################################################

# Upper bound of a plausible claim count; larger values are data errors.
MAX_CLAIM_COUNT = 10_000
_DATE_FIELDS = ("application_date", "register_date", "open_date", "publication_date")
_NUMBER_FIELDS = ("register_number", "open_number")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " | ".join(str(v) for v in value if v is not None)
    return str(value)


def normalize_record(record: SourceRecord, six_t_table: SixTTable) -> Normalized:
    """Build the patent document (without ``*_terms`` and ``ingested_at``).

    Raises:
        RecordError: the record cannot be indexed (invalid application number,
            empty title); the message names the value and the problem.
    """
    raw = record.fields
    warnings: list[str] = []

    # 1. Identity and title: without these the record is useless.
    try:
        number = normalize_application_number(raw.get("application_number"))
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    title_full = clean_text(raw.get("title"))
    title, title_en = split_title(title_full)
    given_en = clean_text(raw.get("title_en"))
    if given_en:
        title_en = given_en
    if not title:
        raise RecordError("title is empty after removing tags and whitespace")

    abstract = clean_text(_as_text(raw.get("abstract")))
    doc: dict[str, Any] = {"application_number": number, "title": title}
    if title_en:
        doc["title_en"] = title_en
    doc["abstract"] = abstract
    truncated = raw.get("abstract_truncated")
    if isinstance(truncated, str):
        truncated = truncated.strip().lower() in ("true", "1", "y", "yes")
    doc["abstract_truncated"] = bool(truncated) or looks_truncated(abstract)

    # 2. Classification codes and the 6T category.
    ipc = normalize_ipc(raw.get("ipc"))
    if ipc:
        doc["ipc"] = ipc
        doc["ipc_subclass"] = list(dict.fromkeys(code[:4] for code in ipc))
    cpc = normalize_ipc(raw.get("cpc"))
    if cpc:
        doc["cpc"] = cpc
    try:
        given_six_t = normalize_six_t(raw.get("six_t"))
    except ValueError as exc:
        warnings.append(f"{exc}; derived from the IPC table instead")
        given_six_t = None
    if given_six_t:
        doc["six_t"], doc["six_t_source"] = given_six_t, "input"
    else:
        derived = six_t_table.classify(ipc)
        if derived:
            doc["six_t"], doc["six_t_source"] = derived, "table"
        else:
            doc["six_t"], doc["six_t_source"] = UNCLASSIFIED, "none"

    # 3. Applicants, dates, numbers, status.
    applicant = raw.get("applicant")
    if isinstance(applicant, (list, tuple)):
        names = [clean_text(a) for a in applicant]
        names = [n for n in names if n]
        applicant_text = "|".join(names)
    else:
        applicant_text = clean_text(applicant)
        names = [n.strip() for n in applicant_text.split("|") if n.strip()]
    if applicant_text:
        doc["applicant"] = applicant_text
        doc["applicants"] = list(dict.fromkeys(names))
    for name in _DATE_FIELDS:
        try:
            value = normalize_date(raw.get(name))
        except ValueError as exc:
            warnings.append(f"{name}: {exc}; field left out")
            continue
        if value:
            doc[name] = value
    for name in _NUMBER_FIELDS:
        value = normalize_document_number(raw.get(name))
        if value:
            doc[name] = value
    status = clean_text(raw.get("register_status"))
    if status:
        doc["register_status"] = status
    claim_count = raw.get("claim_count")
    if claim_count not in (None, ""):
        try:
            count = int(str(claim_count).strip())
            if not 0 <= count <= MAX_CLAIM_COUNT:
                raise ValueError
            doc["claim_count"] = count
        except ValueError:
            warnings.append(f"claim_count {claim_count!r} is not an integer in "
                            f"0-{MAX_CLAIM_COUNT}; field left out")

    # 4. Provenance and the hash the vector index keys on.
    sources = [str(s) for s in raw.get("sources") or [] if s]
    # The file name, not the full path, so the same file ingested from another
    # folder or machine gives the same document.
    sources.append(Path(record.source).name)
    doc["sources"] = list(dict.fromkeys(sources))
    doc["content_hash"] = content_hash(title, abstract)
    return Normalized(doc, warnings)
