"""Every exception mnesis raises, in one tree.

Callers catch :class:`MnesisError` to catch everything of ours. Mistakes in how
the API is used are also :class:`ValueError` so plain ``except ValueError``
works. Exceptions from drivers and SDKs (sqlite3, asyncpg, litellm) never leak
raw: the layer that talks to them translates them here, keeping the original as
``__cause__``.

::

    MnesisError
    ├── MnesisStoreError              storage failed (I/O, corruption, locking)
    │   ├── SchemaVersionError        the database is newer than this code
    │   ├── StoreConstraintError      (also ValueError) a write the schema rejects
    │   ├── StaleContextError         a compaction's span changed under it; nothing written
    │   ├── ForeignDatabaseError      the file is another application's; left untouched
    │   ├── LegacyMigrationError      a mnesis 0.4.0 database could not be migrated; left untouched
    │   └── SessionNotFoundError      (also KeyError) no session with that id
    │       └── DatabaseNotFoundError no database there at all; nothing was created
    ├── SessionClosedError            the session was closed; open or load a new one
    ├── ContextLimitError             the context cannot fit the usable budget; nothing was sent
    ├── ConfigError                   (also ValueError) an impossible configuration
    ├── InvalidInputError             (also ValueError) a malformed message or part
    │   └── UnknownIdError            (also KeyError) no summary/message/file with that id
    ├── ToolResultError               (also ValueError) a tool result that matches no pending call
    └── LLMError                      the model provider failed
        ├── LLMTransientError         worth retrying: rate limit, 5xx, timeout, connection
        └── LLMPermanentError         not worth retrying: auth, bad request, context overflow
"""

from __future__ import annotations


class MnesisError(Exception):
    """Root of every exception raised by mnesis."""


class MnesisStoreError(MnesisError):
    """The store could not complete an operation; nothing was half-written."""


class SchemaVersionError(MnesisStoreError):
    """The database schema is newer than this version of mnesis understands."""


class StoreConstraintError(MnesisStoreError, ValueError):
    """A write that the schema's constraints reject; nothing was written."""


class StaleContextError(MnesisStoreError):
    """The context items a summary was to replace are no longer where they were."""


class SessionNotFoundError(MnesisStoreError, KeyError):
    """No session with the given id exists in the store."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {session_id!r} in the store")
        self.session_id = session_id

    def __str__(self) -> str:
        return str(self.args[0])


class DatabaseNotFoundError(SessionNotFoundError):
    """No database at the given location; reading never creates one.

    A :class:`SessionNotFoundError` too, so "load, else create" code keeps
    working on a first run.
    """

    def __init__(self, where: str, *, empty: bool = False) -> None:
        state = "is an empty file" if empty else "does not exist"
        MnesisStoreError.__init__(self, f"database {where} {state} (nothing was created)")
        self.session_id = ""
        self.where = where


class ForeignDatabaseError(MnesisStoreError):
    """The file is not a mnesis database (or one of a release this one cannot read).

    It is recognised read-only and refused before anything writes to it.
    """


class LegacyMigrationError(MnesisStoreError):
    """A mnesis 0.4.0 database could not be migrated to this version's schema.

    The migration runs in one transaction, so the file is left as it was; the
    message says why, in one line.
    """


class SessionClosedError(MnesisError, RuntimeError):
    """The session was closed; further turns need a new ``load()``."""


class ContextLimitError(MnesisError):
    """The context could not be brought under the usable budget, so no request was sent.

    Compaction could not make room in time (or is switched off): the model is
    never sent a request larger than the budget. The user message stays stored.
    """


class ConfigError(MnesisError, ValueError):
    """A configuration that cannot work, such as a budget with no usable context."""


class InvalidInputError(MnesisError, ValueError):
    """A message, part or argument that mnesis cannot store or send."""


class UnknownIdError(InvalidInputError, KeyError):
    """An id that names nothing in this session."""

    def __init__(self, item_id: str, session_id: str) -> None:
        super().__init__(f"no summary, message or file with id {item_id!r} in session {session_id}")
        self.item_id = item_id

    def __str__(self) -> str:
        return str(self.args[0])


class ToolResultError(InvalidInputError):
    """A tool result that does not match a pending tool call of the session."""


class LLMError(MnesisError):
    """The model provider failed to produce a response."""

    transient: bool = False

    def __init__(self, message: str, *, provider_error: str | None = None) -> None:
        super().__init__(message)
        self.provider_error = provider_error


class LLMTransientError(LLMError):
    """A failure worth retrying: rate limit, server error, timeout, lost connection."""

    transient = True


class LLMPermanentError(LLMError):
    """A failure that a retry will not fix: authentication, bad request, overflow."""
