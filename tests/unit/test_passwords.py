"""Druid-compatible PBKDF2WithHmacSHA512 hashing.

The known-answer vectors were produced by OpenJDK 17's ``SecretKeyFactory("PBKDF2WithHmacSHA512")``
with ``PBEKeySpec(pw.toCharArray(), salt, iterations, 512)`` (what Druid's BasicAuthUtils calls) and
cross-checked with ``hashlib.pbkdf2_hmac``: they pin down the UTF-8 password encoding, including a
character outside the BMP.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from druid_access.passwords import (
    DEFAULT_ITERATIONS,
    KEY_LENGTH,
    SALT_LENGTH,
    StoredCredentials,
    Verdicts,
    hash_password,
    verify_password,
)

SALT = bytes(range(32))
SALT_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
NON_ASCII = "p\u00e4ssw\u00f6rd-\u65e5\u672c-\U0001f511"
JAVA_VECTORS = [
    (
        "password1",
        10000,
        "MBCa8wdWu04DFps9fmxPHtg3X5mfv/ilrXTNTd1VkjdSdaxt+AMFIySNiyYHEv44awNUuBCCdKjlH6NjODQ6zw==",
    ),
    (
        "password1",
        1000,
        "v2odUV0kD1+w+IM+2QUiRGLmrbBRPOpgXvt99q2l43h40rBhs+jWy/4N8zH2z7ZI6zNypW3OdERYtkRiDYSNZQ==",
    ),
    (
        NON_ASCII,
        10000,
        "JhHn8/AgGA2TZUDnJr/tr3wWC9GkWvgQds0uR8CtgCckVbrCjJzcNXVUFGYdaNbUM0WfQjJuVB/qUUAFElwwpQ==",
    ),
    (
        NON_ASCII,
        1000,
        "rHnjdrAi359SsoIK7CNUmiOw8pCXOgT2VmDBT7Ch5nloHFZh1M5pgHxFR67ayAaQ7y3sGVMkoME6eZo9t7pYMA==",
    ),
]


@pytest.mark.parametrize(("password", "iterations", "expected"), JAVA_VECTORS)
def test_known_answer_vectors_match_java(password: str, iterations: int, expected: str) -> None:
    stored = hash_password(password, iterations=iterations, salt=SALT)
    assert stored == StoredCredentials(salt=SALT_B64, hash=expected, iterations=iterations)
    independent = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), SALT, iterations, dklen=64)
    assert base64.b64encode(independent).decode() == expected
    assert verify_password(password, stored)


def test_defaults_random_salt_and_lengths() -> None:
    first, second = hash_password("secret"), hash_password("secret")
    assert first.iterations == DEFAULT_ITERATIONS == 10000
    assert len(first.salt_bytes()) == SALT_LENGTH == 32
    assert len(first.hash_bytes()) == KEY_LENGTH == 64
    assert first.salt != second.salt
    assert first.hash != second.hash
    assert verify_password("secret", first)
    assert verify_password("secret", second)


def test_standard_base64_alphabet_with_padding() -> None:
    stored = hash_password("x", iterations=1, salt=b"\xfb\xff" * 16)
    assert stored.salt.startswith("+/")
    assert stored.salt.endswith("=")
    assert "-" not in stored.salt
    assert "_" not in stored.salt


def test_wrong_password_and_iterations_do_not_verify() -> None:
    stored = hash_password(NON_ASCII, iterations=1000)
    assert not verify_password(NON_ASCII + " ", stored)
    assert not verify_password("", stored)
    assert not verify_password(NON_ASCII, StoredCredentials(stored.salt, stored.hash, 999))


@pytest.mark.parametrize(
    "broken",
    [
        StoredCredentials(salt="not base64!", hash="AAAA", iterations=1000),
        StoredCredentials(salt=SALT_B64, hash="***", iterations=1000),
        StoredCredentials(salt=SALT_B64, hash="AAAA", iterations=0),
    ],
)
def test_malformed_records_never_verify(broken: StoredCredentials) -> None:
    assert verify_password("password1", broken) is False


def test_non_positive_iterations_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        hash_password("x", iterations=0)


def test_json_round_trip_matches_druid_shape() -> None:
    stored = hash_password("pw", iterations=1000, salt=SALT)
    data = stored.to_json()
    assert set(data) == {"salt", "hash", "iterations"}
    assert StoredCredentials.from_json(data) == stored


@pytest.mark.parametrize(
    "data",
    [
        {"salt": "a", "hash": "b"},
        {"salt": 1, "hash": "b", "iterations": 1},
        {"salt": "a", "hash": "b", "iterations": "10000"},
        {"salt": "a", "hash": "b", "iterations": True},
    ],
)
def test_from_json_rejects_bad_records(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="credentials need"):
        StoredCredentials.from_json(data)


def test_credentials_are_immutable() -> None:
    stored = hash_password("pw", iterations=1)
    with pytest.raises(AttributeError):
        stored.iterations = 2  # type: ignore[misc]


async def test_verdicts_hash_once_per_record_and_password() -> None:
    verdicts = Verdicts()
    stored = hash_password("right", iterations=1000)
    assert await verdicts.verify("right", stored)
    assert await verdicts.verify("right", stored)
    assert not await verdicts.verify("wrong", stored)
    assert not await verdicts.verify("wrong", stored)
    assert verdicts.computed == 2
    # A password set again (new salt) is a new record: checked again.
    again = hash_password("right", iterations=1000)
    assert await verdicts.verify("right", again)
    assert verdicts.computed == 3


async def test_verdicts_are_bounded_and_hold_no_password() -> None:
    verdicts = Verdicts(capacity=2)
    records = [hash_password("pw", iterations=1) for _ in range(3)]
    for record in records:
        assert await verdicts.verify("pw", record)
    assert len(verdicts._seen) == 2
    assert await verdicts.verify("pw", records[0])  # evicted, so computed again
    assert verdicts.computed == 4
    assert all(b"pw" not in fingerprint for _, fingerprint in verdicts._seen)
