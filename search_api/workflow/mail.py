"""The Korean e-mail to a rights holder and its delivery over SMTP."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import aiosmtplib

from patentmatch.config import Settings
from search_api.search import kipris_url as search_kipris_url

logger = logging.getLogger(__name__)

SMTP_TIMEOUT_S = 30.0

SUBJECT_TEMPLATE = "[기술이전 상담 요청] {patent_title} (출원번호 {number})"

BODY_TEMPLATE = """\
{applicants} 기술이전 담당자님께,

안녕하십니까. 특허 매칭 서비스입니다.
아래 기업이 귀 기관의 특허에 대해 기술이전 상담을 요청했습니다.

■ 기업의 수요기술
 - 기업명: {company}
 - 수요기술명: {demand_title}
 - 상세 설명: {description}

■ 대상 특허
 - 발명의 명칭: {patent_title}
 - 출원번호: {number}
 - KIPRIS: {kipris_url}

상담 의향을 아래 링크 중 하나로 알려 주십시오.
링크를 열면 확인 화면이 나오고, 확인 버튼을 눌러야 회신이 기록됩니다.
회신은 한 번만 기록할 수 있습니다.

 - 상담 의향 있음: {interested_url}
 - 상담 의향 없음: {declined_url}

회신 내용은 요청한 기업에 전달됩니다.
이 메일은 발신 전용입니다. 링크가 열리지 않으면 이 메일에 적힌 출원번호와 함께
서비스 운영자에게 연락해 주십시오.

요청 번호: {demand_id}
"""


class SmtpPermanentError(Exception):
    """The SMTP server rejected the message for good (5xx); retrying cannot help."""


class SmtpTemporaryError(Exception):
    """Delivery failed in a way a later attempt may fix (connection, 4xx, timeout)."""


@dataclass(frozen=True)
class SmtpResult:
    """Reply of the SMTP server to an accepted message."""

    response: str
    refused: dict[str, str]


def format_application_number(number: str) -> str:
    """Write 1020180173848 as 10-2018-0173848, the form KIPRIS displays."""
    if len(number) == 13 and number.isdigit():
        return f"{number[:2]}-{number[2:6]}-{number[6:]}"
    return number


def kipris_url(patent: dict[str, Any]) -> str:
    """Return the patent's KIPRIS page, from the search result when it has one."""
    return patent.get("kipris_url") or search_kipris_url(patent["application_number"])


def render_request(demand_id: str, demand: dict[str, Any], patent: dict[str, Any],
                   applicants: list[str], interested_url: str,
                   declined_url: str) -> tuple[str, str]:
    """Return (subject, plain-text body) of a transfer-talk request."""
    number = format_application_number(patent["application_number"])
    patent_title = patent.get("title") or "(제목 없음)"
    subject = SUBJECT_TEMPLATE.format(patent_title=_one_line(patent_title, 120), number=number)
    body = BODY_TEMPLATE.format(
        applicants=", ".join(applicants) or "특허권자",
        company=demand["company"],
        demand_title=demand["title"],
        description=demand.get("description") or "(없음)",
        patent_title=patent_title,
        number=number,
        kipris_url=kipris_url(patent),
        interested_url=interested_url,
        declined_url=declined_url,
        demand_id=demand_id,
    )
    return subject, body


def _one_line(text: str, max_chars: int) -> str:
    """Collapse whitespace (a header must not contain line breaks) and shorten."""
    flat = " ".join(text.split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"


def new_message_id(mail_from: str) -> str:
    """Return a fresh Message-ID in the sender's domain."""
    address = parseaddr(mail_from)[1]
    domain = address.rsplit("@", 1)[-1] if "@" in address else "localhost"
    return make_msgid(domain=domain)


def build_message(*, mail_from: str, to: list[str], subject: str, body: str,
                  message_id: str) -> EmailMessage:
    """Build the MIME message: UTF-8 plain text, the stored Message-ID."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body, subtype="plain", charset="utf-8")
    return message


async def send_message(settings: Settings, message: EmailMessage) -> SmtpResult:
    """Deliver a message to the SMTP server named in the settings.

    TLS: ``smtp_tls=none`` sends in clear text and never upgrades, ``starttls``
    requires the upgrade, ``tls`` connects with implicit TLS (usually port 465).

    Raises:
        SmtpPermanentError: for a 5xx reply or when every recipient was refused
            permanently.
        SmtpTemporaryError: for anything a later attempt may fix.
    """
    credentials: dict[str, str] = {}
    if settings.smtp_user:
        credentials = {"username": settings.smtp_user, "password": settings.smtp_password}
    try:
        refused, response = await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            timeout=SMTP_TIMEOUT_S,
            **credentials,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [error.code for error in exc.recipients]
        text = "; ".join(f"{e.recipient}: {e.code} {e.message}" for e in exc.recipients)
        if all(500 <= code < 600 for code in codes):
            raise SmtpPermanentError(f"all recipients refused: {text}") from exc
        raise SmtpTemporaryError(f"recipients refused: {text}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        text = f"{exc.code} {exc.message}"
        if 500 <= exc.code < 600 and exc.code not in (530, 535):
            raise SmtpPermanentError(text) from exc
        # 530 and 535 are login problems: fix the credentials, then the retry works.
        raise SmtpTemporaryError(text) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise SmtpTemporaryError(f"{type(exc).__name__}: {exc}") from exc
    return SmtpResult(response=str(response),
                      refused={k: f"{v.code} {v.message}" for k, v in refused.items()})
