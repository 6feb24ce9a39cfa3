"""``mnesis serve``: a small read-only HTTP server over one store, for one person.

Stored conversations are private, so the server binds 127.0.0.1 by default
and, as notebook servers do, demands a random token made for this run on
every request (page, API and assets): another local user, or a web page the
browser has open, cannot read the history without the URL that was printed.
It speaks just enough HTTP/1.1 (GET, one request per connection) on asyncio's
streams, so it needs no dependency; every asset is a file of this package.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from mnesis.errors import InvalidInputError, SessionNotFoundError, UnknownIdError
from mnesis.models.config import StoreConfig
from mnesis.store import Store, open_read_only, resolve_db_url
from mnesis.web.data import Inspector

log = logging.getLogger(__name__)

_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_HEADERS = (
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"  # the token is in the URL: never send it on
    "Cache-Control: no-store\r\n"
    "X-Frame-Options: DENY\r\n"
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'\r\n"
)
_MAX_REQUEST = 16 * 1024
_Handler = Callable[..., Awaitable[Any]]


def asset(name: str) -> str:
    """The text of one static file of the package."""
    return resources.files("mnesis.web").joinpath("static", name).read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Response:
    """What one request gets back."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, ensure_ascii=False, default=str).encode())


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
_REASONS |= {405: "Method Not Allowed", 413: "Content Too Large", 500: "Server Error"}


class InspectorServer:
    """Serves the inspector's page and its JSON API over one open store."""

    def __init__(self, store: Store, *, token: str | None = None) -> None:
        self.inspector = Inspector(store)
        self.token = token or secrets.token_urlsafe(24)
        self._server: asyncio.Server | None = None
        self._routes: list[tuple[re.Pattern[str], _Handler]] = [
            (re.compile(r"/api/sessions"), self._sessions),
            (re.compile(r"/api/search"), self._search),
            (re.compile(r"/api/s/([^/]+)"), self._overview),
            (re.compile(r"/api/s/([^/]+)/chart"), self._chart),
            (re.compile(r"/api/s/([^/]+)/timeline"), self._timeline),
            (re.compile(r"/api/s/([^/]+)/dag"), self._dag),
            (re.compile(r"/api/s/([^/]+)/summary/([^/]+)"), self._summary),
            (re.compile(r"/api/s/([^/]+)/grep"), self._grep),
            (re.compile(r"/api/s/([^/]+)/context"), self._context),
            (re.compile(r"/api/s/([^/]+)/turn/(\d+)"), self._turn),
            (re.compile(r"/api/s/([^/]+)/received/(\d+)"), self._received),
        ]

    @property
    def port(self) -> int:
        """The port listened on (useful after asking for port 0)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, host: str = "127.0.0.1") -> str:
        """The address to open, token included."""
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/?token={quote(self.token)}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0: any free port)."""
        self._server = await asyncio.start_server(self._serve, host, port)

    async def close(self) -> None:
        """Stop listening and wait for the open connections to end."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- HTTP ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await self._answer(reader)
            head = (
                f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}\r\n"
                f"Content-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\n"
                f"Connection: close\r\n{_HEADERS}\r\n"
            )
            writer.write(head.encode() + response.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def _answer(self, reader: asyncio.StreamReader) -> Response:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return _json(413, {"error": "the request is too large"})
        if len(head) > _MAX_REQUEST:
            return _json(413, {"error": "the request is too large"})
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3:
            return _json(400, {"error": "malformed request line"})
        method, target, _ = parts
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        given = query.get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return _json(403, {"error": "a valid token is required (see the URL mnesis printed)"})
        if method != "GET":
            return _json(405, {"error": "the inspector is read-only: GET only"})
        return await self._route(unquote(url.path), query)

    async def _route(self, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/":
            page = asset("index.html").replace("{{TOKEN}}", quote(self.token))
            return Response(200, page.encode(), "text/html; charset=utf-8")
        if path.startswith("/static/"):
            name = path.removeprefix("/static/")
            if name not in _ASSETS:
                return _json(404, {"error": "no such asset"})
            return Response(200, asset(name).encode(), _ASSETS[name])
        for pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match:
                try:
                    return _json(200, await handler(*match.groups(), query))
                except (SessionNotFoundError, UnknownIdError) as exc:
                    return _json(404, {"error": str(exc)})
                except (InvalidInputError, ValueError) as exc:
                    return _json(400, {"error": str(exc)})
                except Exception:
                    log.exception("mnesis serve: %s failed", path)
                    return _json(500, {"error": "the inspector failed; see its log"})
        return _json(404, {"error": "no such page"})

    # -- API ------------------------------------------------------------------------

    async def _sessions(self, query: dict[str, list[str]]) -> Any:
        return await self.inspector.sessions()

    async def _search(self, query: dict[str, list[str]]) -> Any:
        return await self.inspector.search(_one(query, "q"))

    async def _overview(self, session_id: str, query: dict[str, list[str]]) -> Any:
        return await self.inspector.overview(session_id)

    async def _chart(self, session_id: str, query: dict[str, list[str]]) -> Any:
        return await self.inspector.chart(session_id)

    async def _timeline(self, session_id: str, query: dict[str, list[str]]) -> Any:
        if "turn" in query:
            page = await self.inspector.page_of_turn(session_id, _int(query, "turn", 1))
        else:
            page = _int(query, "page", 1)
        return await self.inspector.timeline(session_id, page)

    async def _dag(self, session_id: str, query: dict[str, list[str]]) -> Any:
        return await self.inspector.dag(session_id)

    async def _summary(self, session_id: str, summary_id: str, query: dict[str, list[str]]) -> Any:
        return await self.inspector.summary(session_id, summary_id, offset=_int(query, "offset", 0))

    async def _grep(self, session_id: str, query: dict[str, list[str]]) -> Any:
        regex = _one(query, "regex", "") in ("1", "true")
        return await self.inspector.grep(
            session_id, _one(query, "q"), offset=_int(query, "offset", 0), regex=regex
        )

    async def _context(self, session_id: str, query: dict[str, list[str]]) -> Any:
        return await self.inspector.context(session_id)

    async def _turn(self, session_id: str, turn: str, query: dict[str, list[str]]) -> Any:
        return await self.inspector.turn(session_id, int(turn))

    async def _received(self, session_id: str, turn: str, query: dict[str, list[str]]) -> Any:
        return await self.inspector.received(session_id, int(turn))


def _one(query: dict[str, list[str]], name: str, default: str | None = None) -> str:
    values = query.get(name)
    if not values:
        if default is None:
            raise InvalidInputError(f"the request needs ?{name}=")
        return default
    return values[0]


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    text = _one(query, name, str(default))
    try:
        number = int(text)
    except ValueError:
        raise InvalidInputError(f"?{name}= must be a whole number, not {text!r}") from None
    if number < 0:
        raise InvalidInputError(f"?{name}= must not be negative")
    return number


async def open_store(db: str | None) -> Store:
    """The store of ``db`` (path or URL; default as sessions find theirs), opened
    read-only: nothing is created, migrated or written."""
    config = StoreConfig()
    return await open_read_only(resolve_db_url(db, config), config)


async def serve(
    db: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the inspector until ``stop`` is set (or the task is cancelled).

    Args:
        db: The database file or URL.
        host: The address to bind; 127.0.0.1 keeps it to this machine.
        port: The port (0: any free one).
        ready: Called with the URL to open once the server listens.
        stop: Set it to shut the server down.
    """
    store = await open_store(db)
    server = InspectorServer(store)
    try:
        await server.start(host, port)
        if ready is not None:
            ready(server.url(host))
        await (stop or asyncio.Event()).wait()
    finally:
        await server.close()
        await store.close()
