"""The PostgreSQL backend: :class:`PostgresStore` over an asyncpg pool (loaded lazily)."""

from mnesis.store.postgres.errors import redact_url
from mnesis.store.postgres.store import PostgresStore

__all__ = ["PostgresStore", "redact_url"]
