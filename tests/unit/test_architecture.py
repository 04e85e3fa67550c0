"""domain/ may import only the standard library, itself, and eventsourcing.domain.

import-linter guards the other layers; it cannot name submodules of external packages,
so this test reads every domain module's imports directly.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
ALLOWED_EXACT = {"eventsourcing.domain"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _allowed(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    return module in ALLOWED_EXACT or top == "domain" or top in sys.stdlib_module_names


def test_domain_imports_nothing_but_the_stdlib_and_eventsourcing_domain() -> None:
    modules = sorted(DOMAIN.glob("*.py"))
    assert len(modules) >= 6
    offending = {
        f"{path.name}: {module}"
        for path in modules
        for module in _imports(path)
        if not _allowed(module)
    }
    assert offending == set()


def test_the_check_would_catch_an_infrastructure_import() -> None:
    assert not _allowed("eventsourcing.postgres")
    assert not _allowed("psycopg")
    assert _allowed("eventsourcing.domain")
    assert _allowed("datetime")
