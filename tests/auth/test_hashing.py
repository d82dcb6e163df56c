"""gateway.auth.hashing: password hashes and secret hashes, without HTTP or a store."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.auth.hashing import hash_password, new_secret, secret_hash, verify_password


def test_a_password_hash_names_its_scrypt_parameters_salt_and_digest():
    scheme, n, r, p, salt, digest = hash_password("pw").split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert (len(base64.b64decode(salt)), len(base64.b64decode(digest))) == (16, 32)


def test_a_hash_made_with_other_parameters_still_verifies():
    """The check reads n, r, p and the digest length from the stored value."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"pw", salt=salt, n=2 ** 10, r=4, p=2, dklen=24)
    stored = f"scrypt$1024$4$2${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert verify_password("pw", stored) and not verify_password("pW", stored)


@pytest.mark.parametrize("stored", [
    None, "", "garbage", "scrypt$16384$8$1$AA==", "md5$1$1$1$AA==$AA==", "scrypt$x$8$1$AA==$AA==",
    "scrypt$16384$8$1$%%%$AA==", "scrypt$16384$8$1$AA==$", "scrypt$3$8$1$AA==$AA==",
])
def test_a_stored_value_that_cannot_be_read_fails_the_check_and_never_raises(stored):
    assert verify_password("pw", stored) is False


def test_passwords_and_secrets_with_undecodable_characters_hash_without_a_crash():
    lone = "\udc80"  # what a header with a byte that is not UTF-8 decodes to
    assert verify_password(lone, hash_password(lone)) and not verify_password("pw", hash_password(lone))
    assert secret_hash(lone) == hashlib.sha256(b"\xed\xb2\x80").hexdigest()


def test_secrets_are_random_prefixed_and_stored_as_their_sha256():
    first, second = new_secret(), new_secret("tgs_")
    assert first.startswith("tg_") and second.startswith("tgs_") and len(first) == 3 + 43
    assert len({new_secret() for _ in range(100)}) == 100
    assert secret_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
