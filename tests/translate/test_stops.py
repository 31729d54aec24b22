"""Stop sequences: the first sequence to be complete wins, in the whole answer and in a stream cut anywhere."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from messages_bridge.translate.stops import StopSequenceFilter, find_stop

ALPHABET = 'ab"X '


def test_the_first_sequence_to_be_complete_wins_not_the_first_to_start() -> None:
    assert find_stop('say "X now', ('"X', '"')) == (4, '"')
    assert find_stop("abcd", ("abcd", "bc")) == (1, "bc")


def test_of_two_sequences_ending_together_the_longer_wins() -> None:
    assert find_stop("abc", ("bc", "abc", "c")) == (0, "abc")


def test_no_sequence_no_stop() -> None:
    assert find_stop("hello", ("xyz",)) is None


def _streamed(pieces: list[str], stops: tuple[str, ...]) -> tuple[str, str | None]:
    stream = StopSequenceFilter(stops)
    sent = "".join(stream.feed(piece) for piece in pieces)
    if stream.matched is None:
        sent += stream.flush()
    return sent, stream.matched


@given(
    st.text(ALPHABET, max_size=40),
    st.lists(st.text(ALPHABET, min_size=1, max_size=3), min_size=1, max_size=3),
    st.lists(st.integers(0, 40), max_size=8),
)
def test_a_stream_cut_anywhere_stops_where_the_whole_answer_does(text: str, stops: list[str], cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    pieces = [text[a:b] for a, b in pairwise(bounds)]
    hit = find_stop(text, tuple(stops))
    expected = (text, None) if hit is None else (text[: hit[0]], hit[1])
    assert _streamed(pieces, tuple(stops)) == expected
