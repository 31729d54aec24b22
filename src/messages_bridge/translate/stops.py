"""Stop-sequence emulation: the Responses API has no stop parameter, so the gateway cuts the text itself."""

from __future__ import annotations

from dataclasses import dataclass, field


def find_stop(text: str, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """(position, sequence) of the first of `stops` to be complete in `text`; of two ending together, the longer.

    "First complete", not "first to start": a model stops as soon as a sequence has been generated, so with
    `"` and `"X` the text `"X` stops at `"`. It is also the only rule a stream can follow without waiting: a
    sequence not yet complete ends after every one already visible, so the streaming filter (which sees the
    text piece by piece) and the whole-answer path agree however the text is cut.
    """
    best: tuple[int, int, str] | None = None  # (end, start, sequence)
    for stop in stops:
        pos = text.find(stop)
        if pos < 0:
            continue
        end = pos + len(stop)
        if best is None or (end, pos) < best[:2]:
            best = (end, pos, stop)
    return None if best is None else (best[1], best[2])


@dataclass(slots=True)
class StopSequenceFilter:
    """Streaming filter: holds back only the characters a stop sequence could still need.

    `feed` returns the text that is safe to send; once a stop matches, `matched` is set and everything after
    it is discarded. `flush` releases what was held back at the end of a text block.
    """

    stops: tuple[str, ...]
    matched: str | None = None
    _held: str = ""
    _keep: int = field(init=False)

    def __post_init__(self) -> None:
        self._keep = max((len(s) for s in self.stops), default=1) - 1

    def feed(self, delta: str) -> str:
        if self.matched is not None:
            return ""
        text = self._held + delta
        hit = find_stop(text, self.stops)
        if hit is not None:
            self.matched = hit[1]
            self._held = ""
            return text[: hit[0]]
        cut = max(len(text) - self._keep, 0)  # text shorter than the hold-back is held whole
        self._held = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
