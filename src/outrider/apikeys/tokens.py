"""The API key format: `or_` + 32 base62 characters (190 random bits) + a 6-character
base62 CRC32 of everything before it.

Like GitHub's tokens, the prefix lets secret scanners find a key and the checksum lets
them (and us, before any database work) tell a real key from a typo offline.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

PREFIX = "or_"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
START_LENGTH = 8
_BASE62_SET = frozenset(BASE62)


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def generate() -> str:
    body = PREFIX + "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    return body + checksum(body)


def is_well_formed(key: str) -> bool:
    """Prefix, length, alphabet and checksum: everything that can be checked offline."""
    if len(key) != KEY_LENGTH or not key.startswith(PREFIX):
        return False
    rest = key[len(PREFIX) :]
    if not _BASE62_SET.issuperset(rest):
        return False
    body, given = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    return secrets.compare_digest(checksum(body), given)


def digest(key: str) -> bytes:
    # Plain SHA-256 is enough for 190 random bits, and keeps keys valid if the server
    # secret is ever rotated.
    return hashlib.sha256(key.encode()).digest()


def start_of(key: str) -> str:
    return key[:START_LENGTH]
