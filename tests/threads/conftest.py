"""Fixtures of the thread tests: recorded gateways on 127.0.0.1 for the SDKs, closed after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from messages_bridge.config import Settings
from tests.threads.sdk_gateway import KEY, SdkGateway, sdk_gateway


@pytest.fixture
def start(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., SdkGateway]]:
    """`start(**settings)`: a recorded gateway (client key `KEY`) serving until the test ends."""
    with ExitStack() as opened:

        def open_(**overrides: Any) -> SdkGateway:
            return opened.enter_context(sdk_gateway(make_settings(api_keys=KEY, **overrides)))

        yield open_
