"""The README's configuration table names every setting, by the variable that sets it,
with the default the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raypay.settings import Settings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def table_rows() -> dict[str, str]:
    """Variable name -> default cell, from the rows of README's Configuration table."""
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_…]+)`", cells[0])
        prefix = ""
        for name in names:
            if name.startswith("…"):  # `RAYPAY_RATE_LIMIT_PER_KEY`, `…_PER_KEY_BURST`
                name = prefix + name[1:]
            else:
                prefix = name.rsplit("_PER_", 1)[0] if "_PER_" in name else prefix
            rows[name] = cells[1]
    return rows


def env_name(field: str) -> str:
    return "RAYPAY_" + field.upper()


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    rows, defaults = table_rows(), Settings.model_construct()
    missing = [env_name(f) for f in Settings.model_fields if env_name(f) not in rows]
    assert not missing, f"README's Configuration table lacks {missing}"
    for field in Settings.model_fields:
        default = getattr(defaults, field)
        shown = re.findall(r"`([^`]*)`", rows[env_name(field)])
        if isinstance(default, bool):
            expected = str(default).lower()
        elif isinstance(default, dict):
            expected = "{}" if not default else None
        else:  # None: unset, the row says what that means
            expected = "" if default in ("", None) else str(default)
        if expected:
            assert expected in shown, f"{env_name(field)}: README says {shown}, code {expected}"


def test_no_row_names_a_setting_that_does_not_exist() -> None:
    known = {env_name(f) for f in Settings.model_fields} | {"REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}
    unknown = sorted(set(table_rows()) - known)
    assert not unknown, f"README documents {unknown}, which Settings does not read"
