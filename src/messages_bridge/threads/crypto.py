"""Authenticated encryption of stored threads: AES-256-GCM under a key ring with rotation.

`BRIDGE_THREADS_KEY` holds one or more comma-separated keys, each 32 random bytes in standard base64. The first
encrypts; every value is tagged with an id derived from its key, so values written under an older key still
decrypt while it stays listed. The associated data binds a value to its tenant and message id: a blob copied to
another key does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
KID_BYTES = 8
VERSION = b"\x01"


class ThreadsKeyError(ValueError):
    """A malformed `BRIDGE_THREADS_KEY`."""


def key_id(key: bytes) -> bytes:
    """A public id of a key (a one-way digest; reveals nothing usable about the key)."""
    return hashlib.sha256(b"messages-bridge thread key id\x00" + key).digest()[:KID_BYTES]


def parse_keys(value: str) -> list[bytes]:
    keys: list[bytes] = []
    for i, text in enumerate(part.strip() for part in value.split(",")):
        if not text:
            continue
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ThreadsKeyError(f"BRIDGE_THREADS_KEY: key {i + 1} is not standard base64") from exc
        if len(key) != KEY_BYTES:
            raise ThreadsKeyError(f"BRIDGE_THREADS_KEY: key {i + 1} is {len(key)} bytes; 32 random bytes are needed")
        keys.append(key)
    if not keys:
        raise ThreadsKeyError("BRIDGE_THREADS_KEY holds no key")
    return keys


class KeyRing:
    """Encrypts with the first key, decrypts with whichever key a value names."""

    def __init__(self, keys: list[bytes]) -> None:
        self._write_id = key_id(keys[0])
        self._write = AESGCM(keys[0])
        self._by_id = {key_id(k): AESGCM(k) for k in keys}

    @classmethod
    def from_setting(cls, value: str) -> KeyRing:
        return cls(parse_keys(value))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + self._write_id + nonce + self._write.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes | None:
        """The plaintext, or None when no listed key wrote it or it was altered."""
        head = 1 + KID_BYTES
        if len(blob) < head + NONCE_BYTES or blob[:1] != VERSION:
            return None
        cipher = self._by_id.get(blob[1:head])
        if cipher is None:
            return None
        try:
            return cipher.decrypt(blob[head : head + NONCE_BYTES], blob[head + NONCE_BYTES :], aad)
        except InvalidTag:
            return None
