"""mnesis as an OpenAI Agents SDK ``Session``: lossless, compacting memory in one line.

``Runner.run(agent, text, session=MnesisAgentsSession("user-42", model=...))``
gives an agent the memory of a mnesis session instead of a flat list of items.
The SDK's ``Session`` protocol is structural (four async methods and a
``session_id``), so nothing here imports the SDK.

How items become the log. Each item the SDK adds is stored as its own mnesis
message, so it can be summarised, grepped and recalled like any other:

- a user message with text content → a user message;
- an assistant message whose content is plain text → an assistant reply (an
  output message's other fields, such as its ``id``, on a first line);
- a ``function_call`` with JSON-object arguments → a reply holding one tool
  call (its other fields, such as its ``id``, on a first line), and its
  ``function_call_output`` (text) → that call's result;
- anything else (reasoning items, images, annotated text, hosted tool calls,
  item types this module has never seen) → stored verbatim, as JSON behind a
  marker, and returned exactly as it came.

``get_items()`` is the compaction-aware context, decoded back into items:
summaries appear as user messages where compaction put them, and a call and
its output are one mnesis part, so compaction never splits them.

``pop_item()`` and ``clear_session()`` keep the log lossless: they append a
marker (a clear marker is pinned, so compaction never folds it away) that
``get_items()`` honours; the popped or cleared items stay stored and
searchable. ``hard_delete=True`` erases instead, for data that must go.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from typing import Any

from mnesis.context.window import NO_RESULT, render_entry
from mnesis.errors import InvalidInputError, ToolResultError
from mnesis.integrations._lazy import LazySession
from mnesis.models.config import MnesisConfig
from mnesis.models.message import MessagePart, MessageWithParts, TextPart, TokenUsage, ToolPart
from mnesis.session import MnesisSession
from mnesis.store.base import ContextEntry

ITEM_MARKER = "[openai-agents item]\n"
"""Starts the text of an item stored verbatim; the item's JSON follows."""
POP_MARKER = "[openai-agents: the item below was removed from the conversation]\n"
"""Starts the text recording a ``pop_item()``; the removed item's JSON follows."""
CLEAR_MARKER = "[openai-agents: the conversation was cleared here; what came before is stored]"
"""The text recording a ``clear_session()``."""
FIELDS_MARKER = "[openai-agents item fields] "
"""Starts the first line of a reply whose item has more than its text or call: the
item's other fields as JSON (a reasoning model's next request needs the ``id``
of the message or call that followed its reasoning item)."""

_USER_SIDE_ROLES = frozenset({"user", "system", "developer"})

Item = dict[str, Any]


class MnesisAgentsSession(LazySession):
    """An Agents SDK ``Session`` backed by a mnesis session.

    Construct it synchronously (the SDK's style); the mnesis session is
    created, or loaded when ``session_id`` exists, on first use. Close it with
    ``await close()`` or ``async with``.

    Args:
        session_id: The conversation's id; a stored one is resumed. Default: new.
        model: The model mnesis counts tokens for and compacts with (litellm string).
        db_path: Database file or URL (default ``~/.mnesis/sessions.db`` or ``MNESIS_DB_URL``).
        config: mnesis configuration (context limits, compaction thresholds, ...).
        system_prompt: Stored with a new session; the agent's instructions are its own.
        session: Use an open :class:`MnesisSession` instead (not closed by :meth:`close`).
        **options: Passed to ``MnesisSession.create``/``load`` (``provider=``, ``event_bus=``).
    """

    session_settings: Any = None  # the SDK's SessionSettings: none, so get_items sees no limit

    def __init__(
        self,
        session_id: str | None = None,
        *,
        model: str = "openai/gpt-4o",
        db_path: str | os.PathLike[str] | None = None,
        config: MnesisConfig | None = None,
        system_prompt: str = "You are a helpful assistant.",
        session: MnesisSession | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            session_id,
            model=model,
            db_path=db_path,
            config=config,
            system_prompt=system_prompt,
            session=session,
            **options,
        )
        self._writing = asyncio.Lock()  # a pop reads the tail, then writes: one at a time
        self._last_usage: tuple[object, TokenUsage] | None = None

    # -- the Session protocol ------------------------------------------------------

    async def get_items(self, limit: int | None = None, *, wrapper: Any = None) -> list[Item]:
        """The compaction-aware conversation as SDK input items, oldest first.

        Args:
            limit: Only the latest ``limit`` items (``None``: all of them).
            wrapper: The SDK's run context (accepted so it passes usage to ``add_items``).
        """
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidInputError(f"limit must be a non-negative int or None, not {limit!r}")
        session = await self.mnesis_session()
        items = decode_context(await session.context_for_next_turn())
        if limit is None:
            return items
        return items[len(items) - limit :] if limit else []

    async def add_items(self, items: list[Item], *, wrapper: Any = None) -> None:
        """Append items losslessly, in order; compaction starts as after any turn.

        With the SDK's run context (``wrapper``), the model usage since the last
        call is stored on the first reply of the batch.

        Raises:
            InvalidInputError: An item is not a JSON-serialisable dict.
        """
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            raise InvalidInputError("add_items takes a list of item dicts")
        for item in items:
            check_item(item)
        session = await self.mnesis_session()
        async with self._writing:
            usage = self._usage_since_last(wrapper)
            for item in items:
                if await _store_item(session, item, usage):
                    usage = TokenUsage() if usage is not None else None

    async def pop_item(self, *, wrapper: Any = None, hard_delete: bool = False) -> Item | None:
        """Remove the latest item from what the next turn sees and return it.

        The item stays in the log, followed by a record of its removal. With
        ``hard_delete=True`` it is erased from the store instead (a popped tool
        output takes its call's message with it; the call is stored again).
        ``None`` when there is nothing to pop.

        Raises:
            InvalidInputError: ``hard_delete=True`` and the item is not in the
                session's latest stored message (a soft pop or clear came after it).
        """
        session = await self.mnesis_session()
        async with self._writing:
            items = decode_context(await session.context_for_next_turn())
            if not items:
                return None
            last = items[-1]
            if hard_delete:
                await _erase_latest_item(session, last)
            else:
                await session.record_user(POP_MARKER + _dumps(last))
        return last

    async def clear_session(self, *, wrapper: Any = None, hard_delete: bool = False) -> None:
        """Start the conversation afresh: ``get_items()`` returns nothing until new items.

        The earlier items stay stored (``grep`` finds them) behind a pinned
        marker; with ``hard_delete=True`` every stored row of the session is
        erased instead and the session starts empty under the same id.
        """
        session = await self.mnesis_session()
        async with self._writing:
            if hard_delete:
                await self._erase_everything(session)
                return
            marker = await session.record_user(CLEAR_MARKER)
            await session.pin(marker)

    async def _erase_everything(self, session: MnesisSession) -> None:
        """Erase the session, then start an empty one under the same id."""
        opts = dict(self._create)
        if not self._owned:  # the session came from the caller: keep its settings
            config = session.config
            explicit = "db_path" in config.store.model_fields_set or bool(config.store.url)
            opts.update(
                model=session.model,
                system_prompt=session.system_prompt,
                config=config,
                db_path=None if explicit else session.db_url,
            )
        await session.erase()
        self._session = await MnesisSession.create(session_id=self.session_id, **opts)
        self._owned = True

    # -- usage ---------------------------------------------------------------------

    def _usage_since_last(self, wrapper: Any) -> TokenUsage | None:
        """The run's usage since the previous ``add_items`` of the same run, if given."""
        usage = getattr(wrapper, "usage", None)
        if usage is None:
            return None
        details = getattr(usage, "input_tokens_details", None)
        total = TokenUsage(
            input=int(getattr(usage, "input_tokens", 0) or 0),
            output=int(getattr(usage, "output_tokens", 0) or 0),
            cache_read=int(getattr(details, "cached_tokens", 0) or 0),
        )
        previous = self._last_usage
        self._last_usage = (usage, total)
        if previous is None or previous[0] is not usage:
            return total
        before = previous[1]
        return TokenUsage(
            input=max(total.input - before.input, 0),
            output=max(total.output - before.output, 0),
            cache_read=max(total.cache_read - before.cache_read, 0),
        )


# -- items → the log -------------------------------------------------------------------


def check_item(item: object) -> None:
    """Refuse what is not an item: a dict that JSON can store."""
    if not isinstance(item, dict):
        raise InvalidInputError(f"an item must be a dict, not {type(item).__name__}")
    try:
        json.dumps(item)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"an item must be JSON-serialisable: {exc}") from exc


async def _store_item(session: MnesisSession, item: Item, usage: TokenUsage | None) -> bool:
    """Store one item; True when it was stored as a reply (and so took ``usage``)."""
    text = _plain_text(item)
    kind = item.get("type")
    if text is not None and item.get("role") == "user":
        await session.record_user(text)
        return False
    if text is not None and item.get("role") == "assistant":
        await session.record_reply(text, tokens=usage)
        return True
    shaped = _output_message(item)
    if shaped is not None:
        await session.record_reply(_with_fields(shaped[1], shaped[0]), tokens=usage)
        return True
    if kind == "function_call":
        call = _tool_part(item)
        if call is not None:
            fields = {k: v for k, v in item.items() if k not in _CALL_KEYS}
            parts: list[MessagePart] = [call]
            if fields:
                parts.insert(0, TextPart(text=_with_fields(fields, "")))
            await session.record_reply(parts, tokens=usage, finish_reason="tool_calls")
            return True
    if kind == "function_call_output" and _is_plain_output(item):
        try:
            await session.record_tool_result(str(item["call_id"]), str(item["output"]))
            return False
        except ToolResultError:
            pass  # no pending call of that id (an unmapped call, or a popped output)
    verbatim = ITEM_MARKER + _dumps(item)
    if item.get("role") in _USER_SIDE_ROLES:
        await session.record_user(verbatim)
        return False
    await session.record_reply(verbatim, tokens=usage)
    return True


def _plain_text(item: Item) -> str | None:
    """The text of ``{"role": "user" | "assistant", "content": "..."}`` exactly, else None."""
    role, content = item.get("role"), item.get("content")
    if isinstance(content, str):
        plain = set(item) == {"role", "content"} and role in ("user", "assistant")
        return content if plain and content and not _looks_encoded(content) else None
    return None


def _output_message(item: Item) -> tuple[str, Item] | None:
    """An assistant output message with one ``output_text`` piece and no annotations:
    its text, and the item without that text (``id``, ``status``, ... kept)."""
    content = item.get("content")
    if item.get("role") != "assistant" or item.get("type") != "message":
        return None
    if not isinstance(content, list) or len(content) != 1 or not isinstance(content[0], dict):
        return None
    piece = content[0]
    text = piece.get("text")
    if piece.get("type") != "output_text" or piece.get("annotations"):
        return None
    if not isinstance(text, str) or not text or _looks_encoded(text):
        return None
    rest = {k: v for k, v in piece.items() if k != "text"}
    return text, {**item, "content": [rest]}


def _with_fields(fields: Item, text: str) -> str:
    return FIELDS_MARKER + _dumps(fields) + "\n" + text


def _split_fields(text: str) -> tuple[Item, str] | None:
    """``(fields, text)`` of a reply written by :func:`_with_fields`, else None."""
    if not text.startswith(FIELDS_MARKER):
        return None
    header, _, rest = text.partition("\n")
    fields = _loads(header[len(FIELDS_MARKER) :])
    return (fields, rest) if fields is not None else None


def _looks_encoded(text: str) -> bool:
    return text.startswith((ITEM_MARKER, POP_MARKER, CLEAR_MARKER, FIELDS_MARKER))


def _tool_part(item: Item) -> ToolPart | None:
    """A ``function_call`` whose arguments are a JSON object, as a pending tool call."""
    name, call_id, arguments = item.get("name"), item.get("call_id"), item.get("arguments")
    if not (isinstance(name, str) and name and isinstance(call_id, str) and call_id):
        return None
    if not isinstance(arguments, str):
        return None
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return ToolPart(tool_name=name, tool_call_id=call_id, input=parsed)


_CALL_KEYS = frozenset({"type", "call_id", "name", "arguments"})


def _is_plain_output(item: Item) -> bool:
    return isinstance(item.get("call_id"), str) and isinstance(item.get("output"), str)


def _dumps(item: Item) -> str:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


async def _erase_latest_item(session: MnesisSession, item: Item) -> None:
    """Delete the stored message holding ``item`` if it is the session's latest;
    the other items it held (a tool call whose output is erased) are stored again."""
    messages = await session.messages()
    latest = messages[-1] if messages else None
    held = _message_items(latest) if latest is not None and not latest.is_summary else []
    if latest is None or not held or held[-1] != item:
        raise InvalidInputError(
            "the latest item is not in the latest stored message (a pop or clear came "
            "after it); erase everything with clear_session(hard_delete=True)"
        )
    await session.erase_latest_message(latest.id)
    for kept in held[:-1]:
        await _store_item(session, kept, TokenUsage())


def _message_items(message: MessageWithParts) -> list[Item]:
    """The items one stored message stands for."""
    entry = ContextEntry(
        kind="message",
        ref_id=message.id,
        role=message.role,
        parts=tuple(message.parts),
        part_tokens=(0,) * len(message.parts),
    )
    return decode_context(render_entry(entry))


# -- the context → items ---------------------------------------------------------------


def decode_context(messages: list[dict[str, Any]]) -> list[Item]:
    """The items a mnesis context stands for, honouring pops and clears."""
    items: list[Item] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "tool":
            if content != NO_RESULT:  # a call the SDK has not answered yet
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": message["tool_call_id"],
                        "output": content,
                    }
                )
            continue
        text = content if isinstance(content, str) else ""
        calls: list[dict[str, Any]] = message.get("tool_calls") or []
        fields = _split_fields(text)
        if fields is not None and len(calls) == 1 and not fields[1]:
            items.append({**_call_item(calls[0]), **fields[0]})
            continue
        if fields is not None and not calls:
            shaped = fields[0]
            pieces = shaped.get("content")
            if isinstance(pieces, list) and len(pieces) == 1 and isinstance(pieces[0], dict):
                items.append({**shaped, "content": [{**pieces[0], "text": fields[1]}]})
                continue
        if text == CLEAR_MARKER:
            items.clear()
        elif text.startswith(POP_MARKER):
            popped = _loads(text[len(POP_MARKER) :])
            if items and popped is not None and items[-1] == popped:
                items.pop()
        elif text.startswith(ITEM_MARKER) and (item := _loads(text[len(ITEM_MARKER) :])):
            items.append(item)
        elif text:
            items.append({"role": role, "content": text})
        items.extend(_call_item(call) for call in calls)
    return items


def _call_item(call: dict[str, Any]) -> Item:
    return {
        "type": "function_call",
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": call["function"]["arguments"],
    }


def _loads(text: str) -> Item | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


__all__ = ["MnesisAgentsSession", "check_item", "decode_context"]
