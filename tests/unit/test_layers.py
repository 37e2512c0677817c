"""The layers hold: import-linter's contracts (pyproject.toml, [tool.importlinter]) on
the whole tree, and the layout the README's code map describes."""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(no_cache=True, no_logo=True) == 0


def test_the_contracts_name_every_layer():
    text = (ROOT / "pyproject.toml").read_text()
    for source in ("raypay.domain", "raypay.adapters", "raypay.tools", "actors"):
        assert f'source_modules = ["{source}"]' in text


def test_every_package_folder_is_in_the_readme_code_map():
    readme = (ROOT / "README.md").read_text()
    code_map = readme[readme.index("## Where the code lives") :]
    code_map = code_map[: code_map.index("\n## ")]
    folders = {
        str(path.parent.relative_to(ROOT))
        for path in ROOT.glob("*/**/__init__.py")
        if not {"tests", ".venv"} & set(path.parts)
    }
    assert folders >= {"raypay/domain", "raypay/adapters", "raypay/tools", "actors", "deployments"}
    missing = sorted(folder for folder in folders if f"{folder}/" not in code_map)
    assert missing == []
