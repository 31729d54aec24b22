"""A request's plan: the targets its model routes to, its translation per target, and its conversation key."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.requests import Request

from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.protocol import anthropic as a
from messages_bridge.routing.failover import with_failover
from messages_bridge.routing.router import RequestFacts, Router, Target
from messages_bridge.translate.request import Translation, UpstreamProfile, to_responses_request
from messages_bridge.translate.tokens import estimate_input_tokens
from messages_bridge.translate.tools import ToolSet
from messages_bridge.upstream.client import ResponsesClient

T = TypeVar("T")
_THINKING_ON = (a.ThinkingEnabled, a.ThinkingAdaptive)  # a tuple: `A | B` would build a new union per call
_NO_CONDITIONS = RequestFacts()  # what a router without route conditions is given (it reads none of it)


def _thinking(req: a.MessagesRequest | a.CountTokensRequest) -> bool:
    return isinstance(req.thinking, _THINKING_ON)


def conversation_key(req: a.MessagesRequest | a.CountTokensRequest, headers: Mapping[str, str]) -> str | None:
    """What keeps a conversation on one upstream key: the hashed `metadata.user_id`, else the client's key."""
    metadata = getattr(req, "metadata", None)
    source = metadata.user_id if metadata is not None and metadata.user_id else None
    source = source or headers.get("x-api-key") or headers.get("authorization")
    if not source:
        return None
    return hashlib.blake2b(source.encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class Plan:
    targets: tuple[Target, ...]
    tools: ToolSet  # the request's tool array, translated once for every target
    conversation: str | None
    budget: float
    api_version: str = ""
    _translations: list[tuple[UpstreamProfile, Translation]] = field(default_factory=list)

    def translation(self, req: a.MessagesRequest, target: Target) -> Translation:
        """The request translated for this target's model (once per profile: failover may need several)."""
        profile = target.profile
        for known, translation in self._translations:
            if known is profile:
                return translation
        translation = to_responses_request(req, self.tools, profile, api_version=self.api_version)
        self._translations.append((profile, translation))
        return translation

    def first_client(self) -> ResponsesClient:
        """The first target's client for this conversation's key (for calls made outside `run`)."""
        upstream = self.targets[0].upstream
        order = upstream.keys.order(self.conversation)
        return upstream.clients[order[0] if order else upstream.keys.soonest()]

    async def run(self, call: Callable[[Target, ResponsesClient], Awaitable[T]], facts: UpstreamFacts) -> T:
        """`call` with failover; which upstream, target and key answered (and the fallbacks) go on `facts`."""
        targets, conversation = self.targets, self.conversation
        return await with_failover(targets, call, conversation=conversation, budget=self.budget, facts=facts)


def plan_for(
    router: Router,
    request: Request,
    req: a.MessagesRequest | a.CountTokensRequest,
    tools: ToolSet,
    headers: Mapping[str, str],
    *,
    budget: float,
    api_version: str = "",
) -> Plan:
    """Resolve the model (404 `not_found_error` when nothing takes it) into a plan."""
    facts = _NO_CONDITIONS
    if router.conditional:  # only route conditions read the facts
        facts = RequestFacts(_thinking(req), request.headers, lambda: estimate_input_tokens(req, tools))
    targets = router.resolve(req.model, facts)
    multi_key = any(target.upstream.keys.size > 1 for target in targets)
    conversation = conversation_key(req, headers) if multi_key else None
    return Plan(targets, tools, conversation, budget, api_version)
