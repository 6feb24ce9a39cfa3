"""The inspector's HTTP server: the token, read-only access, the JSON it serves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from web_builders import Built, Compacting, http_get

from mnesis.errors import DatabaseNotFoundError
from mnesis.web import InspectorServer, open_store
from mnesis.web.data import Inspector


def base(server: InspectorServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def api(server: InspectorServer, path: str) -> object:
    sep = "&" if "?" in path else "?"
    status, body = await http_get(f"{base(server)}/api{path}{sep}token={server.token}")
    assert status == 200, body
    return json.loads(body)


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/app.css", "/api/sessions"])
async def test_every_request_without_the_right_token_is_forbidden(
    server: InspectorServer, path: str
) -> None:
    for query in ("", "?token=", "?token=wrong", f"?token={server.token[:-1]}"):
        status, body = await http_get(base(server) + path + query)
        assert status == 403, (path, query)
        assert b"token" in body
    status, _ = await http_get(f"{base(server)}{path}?token={server.token}")
    assert status == 200


async def test_the_printed_url_carries_a_fresh_random_token(server: InspectorServer) -> None:
    assert server.url().startswith(f"http://127.0.0.1:{server.port}/?token=")
    assert len(server.token) >= 24
    status, page = await http_get(server.url())
    assert status == 200 and server.token.encode() in page  # the page's assets carry it on
    other = InspectorServer(server.inspector.store)
    assert other.token != server.token


async def test_the_inspector_refuses_writes_and_unknown_paths(server: InspectorServer) -> None:
    status, _ = await http_get(f"{base(server)}/api/sessions?token={server.token}", "POST")
    assert status == 405
    status, _ = await http_get(f"{base(server)}/static/../server.py?token={server.token}")
    assert status == 404
    status, body = await http_get(f"{base(server)}/api/s/sess_nope?token={server.token}")
    assert status == 404 and b"sess_nope" in body
    status, body = await http_get(f"{base(server)}/api/s/x/timeline?page=abc&token={server.token}")
    assert status in (400, 404)


async def test_bad_queries_get_a_clear_error(server: InspectorServer, built: Built) -> None:
    sid = built.session_id
    for path, words in (
        (f"/api/s/{sid}/timeline?page=99", b"out of range"),
        (f"/api/s/{sid}/timeline?page=x", b"whole number"),
        (f"/api/s/{sid}/grep?q=%20", b"needs some text"),
        (f"/api/s/{sid}/turn/999", b"out of range"),
        (f"/api/s/{sid}/received/0", b"out of range"),
        (f"/api/s/{sid}/received/13", b"out of range"),
        ("/api/search", b"?q="),
    ):
        sep = "&" if "?" in path else "?"
        status, body = await http_get(f"{base(server)}{path}{sep}token={server.token}")
        assert status == 400, path
        assert words in body, body


async def test_serving_leaves_the_database_file_as_it_was(
    server: InspectorServer, built: Built, db_path: str
) -> None:
    before = hashlib.sha256(Path(db_path).read_bytes()).hexdigest()
    sid = built.session_id
    for path in (
        "/sessions",
        "/search?q=zebra",
        f"/s/{sid}",
        f"/s/{sid}/chart",
        f"/s/{sid}/timeline?page=1",
        f"/s/{sid}/dag",
        f"/s/{sid}/grep?q=lighthouse",
        f"/s/{sid}/context",
        f"/s/{sid}/turn/5",
        f"/s/{sid}/received/7",
    ):
        await api(server, path)
    assert hashlib.sha256(Path(db_path).read_bytes()).hexdigest() == before


async def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(DatabaseNotFoundError):
        await open_store(str(missing))
    assert not missing.exists()


async def test_the_chart_marks_compaction_after_the_turns_it_ran(
    server: InspectorServer, built: Built
) -> None:
    chart = await api(server, f"/s/{built.session_id}/chart")
    assert isinstance(chart, dict)
    assert [m["turn"] for m in chart["compactions"]] == built.compacted_after
    assert {m["level"] for m in chart["compactions"]} == {1}
    assert chart["window"]["soft"] == int(chart["window"]["usable"] * 0.6)
    assert [p["turn"] for p in chart["points"]] == list(range(1, 13))


async def test_the_timeline_tags_turns_summaries_and_pins(
    server: InspectorServer, built: Built
) -> None:
    page = await api(server, f"/s/{built.session_id}/timeline?turn=3")
    assert isinstance(page, dict)
    messages = page["messages"]
    assert [m["turn"] for m in messages] == [t for t in range(1, 13) for _ in (0, 1)]
    needle = next(m for m in messages if "Zebra-9431" in json.dumps(m["parts"]))
    assert needle["turn"] == built.needle_turn and needle["covered_by"] in page["summaries"]
    assert [m["id"] for m in messages if m["pinned"]] == [built.pinned_id]
    tools = [p for m in messages for p in m["parts"] if p["type"] == "tool"]
    assert tools and all(p["name"] == "tide_table" for p in tools)


async def test_the_dag_lists_the_nodes_the_store_has(server: InspectorServer, built: Built) -> None:
    store = server.inspector.store
    dag = await api(server, f"/s/{built.session_id}/dag")
    assert isinstance(dag, dict)
    for node in dag["nodes"]:
        stored = await store.get_summary(node["id"])
        assert (node["kind"], node["depth"], node["first_seq"], node["last_seq"]) == (
            stored.kind,
            stored.depth,
            stored.first_seq,
            stored.last_seq,
        )
    (info,) = await store.list_sessions(built.session_id)
    assert len(dag["nodes"]) == info.summaries


def test_serve_binds_the_loopback_address_by_default() -> None:
    from mnesis.cli.main import build_parser

    args = build_parser().parse_args(["serve", "--db", "x.db"])
    assert (args.host, args.port, args.db) == ("127.0.0.1", 8765, "x.db")
    args = build_parser().parse_args(["export", "sess_1", "--html"])
    assert args.html is True


async def test_serve_prints_a_url_that_answers_and_stops_when_told(
    built: Built, db_path: str
) -> None:
    import asyncio

    from mnesis.web import serve

    stop, listening = asyncio.Event(), asyncio.Event()
    urls: list[str] = []

    def ready(url: str) -> None:
        urls.append(url)
        listening.set()

    task = asyncio.create_task(serve(db_path, port=0, ready=ready, stop=stop))
    await listening.wait()
    status, page = await http_get(urls[0])
    assert urls[0].startswith("http://127.0.0.1:") and status == 200 and b"app.js" in page
    stop.set()
    await task


async def test_every_turns_rebuilt_context_matches_the_tokens_recorded_for_it(
    server: InspectorServer, built: Built
) -> None:
    for turn in range(1, 13):
        received = await api(server, f"/s/{built.session_id}/received/{turn}")
        assert isinstance(received, dict)
        assert received["check"]["matches"], (turn, received["check"])
        for kind in received["check"]["kinds"].values():  # each kind, not only the total
            assert kind["rebuilt"] == kind["recorded"], (turn, received["check"])
        summaries = received["summaries"]
        assert len(summaries) == sum(turn > after for after in built.compacted_after)


async def test_a_past_turn_shows_the_summaries_and_pruned_outputs_in_effect_then(
    compacting_server: InspectorServer, compacting: tuple[str, Compacting]
) -> None:
    _, built = compacting
    seen_pruned = seen_summaries = False
    for turn in range(1, len(built.summaries_after) + 1):
        received = await api(compacting_server, f"/s/{built.session_id}/received/{turn}")
        assert isinstance(received, dict)
        # what the store's view held once the turn before was done is what this turn had
        assert received["summaries"] == built.summaries_after.get(turn - 1, [])
        assert received["pruned"] == built.pruned_after.get(turn - 1, [])
        assert received["check"]["matches"], (turn, received["check"])
        shown = [
            call
            for item in received["items"]
            for call, state in item["tools"].items()
            if state == "pruned"
        ]
        assert shown == received["pruned"]
        seen_pruned |= bool(received["pruned"])
        seen_summaries |= len(received["summaries"]) > 1
    assert seen_pruned and seen_summaries  # the session did compact several times


async def test_a_turn_before_a_compaction_has_the_messages_it_later_summarised(
    compacting_server: InspectorServer, compacting: tuple[str, Compacting]
) -> None:
    _, built = compacting
    first = next(t for t, ids in sorted(built.summaries_after.items()) if ids)
    (node_id,) = built.summaries_after[first]
    node = await compacting_server.inspector.store.get_summary(node_id)
    sid = built.session_id
    before = await api(compacting_server, f"/s/{sid}/received/{first}")
    after = await api(compacting_server, f"/s/{sid}/received/{first + 1}")
    assert isinstance(before, dict) and isinstance(after, dict)
    verbatim = {i["seq"] for i in before["items"] if i["kind"] == "message"}
    assert set(range(node.first_seq, node.last_seq + 1)) <= verbatim
    assert before["summaries"] == [] and after["summaries"] == [node_id]
    assert not {i["seq"] for i in after["items"] if i["kind"] == "message"} & set(
        range(node.first_seq, node.last_seq + 1)
    )
    text = json.dumps(after["items"][0]["messages"])
    assert node_id in text and "lcm_expand" in text  # rendered as the context renders it


class CountingStore:
    """A store that counts the reads that load message bodies."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.body_reads: list[str] = []

    def __getattr__(self, name: str) -> object:
        found = getattr(self._store, name)
        if name in ("get_messages", "scan_messages", "get_messages_by_id", "get_message"):
            self.body_reads.append(name)
        return found


async def test_a_first_visit_reads_no_message_bodies_but_the_timeline_pages(
    built: Built, db_path: str
) -> None:
    store = await open_store(db_path)
    try:
        counting = CountingStore(store)
        inspector = Inspector(counting)  # type: ignore[arg-type]
        sid = built.session_id
        overview = await inspector.overview(sid)
        chart = await inspector.chart(sid)
        dag = await inspector.dag(sid)
        assert overview["turns"] == 12 and len(chart["points"]) == 12 and len(dag["nodes"]) == 2
        assert counting.body_reads == []
        await inspector.timeline(sid, 1)
        assert counting.body_reads == ["scan_messages"]
    finally:
        await store.close()
