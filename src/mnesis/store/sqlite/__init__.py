"""The SQLite backend: :class:`SQLiteStore` over one database file."""

from mnesis.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
