"""The local web inspector: ``mnesis serve`` and ``mnesis export --html``.

A read-only view of a store for people: sessions, a session's timeline, its
context per turn, its summary DAG and recall. It sits above the session layer
and below the command line; nothing here is imported by ``import mnesis``.
"""

from mnesis.web.data import Inspector
from mnesis.web.export import export_html, render_html
from mnesis.web.server import InspectorServer, open_store, serve

__all__ = ["Inspector", "InspectorServer", "export_html", "open_store", "render_html", "serve"]
