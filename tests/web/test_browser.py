"""The inspector in a real browser (headless Debian chromium through Playwright).

Each test opens the pages a person would, checks what they show against the
store, and keeps a screenshot in tests/web/artifacts/ for a person to look at.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Browser, Page
from web_builders import Built, Compacting, artifact

from mnesis.cli.main import main as cli
from mnesis.web import InspectorServer


async def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(url)
    return page, errors


def session_url(server: InspectorServer, built: Built, rest: str = "") -> str:
    return f"{server.url()}#/s/{built.session_id}{rest}"


async def test_the_sessions_page_lists_the_stored_session(
    browser: Browser, server: InspectorServer, built: Built
) -> None:
    page, errors = await open_page(browser, server.url())
    row = page.locator(f'#sessions tr[data-session="{built.session_id}"]')
    await row.wait_for()
    cells = await row.locator("td").all_inner_texts()
    assert cells[1] == "openai/gpt-4o-mini" and cells[2] == "12" and cells[3] == "24"
    assert cells[6] == "2"  # summaries
    await page.screenshot(path=artifact("sessions.png"), full_page=True)
    await page.fill('input[name="q"]', "zebra")
    await page.click('form.search button[type="submit"]')
    hit = page.locator("#search-results a").first
    await hit.wait_for()
    assert f"/s/{built.session_id}/turn/3" in (await hit.get_attribute("href") or "")
    await page.screenshot(path=artifact("sessions-search.png"), full_page=True)
    assert errors == []


async def test_the_chart_draws_thresholds_and_compaction_marks_at_their_turns(
    browser: Browser, server: InspectorServer, built: Built
) -> None:
    page, errors = await open_page(browser, session_url(server, built))
    await page.locator("#context-chart .compaction-mark").first.wait_for()
    overview = await server.inspector.overview(built.session_id)
    window = overview["window"]
    soft = page.locator("#context-chart line.threshold.soft")
    hard = page.locator("#context-chart line.threshold.hard")
    assert await soft.get_attribute("data-tokens") == str(window["soft"])
    assert await hard.get_attribute("data-tokens") == str(window["hard"])
    # soft sits below hard on screen: larger y
    assert float(await soft.get_attribute("y1") or 0) > float(await hard.get_attribute("y1") or 0)
    marks = page.locator("#context-chart .compaction-mark")
    turns = [
        int(await marks.nth(i).get_attribute("data-turn") or 0) for i in range(await marks.count())
    ]
    assert turns == built.compacted_after
    assert await marks.first.get_attribute("data-level") == "1"
    for kind in ("system", "summary", "messages", "tools"):
        assert await page.locator(f"#context-chart path.area.{kind}").count() == 1
    await page.screenshot(path=artifact("session.png"), full_page=True)
    assert errors == []


async def test_the_dag_has_the_nodes_the_store_has_and_a_click_describes_one(
    browser: Browser, server: InspectorServer, built: Built
) -> None:
    page, errors = await open_page(browser, session_url(server, built))
    nodes = page.locator("#dag .dag-node")
    await nodes.first.wait_for()
    drawn = {await nodes.nth(i).get_attribute("data-id") for i in range(await nodes.count())}
    dag = await server.inspector.dag(built.session_id)
    assert drawn == {n["id"] for n in dag["nodes"]} and len(drawn) == 2
    first = min(dag["nodes"], key=lambda n: n["first_seq"])
    await page.click(f'#dag .dag-node[data-id="{first["id"]}"]')
    detail = page.locator("#node-detail")
    await detail.locator(".originals .msg").first.wait_for()
    assert first["id"] in await detail.locator("h2").first.inner_text()
    assert await detail.locator(".originals .msg").count() == first["message_count"]
    assert "Zebra-9431" in await detail.inner_text()
    await page.screenshot(path=artifact("dag-node.png"), full_page=True)
    assert errors == []


async def test_expanding_a_summary_in_the_timeline_shows_its_originals(
    browser: Browser, server: InspectorServer, built: Built
) -> None:
    page, errors = await open_page(browser, session_url(server, built))
    card = page.locator(".summary-card").first
    await card.wait_for()
    originals = card.locator(".originals .msg")
    assert await originals.count() == 8
    assert not await originals.first.is_visible()
    await card.locator("button.expand").click()
    assert await originals.first.is_visible()
    assert [await originals.nth(i).get_attribute("data-seq") for i in range(8)] == [
        str(s) for s in range(1, 9)
    ]
    pinned = page.locator(f"#m-{built.pinned_id} .badge.pinned")
    assert await pinned.is_visible()
    pruned_or_tool = page.locator("details.tool").first
    assert await pruned_or_tool.count() == 1
    await card.screenshot(path=artifact("summary-expanded.png"))
    assert errors == []


async def test_a_grep_hit_links_to_its_turn_in_the_timeline(
    browser: Browser, server: InspectorServer, built: Built
) -> None:
    page, errors = await open_page(browser, session_url(server, built))
    await page.fill("#grep-input", "lighthouse keeper")
    await page.press("#grep-input", "Enter")
    hit = page.locator("#grep-results a.grep-hit").first
    await hit.wait_for()
    assert await hit.get_attribute("data-turn") == str(built.needle_turn)
    await hit.click()
    target = page.locator(".msg.highlight")
    await target.wait_for()
    assert await target.get_attribute("data-turn") == str(built.needle_turn)
    assert "Zebra-9431" in await target.inner_text()
    assert page.url.endswith(
        f"/turn/{built.needle_turn}?m={await hit.get_attribute('data-message')}"
    )
    await page.locator("#turn-panel .kv").wait_for()
    assert "Turn 3" in await page.locator("#turn-panel").inner_text()
    await page.screenshot(path=artifact("grep-landing.png"))
    assert errors == []


async def test_the_latest_turn_shows_exactly_the_context_the_model_receives(
    browser: Browser, server: InspectorServer, built: Built
) -> None:
    page, errors = await open_page(browser, session_url(server, built, "/turn/12"))
    context = page.locator("#context-now .ctx-msg")
    await context.first.wait_for()
    expected = (await server.inspector.context(built.session_id))["messages"]
    assert await context.count() == len(expected)
    assert "harbor-survey assistant" in await context.first.inner_text()
    assert "Goal: plan the harbor survey" in await page.locator("#context-now").inner_text()
    await page.locator("#turn-panel").screenshot(path=artifact("turn-context.png"))
    assert errors == []


async def test_a_wrong_token_gets_403_in_the_browser(
    browser: Browser, server: InspectorServer
) -> None:
    page = await browser.new_page()
    response = await page.goto(f"http://127.0.0.1:{server.port}/?token=guess")
    assert response is not None and response.status == 403
    assert "token" in await page.inner_text("body")


async def test_the_html_export_opens_from_disk_with_no_server(
    browser: Browser, built: Built, db_path: str, tmp_path: Path
) -> None:
    output = tmp_path / "session.html"
    command = ["export", "--db", db_path, "--html", built.session_id, "-o", str(output)]
    assert await asyncio.to_thread(cli, command) == 0  # the command runs its own loop
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(output.as_uri())
    marks = page.locator("#context-chart .compaction-mark")
    await marks.first.wait_for()
    assert await marks.count() == len(built.compacted_after)
    assert await page.locator("#dag .dag-node").count() == 2
    await page.fill("#grep-input", "zebra")
    await page.press("#grep-input", "Enter")
    await page.locator("#grep-results a.grep-hit").first.click()
    assert "Zebra-9431" in await page.locator(".msg.highlight").inner_text()
    assert all(url.startswith("file://") for url in requests), requests
    await page.screenshot(path=artifact("export.png"), full_page=True)
    assert errors == []


async def received_panel(page: Page, turn: int) -> tuple[list[str], list[str], str]:
    """The summaries and pruned tool calls the turn panel shows, and its verdict."""
    panel = page.locator(f'#received[data-turn="{turn}"]')
    await panel.locator(".check").wait_for()
    summaries = panel.locator('.ctx-item[data-kind="summary"]')
    pruned = panel.locator('.ctx-tool[data-state="pruned"]')
    return (
        [
            await summaries.nth(i).get_attribute("data-id") or ""
            for i in range(await summaries.count())
        ],
        [await pruned.nth(i).get_attribute("data-call") or "" for i in range(await pruned.count())],
        await panel.locator(".check").inner_text(),
    )


async def test_a_past_turn_shows_what_the_model_received_then(
    browser: Browser, compacting_server: InspectorServer, compacting: tuple[str, Compacting]
) -> None:
    _, built = compacting
    sid = built.session_id
    first = next(t for t, ids in sorted(built.summaries_after.items()) if ids)
    later = next(t for t, ids in sorted(built.summaries_after.items()) if len(ids) > 1)
    page, errors = await open_page(browser, f"{compacting_server.url()}#/s/{sid}/turn/{first}")
    summaries, pruned, verdict = await received_panel(page, first)
    assert summaries == [] and pruned == built.pruned_after[first - 1]
    assert "matches the tokens recorded for this turn" in verdict
    await page.locator("#turn-panel").screenshot(path=artifact("turn-before-compaction.png"))

    for turn in (first + 1, later + 1):
        await page.evaluate(f"location.hash = '#/s/{sid}/turn/{turn}'")
        summaries, pruned, verdict = await received_panel(page, turn)
        assert summaries == built.summaries_after[turn - 1]
        assert pruned == built.pruned_after[turn - 1] and pruned
        assert "matches the tokens recorded for this turn" in verdict
        tombstone = page.locator(f'#received .ctx-tool[data-call="{pruned[0]}"]')
        assert "pruned" in await tombstone.inner_text()
        reply = page.locator('#received .ctx-item[data-kind="reply"]')
        assert f"the reply of turn {turn}" in (await reply.text_content() or "")
    await page.evaluate("document.querySelector('.side').style.maxHeight = 'none'")  # all of it
    await page.locator("#turn-panel").screenshot(path=artifact("turn-after-compactions.png"))
    await page.screenshot(path=artifact("compacting-session.png"), full_page=True)
    assert errors == []
