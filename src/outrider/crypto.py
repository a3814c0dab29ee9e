"""Encryption at rest for secrets we must be able to read back (webhook signing secrets).

AES-256-GCM under a key derived (HKDF-SHA256) from the server secret, so a database dump
alone reveals nothing. Each value has its own random nonce; the purpose is bound in as
associated data, so a ciphertext cannot be moved to another column and still decrypt.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12


class SecretBox:
    def __init__(self, server_secret: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"outrider secrets v1"
        ).derive(server_secret)
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, purpose: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), purpose.encode())

    def decrypt(self, ciphertext: bytes, purpose: str) -> str:
        nonce, body = ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, body, purpose.encode()).decode()
