"""Only Ray's public API, in code and tests: no module of Ray's private packages
(``_private``, ``_common``, ``serve._private``) is imported or reached by attribute.

Those packages change without notice between Ray releases (2.60 moved the formatters
from one to the other); a public API is kept or deprecated first. The forbidden names
are put together from parts below, so this file can be checked like any other.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = ("_" + "private", "_" + "common", r"serve\s*\.\s*_" + "private")
# `ray.<private>` in an import, an attribute chain or an import_module string ...
DOTTED = re.compile(r"\bray\s*\.\s*(?:" + "|".join(PRIVATE) + r")\b")
# ... and `from ray import <private>` / `from ray.serve import <private>`.
FROM_RAY = re.compile(r"\bfrom\s+ray(?:\s*\.\s*serve)?\s+import\b.*\b_(?:private|common)\b")
SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist"}


def python_files() -> list[Path]:
    """Every .py file git knows of or would add (tracked and untracked, not ignored);
    without git (a copied tree), every .py file outside tool and build folders."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return [
            path
            for path in ROOT.rglob("*.py")
            if not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
        ]
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def private_uses(path: Path) -> list[str]:
    """``path:line: text`` for every line that names a private Ray package."""
    found = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if DOTTED.search(line) or FROM_RAY.search(line):
            found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_the_check_sees_every_form_of_a_private_use():
    forms = [
        "import ray." + "_private.worker",
        "from ray." + "_common.filters import CoreContextFilter",
        "from ray.serve." + "_private.api import serve_start",
        "node = ray." + "_private.worker._global_node",
        "from ray import _" + "private",
        "from ray.serve import api, _" + "private",
        'importlib.import_module("ray.' + '_common.formatters")',
    ]
    assert all(DOTTED.search(form) or FROM_RAY.search(form) for form in forms)
    public = ["import ray", "from ray import serve", "from ray.serve.schema import X", "ray.init()"]
    assert not any(DOTTED.search(form) or FROM_RAY.search(form) for form in public)


def test_the_repository_lists_its_python_files():
    names = {path.relative_to(ROOT).as_posix() for path in python_files()}
    assert {"actors/logs.py", "raypay/tools/launch.py", "tests/unit/test_public_ray.py"} <= names


def test_no_python_file_uses_a_private_ray_package():
    found = [use for path in python_files() for use in private_uses(path)]
    assert not found, "private Ray packages used (use a public Ray API):\n" + "\n".join(found)
