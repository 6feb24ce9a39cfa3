"""Fixtures of the web inspector's tests: a known session, the server over it,
and headless Debian chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright
from web_builders import Built, Compacting, build_compacting_session, build_session

from mnesis.web import InspectorServer, open_store

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
async def built(db_path: str) -> Built:
    return await build_session(db_path)


@pytest.fixture
async def server(built: Built, db_path: str) -> AsyncIterator[InspectorServer]:
    store = await open_store(db_path)
    inspector = InspectorServer(store)
    await inspector.start("127.0.0.1", 0)
    try:
        yield inspector
    finally:
        await inspector.close()
        await store.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def compacting(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Compacting]:
    """A session that pruned and summarised several times: its database and record."""
    db = str(tmp_path_factory.mktemp("compacting") / "compacting.db")
    return db, await build_compacting_session(db)


@pytest.fixture
async def compacting_server(
    compacting: tuple[str, Compacting],
) -> AsyncIterator[InspectorServer]:
    store = await open_store(compacting[0])
    inspector = InspectorServer(store)
    await inspector.start("127.0.0.1", 0)
    try:
        yield inspector
    finally:
        await inspector.close()
        await store.close()
