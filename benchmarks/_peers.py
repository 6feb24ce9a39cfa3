"""Peers of mnesis on SQLite, driven through their public APIs (used by ``limits.py``).

Each peer stores the same turns (a user message and the assistant's reply),
one write per turn, then a fresh object reads the whole history back:

- the OpenAI Agents SDK's ``agents.memory.SQLiteSession``: ``add_items([user,
  assistant])`` per turn, ``get_items()`` to read;
- LangGraph's SQLite checkpointer (``AsyncSqliteSaver``) under a one-node
  ``StateGraph`` whose state is a ``messages`` list with the ``add_messages``
  reducer: ``ainvoke`` per turn with the user message, the node answering with
  the assistant's, ``aget_state`` to read.

Both peers open their files in WAL mode with SQLite's default
``synchronous=FULL`` (an fsync of the log per commit); mnesis uses
``synchronous=NORMAL``. ``synchronous_normal=True`` runs a peer with mnesis's
setting, so the comparison is at equal durability too.

The packages are the ``bench`` extra: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

INSTALL_HINT = 'pip install -e ".[bench]"  (openai-agents, langgraph, langgraph-checkpoint-sqlite)'
_MODULES = {
    "agents": "openai-agents",
    "langgraph": "langgraph",
    "langgraph.checkpoint.sqlite": "langgraph-checkpoint-sqlite",
    "aiosqlite": "aiosqlite",
}
PACKAGES = ("openai-agents", "langgraph", "langgraph-checkpoint-sqlite", "aiosqlite")


def missing() -> list[str]:
    """The peer packages that are not installed."""
    out = []
    for module, package in _MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package is missing
            found = False
        if not found:
            out.append(package)
    return out


def versions() -> dict[str, str]:
    """Installed versions of the peer packages."""
    return {name: importlib.metadata.version(name) for name in PACKAGES}


@dataclass(frozen=True)
class PeerRun:
    """One peer's run: seconds per write (one per turn) and the read-back."""

    write_s: list[float]
    read_s: float  # open a fresh handle and read the whole history
    items: int  # messages read back


async def openai_agents(
    path: Path, turns: Sequence[tuple[str, str]], *, synchronous_normal: bool
) -> PeerRun:
    """``SQLiteSession.add_items`` per turn, then ``get_items`` on a fresh session."""
    from agents.memory import SQLiteSession

    session_cls: type[SQLiteSession] = SQLiteSession
    if synchronous_normal:
        session_cls = _normal_sync_agents_session()
    session = session_cls("bench", path)
    times = []
    try:
        for user, assistant in turns:
            items: list[Any] = [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
            began = time.perf_counter()
            await session.add_items(items)
            times.append(time.perf_counter() - began)
    finally:
        session.close()
    began = time.perf_counter()
    reader = session_cls("bench", path)
    try:
        got = await reader.get_items()
        read = time.perf_counter() - began
    finally:
        reader.close()
    assert len(got) == 2 * len(turns), len(got)
    return PeerRun(times, read, len(got))


def _normal_sync_agents_session() -> Any:
    from agents.memory import SQLiteSession

    class NormalSyncSQLiteSession(SQLiteSession):
        """``SQLiteSession`` whose connections use ``synchronous=NORMAL``."""

        def _get_connection(self) -> Any:
            conn = super()._get_connection()
            if getattr(self._local, "tuned", None) is not conn:  # once per thread's connection
                conn.execute("PRAGMA synchronous=NORMAL")
                self._local.tuned = conn
            return conn

    return NormalSyncSQLiteSession


async def langgraph(
    path: Path, turns: Sequence[tuple[str, str]], *, synchronous_normal: bool
) -> PeerRun:
    """A one-node graph checkpointed to SQLite, invoked once per turn."""
    import aiosqlite
    from langchain_core.messages import AIMessage, HumanMessage

    reply = [""]
    config: Any = {"configurable": {"thread_id": "bench"}}
    times = []
    conn = await aiosqlite.connect(path)
    try:
        graph = await _graph(conn, reply, synchronous_normal)
        for user, assistant in turns:
            reply[0] = assistant
            began = time.perf_counter()
            await graph.ainvoke({"messages": [HumanMessage(content=user)]}, config)
            times.append(time.perf_counter() - began)
    finally:
        await conn.close()
    began = time.perf_counter()
    conn = await aiosqlite.connect(path)
    try:
        graph = await _graph(conn, reply, synchronous_normal)
        state = await graph.aget_state(config)
        messages = state.values["messages"]
        read = time.perf_counter() - began
    finally:
        await conn.close()
    assert len(messages) == 2 * len(turns) and isinstance(messages[-1], AIMessage)
    return PeerRun(times, read, len(messages))


async def _graph(conn: Any, reply: list[str], synchronous_normal: bool) -> Any:
    from langchain_core.messages import AIMessage
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages

    # The functional form: LangGraph reads the reducer from real annotations.
    State = TypedDict(  # noqa: UP013
        "State", {"messages": Annotated[list[Any], add_messages]}
    )

    def model(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage(content=reply[0])]}

    if synchronous_normal:
        await conn.execute("PRAGMA synchronous=NORMAL")
    saver = AsyncSqliteSaver(conn)
    await saver.setup()
    builder = StateGraph(State)
    builder.add_node("model", model)
    builder.add_edge(START, "model")
    builder.add_edge("model", END)
    return builder.compile(checkpointer=saver)
