"""The README documents every setting the configuration reads."""

from __future__ import annotations

from pathlib import Path

from thumbnails.config import ENVIRONMENT

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_environment_variable_is_in_the_configuration_table() -> None:
    text = README.read_text()
    table = text[text.index("## Configuration"):]
    table = table[:table.index("\n## ", 1)]
    missing = [name for name in ENVIRONMENT if f"`{name}`" not in table]
    assert not missing, f"README's configuration table lacks {missing}"
