"""The one failure type of a benchmark run."""

from __future__ import annotations


class BenchError(Exception):
    """A target failed to start, answered wrongly, or a measurement could not be taken."""
