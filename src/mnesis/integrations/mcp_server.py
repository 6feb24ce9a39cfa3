"""``mnesis mcp``: a store's memory tools served to an MCP-capable assistant.

An assistant that speaks the Model Context Protocol (Claude Desktop, IDE
agents, ...) starts this server over stdio and can then list the stored
sessions and grep, search, describe and expand any of them, with the same
tools, caps, paging and error texts a session hands its own model
(:mod:`mnesis.recall.tools`; ``lcm_search`` embeds its query with the
embedder the session was configured with): nothing here re-implements recall.

The server only reads. The store is opened read-only before the first
message is served: a missing database is an error, not a new empty file; an
SQLite file is read through a read-only connection (no WAL switch, no
migration); a PostgreSQL connection runs every transaction read-only. So it
can run beside the application that writes the sessions.

Each tool is one :class:`MemoryTool` in :data:`TOOLS` (name, description,
argument schema, coroutine); adding a tool is adding an entry. Arguments are
checked against the schema first: a bad argument, an unknown session or id
is a tool result with ``isError`` set and a sentence the model can act on;
an unknown tool name is a protocol error, as the MCP specification asks.

The ``mcp`` SDK is imported only when the server starts
(``pip install 'mnesis[mcp]'``).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonschema

from mnesis.errors import (
    ConfigError,
    DatabaseNotFoundError,
    MnesisError,
    SessionNotFoundError,
)
from mnesis.models.config import StoreConfig
from mnesis.recall import Recall, memory_tool_handlers, memory_tool_specs
from mnesis.session.embedding import session_embedder
from mnesis.session.opening import stored_config
from mnesis.store import Store, open_read_only, resolve_db_url

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server
    from mcp_types import CallToolRequestParams, CallToolResult, ListToolsResult

DEFAULT_MAX_CHARS = 12_000  # the in-process tools' default cap
MIN_MAX_CHARS = 2_000
MAX_MAX_CHARS = 48_000  # the in-process tools never give a model more either
SESSIONS_PAGE = 20
MAX_OFFSET = 1_000_000_000
MAX_SESSIONS_PAGE = 200

INSTRUCTIONS = (
    "Lossless memory of stored conversations. Call list_sessions for the session ids, then "
    "lcm_grep to search a session's whole history for words (including what was summarised "
    "away), lcm_search to find what was said when you only know what it was about, "
    "lcm_describe for what an id (sum_..., msg_..., file_...) is, and lcm_expand for the "
    "original messages under a summary. Long outputs are paged: pass the offset they give."
)


def _import_mcp() -> Any:
    """The ``mcp`` SDK's lowlevel server module, or a ConfigError with the install hint."""
    try:
        import mcp.server.lowlevel
        import mcp.server.stdio
    except ImportError as exc:
        raise ConfigError("the MCP server needs the MCP SDK: pip install 'mnesis[mcp]'") from exc
    return mcp


# -- the tools ----------------------------------------------------------------------


class ToolArgumentError(MnesisError, ValueError):
    """A tool's arguments do not match its schema."""


class UnknownToolError(MnesisError, KeyError):
    """No tool of that name is served."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class MemoryTool:
    """One served tool: its name, what the model reads about it, and what it runs."""

    name: str
    description: str
    input_schema: dict[str, Any]
    run: Callable[[MemoryTools, dict[str, Any]], Awaitable[str]]


async def _list_sessions(tools: MemoryTools, args: dict[str, Any]) -> str:
    offset = args.get("offset", 0)
    limit = args.get("limit", SESSIONS_PAGE)
    sessions = await tools.store.list_sessions()
    page = sessions[offset : offset + limit]
    lines = [
        f"{s.id}: model {s.model}, agent {s.agent}"
        + (f", sub-session of {s.parent_id}" if s.parent_id else "")
        + f", {s.turns} turns, {s.messages} messages, {s.summaries} summaries, "
        f"{s.tokens.effective_total():,} tokens, created {s.created_at:%Y-%m-%d %H:%M} UTC, "
        f"last written {s.updated_at:%Y-%m-%d %H:%M} UTC"
        for s in page
    ]
    if not sessions:
        return "no sessions stored yet"
    if not lines:
        return f"no sessions at offset {offset}; there are {len(sessions)}"
    following = offset + len(page)
    if following < len(sessions):
        lines.append(
            f"(showing {len(page)} of {len(sessions)} sessions, newest first; "
            f"call list_sessions with offset={following} for more)"
        )
    return tools.cap("\n".join(lines))


def _recall_tool(spec: dict[str, Any]) -> MemoryTool:
    """A session's in-process memory tool, served for any session of the store."""
    function = spec["function"]
    name: str = function["name"]
    schema = copy.deepcopy(function["parameters"])
    schema["properties"] = {
        "session_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "The session to search, an id from list_sessions.",
        },
        **schema["properties"],
    }
    schema["required"] = ["session_id", *schema.get("required", [])]
    schema["additionalProperties"] = False

    async def run(tools: MemoryTools, args: dict[str, Any]) -> str:
        arguments = dict(args)
        session_id = arguments.pop("session_id")
        handler = await tools.handler(session_id, name)
        return await handler(**arguments)

    return MemoryTool(name, function["description"], schema, run)


TOOLS: tuple[MemoryTool, ...] = (
    MemoryTool(
        "list_sessions",
        "List the stored conversations, newest first, with their ids, models and sizes. "
        "Pass a session's id to lcm_grep, lcm_search, lcm_describe or lcm_expand.",
        {
            "type": "object",
            "properties": {
                "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SESSIONS_PAGE},
            },
            "additionalProperties": False,
        },
        _list_sessions,
    ),
    *(_recall_tool(spec) for spec in memory_tool_specs()),
)


class MemoryTools:
    """The served tools over one open store, independent of the MCP SDK.

    Args:
        store: an open store; the caller closes it.
        max_chars: the cap on one tool output, as ``memory_tool_handlers`` takes it.
        tools: the table to serve (default :data:`TOOLS`).
    """

    def __init__(
        self,
        store: Store,
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        tools: tuple[MemoryTool, ...] = TOOLS,
    ) -> None:
        check_max_chars(max_chars)
        self.store = store
        self.max_chars = max_chars
        self.tools = {tool.name: tool for tool in tools}
        self._validators = {
            tool.name: jsonschema.Draft202012Validator(tool.input_schema) for tool in tools
        }

    async def handler(self, session_id: str, name: str) -> Callable[..., Awaitable[str]]:
        """The in-process handler ``name`` bound to a session that exists."""
        try:
            record = await self.store.get_session(session_id)
        except SessionNotFoundError:
            raise SessionNotFoundError(session_id) from None
        recall = Recall(self.store, session_id)
        if name == "lcm_search":  # the query is embedded as the session's vectors were
            try:
                config = stored_config(record.config_json)
            except ValueError as exc:
                raise ConfigError(f"session {session_id} has an unreadable config: {exc}") from exc
            recall.embedder = session_embedder(config)
        handlers = memory_tool_handlers(recall, max_chars=self.max_chars)
        if name not in handlers:
            raise UnknownToolError(f"no in-process handler for the memory tool {name!r}")
        return handlers[name]

    def cap(self, text: str) -> str:
        """``text`` within ``max_chars``, saying so when cut."""
        if len(text) <= self.max_chars:
            return text
        hint = "(output capped; page with offset)"
        return text[: self.max_chars - len(hint) - 1] + "\n" + hint

    def check_arguments(self, name: str, arguments: dict[str, Any]) -> None:
        """``UnknownToolError`` or ``ToolArgumentError`` unless ``name(**arguments)`` fits."""
        validator = self._validators.get(name)
        if validator is None:
            raise UnknownToolError(
                f"unknown tool {name!r}; the tools are {', '.join(sorted(self.tools))}"
            )
        problems = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        if problems:
            shown = "; ".join(
                (f"{'.'.join(str(p) for p in e.path)}: " if e.path else "") + e.message
                for e in problems[:3]
            )
            raise ToolArgumentError(f"invalid arguments for {name}: {shown}")

    async def call(self, name: str, arguments: dict[str, Any] | None) -> str:
        """Run tool ``name``: its text, or a MnesisError that says what was wrong."""
        arguments = arguments or {}
        self.check_arguments(name, arguments)
        return await self.tools[name].run(self, arguments)


def check_max_chars(max_chars: int) -> None:
    """``ConfigError`` unless ``max_chars`` is a whole number in the served range."""
    if not isinstance(max_chars, int) or isinstance(max_chars, bool):
        raise ConfigError(f"max_chars must be a whole number, not {max_chars!r}")
    if not MIN_MAX_CHARS <= max_chars <= MAX_MAX_CHARS:
        raise ConfigError(f"max_chars must be between {MIN_MAX_CHARS:,} and {MAX_MAX_CHARS:,}")


# -- opening the store read-only ----------------------------------------------------


@contextlib.asynccontextmanager
async def read_only_store(
    db: str | os.PathLike[str] | None = None, config: StoreConfig | None = None
) -> AsyncIterator[Store]:
    """The store ``db`` names (else ``$MNESIS_DB_URL``, else the default file), opened
    read-only (:func:`mnesis.store.open_read_only`) and closed on exit."""
    config = config or StoreConfig()
    store = await open_read_only(resolve_db_url(db, config), config)
    try:
        yield store
    finally:
        await store.close()


# -- the MCP server -----------------------------------------------------------------


def build_server(tools: MemoryTools, *, version: str = "") -> Server[Any]:
    """An MCP server (the SDK's lowlevel ``Server``) serving ``tools``."""
    mcp = _import_mcp()
    import mcp_types
    from mcp.shared.exceptions import MCPError

    annotations = mcp_types.ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )
    listed = [
        mcp_types.Tool(
            name=tool.name,
            description=tool.description,
            input_schema=tool.input_schema,
            annotations=annotations,
        )
        for tool in tools.tools.values()
    ]

    async def on_list_tools(
        ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> ListToolsResult:
        return mcp_types.ListToolsResult(tools=listed)

    async def on_call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult:
        try:
            text = await tools.call(params.name, params.arguments)
        except UnknownToolError as exc:
            raise MCPError(code=mcp_types.INVALID_PARAMS, message=str(exc)) from None
        except MnesisError as exc:
            return mcp_types.CallToolResult(
                content=[mcp_types.TextContent(text=_error_text(exc))], is_error=True
            )
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=text)])

    server: Server[Any] = mcp.server.lowlevel.Server(
        "mnesis",
        version=version,
        instructions=INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )
    return server


def _error_text(exc: MnesisError) -> str:
    if isinstance(exc, SessionNotFoundError) and not isinstance(exc, DatabaseNotFoundError):
        return f"{exc}; list_sessions shows the stored sessions"
    return str(exc)


async def serve_stdio(
    db: str | os.PathLike[str] | None = None, *, max_chars: int = DEFAULT_MAX_CHARS
) -> None:
    """Serve the memory tools of the store ``db`` over stdin/stdout until the client leaves."""
    mcp = _import_mcp()
    from mnesis import __version__

    check_max_chars(max_chars)
    async with read_only_store(db) as store:
        server = build_server(MemoryTools(store, max_chars=max_chars), version=__version__)
        async with mcp.server.stdio.stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
