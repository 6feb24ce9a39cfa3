"""Jinja2 prompt templates that must reference ``item``, checked before any call."""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from mnesis.errors import InvalidInputError

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def compile_template(source: str) -> jinja2.Template:
    """Parse ``source``; a syntax error or a template without ``item`` is a ValueError."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidInputError("the prompt template must be a non-empty string")
    try:
        parsed = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInputError(f"prompt template has a syntax error: {exc}") from exc
    if "item" not in meta.find_undeclared_variables(parsed):
        raise InvalidInputError(
            "the prompt template must reference 'item' ({{ item }}, {{ item.x }} or "
            "{{ item['x'] }}); otherwise every call would get the same prompt"
        )
    return _ENV.from_string(source)


def render(template: jinja2.Template, item: Any) -> str:
    """The prompt for one item; a missing attribute is a ValueError naming it."""
    try:
        return template.render(item=item)
    except jinja2.UndefinedError as exc:
        raise InvalidInputError(f"prompt template failed for item {item!r:.100}: {exc}") from exc
