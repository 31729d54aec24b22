"""The bounded `content-encoding` decoder: faithful for any chunking, lazy and piecewise for any ratio."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messages_bridge.errors import UpstreamProtocolError
from messages_bridge.upstream.content import PIECE_BYTES, ContentDecoder
from tests.streamkit import chunked

ENCODE = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw-deflate": lambda data: zlib.compress(data, 9, -15),
}
CODINGS = ["identity", "gzip", "GZIP", "x-gzip", "deflate", "raw-deflate", "gzip, gzip", "deflate, gzip, identity"]


def encode(data: bytes, coding: str) -> tuple[bytes, str]:
    """`data` encoded as `coding` lists (raw-deflate is sent as `deflate`), and the header to send."""
    for name in (c.strip().lower() for c in coding.split(",")):
        if name != "identity":
            data = ENCODE[name](data)
    return data, coding.replace("raw-deflate", "deflate")


def decode(chunks: list[bytes], header: str) -> bytes:
    decoder = ContentDecoder(header)
    return b"".join([p for c in chunks for p in decoder.feed(c)] + list(decoder.flush()))


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(CODINGS), st.lists(st.integers(1, 4000), max_size=8))
def test_any_chunking_of_any_coding_decodes_faithfully(data: bytes, coding: str, cuts: list[int]) -> None:
    wire, header = encode(data * 7, coding)
    assert decode(chunked(wire, cuts), header) == data * 7


@pytest.mark.parametrize("coding", [c for c in CODINGS if c != "identity"])
def test_a_bomb_comes_out_lazily_in_bounded_pieces(coding: str) -> None:
    """32 MiB from a few KB: each piece ≤ PIECE_BYTES, and taking 1 MiB of them holds a few pieces at a time."""
    codings = [c.strip().lower() for c in coding.split(",") if c.strip() != "identity"]
    wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15, "raw-deflate": -15}[codings[0]]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    wire = b"".join([packer.compress(b"\0" * (1 << 20)) for _ in range(32)] + [packer.flush()])
    for extra in codings[1:]:
        wire = ENCODE[extra](wire)
    header = coding.replace("raw-deflate", "deflate")
    tracemalloc.start()
    try:
        taken = 0
        for piece in ContentDecoder(header).feed(wire):
            assert len(piece) <= PIECE_BYTES
            taken += len(piece)
            if taken >= 1 << 20:
                break
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert taken >= 1 << 20
    assert peak < 8 * PIECE_BYTES, peak  # a few pieces and the zlib windows, never the 32 MiB


@pytest.mark.parametrize("header", ["br", "zstd", "compress", "gzip, br", "gzip," * 5, "d\u00e9flate"])
def test_encodings_not_asked_for_are_refused(header: str) -> None:
    with pytest.raises(UpstreamProtocolError) as raised:
        ContentDecoder(header)
    assert raised.value.status_code == 502 and raised.value.error_type == "api_error"
    assert "\u00e9" not in raised.value.message  # upstream text is echoed only when it is a plain token


@pytest.mark.parametrize("header", ["gzip", "deflate"])
def test_corrupt_data_is_a_bad_upstream_error(header: str) -> None:
    with pytest.raises(UpstreamProtocolError):
        decode([b"\x1f\x8b\x08\x00garbage-garbage-garbage", b"\xff" * 100], header)


def test_identity_passes_bytes_through_uncopied() -> None:
    chunk = b"x" * 1000
    assert [p is chunk for p in ContentDecoder(None).feed(chunk)] == [True]
    assert ContentDecoder("identity").identity and ContentDecoder("").identity
