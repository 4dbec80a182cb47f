"""Streaming readers, one per input format.

Every reader is a generator of :class:`SourceRecord` (raw fields under the
canonical names, with ``path:line`` or ``path#index``) and :class:`Reject`
(an entry that could not be read, with the reason). None of them loads a whole
file: memory stays flat for multi-GB inputs. ``.gz`` files are read as they are.

Formats (see :func:`detect_format`):

- ``jsonl``: our JSON Lines (``kipris-sample.jsonl``), one patent per line; a
  line holding a KIPRIS bibliographic-detail object is read as one too.
- ``kipris_xml``: a KIPRIS Plus OpenAPI response (``<PatentUtilityInfo>`` or
  ``<item>`` records).
- ``biblio_json``: a KIPRIS bibliographic-detail JSON file (one object or a list).
- ``kipris_bulk``: a folder of KIPRIS Plus bulk ``¶`` files joined on 출원번호.
- ``csv``: an export with Korean or English headers, UTF-8 or CP949.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Union
from xml.parsers import expat

from ingest.records import Reject, SourceRecord

logger = logging.getLogger(__name__)

ReaderItem = Union[SourceRecord, Reject]

# Largest single JSON document (not JSON Lines) read whole, in bytes.
MAX_JSON_DOCUMENT_BYTES = 256 * 1024 * 1024
# Bytes sampled to choose between UTF-8 and CP949.
ENCODING_SAMPLE_BYTES = 1024 * 1024
# Longest line read, in bytes; a longer one (a file without line breaks, a
# runaway quoted field) is rejected and skipped instead of filling the memory.
MAX_LINE_BYTES = 64 * 1024 * 1024

csv.field_size_limit(64 * 1024 * 1024)


class ReaderError(ValueError):
    """A whole file cannot be read (unknown format, encoding, missing columns)."""


#####################################################################
# Files and encodings
#####################################################################


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing ``.gz`` on the fly."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _base_suffix(path: Path) -> str:
    """``.csv`` for both ``x.csv`` and ``x.csv.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def detect_encoding(path: Path) -> str:
    """Return ``utf-8-sig``, ``utf-8`` or ``cp949`` from the first MiB of ``path``.

    Raises:
        ReaderError: the sample is neither UTF-8 nor CP949; the message gives the
            offset of the first bad byte and how to convert the file.
    """
    with open_binary(path) as handle:
        sample = handle.read(ENCODING_SAMPLE_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ReaderError(f"{path}: the file is UTF-16; convert it to UTF-8, e.g. "
                          f"iconv -f UTF-16 -t UTF-8 {path.name} > out.csv")
    errors = {}
    for encoding in ("utf-8", "cp949"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            # final=False: the sample may end inside a multi-byte character.
            decoder.decode(sample, final=False)
        except UnicodeDecodeError as exc:
            errors[encoding] = exc
            continue
        return encoding
    utf8 = errors["utf-8"]
    raise ReaderError(
        f"{path}: not UTF-8 (byte 0x{sample[utf8.start]:02x} at offset {utf8.start}) "
        "and not CP949 either; convert it to UTF-8, e.g. "
        f"iconv -f <its encoding> -t UTF-8 {path.name} > out.csv"
    )


def bounded_lines(handle: IO[bytes], limit: int | None = None
                  ) -> Iterator[tuple[int, bytes | None]]:
    """Yield (line number, bytes) per line; ``None`` for a line over ``limit`` bytes.

    ``limit`` defaults to :data:`MAX_LINE_BYTES`. The rest of an over-long line
    is read in chunks and dropped, so memory stays bounded by ``limit``.
    """
    limit = limit or MAX_LINE_BYTES
    line_no = 0
    while True:
        raw = handle.readline(limit)
        if not raw:
            return
        line_no += 1
        if len(raw) >= limit and not raw.endswith(b"\n"):
            while True:
                rest = handle.readline(limit)
                if not rest or rest.endswith(b"\n"):
                    break
            yield line_no, None
            continue
        yield line_no, raw


def _line_too_long() -> str:
    return (f"line is longer than {MAX_LINE_BYTES} bytes; skipped (is the file "
            "line-based?)")


def _decoded_lines(path: Path, encoding: str, bad_lines: dict[int, str]) -> Iterator[str]:
    """Yield decoded lines; a line that does not decode or is too long is noted, empty."""
    with open_binary(path) as handle:
        for line_no, raw in bounded_lines(handle):
            if raw is None:
                bad_lines[line_no] = _line_too_long()
                yield "\n"
                continue
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError as exc:
                bad_lines[line_no] = (
                    f"line {line_no} is not valid {encoding} (byte 0x{raw[exc.start]:02x} "
                    f"at column {exc.start + 1}); the file was read as {encoding}, detected "
                    "from its start; re-save it in one encoding"
                )
                yield raw.decode(encoding, errors="replace")


#####################################################################
# Format detection
#####################################################################

FORMATS = ("jsonl", "kipris_xml", "biblio_json", "kipris_bulk", "csv")


def detect_format(path: str | Path) -> str:
    """Return one of :data:`FORMATS` for ``path`` from its name and first bytes.

    Raises:
        ReaderError: the path does not exist or matches no known format.
    """
    path = Path(path)
    if path.is_dir():
        if _bulk_tables(path):
            return "kipris_bulk"
        raise ReaderError(f"{path}: folder without KIPRIS Plus bulk files "
                          "(¶-separated, first column 출원번호)")
    if not path.is_file():
        raise ReaderError(f"{path}: no such file or folder")
    suffix = _base_suffix(path)
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".xml":
        return "kipris_xml"
    if suffix == ".json":
        return "biblio_json"
    if suffix in (".csv", ".tsv"):
        return "csv"
    with open_binary(path) as handle:
        head = handle.read(4096)
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if "¶" in text:
        return "kipris_bulk"
    if text.startswith("<"):
        return "kipris_xml"
    if text.startswith("{"):
        return "jsonl"
    raise ReaderError(f"{path}: unknown format; expected .jsonl, .xml, .json, .csv, a "
                      "KIPRIS Plus bulk folder, or the same with .gz")


def require_content(path: Path, expected: str) -> None:
    """Raise ReaderError when ``path`` holds nothing but whitespace, after decompression.

    Every file reader calls this first, so an empty file of any format is
    reported the same way instead of yielding nothing.
    """
    with open_binary(path) as handle:
        while chunk := handle.read(1 << 16):
            if chunk.replace(b"\xef\xbb\xbf", b"").strip():
                return
    raise ReaderError(f"{path}: the file is empty; expected {expected}")


def read_patents(path: str | Path, fmt: str | None = None) -> Iterator[ReaderItem]:
    """Read patent records from ``path`` in format ``fmt`` (detected when ``None``)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    readers = {
        "jsonl": read_jsonl,
        "kipris_xml": read_kipris_xml,
        "biblio_json": read_biblio_json,
        "kipris_bulk": read_kipris_bulk,
        "csv": read_csv,
    }
    if fmt not in readers:
        raise ReaderError(f"format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    return readers[fmt](path)


#####################################################################
# JSON Lines and KIPRIS bibliographic-detail JSON
#####################################################################


def read_jsonl(path: Path) -> Iterator[ReaderItem]:
    """Read our JSON Lines: one object per line with the canonical field names."""
    require_content(path, "one JSON object per line")
    with open_binary(path) as handle:
        for line_no, raw in bounded_lines(handle):
            index = line_no - 1
            source = f"{path}:{line_no}"
            if raw is None:
                yield Reject(source, _line_too_long(), position=index)
                continue
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield Reject(source, f"line is not valid JSON: {exc}",
                             raw=raw.decode("utf-8", "replace"), position=index)
                continue
            if not isinstance(obj, dict):
                yield Reject(source, f"line holds a JSON {type(obj).__name__}, "
                             "expected an object", raw=obj, position=index)
                continue
            if "biblioSummaryInfoArray" in obj:
                obj = biblio_fields(obj)
            yield SourceRecord(source, obj, position=index)


def _as_list(value: Any) -> list[Any]:
    """Return a list: KIPRIS JSON stores one child as an object and several as a list."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def biblio_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Canonical raw fields of one KIPRIS bibliographic-detail object."""
    summary = (obj.get("biblioSummaryInfoArray") or {}).get("biblioSummaryInfo") or {}
    if isinstance(summary, list):
        summary = summary[0] if summary else {}
    fields: dict[str, Any] = {
        "application_number": summary.get("applicationNumber"),
        "title": summary.get("inventionTitle"),
        "title_en": summary.get("inventionTitleEng"),
        "application_date": summary.get("applicationDate"),
        "open_date": summary.get("openDate"),
        "open_number": summary.get("openNumber"),
        "publication_date": summary.get("publicationDate"),
        "register_date": summary.get("registerDate"),
        "register_number": summary.get("registerNumber"),
        "register_status": summary.get("registerStatus"),
        "claim_count": summary.get("claimCount"),
    }
    ipc_info = (obj.get("ipcInfoArray") or {})
    fields["ipc"] = [i.get("ipcNumber") for i in _as_list(ipc_info.get("ipcInfo"))
                     if isinstance(i, dict)]
    cpc_info = (obj.get("cpcInfoArray") or {})
    if isinstance(cpc_info, dict):
        fields["cpc"] = [i.get("cpcNumber") for i in _as_list(cpc_info.get("cpcInfo"))
                         if isinstance(i, dict)]
    abstract_info = (obj.get("abstractInfoArray") or {})
    fields["abstract"] = " ".join(
        str(i.get("astrtCont") or "") for i in _as_list(abstract_info.get("abstractInfo"))
        if isinstance(i, dict)
    )
    applicant_info = (obj.get("applicantInfoArray") or {})
    fields["applicant"] = [i.get("name") for i in _as_list(applicant_info.get("applicantInfo"))
                           if isinstance(i, dict) and i.get("name")]
    return fields


def read_biblio_json(path: Path) -> Iterator[ReaderItem]:
    """Read a KIPRIS bibliographic-detail JSON file: one object or a list of them.

    The file is parsed whole, so it is limited to :data:`MAX_JSON_DOCUMENT_BYTES`;
    put large sets in JSON Lines (one object per line) instead.
    """
    require_content(path, "a KIPRIS bibliographic-detail JSON object or a list of them")
    size = path.stat().st_size
    if size > MAX_JSON_DOCUMENT_BYTES:
        yield Reject(f"{path}#0", f"JSON document of {size} bytes is larger than the "
                     f"{MAX_JSON_DOCUMENT_BYTES} bytes read whole; write one object per "
                     "line (.jsonl) instead")
        return
    with open_binary(path) as handle:
        try:
            data = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            yield Reject(f"{path}#0", f"file is not valid JSON: {exc}")
            return
    items = data if isinstance(data, list) else [data]
    for index, obj in enumerate(items):
        source = f"{path}#{index}"
        if not isinstance(obj, dict) or "biblioSummaryInfoArray" not in obj:
            yield Reject(source, "object has no biblioSummaryInfoArray; not a KIPRIS "
                         "bibliographic-detail record", raw=obj, position=index)
            continue
        yield SourceRecord(source, biblio_fields(obj), position=index)


#####################################################################
# KIPRIS Plus OpenAPI XML
#####################################################################

RECORD_TAGS = frozenset({"patentutilityinfo", "item"})

# Lower-cased tag -> canonical field; covers the applicant-search response and
# the item-based KIPRIS Plus services.
XML_FIELDS = {
    "applicationnumber": "application_number",
    "inventionname": "title",
    "inventiontitle": "title",
    "inventiontitleeng": "title_en",
    "abstract": "abstract",
    "astrtcont": "abstract",
    "applicant": "applicant",
    "applicantname": "applicant",
    "applicationdate": "application_date",
    "openingdate": "open_date",
    "opendate": "open_date",
    "openingnumber": "open_number",
    "opennumber": "open_number",
    "publicdate": "publication_date",
    "publicationdate": "publication_date",
    "registrationdate": "register_date",
    "registerdate": "register_date",
    "registrationnumber": "register_number",
    "registernumber": "register_number",
    "registrationstatus": "register_status",
    "registerstatus": "register_status",
    "internationalpatentclassificationnumber": "ipc",
    "ipcnumber": "ipc",
    "claimcount": "claim_count",
}


class _XmlRecords:
    """Expat handlers that collect the direct children of each record element."""

    def __init__(self, parser: expat.XMLParserType) -> None:
        self.parser = parser
        self.done: list[tuple[int, dict[str, Any]]] = []
        self.header: dict[str, str] = {}
        self._depth = 0
        self._record_depth: int | None = None
        self._record: dict[str, Any] = {}
        self._record_line = 0
        self._field: str | None = None
        self._text: list[str] = []
        self._header_field: str | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self._depth += 1
        tag = name.rsplit(":", 1)[-1].lower()
        if self._record_depth is None and tag in RECORD_TAGS:
            self._record_depth = self._depth
            self._record = {}
            self._record_line = self.parser.CurrentLineNumber
        elif self._record_depth is not None and self._depth == self._record_depth + 1:
            self._field = tag
            self._text = []
        elif self._record_depth is None and tag in ("resultcode", "resultmsg"):
            self._header_field = tag
            self._text = []

    def end(self, name: str) -> None:
        if self._record_depth is not None and self._depth == self._record_depth + 1:
            if self._field is not None:
                self._record[self._field] = "".join(self._text)
            self._field = None
        elif self._record_depth is not None and self._depth == self._record_depth:
            self.done.append((self._record_line, self._record))
            self._record_depth = None
        elif self._header_field is not None:
            self.header[self._header_field] = "".join(self._text).strip()
            self._header_field = None
        self._depth -= 1

    def chars(self, data: str) -> None:
        if self._field is not None or self._header_field is not None:
            self._text.append(data)


def read_kipris_xml(path: Path, chunk_bytes: int = 1 << 20) -> Iterator[ReaderItem]:
    """Read a KIPRIS Plus OpenAPI XML response, streaming, one record per item.

    A truncated or malformed file yields the records before the fault and then
    one reject naming the line and column where parsing stopped.
    """
    require_content(path, "a KIPRIS Plus OpenAPI XML response")
    parser = expat.ParserCreate()
    records = _XmlRecords(parser)
    parser.StartElementHandler = records.start
    parser.EndElementHandler = records.end
    parser.CharacterDataHandler = records.chars
    parser.buffer_text = True
    index = 0

    def drain() -> Iterator[ReaderItem]:
        nonlocal index
        for line, tags in records.done:
            fields: dict[str, Any] = {}
            for tag, value in tags.items():
                name = XML_FIELDS.get(tag)
                if name and value.strip():
                    fields[name] = value
            yield SourceRecord(f"{path}:{line}", fields, position=index)
            index += 1
        records.done.clear()

    with open_binary(path) as handle:
        try:
            while chunk := handle.read(chunk_bytes):
                parser.Parse(chunk, False)
                yield from drain()
            parser.Parse(b"", True)
        except expat.ExpatError as exc:
            yield from drain()
            yield Reject(
                f"{path}:{exc.lineno}",
                f"XML is truncated or malformed at line {exc.lineno}, column "
                f"{exc.offset}: {expat.ErrorString(exc.code)}; the {index} records "
                "before it were read, the rest of the file was not",
                position=index,
            )
            return
    yield from drain()
    code = records.header.get("resultcode", "")
    if code not in ("", "00", "0"):
        yield Reject(f"{path}:1", f"the API answered with resultCode {code!r}: "
                     f"{records.header.get('resultmsg', '')!r}", position=index)


#####################################################################
# KIPRIS Plus bulk files
#####################################################################

BULK_SEPARATOR = "¶"
BULK_KEY = "출원번호"

# Bibliographic table column -> canonical field.
BULK_BIBLIO_FIELDS = {
    "출원번호": "application_number",
    "출원일자": "application_date",
    "공개번호": "open_number",
    "공개일자": "open_date",
    "등록번호": "register_number",
    "등록일자": "register_date",
    "공고일자": "publication_date",
    "발명의명칭(국문)": "title",
    "발명의명칭(영문)": "title_en",
    "등록사항": "register_status",
    "청구항수": "claim_count",
    "출원인": "applicant",
    "출원인명": "applicant",
}
# Side tables: the column that identifies the table -> the field it fills, and
# whether it contains a list of values per patent.
BULK_SIDE_TABLES = {
    "초록": ("abstract", False),
    "ipc코드": ("ipc", True),
    "cpc코드": ("cpc", True),
    "출원인명": ("applicant", True),
}


def _bulk_header(path: Path) -> list[str] | None:
    try:
        with open_binary(path) as handle:
            first = handle.readline(65536).decode("utf-8-sig", errors="replace")
    except OSError:
        return None
    if BULK_SEPARATOR not in first:
        return None
    header = [h.strip() for h in first.rstrip("\r\n").split(BULK_SEPARATOR)]
    return header if header and header[0] == BULK_KEY else None


def _bulk_tables(folder: Path) -> dict[Path, list[str]]:
    tables = {}
    for child in sorted(folder.iterdir()):
        if child.is_file():
            header = _bulk_header(child)
            if header is not None:
                tables[child] = header
    return tables


def _bulk_rows(path: Path) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Yield (line number, stripped values, problem) of a ``¶`` file, header skipped.

    ``problem`` is set, and the values ``None``, for a line that is not UTF-8 or
    is too long.
    """
    with open_binary(path) as handle:
        for line_no, raw in bounded_lines(handle):
            if line_no == 1:
                continue
            if raw is None:
                yield line_no, None, _line_too_long()
                continue
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield line_no, None, (f"line is not valid UTF-8 (byte 0x{raw[exc.start]:02x}"
                                      f" at column {exc.start + 1}); KIPRIS Plus bulk "
                                      "files are UTF-8")
                continue
            if text.strip():
                yield line_no, [v.strip() for v in text.split(BULK_SEPARATOR)], None


def read_kipris_bulk(path: Path) -> Iterator[ReaderItem]:
    """Read a folder of KIPRIS Plus bulk files, joined on 출원번호.

    The Bibliographic table drives the join: one record per row, located at its
    line. Abstract, IPC, CPC and applicant tables are first loaded into a
    temporary SQLite file (not memory), so multi-GB tables join in bounded
    memory. Side rows whose 출원번호 has no Bibliographic row are reported.
    Other tables (prior-art documents) are not indexed and are skipped.
    """
    folder = path if path.is_dir() else path.parent
    tables = _bulk_tables(folder)
    biblio = [p for p, h in tables.items() if "발명의명칭(국문)" in h]
    if not biblio:
        yield Reject(f"{folder}#0", "no Bibliographic table (a ¶ file with the column "
                     "발명의명칭(국문)) in the folder; nothing to join onto")
        return
    biblio_path = biblio[0]

    with tempfile.TemporaryDirectory(prefix="patentmatch-bulk-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "join.sqlite"))
        db.execute("CREATE TABLE side (key TEXT, field TEXT, seq INTEGER, value TEXT, "
                   "source TEXT)")
        for table, header in tables.items():
            if table == biblio_path:
                continue
            spec = next(((col, BULK_SIDE_TABLES[col]) for col in header
                         if col in BULK_SIDE_TABLES), None)
            if spec is None:
                logger.info("%s: not an indexed table (columns %s), skipped", table, header)
                continue
            column, (field, _) = spec
            position = header.index(column)
            seq_col = next((i for i, h in enumerate(header) if h.endswith("일련번호")), None)
            batch = []
            for line_no, values, problem in _bulk_rows(table):
                if problem:
                    yield Reject(f"{table}:{line_no}", problem)
                    continue
                if len(values) <= position:
                    yield Reject(f"{table}:{line_no}", f"row has {len(values)} columns, "
                                 f"expected {len(header)} ({BULK_SEPARATOR}-separated)")
                    continue
                seq = int(values[seq_col]) if seq_col is not None and \
                    values[seq_col].isdigit() else line_no
                batch.append((values[0], field, seq, values[position],
                              f"{table}:{line_no}"))
                if len(batch) >= 10000:
                    db.executemany("INSERT INTO side VALUES (?,?,?,?,?)", batch)
                    batch.clear()
            db.executemany("INSERT INTO side VALUES (?,?,?,?,?)", batch)
        db.execute("CREATE INDEX side_key ON side (key)")
        db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY)")

        header = tables[biblio_path]
        list_fields = {f for f, is_list in BULK_SIDE_TABLES.values() if is_list}
        for index, (line_no, values, problem) in enumerate(_bulk_rows(biblio_path)):
            source = f"{biblio_path}:{line_no}"
            if problem:
                yield Reject(source, problem, position=index)
                continue
            if len(values) < 2:
                yield Reject(source, f"row has {len(values)} columns, expected "
                             f"{len(header)} ({BULK_SEPARATOR}-separated)",
                             raw=values, position=index)
                continue
            fields: dict[str, Any] = {}
            for column, value in zip(header, values):
                name = BULK_BIBLIO_FIELDS.get(column)
                if name and value:
                    fields[name] = value
            key = values[0]
            db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (key,))
            for field, value in db.execute(
                    "SELECT field, value FROM side WHERE key = ? ORDER BY field, seq", (key,)):
                if not value:
                    continue
                if field in list_fields:
                    fields.setdefault(field, [])
                    if isinstance(fields[field], str):
                        fields[field] = [fields[field]]
                    fields[field].append(value)
                else:
                    fields[field] = value
            yield SourceRecord(source, fields, position=index)

        orphans = db.execute(
            "SELECT key, field, MIN(source), COUNT(*) FROM side "
            "WHERE key NOT IN (SELECT key FROM seen) GROUP BY key, field ORDER BY 3")
        for key, field, source, count in orphans:
            yield Reject(source, f"{count} {field} row(s) for 출원번호 {key} that has no "
                         f"row in {biblio_path.name}; not indexed",
                         application_number=key, position=index + 1)
        db.close()


#####################################################################
# CSV exports
#####################################################################

# Normalised header (see _header_key) -> canonical field.
CSV_FIELDS = {
    "application_number": ["출원번호", "applicationnumber", "applicationno", "appno",
                           "applno", "출원번호(일자)"],
    "title": ["특허명", "발명의명칭", "발명의명칭(국문)", "명칭", "title", "patenttitle",
              "inventiontitle", "inventionname"],
    "title_en": ["발명의명칭(영문)", "영문명칭", "titleen", "englishtitle",
                 "inventiontitleeng"],
    "abstract": ["초록", "요약", "요약문", "설명", "abstract", "astrtcont", "summary"],
    "ipc": ["ipc", "ipc넘버", "ipc코드", "ipc분류", "국제특허분류", "ipcinfo", "ipcnumber",
            "ipccode", "ipcs"],
    "cpc": ["cpc", "cpc코드", "cpcinfo", "cpcnumber", "cpccode"],
    "applicant": ["출원인", "출원인명", "권리자", "applicant", "applicantname", "applicants"],
    "application_date": ["출원일", "출원일자", "출원날짜", "applicationdate"],
    "register_number": ["등록번호", "registernumber", "registrationnumber"],
    "register_date": ["등록일", "등록일자", "registerdate", "registrationdate"],
    "open_number": ["공개번호", "opennumber", "openingnumber"],
    "open_date": ["공개일", "공개일자", "opendate", "openingdate"],
    "publication_date": ["공고일", "공고일자", "publicationdate", "publicdate"],
    "register_status": ["등록사항", "상태", "법적상태", "registerstatus",
                        "registrationstatus", "pubreg", "status"],
    "claim_count": ["청구항수", "claimcount", "claims"],
    "six_t": ["6t", "sixt", "6t분류", "6tcategory"],
}
REQUIRED_CSV_FIELDS = ("application_number", "title")

# Type words some search sites append to their export headers ("출원번호 NUMERIC").
_HEADER_TYPE_SUFFIX = re.compile(r"\s*(TEXT|NUMERIC|DATETIME|NGRAM|KEYWORD|STORED)\s*$")


def _header_key(header: str) -> str:
    header = _HEADER_TYPE_SUFFIX.sub("", header.strip().lstrip("\ufeff"))
    return re.sub(r"[\s_\-]+", "", header).lower()


def map_csv_header(header: list[str], aliases: dict[str, list[str]]) -> dict[str, int]:
    """Return canonical field -> column index; the first matching column wins."""
    lookup = {_header_key(alias): name for name, names in aliases.items() for alias in names}
    lookup.update({_header_key(name): name for name in aliases})
    columns: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = lookup.get(_header_key(raw))
        if name and name not in columns:
            columns[name] = index
    return columns


def _missing_columns_error(path: Path, header: list[str], missing: list[str],
                           aliases: dict[str, list[str]]) -> ReaderError:
    wanted = "; ".join(f"{name} (one of {', '.join(aliases[name][:6])})" for name in missing)
    return ReaderError(f"{path}: missing required column(s): {wanted}; found headers "
                       f"{[h.strip() for h in header]!r}")


def iter_csv_rows(path: Path, aliases: dict[str, list[str]], required: tuple[str, ...],
                  encoding: str | None = None
                  ) -> Iterator[tuple[int, int, dict[str, str] | None, str | None]]:
    """Yield (index, line, {field: value}, problem) for each data row of a CSV file.

    ``problem`` is set (and the values ``None``) for a row that did not decode or
    has fewer columns than the header needs.

    Raises:
        ReaderError: encoding not detected, empty file or required columns missing.
    """
    require_content(path, "a header row")
    encoding = encoding or detect_encoding(path)
    delimiter = "\t" if _base_suffix(path) == ".tsv" else ","
    bad_lines: dict[int, str] = {}
    lines = _decoded_lines(path, encoding, bad_lines)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ReaderError(f"{path}: the file is empty; expected a header row") from None
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    columns = map_csv_header(header, aliases)
    missing = [name for name in required if name not in columns]
    if missing:
        raise _missing_columns_error(path, header, missing, aliases)
    needed = max(columns.values()) + 1
    first_line = reader.line_num + 1
    index = -1
    while True:
        index += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # A NUL byte, or a quoted field running past csv.field_size_limit();
            # the reader goes on with the next line.
            line, first_line = first_line, reader.line_num + 1
            yield index, line, None, f"row is not valid CSV: {exc}"
            continue
        last_line = reader.line_num
        line = first_line
        first_line = last_line + 1
        if not any(cell.strip() for cell in row):
            continue
        bad = sorted(n for n in bad_lines if line <= n <= last_line)
        if bad:
            problem = bad_lines[bad[0]]
            for number in bad:
                del bad_lines[number]
            yield index, line, None, problem
            continue
        if len(row) < needed and len(row) <= max(columns[n] for n in required):
            yield index, line, None, (f"row has {len(row)} columns, the header has "
                                      f"{len(header)}")
            continue
        values = {name: row[i] for name, i in columns.items() if i < len(row)}
        yield index, line, values, None


def read_csv(path: Path, encoding: str | None = None) -> Iterator[ReaderItem]:
    """Read a patent CSV export with Korean or English headers, UTF-8 or CP949.

    Header names are matched after dropping spaces, underscores, case and the
    type words some sites append (``출원번호 NUMERIC``); see :data:`CSV_FIELDS`.
    Columns that match no field are ignored. The encoding is detected from the
    first MiB unless given.

    Raises:
        ReaderError: on first use, when the encoding is not detected or the
            required columns (application number, title) are missing. The job
            reports it and goes on with the next file.
    """
    for index, line, values, problem in iter_csv_rows(path, CSV_FIELDS,
                                                      REQUIRED_CSV_FIELDS, encoding):
        source = f"{path}:{line}"
        if problem:
            yield Reject(source, problem, position=index)
        else:
            yield SourceRecord(source, dict(values), position=index)
