"""Thinking signatures that carry an OpenAI reasoning item across turns.

Anthropic clients echo a thinking block's `signature` verbatim on the next turn; OpenAI needs the reasoning
item's `id` *and* its `encrypted_content` (it verifies the pair). So the signature packs both:
`mb1.` + base64url(JSON {"id": rs_id, "ec": encrypted_content}). A signature without the prefix was minted by
someone else (real Anthropic thinking) and cannot be used upstream.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

PREFIX = "mb1."


class ReasoningRef(msgspec.Struct, kw_only=True):
    id: str
    ec: str


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ReasoningRef)


def encode_signature(item_id: str, encrypted_content: str) -> str:
    """Pack a reasoning item's id and encrypted content into an Anthropic signature string."""
    payload = _ENCODER.encode(ReasoningRef(id=item_id, ec=encrypted_content))
    return PREFIX + base64.urlsafe_b64encode(payload).decode("ascii")


def decode_signature(signature: str) -> ReasoningRef | None:
    """The reasoning item a signature carries, or None when this gateway did not mint it."""
    if not signature.startswith(PREFIX):
        return None
    try:
        ref = _DECODER.decode(base64.urlsafe_b64decode(signature[len(PREFIX) :]))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    return ref if ref.ec else None  # the id is the upstream's data, of any shape (Copilot's are opaque blobs)
