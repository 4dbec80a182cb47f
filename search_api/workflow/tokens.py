"""Secrets of the workflow: per-demand access tokens and signed reply tokens.

Only SHA-256 hashes of access tokens and reply nonces are stored, so a copy of
the Elasticsearch data does not let anyone read a demand or answer for a rights
holder. Reply tokens are signed with HMAC-SHA256 so a link cannot be altered (for
example to swap the answer or the patent) without the signing key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from search_api.workflow.lifecycle import Answer, WorkflowError

ACCESS_TOKEN_BYTES = 32
REPLY_NONCE_BYTES = 16


class TokenError(WorkflowError):
    """A token is missing, malformed, forged or does not match."""

    status = 403


def new_secret(n_bytes: int = ACCESS_TOKEN_BYTES) -> str:
    """Return a URL-safe random secret of ``n_bytes`` bytes of entropy."""
    return secrets.token_urlsafe(n_bytes)


def hash_secret(secret: str) -> str:
    """Return the hex SHA-256 of a secret; tokens have full entropy, so no salt is needed."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str | None, stored_hash: str | None) -> bool:
    """Compare a presented secret with a stored hash in constant time."""
    if not secret or not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def keys_match(presented: str | None, expected: str) -> bool:
    """Compare an API key in constant time; an empty expected key never matches."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True)
class ReplyClaim:
    """What a reply token asserts: who may answer what, checked against the nonce hash."""

    demand_id: str
    application_number: str
    answer: Answer
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_reply(key: bytes, claim: ReplyClaim) -> str:
    """Return the token ``<payload>.<signature>`` for a reply link."""
    payload = json.dumps(
        {"d": claim.demand_id, "p": claim.application_number, "a": str(claim.answer),
         "n": claim.nonce},
        separators=(",", ":"),
    ).encode("utf-8")
    signature = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def verify_reply(key: bytes, token: str) -> ReplyClaim:
    """Return the claim of a reply token after checking its signature.

    Raises:
        TokenError: when the token is malformed or its signature does not match.
    """
    try:
        payload_text, signature_text = token.split(".")
        payload = _unb64(payload_text)
        signature = _unb64(signature_text)
    except ValueError as exc:
        raise TokenError("the reply link is malformed; open the link from the e-mail "
                         "as it was sent") from exc
    expected = hmac.new(key, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise TokenError("the reply link's signature is invalid; open the link from the "
                         "e-mail as it was sent")
    try:
        data = json.loads(payload)
        return ReplyClaim(str(data["d"]), str(data["p"]), Answer(data["a"]), str(data["n"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError("the reply link's content is invalid") from exc
