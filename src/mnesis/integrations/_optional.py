"""Import a framework only when its integration is used, with an install hint.

``import mnesis`` must stay light: a user of one framework should never pay
for (or need) another's import. Each integration calls :func:`require` at the
moment it needs its framework; a missing package is then a clear
:class:`~mnesis.errors.ConfigError` naming the extra to install, not an
``ImportError`` from deep inside a module nobody asked for.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mnesis.errors import ConfigError


def install_hint(extra: str) -> str:
    """The command that installs an extra: ``pip install 'mnesis[agents]'``."""
    return f"pip install 'mnesis[{extra}]'"


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise a :class:`ConfigError` saying which extra provides it.

    Args:
        module: The dotted module name, e.g. ``"agents"``.
        extra: The mnesis extra that installs it, e.g. ``"agents"``.

    Raises:
        ConfigError: The module (or one it needs) is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"this integration needs the {module!r} package ({exc}): {install_hint(extra)}"
        ) from exc
