"""An httpx transport backed by aiohttp: the gateway's network path to the upstream.

Measured on this project's 2-core machine with a 76 KB Claude Code body (bench/, one run): httpx's own pool
spends ~2–4 ms of CPU per request and degrades with pool size, aiohttp's ~0.3 ms. Keeping httpx's *interface*
(`httpx.Request` in, `httpx.Response` out) means everything above — retries, error mapping, the tests'
`MockTransport`/`ASGITransport`, demo mode — is unchanged; only the bytes on the wire go through aiohttp.
aiohttp's exceptions are converted at this boundary into httpx's, as httpx's own transport does for httpcore.

Why not the maintained `httpx-aiohttp` package (0.2.0), which does the same job: it costs the same CPU
(`python -m bench.transport_cost`, one run: 0.93× this module's per non-streamed request, 1.06× per stream; httpx's
own pool 1.6× and 2.4×), but it maps errors in a way the retry policy cannot live with. An upstream that closes the
connection after the request was sent and before answering comes out as `httpx.ConnectTimeout` ("never reached the
server"), which makes re-sending a POST look safe, and a generation could run and be billed twice; here it is a
`RemoteProtocolError`, which is not retried once the request may have been seen. It also sends aiohttp's
`User-Agent` and default `Accept-Encoding`, forwards httpx's `Host`/`Content-Length` as headers, and does not count
the responses still holding a connection (the leak checks in tests/ use `open_responses`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx

_SKIP_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


@contextmanager
def _mapped_errors(request: httpx.Request, *, connecting: bool) -> Iterator[None]:
    """aiohttp/asyncio failures → the httpx exception of the same meaning (most specific first)."""
    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc.os_error or "connect failed"), request=request) from exc
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        kind = (
            httpx.ConnectTimeout
            if connecting and isinstance(exc, aiohttp.ConnectionTimeoutError)
            else httpx.ReadTimeout
        )
        raise kind("upstream timed out", request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx.RemoteProtocolError("upstream closed the connection", request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.ReadError("upstream connection failed", request=request) from exc


class _ResponseStream(httpx.AsyncByteStream):
    """The body of one aiohttp response; closing it releases (finished) or drops (unfinished) its connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request, owner: AiohttpTransport) -> None:
        self._response = response
        self._request = request
        self._owner = owner
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors(self._request, connecting=False):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._owner.open_responses -= 1
        if self._response.content.is_eof():
            self._response.release()  # keep-alive: the connection goes back to the pool
        else:
            self._response.close()  # cut short (client gone, stop sequence): the connection cannot be reused


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (created lazily, inside the running loop) for the process lifetime."""

    def __init__(self, *, max_connections: int, keepalive: float = 4.0) -> None:
        self._max_connections = max_connections
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self.open_responses = 0  # responses whose connection is still held (for tests and leak checks)

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Idle connections are dropped before the upstream's own idle timeout (uvicorn's is 5 s): reusing one the
            # server is closing fails the request with "server disconnected", and a POST must not be re-sent blindly.
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=self._max_connections, keepalive_timeout=self._keepalive
            )
            # Bodies come out raw (no auto-decompression, no automatic Accept-Encoding): the client asks for identity
            # and decodes whatever comes anyway with a size cap (upstream/content.py). httpx's own decoding of the
            # `httpx.Response` built below (`aread`, `aiter_bytes`) has no cap: only `aiter_raw` is used on it.
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("Accept-Encoding", "User-Agent")
            )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        spec = request.extensions.get("timeout", {})
        key = (spec.get("connect"), spec.get("read"), spec.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            waiting = None if connect is None else connect + (pool or 0)
            timeout = aiohttp.ClientTimeout(total=None, connect=waiting, sock_connect=connect, sock_read=read)
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session_for_loop()
        headers = [(k.decode(), v.decode()) for k, v in request.headers.raw if k.lower() not in _SKIP_HEADERS]
        url, body, timeout = str(request.url), request.content, self._timeout(request)
        with _mapped_errors(request, connecting=True):
            response = await session.request(
                request.method, url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            )
        self.open_responses += 1
        raw_headers = [(k, v) for k, v in response.raw_headers]
        return httpx.Response(
            response.status, headers=raw_headers, stream=_ResponseStream(response, request, self), request=request
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
