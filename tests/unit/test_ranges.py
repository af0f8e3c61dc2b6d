"""thumbnails.core.ranges: the one rule for whole numbers in a range (form fields, query
parameters, event options)."""

from __future__ import annotations

import pytest

from thumbnails.core.errors import BadRequest
from thumbnails.core.ranges import integer_in


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("100", 100), (" 42 ", 42), (7, 7),
                                               ("007", 7)])
def test_integers_in_range(raw: object, expected: int) -> None:
    assert integer_in(raw, "width", 1, 100) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "+5", "1e2", "5.0", "", " ", "1 0", "٣",
                                 "²", True, None, "0x10"])
def test_anything_else_is_refused_with_its_name_and_range(raw: object) -> None:
    with pytest.raises(BadRequest) as refused:
        integer_in(raw, "width", 1, 100)
    assert refused.value.message == f"width must be an integer from 1 to 100 (got {raw!r})"
