"""Where a session's store lives, and one open store per database per process.

:func:`acquire_store` hands out one open store per database, reference-counted,
so many sessions on one file share a connection and its writer thread;
:func:`release_store` closes it when the last user is done. The URL's scheme
picks the backend: ``postgresql://`` (or ``postgres://``) opens a
:class:`PostgresStore`, shared per URL and event loop (a pool belongs to the
loop that made it); a path or ``sqlite:///path`` opens a :class:`SQLiteStore`.
Readers pass ``create=False``: a mistyped path then says the database does not
exist instead of leaving an empty one behind.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mnesis.errors import ConfigError, DatabaseNotFoundError, MnesisStoreError
from mnesis.models.config import StoreConfig
from mnesis.store.base import Store
from mnesis.store.postgres import PostgresStore, redact_url
from mnesis.store.sqlite import SQLiteStore
from mnesis.store.sqlite.errors import translate_error
from mnesis.store.sqlite.mnesis040 import (
    LegacyMigrationReport,
    dry_run_040_file,
    migrate_040_file,
)
from mnesis.store.sqlite.probe import FileKind, probe

ENV_VAR = "MNESIS_DB_URL"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def resolve_db_url(db_path: str | os.PathLike[str] | None, store: StoreConfig) -> str:
    """Which database to use: ``db_path``, else ``StoreConfig.url``, else an explicit
    ``StoreConfig.db_path``, else ``$MNESIS_DB_URL``, else ``~/.mnesis/sessions.db``."""
    if db_path is not None:
        return os.fspath(db_path)
    if store.url:
        return store.url
    if "db_path" in store.model_fields_set:
        return store.db_path
    return os.environ.get(ENV_VAR) or store.db_path


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return url.strip().lower().startswith(_POSTGRES_SCHEMES)


def _sqlite_path(url: str) -> str | None:
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or None
    if url.startswith("sqlite://"):
        return None
    if "://" in url:
        return None
    return url


def describe_location(url: str) -> tuple[str, int | None]:
    """Where ``url`` points, fit to show: ``(file path or URL without password,
    the file's size in bytes or None)``."""
    if is_postgres_url(url):
        return redact_url(url.strip()), None  # a server database: no file, no password
    path = _sqlite_path(url)
    if path is None or path == ":memory:" or "\0" in path:
        return url, None
    file = Path(os.path.expanduser(path))
    try:
        return str(file), file.stat().st_size
    except OSError:
        return str(file), None


_stores: dict[str, tuple[Store, int]] = {}
_guard = threading.Lock()  # guards the dict only; never held across an await


def _key(url: str) -> str:
    if is_postgres_url(url):
        return f"{url.strip()}#loop={id(asyncio.get_running_loop())}"
    path = _sqlite_path(url)
    if path is not None and path != ":memory:":
        return "sqlite:" + str(Path(os.path.expanduser(path)).resolve())
    return url


async def _open(url: str, config: StoreConfig, *, create: bool) -> Store:
    """A newly opened store for ``url``, the backend picked by its scheme."""
    if is_postgres_url(url):
        return await PostgresStore(url.strip(), timeout=config.connection_timeout).open()
    path = _sqlite_path(url)
    if path is None:
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"unsupported database URL scheme {scheme!r} (use a file path, sqlite:///path "
            "or postgresql://...)"
        )
    return await SQLiteStore(
        os.path.expanduser(path),  # noqa: ASYNC240 - string work, no I/O
        wal_mode=config.wal_mode,
        timeout=config.connection_timeout,
        create=create,
    ).open()


async def acquire_store(url: str, config: StoreConfig, *, create: bool = True) -> Store:
    """An open store for ``url``, shared with other sessions of this process.

    With ``create=False`` a SQLite file that does not exist yet is refused
    (``DatabaseNotFoundError``) rather than created.
    """
    if not url or not url.strip():
        raise ConfigError("store.db_path must not be empty")
    if "\0" in url:
        raise ConfigError("the database path or URL contains a NUL character")
    key = _key(url)
    with _guard:
        if key in _stores:
            store, count = _stores[key]
            if store.serves_running_loop():
                _stores[key] = (store, count + 1)
                return store
            del _stores[key]  # a pool of a finished event loop (its id was reused)
    new = await _open(url, config, create=create)
    if not is_postgres_url(url) and _sqlite_path(url) == ":memory:":
        return new  # private to its user: nothing to share
    with _guard:
        if key in _stores:  # another task opened it meanwhile: share theirs
            store, count = _stores[key]
            _stores[key] = (store, count + 1)
        else:
            _stores[key] = (new, 1)
            return new
    await new.close()
    return store


async def open_read_only(url: str, config: StoreConfig) -> Store:
    """A store for ``url`` that only reads, for viewers (the inspector, the MCP
    server): nothing is created, switched to WAL or migrated; close it when done.

    Raises:
        DatabaseNotFoundError: There is no mnesis database there.
        MnesisStoreError: It cannot be read as it is (an older schema, say).
    """
    if not url or not url.strip():
        raise ConfigError("the database path or URL is empty")
    if "\0" in url:
        raise ConfigError("the database path or URL contains a NUL character")
    if is_postgres_url(url):
        try:
            return await _open(_read_only_dsn(url), config, create=False)
        except MnesisStoreError as exc:
            # Opening migrates a blank or older schema: refused by the server here.
            if type(exc.__cause__).__name__ != "ReadOnlySQLTransactionError":
                raise
            raise MnesisStoreError(
                f"{describe_location(url)[0]} has no mnesis schema, or an older one, and "
                "this viewer only reads: open it once with mnesis (a session, say) first"
            ) from exc
    path = _sqlite_path(url)
    if path is None:
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"unsupported database URL scheme {scheme!r} (use a file path, sqlite:///path "
            "or postgresql://...)"
        )
    if path == ":memory:":
        raise ConfigError("an in-memory database holds no stored sessions to read")
    return await SQLiteStore(
        os.path.expanduser(path),  # noqa: ASYNC240 - string work, no I/O
        wal_mode=False,
        timeout=config.connection_timeout,
        create=False,
        read_only=True,
    ).open()


def _read_only_dsn(url: str) -> str:
    """``url`` with every transaction of its connections read-only (a server setting)."""
    parts = urlsplit(url.strip())
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k != "default_transaction_read_only"
    ]
    query.append(("default_transaction_read_only", "on"))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def release_store(store: Store) -> None:
    """Give back a store from :func:`acquire_store`; the last release closes it."""
    with _guard:
        for key, (held, count) in list(_stores.items()):
            if held is store:
                if count > 1:
                    _stores[key] = (held, count - 1)
                    return
                del _stores[key]
                break
    await store.close()


async def migrate_040(
    db_path: str | os.PathLike[str] | None = None,
    *,
    dry_run: bool = False,
    config: StoreConfig | None = None,
) -> LegacyMigrationReport:
    """Migrate a mnesis 0.4.0 database in place, or (``dry_run``) report what that
    would carry over and change nothing.

    Opening a 0.4.0 file migrates it anyway; this does it on demand. The database
    is found as sessions find theirs (``db_path``, then ``config``, then
    ``$MNESIS_DB_URL``, then ``~/.mnesis/sessions.db``). A file that is ours
    already is left alone (``migrated=False``); a missing one is a
    ``DatabaseNotFoundError``, another application's a ``ForeignDatabaseError``,
    a failed migration a ``LegacyMigrationError`` (the file left untouched).
    """
    url = resolve_db_url(db_path, config or StoreConfig())
    timeout = (config or StoreConfig()).connection_timeout
    if is_postgres_url(url):
        raise ConfigError(
            "mnesis 0.4.0 kept its sessions in SQLite files only; give the path of one"
        )
    path = _sqlite_path(url)
    if path is None or path == ":memory:":
        raise ConfigError(f"{url!r} is not a database file")
    return await asyncio.to_thread(_migrate_040_sync, path, dry_run, timeout)


def _migrate_040_sync(where: str, dry_run: bool, timeout: float) -> LegacyMigrationReport:
    path = Path(os.path.expanduser(where))
    if dry_run:
        return dry_run_040_file(path, timeout)  # reads a copy: leaves even the folder as it was
    try:
        kind = probe(path, timeout)
    except Exception as exc:
        error = translate_error(exc, str(path))
        if error is None:
            raise
        raise error from exc
    if kind in (FileKind.MISSING, FileKind.EMPTY):
        raise DatabaseNotFoundError(str(path), empty=kind is FileKind.EMPTY)
    if kind is FileKind.MNESIS:
        return LegacyMigrationReport(str(path), migrated=False)
    return migrate_040_file(path, timeout)
