"""Server-sent events: the one sans-I/O decoder (upstream bytes in) and the frame encoder (Anthropic bytes out).

The decoder follows the WHATWG event-stream grammar (https://html.spec.whatwg.org/multipage/server-sent-events.html)
on bytes: lines end with CRLF, LF or CR, `:` starts a comment, `data` lines accumulate, a blank line dispatches.
It splits on ASCII line ends only, so a UTF-8 sequence cut across two chunks is joined again before anything is
decoded. One deliberate difference from the spec: `finish()` dispatches a last event that lacks its blank line
(a truncated upstream should still deliver what it did send).

Cost is linear in the bytes fed: a chunk without a line end is appended to one buffer (never re-joined with what
came before), which is copied out once, when the line ends. One event (its unfinished line and its data
lines) may not exceed `max_event_bytes`; past it `feed` raises `EventTooLargeError` and drops what it held.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "EventTooLargeError", "SSEDecoder", "ServerSentEvent", "frame"]

DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024


class EventTooLargeError(ValueError):
    """One event grew past the decoder's `max_event_bytes`."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"server-sent event larger than {limit} bytes")
        self.limit = limit


class ServerSentEvent(NamedTuple):
    """One dispatched event: `data` stays bytes (msgspec decodes JSON straight from bytes).

    A NamedTuple, not a frozen dataclass: one is built per upstream event, and a frozen dataclass's `__init__`
    (`object.__setattr__` per field) showed in the stream profile.
    """

    event: str | None
    data: bytes
    id: str | None = None


class SSEDecoder:
    """`feed(bytes) -> list[ServerSentEvent]`, then `finish()` at the end of the stream.

    Memory stays bounded by one event: its incomplete line plus its data lines, at most `max_event_bytes`.
    """

    __slots__ = ("_data", "_data_size", "_event", "_id", "_last_id", "_limit", "_partial", "_skip_lf")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._limit = max_event_bytes
        # The current unfinished line: one buffer grown in place (amortised linear; a large one is its own mapping,
        # returned to the system when dropped), copied out once when the line ends.
        self._partial = bytearray()
        self._skip_lf = False  # the previous chunk ended in CR: a LF opening the next one is the same line end
        self._event: str | None = None
        self._data: list[bytes] = []
        self._data_size = 0
        self._id: str | None = None
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        if not chunk:
            return []
        if b"\r" in chunk:
            return self._feed_any(chunk)
        if b"\n" not in chunk:
            self._hold(chunk)  # still inside one line: kept as it is, never copied until the line ends
            return []
        if self._partial:
            chunk = b"".join((self._partial, chunk))
            self._partial = bytearray()
        return self._feed_lf(chunk)

    def _feed_lf(self, chunk: bytes) -> list[ServerSentEvent]:
        """LF line ends only (what every upstream sends): the two common lines handled inline.

        Same grammar as `_line`; inlined because per-line calls were most of the decoder's cost (~1.9 µs per event).
        """
        lines = chunk.split(b"\n")
        tail = lines.pop()  # after the last line end: empty, or the start of the next line
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                if (event := self._dispatch()) is not None:
                    events.append(event)
            elif line.startswith(b"data: "):
                value = line[6:]
                self._data.append(value)
                self._data_size += len(value) + 1
                if self._data_size > self._limit:
                    self._overflow()
            elif line.startswith(b"event: "):
                self._event = line[7:].decode("utf-8", "replace")
            else:
                self._line(line)
        if tail:
            self._hold(tail)  # after the lines before it: it may open the next event
        return events

    def _feed_any(self, chunk: bytes) -> list[ServerSentEvent]:
        """CR, LF or CRLF line ends."""
        if self._partial:
            chunk = b"".join((self._partial, chunk))
            self._partial = bytearray()
        lines = chunk.splitlines(keepends=True)
        last = lines[-1]
        tail = None
        if last.endswith(b"\r"):
            self._skip_lf = True
        elif not last.endswith(b"\n"):
            tail = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        if tail is not None:
            self._hold(tail)  # after the lines before it: it may open the next event
        return events

    def finish(self) -> list[ServerSentEvent]:
        """The end of the stream: an unterminated last line and a last event without its blank line count."""
        events: list[ServerSentEvent] = []
        if self._partial:
            line = bytes(self._partial)
            self._partial = bytearray()
            if (event := self._line(line)) is not None:
                events.append(event)
        if (event := self._dispatch()) is not None:
            events.append(event)
        return events

    def _hold(self, piece: bytes) -> None:
        self._partial += piece
        if len(self._partial) + self._data_size > self._limit:
            self._overflow()

    def _overflow(self) -> None:
        """Drop the oversized event (nothing of it stays held) and say so."""
        self._partial = bytearray()
        self._data.clear()
        self._data_size = 0
        raise EventTooLargeError(self._limit)

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" comment (keep-alives)
            return None
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._limit:  # (no unfinished line is held while complete ones are read)
                self._overflow()
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\x00" not in value:
            self._id = value.decode("utf-8", "replace")
        return None  # `retry` and unknown fields are ignored, as the spec says

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self._last_id = self._id
            self._id = None
        event, self._event = self._event, None
        if not self._data:
            return None  # a blank line with no data dispatches nothing (spec)
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        self._data_size = 0
        return ServerSentEvent(event, data, self._last_id)


def frame(event: bytes, data: bytes) -> bytes:
    """One SSE frame, `event: <name>\\ndata: <json>\\n\\n` (the JSON holds no raw newline, so one data line)."""
    return b"event: " + event + b"\ndata: " + data + b"\n\n"
