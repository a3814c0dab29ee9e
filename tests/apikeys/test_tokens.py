from __future__ import annotations

import math
import re
import zlib

from outrider.apikeys import tokens


def test_a_key_is_prefixed_base62_with_a_crc32_checksum() -> None:
    key = tokens.generate()
    assert re.fullmatch(r"or_[0-9A-Za-z]{38}", key)
    body, checksum = key[:-6], key[-6:]
    # The checksum is the CRC32 of everything before it, in base62, as a scanner would compute.
    number = 0
    for char in checksum:
        number = number * 62 + tokens.BASE62.index(char)
    assert number == zlib.crc32(body.encode())
    assert tokens.is_well_formed(key)


def test_keys_carry_at_least_160_random_bits_and_never_repeat() -> None:
    assert tokens.RANDOM_LENGTH * math.log2(62) >= 160
    assert len({tokens.generate() for _ in range(2000)}) == 2000


def test_a_single_changed_character_fails_the_checksum() -> None:
    key = tokens.generate()
    for index in range(3, len(key)):
        replacement = "a" if key[index] != "a" else "b"
        assert not tokens.is_well_formed(key[:index] + replacement + key[index + 1 :])


def test_malformed_keys_are_refused() -> None:
    key = tokens.generate()
    for bad in [
        "",
        "or_",
        key[:-1],
        key + "x",
        "xx" + key[2:],
        key.replace("or_", "OR_"),
        key[:10] + "-" + key[11:],
        "Bearer " + key,
    ]:
        assert not tokens.is_well_formed(bad)


def test_the_digest_is_sha256_and_the_start_is_eight_characters() -> None:
    key = tokens.generate()
    assert len(tokens.digest(key)) == 32
    assert tokens.digest(key) != tokens.digest(tokens.generate())
    assert tokens.start_of(key) == key[:8]
