"""Undoing an upstream's `content-encoding` without ever holding more than a bounded piece of its output.

The gateway asks for `accept-encoding: identity`. An upstream (or a proxy in front of it) that compresses anyway
is decoded here — gzip, deflate, and stacks of them (`gzip, gzip`) — one bounded piece at a time, so a 1 MB body
that inflates to 1 GB is stopped by the caller's size limit after a few pieces instead of being inflated whole.
Other encodings (br, zstd, compress…) were never asked for and are refused: `UpstreamProtocolError` (502 `api_error`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence

from messages_bridge.errors import UpstreamProtocolError

PIECE_BYTES = 64 * 1024  # the most one decoding step produces before the caller checks its limits
MAX_CODINGS = 4  # `gzip, gzip, …` beyond this is an attack, not a server
_GZIP = zlib.MAX_WBITS | 16
_ZLIB = zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS
_TOKEN = re.compile(r"[a-z0-9._+-]{1,24}")


def _corrupt() -> UpstreamProtocolError:
    return UpstreamProtocolError("The upstream sent a compressed body that could not be decoded")


class _Inflater:
    """One gzip or deflate layer; `feed` yields its output in pieces of at most `PIECE_BYTES`."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding != "deflate"
        self._head = b""  # deflate: the first bytes, until they tell a zlib stream from a raw one
        self._obj: zlib._Decompress | None = zlib.decompressobj(_GZIP) if self._gzip else None

    def _start(self, data: bytes) -> tuple[zlib._Decompress | None, bytes]:
        """Deflate as servers send it: zlib-wrapped (RFC 9110) or raw (some servers); the 2-byte header tells."""
        data = self._head + data
        if len(data) < 2:
            self._head = data
            return None, b""
        self._head = b""
        zlib_header = data[0] & 0x0F == 8 and int.from_bytes(data[:2], "big") % 31 == 0
        self._obj = zlib.decompressobj(_ZLIB if zlib_header else _RAW_DEFLATE)
        return self._obj, data

    def feed(self, data: bytes) -> Iterator[bytes]:
        obj = self._obj
        if obj is None:
            obj, data = self._start(data)
            if obj is None:
                return
        try:
            while True:
                out = obj.decompress(data, PIECE_BYTES)
                data = obj.unconsumed_tail
                if out:
                    yield out
                if not data and len(out) < PIECE_BYTES:
                    return  # a full piece may leave output pending inside zlib: ask again with no input
        except zlib.error as exc:
            raise _corrupt() from exc

    def flush(self) -> Iterator[bytes]:
        if self._obj is not None:
            yield from self.feed(b"")  # pending output, still in bounded pieces (zlib's flush() returns it whole)


def _codings(header: str | None) -> list[str]:
    """The codings applied, outermost last (`content-encoding: gzip, br` = gzip first, then br)."""
    codings = [c.strip().lower() for c in (header or "").split(",")]
    return [c for c in codings if c and c != "identity"]


def _unasked(coding: str) -> UpstreamProtocolError:
    name = coding if _TOKEN.fullmatch(coding) else "an unknown coding"
    return UpstreamProtocolError(
        f"The upstream answered with content-encoding {name}, which the gateway did not ask for"
    )


class ContentDecoder:
    """`feed(raw) -> pieces`, then `flush()`; identity passes bytes through untouched (no copy)."""

    def __init__(self, content_encoding: str | None) -> None:
        if content_encoding is None:  # what the gateway asks for, and nearly every answer
            self._layers: list[_Inflater] = []
            return
        codings = _codings(content_encoding)
        if len(codings) > MAX_CODINGS:
            raise UpstreamProtocolError(f"The upstream stacked more than {MAX_CODINGS} content-encodings")
        for coding in codings:
            if coding not in ("gzip", "x-gzip", "deflate"):
                raise _unasked(coding)
        self._layers = [_Inflater(c) for c in reversed(codings)]

    @property
    def identity(self) -> bool:
        return not self._layers

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._layers:
            if data:
                yield data
            return
        yield from _through(self._layers, data)

    def flush(self) -> Iterator[bytes]:
        for index, layer in enumerate(self._layers):
            for piece in layer.flush():
                yield from _through(self._layers[index + 1 :], piece)


def _through(layers: Sequence[_Inflater], data: bytes) -> Iterator[bytes]:
    """`data` through every layer lazily: at most one piece per layer is alive at a time."""
    if not layers:
        yield data
        return
    first, rest = layers[0], layers[1:]
    for piece in first.feed(data):
        yield from _through(rest, piece)


def check_encoding(content_encoding: str | None) -> None:
    """Refuse (before any byte is relayed) an encoding the gateway cannot decode."""
    ContentDecoder(content_encoding)
