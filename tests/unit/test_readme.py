"""The README documents every setting the configuration reads."""

from __future__ import annotations

import re
from pathlib import Path

from thumbnails.core.config import ENVIRONMENT
from thumbnails.local.broker import settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_environment_variable_is_in_the_configuration_table() -> None:
    text = README.read_text()
    table = text[text.index("## Configuration"):]
    table = table[:table.index("\n## ", 1)]
    missing = [name for name in (*ENVIRONMENT, *settings.ENVIRONMENT)
               if f"`{name}`" not in table]
    assert not missing, f"README's configuration table lacks {missing}"


def test_every_curl_download_fails_on_an_error_status() -> None:
    """A curl that saves an answer to a file (--output / -o) has --fail, so a 404 or 409
    makes it exit non-zero instead of writing the JSON error as the image."""
    saving = [line for line in README.read_text().splitlines()
              if line.lstrip().startswith("curl ") and re.search(r"(--output|-o)\s", line)]
    assert saving, "the README shows no curl download any more"
    lacking = [line for line in saving if not re.search(r"(--fail|-f)\b", line)]
    assert not lacking, f"curl downloads without --fail: {lacking}"
