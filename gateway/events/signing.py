"""Signatures a receiver checks a delivery by: pure functions of a secret and the body.

SuperOffice's ``X-SuperOffice-Signature`` is the base64 of the HMAC-SHA256 of the body
bytes keyed with the webhook's secret (UTF-8). taskgate's own ``X-Taskgate-Signature``,
sent where the vendor signs nothing (webMethods endpoints with a secret), is
``sha256=`` and the same base64 HMAC. Verification compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["hmac_sha256_base64", "taskgate_signature", "verify"]


def hmac_sha256_base64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def taskgate_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256_base64(secret, body)


def verify(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))
