"""PTB's networking backend on aiohttp instead of httpx.

Measured here against the loopback fake Bot API (`benchmarks/updates_bench.py` runs an echo bot
on each): the echo bot needs about 40 % of the CPU per update on this transport that it needs
on `HTTPXRequest`, and that CPU is most of what a reminder send or a menu press costs. PTB
supports other backends through `BaseRequest`; the PTB team's own take is
`ptbcontrib.aiohttp_request`, which is not on PyPI, so this is ours, with the timeouts mapped to
their meaning rather than dropped.

Timeouts (seconds, None = no limit), as PTB passes them:
  connect -> aiohttp sock_connect; pool + connect -> aiohttp connect (waiting for a free
             connection, then connecting)
  read    -> aiohttp sock_read (between reads; getUpdates adds its long-poll time to it)
  write   -> no aiohttp equivalent: it is part of an overall bound, connect+pool+write+read,
             so a stalled upload still ends (uploads get media_write_timeout, 20 s, as in PTB;
             the bot's files are small: an .ics, a /mydata export).
Bodies: JSON for calls without files, multipart/form-data for uploads (the Bot API takes both).
Errors map as in HTTPXRequest: any timeout -> TimedOut, any other client error -> NetworkError.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
import urllib.request

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from bot.logging_setup import redact_token

log = logging.getLogger(__name__)
_JSON = {"Content-Type": "application/json"}


class AiohttpRequest(BaseRequest):
    __slots__ = ("_pool_size", "_connect", "_read", "_write", "_media_write", "_pool", "_session")

    def __init__(self, connection_pool_size: int = 256, *, read_timeout: float | None = 5.0,
                 write_timeout: float | None = 5.0, connect_timeout: float | None = 5.0,
                 pool_timeout: float | None = 1.0, media_write_timeout: float | None = 20.0):
        self._pool_size = connection_pool_size
        self._read, self._write, self._connect = read_timeout, write_timeout, connect_timeout
        self._pool, self._media_write = pool_timeout, media_write_timeout
        # Made in initialize(): an aiohttp session belongs to the loop it was created in.
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
                # The fake Bot API in tests and a local Bot API server are plain HTTP; Telegram's
                # answers are JSON read by PTB, never cookies.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        read = self._read if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = self._connect if isinstance(connect_timeout, DefaultValue) else connect_timeout
        pool = self._pool if isinstance(pool_timeout, DefaultValue) else pool_timeout
        write = ((self._media_write if files else self._write)
                 if isinstance(write_timeout, DefaultValue) else write_timeout)
        timeout = client_timeout(connect=connect, pool=pool, write=write, read=read)

        data: aiohttp.FormData | bytes | None = None
        headers = None
        if files:
            form = aiohttp.FormData()
            for name, value in (request_data.json_parameters if request_data else {}).items():
                form.add_field(name, value)
            for name, (filename, content, mimetype) in files.items():
                form.add_field(name, content, filename=filename, content_type=mimetype)
            data = form
        elif request_data is not None:
            # One JSON document (the Bot API takes JSON for every call without a file):
            # a third of the CPU of the form encoding HTTPXRequest uses, which JSON-encodes
            # each value and then percent-encodes it again.
            data, headers = request_data.json_payload, _JSON

        try:
            async with session.request(method, url, data=data, headers=headers, timeout=timeout,
                                       proxy=proxy_for(url)) as response:
                return response.status, await response.read()
        except TimeoutError as err:  # before ClientError: ServerTimeoutError is both
            raise TimedOut(f"Timed out ({type(err).__name__})") from err
        except aiohttp.ClientError as err:
            # The class name helps when the message is empty. Some aiohttp errors quote the
            # request URL, which holds the token, and the dispatcher stores error texts.
            raise NetworkError(redact_token(f"aiohttp.{type(err).__name__}: {err}")) from err


def client_timeout(*, connect: float | None, pool: float | None, write: float | None,
                   read: float | None) -> aiohttp.ClientTimeout:
    """PTB's four timeouts as aiohttp's (see the module docstring); None means no limit."""
    parts = (connect, pool, write, read)
    return aiohttp.ClientTimeout(
        total=None if None in parts else sum(parts),  # type: ignore[arg-type]
        # aiohttp's `connect` spans the wait for a free connection and the connecting
        connect=None if pool is None or connect is None else pool + connect,
        sock_connect=connect, sock_read=read)


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, ALL_PROXY, NO_PROXY), as httpx
    honours them. Read once per scheme and host: aiohttp's own trust_env reads the environment
    and ~/.netrc again on every request (dispatch fell from 1,250 to 800/s)."""
    parts = urllib.parse.urlsplit(url)
    return _env_proxy(parts.scheme, parts.netloc.rpartition("@")[2])


@functools.lru_cache(maxsize=64)
def _env_proxy(scheme: str, netloc: str) -> str | None:
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    # proxy_bypass matches NO_PROXY entries with and without the port itself.
    if not proxy or urllib.request.proxy_bypass(netloc):
        return None
    if urllib.parse.urlsplit(proxy).scheme not in ("http", "https"):
        # aiohttp speaks only HTTP(S) to a proxy; a SOCKS one would get plain HTTP. Go direct,
        # as the httpx transport did without its socks extra, and say so.
        log.warning("proxy %s for %s ignored: only http(s) proxies are supported",
                    urllib.parse.urlsplit(proxy).scheme, scheme)
        return None
    return proxy
