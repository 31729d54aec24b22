"""Thread encryption: AES-GCM with key ids, rotation, and binding to tenant and id."""

from __future__ import annotations

import base64
import os

import pytest

from messages_bridge.threads.crypto import KeyRing, ThreadsKeyError, parse_keys


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_a_value_opens_only_with_its_key_and_associated_data() -> None:
    ring = KeyRing([os.urandom(32)])
    blob = ring.seal(b"canary conversation", b"tenant\x00msg_1")
    assert b"canary" not in blob
    assert ring.open(blob, b"tenant\x00msg_1") == b"canary conversation"
    assert ring.open(blob, b"tenant\x00msg_2") is None  # copied under another id: refused
    assert ring.open(blob[:-1] + bytes([blob[-1] ^ 1]), b"tenant\x00msg_1") is None  # altered: refused
    assert KeyRing([os.urandom(32)]).open(blob, b"tenant\x00msg_1") is None  # another key: refused


def test_rotation_writes_with_the_first_key_and_reads_with_any() -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = KeyRing.from_setting(b64(old)).seal(b"v", b"a")
    during = KeyRing.from_setting(f"{b64(new)}, {b64(old)}")
    assert during.open(before, b"a") == b"v"
    after = KeyRing.from_setting(b64(new))
    assert after.open(during.seal(b"w", b"a"), b"a") == b"w"
    assert after.open(before, b"a") is None  # the old key is retired: its values are gone


@pytest.mark.parametrize("setting", ["", "not base64!", b64(b"short"), ","])
def test_a_malformed_key_setting_is_refused(setting: str) -> None:
    with pytest.raises(ThreadsKeyError):
        parse_keys(setting)
