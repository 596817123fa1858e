"""Druid basic-security password hashing (PBKDF2WithHmacSHA512), byte-for-byte compatible.

Druid stores ``{"salt": <b64 32 bytes>, "hash": <b64 64 bytes>, "iterations": N}`` per user and
recomputes PBKDF2 on login. Knowing the plaintext, a client can therefore check a stored credential
without changing anything (``tests/contract`` checks it against the real Coordinator). The operator and the fake Coordinator share this
module so both sides hash exactly alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from druid_access.offload import in_thread

ALGORITHM = "sha512"
KEY_LENGTH = 64  # 512-bit derived key, as Druid's BasicAuthUtils.KEY_LENGTH
SALT_LENGTH = 32
DEFAULT_ITERATIONS = 10_000


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """A credential record exactly as ``GET /authentication/db/{a}/users/{u}`` returns it."""

    salt: str
    hash: str
    iterations: int

    def to_json(self) -> dict[str, object]:
        return {"salt": self.salt, "hash": self.hash, "iterations": self.iterations}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> StoredCredentials:
        """Parse Druid's JSON; raises ``ValueError`` when a field is missing or of the wrong type."""
        salt, hash_, iterations = data.get("salt"), data.get("hash"), data.get("iterations")
        if not isinstance(salt, str) or not isinstance(hash_, str):
            raise ValueError("credentials need string 'salt' and 'hash'")
        if not isinstance(iterations, int) or isinstance(iterations, bool):
            raise ValueError("credentials need an integer 'iterations'")
        return cls(salt=salt, hash=hash_, iterations=iterations)

    def salt_bytes(self) -> bytes:
        return base64.b64decode(self.salt, validate=True)

    def hash_bytes(self) -> bytes:
        return base64.b64decode(self.hash, validate=True)


def derive_key(password: str, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC-SHA512 with Druid's key length; Java's PBEKeySpec feeds the password as UTF-8."""
    if iterations <= 0:
        # PBEKeySpec rejects it too (a 500 on the real server).
        raise ValueError("iterations must be positive")
    return hashlib.pbkdf2_hmac(ALGORITHM, password.encode("utf-8"), salt, iterations, dklen=KEY_LENGTH)


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> StoredCredentials:
    """Hash like Druid's credentials POST: a fresh 32-byte random salt unless one is given."""
    if salt is None:
        salt = secrets.token_bytes(SALT_LENGTH)
    key = derive_key(password, salt, iterations)
    return StoredCredentials(
        salt=base64.b64encode(salt).decode("ascii"),
        hash=base64.b64encode(key).decode("ascii"),
        iterations=iterations,
    )


def verify_password(password: str, credentials: StoredCredentials) -> bool:
    """True if ``password`` hashes to ``credentials``; malformed records never verify."""
    try:
        salt, expected = credentials.salt_bytes(), credentials.hash_bytes()
        actual = derive_key(password, salt, credentials.iterations)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(actual, expected)


class Verdicts:
    """``verify_password`` remembered: PBKDF2 runs once per stored record and password.

    A resync finds the same salt, hash and iterations and the same Secret value, so the
    verdict is looked up instead of spending 10,000 iterations again; a new password on
    either side is a new key. The password enters the key only as an HMAC under a key drawn
    at start-up, so the table holds no password and no unsalted hash of one. The stored record
    enters it as a 16-byte digest: an entry is about 200 bytes, not the 450 of a copy of the
    record, and holds no snapshot's strings alive. A computation runs in a worker thread
    (hashlib releases the GIL), never on the event loop.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._key = secrets.token_bytes(32)
        self._seen: dict[tuple[bytes, bytes], bool] = {}
        self.computed = 0  # PBKDF2 runs, for tests and metrics

    def _fingerprint(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()

    @staticmethod
    def _digest(credentials: StoredCredentials) -> bytes:
        record = f"{credentials.salt}:{credentials.hash}:{credentials.iterations}"
        return hashlib.blake2b(record.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    async def verify(self, password: str, credentials: StoredCredentials) -> bool:
        key = (self._digest(credentials), self._fingerprint(password))
        verdict = self._seen.get(key)
        if verdict is None:
            verdict = await in_thread(verify_password, password, credentials)
            self.computed += 1
            if len(self._seen) >= self._capacity:
                del self._seen[next(iter(self._seen))]  # the oldest entry
            self._seen[key] = verdict
        return verdict
