"""Passwords and secrets, kept only as hashes.

Owns the scrypt password hash (standard library) and its check, the random secrets
taskgate hands out (API tokens, session ids, OAuth client secrets), and the SHA-256 hash
that is all the store keeps of a secret.

Must not do I/O, nor know requests, users or the store. A check never raises on a stored
value it cannot read: it answers False. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["hash_password", "verify_password", "new_secret", "secret_hash"]

_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$<salt>$<digest>`` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + base64.b64encode(salt).decode() + "$" + \
        base64.b64encode(digest).decode()


def verify_password(password: str, stored: str | None) -> bool:
    """Whether *password* matches *stored* (a :func:`hash_password` result, or None)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        computed = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=base64.b64decode(salt),
                                  n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except ValueError:  # includes binascii.Error
        return False
    return hmac.compare_digest(computed, expected)


def new_secret(prefix: str = "tg_") -> str:
    """A new random secret (256 bits), with *prefix* saying what kind it is."""
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """What the store keeps of *secret*: its SHA-256, in hex."""
    # surrogatepass: a header carrying undecodable bytes hashes to something unknown, not a crash
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
