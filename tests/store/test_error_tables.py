"""Every exception class a database driver defines is translated by its table.

The tables list rows most specific first and end in catch-alls; a class is
covered when a catch-all (a row without message texts) matches it by its MRO.
The important classes get their own checks: the mnesis error type and the
words of the message a user sees.
"""

from __future__ import annotations

import inspect
import sqlite3
from types import ModuleType

import pytest

from mnesis.errors import InvalidInputError, MnesisStoreError, StoreConstraintError
from mnesis.store.sql.errors import Rule
from mnesis.store.sqlite.errors import RULES as SQLITE_RULES
from mnesis.store.sqlite.errors import translate_error as sqlite_translate


def exception_classes(module: ModuleType) -> list[type[BaseException]]:
    """Every Exception subclass ``module`` defines or re-exports."""
    return [
        obj for _, obj in inspect.getmembers(module, inspect.isclass) if issubclass(obj, Exception)
    ]


def unmapped(classes: list[type[BaseException]], rules: tuple[Rule, ...]) -> list[str]:
    catch_alls = [rule.kind for rule in rules if not rule.texts]
    return [c.__qualname__ for c in classes if not any(issubclass(c, k) for k in catch_alls)]


# -- sqlite3 ---------------------------------------------------------------------


def test_every_sqlite3_exception_class_is_mapped() -> None:
    classes = exception_classes(sqlite3)
    assert {sqlite3.IntegrityError, sqlite3.OperationalError, sqlite3.Warning} <= set(classes)
    assert unmapped(classes, SQLITE_RULES) == []


@pytest.mark.parametrize("cls", exception_classes(sqlite3))
def test_each_sqlite3_class_becomes_a_mnesis_store_error(cls: type[Exception]) -> None:
    error = sqlite_translate(cls("boom"), "/tmp/x.db")
    assert isinstance(error, MnesisStoreError)
    assert "boom" in str(error)


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (sqlite3.IntegrityError("UNIQUE failed"), StoreConstraintError, "rejected by the schema"),
        (sqlite3.OperationalError("database is locked"), MnesisStoreError, "stayed locked"),
        (sqlite3.DatabaseError("file is not a database"), MnesisStoreError, "not a readable"),
        (sqlite3.DatabaseError("database disk image is malformed"), MnesisStoreError, "readable"),
        (sqlite3.OperationalError("unable to open database file"), MnesisStoreError, "cannot open"),
        (sqlite3.OperationalError("no such table: t"), MnesisStoreError, "SQLite error on"),
        (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates"), InvalidInputError, "UTF-8"),
    ],
)
def test_sqlite_errors_say_what_to_do(exc: Exception, kind: type, words: str) -> None:
    error = sqlite_translate(exc, "/tmp/x.db")
    assert type(error) is kind
    assert words in str(error)
    if kind is not InvalidInputError:
        assert "/tmp/x.db" in str(error)


def test_other_exceptions_are_not_sqlite_errors() -> None:
    assert sqlite_translate(KeyError("k"), "/tmp/x.db") is None
    assert sqlite_translate(ValueError("v"), "/tmp/x.db") is None


# -- asyncpg ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncpg() -> ModuleType:
    return pytest.importorskip("asyncpg")


def test_every_asyncpg_exception_class_is_mapped(asyncpg: ModuleType) -> None:
    from mnesis.store.postgres.errors import rules

    classes = exception_classes(asyncpg.exceptions)
    assert len(classes) > 200  # the SQLSTATE classes and the client's own
    assert unmapped(classes, rules()) == []


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("UniqueViolationError", StoreConstraintError, "rejected by the schema"),
        ("ForeignKeyViolationError", StoreConstraintError, "rejected by the schema"),
        ("CharacterNotInRepertoireError", InvalidInputError, "cannot store"),
        ("UntranslatableCharacterError", InvalidInputError, "cannot store"),
        ("NumericValueOutOfRangeError", InvalidInputError, "value PostgreSQL cannot store"),
        ("InvalidCatalogNameError", MnesisStoreError, "does not exist"),
        ("InvalidPasswordError", MnesisStoreError, "refused the login"),
        ("InvalidAuthorizationSpecificationError", MnesisStoreError, "refused the login"),
        ("ConnectionDoesNotExistError", MnesisStoreError, "cannot reach"),
        ("DeadlockDetectedError", MnesisStoreError, "PostgreSQL error on"),
        ("InterfaceError", MnesisStoreError, "PostgreSQL error on"),
        ("InternalClientError", MnesisStoreError, "PostgreSQL error on"),
    ],
)
def test_postgres_errors_say_what_to_do(
    asyncpg: ModuleType, name: str, kind: type, words: str
) -> None:
    from mnesis.store.postgres.errors import translate_error

    error = translate_error(getattr(asyncpg.exceptions, name)("boom"), "postgresql://u@h/d")
    assert type(error) is kind
    assert words in str(error) and "boom" in str(error)


def test_network_and_encoding_errors_on_postgres(asyncpg: ModuleType) -> None:
    from mnesis.store.postgres.errors import translate_error

    where = "postgresql://u@h/d"
    assert "cannot reach" in str(translate_error(ConnectionRefusedError("refused"), where))
    assert "cannot reach" in str(translate_error(TimeoutError("slow"), where))
    wrapped = asyncpg.exceptions.DataError("invalid input for query argument")
    wrapped.__cause__ = UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates")
    assert isinstance(translate_error(wrapped, where), InvalidInputError)
    assert translate_error(KeyError("k"), where) is None


def test_postgres_urls_are_redacted() -> None:
    from mnesis.store.postgres import redact_url

    assert (
        redact_url("postgresql://u:secret@db.example:5433/x") == "postgresql://u@db.example:5433/x"
    )
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
