"""The API keys of one upstream: a conversation sticks to one key (the upstream's prompt cache is per key), and a
key that is rejected, out of quota or rate-limited rests ("benched") while its conversations move to others.

Keys are named by index in logs and metrics, never by value. Stickiness is rendezvous hashing: each conversation
ranks the keys by a hash of (conversation, index), so benching one key moves only that key's conversations.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable

logger = logging.getLogger("messages_bridge.routing")


def _score(conversation: bytes, index: int) -> bytes:
    return hashlib.blake2b(conversation + index.to_bytes(2, "big"), digest_size=8).digest()


class KeyPool:
    def __init__(self, upstream: str, size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.upstream = upstream
        self.size = max(1, size)
        self._clock = clock
        self._benched_until = [0.0] * self.size

    def order(self, conversation: str | None) -> list[int]:
        """The key indexes to try, the conversation's own first; benched keys are left out."""
        now = self._clock()
        ready = [i for i in range(self.size) if self._benched_until[i] <= now]
        if len(ready) <= 1:
            return ready
        if conversation is None:
            random.shuffle(ready)  # nothing to stick to: spread
            return ready
        seed = conversation.encode()
        return sorted(ready, key=lambda i: _score(seed, i), reverse=True)

    def bench(self, index: int, seconds: float, reason: str) -> None:
        until = self._clock() + seconds
        if until > self._benched_until[index]:
            self._benched_until[index] = until
        logger.warning(
            "upstream key benched",
            extra={"upstream": self.upstream, "key_index": index, "reason": reason, "bench_seconds": round(seconds, 1)},
        )

    def soonest(self) -> int:
        """The key whose rest ends first (when every key rests)."""
        return min(range(self.size), key=self._benched_until.__getitem__)

    def benched(self) -> list[int]:
        now = self._clock()
        return [i for i in range(self.size) if self._benched_until[i] > now]
