"""How parts are serialised for storage."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mnesis.models.message import TextPart, part_to_json


@given(st.text())
def test_a_text_part_is_stored_as_its_full_dump_would_be(text: str) -> None:
    part = TextPart(text=text)
    dumped = json.dumps(
        part.model_dump(mode="json"), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )
    assert part_to_json(part) == dumped
    assert TextPart.model_validate_json(part_to_json(part)) == part
