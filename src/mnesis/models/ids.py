"""Identifiers: unique, and sorting by creation time."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    """A unique id like ``msg_0660fd5b99861c17e3bf7616a0`` that sorts by creation time."""
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(6)}"
