"""What may import what: the packages form layers, and no import goes up a layer.

`profiles` holds the configuration models that everything reads, so it imports none of its
readers. The engine runs syncs and knows no screen; the e-mail import knows no screen either.
The screens (`console`, the administrator's; `portal`, the users') sit on top and may import
anything below. An import inside a function counts as much as one at the top of a module: it
still ties the packages together, only later.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A package, and the packages it must not import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "profiles": frozenset({"engine", "mailimport", "console", "portal"}),
    "engine": frozenset({"mailimport", "console", "portal"}),
    "mailimport": frozenset({"console", "portal"}),
}

# Imports allowed to go up a layer for now: none since engine/sync.py names each agenda's
# runner by dotted path (the e-mail import's among them) instead of importing it.
ALLOWED_UNTIL_RUNNER_REGISTRY: dict[str, frozenset[str]] = {}


@dataclass(frozen=True)
class Violation:
    path: str        # relative to the repository, with forward slashes
    line: int
    module: str      # as the import names it

    @property
    def package(self) -> str:
        return self.module.partition(".")[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the tree, however deeply nested."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        # A relative import stays inside its own package (Python refuses one that climbs out
        # of it), so it never crosses from one package into another.
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def layer_violations(root: Path) -> list[Violation]:
    found = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            # Migrations are history: they name whatever the models named when they were made.
            if "migrations" in relative.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
            found.extend(Violation(relative.as_posix(), line, module)
                         for line, module in imported_modules(tree)
                         if module.partition(".")[0] in forbidden)
    return found


def _allowed(violation: Violation) -> bool:
    return violation.package in ALLOWED_UNTIL_RUNNER_REGISTRY.get(violation.path, frozenset())


def test_no_package_imports_a_package_above_it() -> None:
    wrong = [str(v) for v in layer_violations(ROOT) if not _allowed(v)]
    assert not wrong, "imports that go up a layer:\n" + "\n".join(wrong)


def test_every_allowed_exception_is_still_needed() -> None:
    # An exception kept after its import is gone would let that import come back unseen.
    used = {(v.path, v.package) for v in layer_violations(ROOT) if _allowed(v)}
    stale = [f"{path} → {package}" for path, packages in ALLOWED_UNTIL_RUNNER_REGISTRY.items()
             for package in sorted(packages) if (path, package) not in used]
    assert not stale, f"delete from ALLOWED_UNTIL_RUNNER_REGISTRY: {stale}"


def test_an_import_inside_a_function_is_found_and_named_by_file_and_line(
        tmp_path: Path) -> None:
    models = tmp_path / "profiles" / "models"
    models.mkdir(parents=True)
    (models / "connections.py").write_text(
        "from profiles import secrets\n"
        "from . import audit\n"
        "\n"
        "def check(secret):\n"
        "    if secret:\n"
        "        from engine.mailbox.graph_http import is_certificate\n"
        "        return is_certificate(secret)\n",
        encoding="utf-8")
    (tmp_path / "profiles" / "migrations").mkdir()
    (tmp_path / "profiles" / "migrations" / "0001_initial.py").write_text(
        "import engine.fields\n", encoding="utf-8")
    (tmp_path / "mailimport").mkdir()
    (tmp_path / "mailimport" / "importer.py").write_text(
        "import profiles.models\nimport portal.access as access\n", encoding="utf-8")

    found = layer_violations(tmp_path)

    assert [str(v) for v in found] == [
        "profiles/models/connections.py:6 imports engine.mailbox.graph_http",
        "mailimport/importer.py:2 imports portal.access",
    ]
