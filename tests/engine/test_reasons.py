"""Run items' reasons in the reader's language (engine/reasons.py), and no reason written by
the engine that the registry does not know."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from engine.reasons import describe, known

# Where the engine writes run items' reasons and runs' messages, and the calls that carry
# one: the argument (position, keyword) that holds it.
SOURCES = ["engine/planner.py", *(f"engine/run/{name}.py" for name in (
               "flow", "journal", "reading", "executor", "recording", "guards", "stamps")),
           "engine/agendas/contacts.py", "engine/agendas/calendar.py",
           "engine/matching.py", "mailimport/importer.py"]
CARRIERS = {"_item": (4, "detail"), "line": (4, "detail"), "say": (0, "message"),
            "Skip": (0, "reason"), "Unlink": (0, "reason"),
            "Leave": (0, "reason"), "PendingDeletion": (1, "reason"),
            "Conflict": (2, "reason"), "Write": (4, "reason"), "Duplicate": (3, "reason"),
            "remote_write": (3, "reason"), "_write_new": (3, "reason"),
            "append": (0, ""), "_say": (0, "message")}
LISTS_OF_NOTES = ("notes", "warnings")
# A value the code computes, standing in for any parameter but a side.
ANY = "1"
KNOWN = "deleted on both sides"


class _Samples:
    """The texts an expression may produce, with computed parts as ANY: constants as they
    are, both branches of a condition, local names by what they were given."""

    def __init__(self, function: ast.AST, functions: dict[str, list[ast.expr]]) -> None:
        self.locals: dict[str, ast.expr] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                self.locals.setdefault(node.targets[0].id, node.value)
        self.functions = functions

    def of(self, node: ast.expr, depth: int = 0) -> list[str]:
        if depth > 5:
            return [ANY]
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            parts = [self.of(value.value, depth + 1) if isinstance(value, ast.FormattedValue)
                     else self.of(value, depth + 1) for value in node.values]
            return ["".join(p) for p in itertools.product(*parts)][:50]
        if isinstance(node, ast.IfExp):
            return self.of(node.body, depth + 1) + self.of(node.orelse, depth + 1)
        if isinstance(node, ast.BoolOp):
            return [s for value in node.values for s in self.of(value, depth + 1)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return [a + b for a in self.of(node.left, depth + 1)
                    for b in self.of(node.right, depth + 1)][:50]
        if isinstance(node, ast.Attribute) and node.attr == "agenda":
            return ["contacts"]   # an agenda's code
        if isinstance(node, ast.Attribute) and node.attr == "reason":
            return [KNOWN]   # an action's reason, itself one of the texts checked here
        if isinstance(node, ast.Name) and node.id in self.locals:
            return self.of(self.locals[node.id], depth + 1)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "get" and len(node.args) == 2:   # a lookup's default
                return self.of(node.args[1], depth + 1)
            returned = self.functions.get(node.func.attr, [])
            if returned:   # a method of the engine's that words the reason
                return [s for value in returned for s in self.of(value, depth + 1)]
        return [ANY]


def _returns(trees: list[ast.Module]) -> dict[str, list[ast.expr]]:
    found: dict[str, list[ast.expr]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                found.setdefault(node.name, []).extend(
                    r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value)
    return found


def written_reasons() -> list[tuple[str, int, str]]:
    """(file, line, text) of every reason the engine's source writes, computed parts as ANY."""
    base = Path(settings.BASE_DIR)
    trees = {name: ast.parse((base / name).read_text(encoding="utf-8")) for name in SOURCES}
    functions = _returns(list(trees.values()))
    found = []
    for name, tree in trees.items():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            samples = _Samples(function, functions)
            for node in ast.walk(function):
                argument = _reason_argument(node)
                if argument is not None:
                    found += [(name, node.lineno, text) for text in samples.of(argument)
                              if text != ANY]
    return found


def _reason_argument(node: ast.AST) -> ast.expr | None:
    if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr in ("reason", "message")
            for t in node.targets):
        return node.value
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if called not in CARRIERS:
        return None
    if called == "append" and not (isinstance(func, ast.Attribute) and any(
            ast.unparse(func.value).endswith(name) for name in LISTS_OF_NOTES)):
        return None
    position, keyword = CARRIERS[called]
    for given in node.keywords:
        if given.arg == keyword:
            return given.value
    return node.args[position] if len(node.args) > position else None


def test_the_engine_writes_only_reasons_the_registry_knows() -> None:
    reasons = written_reasons()
    assert len(reasons) > 40, "the source scan found too few reasons: is it still working?"
    unknown = [f"{name}:{line}: {text!r}" for name, line, text in reasons if not known(text)]
    assert not unknown, "add them to engine/reasons.py TEMPLATES:\n" + "\n".join(unknown)


def test_a_new_reason_without_a_template_is_caught() -> None:
    tree = ast.parse('self._item(RunItem.Action.SKIP, title, "", ref.id, '
                     'f"waiting for {count} other things")')
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "attr", "") == "_item")
    texts = _Samples(tree, {}).of(_reason_argument(call))
    assert texts == ["waiting for 1 other things"] and not known(texts[0])


@pytest.mark.parametrize(("detail", "czech"), [
    ("new in Exchange", "nový v Exchange"),
    ("changed in the CRM: first_name, job_title", "změněno v CRM: Jméno, Pracovní pozice"),
    ("changed on both sides: last_name; kept the values from Exchange",
     "změněno na obou stranách: Příjmení; ponechány hodnoty z Exchange"),
    ("received 2026-01-05, before the import window (the last 1 days)",
     "přijato 2026-01-05, před obdobím importu (poslední 1 den)"),
    ("received 2026-01-05, before the import window (the last 3 days)",
     "přijato 2026-01-05, před obdobím importu (poslední 3 dny)"),
    ("linked to nobody in the CRM; x.exe not saved (type not allowed)",
     "propojeno s: nikým v CRM; x.exe neuloženo (typ není povolen)"),
    ("ErrorServerBusy (tried again next run)", "ErrorServerBusy (zkusí se znovu při dalším běhu)"),
    ("1 deletions wait for an administrator's approval",
     "1 smazání čeká na schválení správcem"),
    ("12 creations in Exchange wait for an administrator's approval",
     "12 vytvoření v Exchange čeká na schválení správcem"),
    ("Another run of this profile's calendar agenda is in progress.",
     "Jiný běh agendy Kalendář tohoto profilu právě probíhá."),
    ("The TLS connection to mail.example.org failed (CERTIFICATE_VERIFY_FAILED). Check the "
     "certificate, or turn TLS verification off for this connection.",
     "Spojení TLS se serverem mail.example.org selhalo (CERTIFICATE_VERIFY_FAILED). "
     "Zkontrolujte certifikát, nebo pro toto připojení vypněte ověřování TLS."),
    ("There is no mailbox pavel@example.org on mail.example.org.",
     "Na serveru mail.example.org není schránka pavel@example.org."),
])
def test_reasons_are_told_in_czech(detail: str, czech: str) -> None:
    with translation.override("cs"):
        assert describe(detail) == czech


def test_english_readers_see_the_fields_labels_too() -> None:
    with translation.override("en"):
        assert describe("changed in Exchange: first_name, job_title") == \
            "changed in Exchange: First name, Job title"
        assert describe("moved to Archive in Exchange; no longer synced, nothing deleted") == \
            "moved to Archive in Exchange; no longer synced, nothing deleted"
