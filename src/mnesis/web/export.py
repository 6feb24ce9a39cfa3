"""``mnesis export --html``: the session page as one file that opens from disk.

The same page as ``mnesis serve`` shows, with its stylesheet, script and all
the data it would fetch inlined, so the file needs no server, no network and
no token. The embedded JSON is escaped so stored text cannot close its
``<script>`` element.
"""

from __future__ import annotations

import json
from typing import Any

from mnesis.web.data import Inspector
from mnesis.web.server import asset


def _script_json(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))
    # Inside <script>, "</" could end the element and "<!--" start a comment.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_html(data: dict[str, Any]) -> str:
    """The self-contained page for data from :meth:`Inspector.export`."""
    page = asset("index.html")
    page = page.replace(
        '<link rel="icon" href="/static/favicon.svg?token={{TOKEN}}">\n',
        "",
    )
    page = page.replace(
        '<link rel="stylesheet" href="/static/app.css?token={{TOKEN}}">',
        f"<style>\n{asset('app.css')}</style>",
    )
    code = asset("app.js").replace("</script", "<\\/script")
    script = (
        f"<script>window.MNESIS_EXPORT = {_script_json(data)};</script>\n<script>\n{code}</script>"
    )
    page = page.replace('<script src="/static/app.js?token={{TOKEN}}"></script>', script)
    return page.replace(' data-token="{{TOKEN}}"', "")


async def export_html(inspector: Inspector, session_id: str) -> str:
    """One session's page as a single HTML file's text."""
    return render_html(await inspector.export(session_id))
