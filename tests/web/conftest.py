"""Fixtures of the web inspector's tests: a known session, the server over it,
and headless Debian chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright
from web_builders import Built, build_session

from mnesis.store import release_store
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
        await release_store(store)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()
