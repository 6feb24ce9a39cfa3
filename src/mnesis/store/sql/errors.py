"""Driver errors to mnesis errors, through a table per driver.

A backend lists :class:`Rule` rows in order, most specific first; the first
row whose class matches (and whose text, when it names some, appears in the
driver's message) makes the mnesis error. A class no row matches is not a
driver error and passes through untouched. The messages the rows make are
shared here, so both backends say the same thing about the same trouble.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mnesis.errors import InvalidInputError, MnesisError, MnesisStoreError, StoreConstraintError

# (the driver's message, where: a path or a URL without password) -> the mnesis error
MakeError = Callable[[str, str], MnesisError]


@dataclass(frozen=True, slots=True)
class Rule:
    """Errors of ``kind`` (or, with ``via_cause``, caused by one) become ``make(...)``."""

    kind: type[BaseException]
    make: MakeError
    texts: tuple[str, ...] = ()
    via_cause: bool = False

    def matches(self, exc: BaseException, text: str) -> bool:
        hit = isinstance(exc, self.kind) or (
            self.via_cause and isinstance(exc.__cause__, self.kind)
        )
        return hit and (not self.texts or any(t in text for t in self.texts))


def translate(rules: Iterable[Rule], exc: BaseException, where: str) -> MnesisError | None:
    """The mnesis error for ``exc``, or None when no rule knows it."""
    text = str(exc)
    for rule in rules:
        if rule.matches(exc, text):
            return rule.make(text, where)
    return None


def not_utf8(text: str, where: str) -> MnesisError:
    return InvalidInputError(
        "text contains characters that cannot be stored as UTF-8 (a lone surrogate, "
        f"as os.fsdecode() makes from undecodable file names): {text}"
    )


def constraint(text: str, where: str) -> MnesisError:
    return StoreConstraintError(f"rejected by the schema of {where}: {text}")


def store_error(prefix: str) -> MakeError:
    """A maker of ``MnesisStoreError("<prefix, formatted with where>: <text>")``."""

    def make(text: str, where: str) -> MnesisError:
        return MnesisStoreError(prefix.replace("{where}", where) + ": " + text)

    return make


def invalid_input(prefix: str) -> MakeError:
    """A maker of ``InvalidInputError("<prefix>: <text>")``."""

    def make(text: str, where: str) -> MnesisError:
        return InvalidInputError(f"{prefix}: {text}")

    return make
