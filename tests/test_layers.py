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


def test_no_package_imports_a_package_above_it() -> None:
    wrong = [str(v) for v in layer_violations(ROOT)]
    assert not wrong, "imports that go up a layer:\n" + "\n".join(wrong)


# The built-in store is one kind of CRM among others: only its backend, and the screens of
# the crm app itself, reach its models; the rest of the sync goes through CrmBackend.
CRM_READERS = ("engine", "mailimport", "portal")


def crm_store_imports(root: Path) -> list[str]:
    found = []
    for package in CRM_READERS:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if "migrations" in relative.parts or (
                    relative.parent.as_posix() == "engine/crmstore"
                    and relative.name.startswith("builtin")):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
            found.extend(f"{relative.as_posix()}:{line} imports {module}"
                         for line, module in imported_modules(tree)
                         if module == "crm" or module.startswith("crm."))
    return found


def test_only_the_built_in_backend_reaches_the_built_in_store() -> None:
    wrong = crm_store_imports(ROOT)
    assert not wrong, "the built-in store reached around CrmBackend:\n" + "\n".join(wrong)


def test_a_reach_around_the_crm_interface_is_found(tmp_path: Path) -> None:
    (tmp_path / "engine" / "crmstore").mkdir(parents=True)
    (tmp_path / "engine" / "crmstore" / "builtin_mail.py").write_text(
        "from crm.models import Email\n", encoding="utf-8")
    (tmp_path / "portal").mkdir()
    (tmp_path / "portal" / "pairs.py").write_text(
        "def f():\n    from crm.models import Person\n", encoding="utf-8")
    assert crm_store_imports(tmp_path) == ["portal/pairs.py:2 imports crm.models"]


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
