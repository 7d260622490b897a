"""The module layering: foundations may be imported by any module; the flow modules import only foundations and
modules before them (imports inside functions count too). Helpers that are neither (periods, templates, _fs,
_urls, ...) import only foundations and other helpers."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kfm_gitops"

FOUNDATIONS = {"errors", "findings", "config", "_yaml", "_git", "identity", "store", "receipts", "evidence", "versions",
               "policy"}
# The flow, in order; modules of one step may not import each other's later steps.
FLOW = [{"plan", "dataset", "repository", "example"}, {"connectors", "acquire"},
        {"sources", "geometry", "normalize", "qa", "obligations"}, {"materialize"}, {"chunk"}, {"catalog"},
        {"backfill"}, {"approvals", "ledger"}, {"gates"}, {"release", "export"}, {"_github"},
        {"projections", "gaps"}, {"doctor"}, {"report"}, {"quickstart"}, {"cli"}]


# Neither foundations nor steps: small utilities any module may use (they import only foundations and each other).
HELPERS = {"_fs", "periods", "_rego", "_urls", "templates", "schema", "encodings"}


def step_of(module: str) -> int | None:
    return next((i for i, step in enumerate(FLOW) if module in step), None)


def imports(path: Path) -> set[str]:
    """The kfm_gitops modules a file imports, anywhere in it (first component below the package)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kfm_gitops"):
            rest = node.module.split(".")[1:]
            names = [rest[0]] if rest else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("kfm_gitops.")]
        out.update(names)
    return out


def module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_module_imports_only_what_comes_before_it() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_of(path)
        if me.startswith("_generated") or me in ("__init__", "__main__"):
            continue
        mine = step_of(me)
        for other in imports(path) - {me}:
            if other in FOUNDATIONS or other in ("__init__", "_generated", "__version__"):
                continue
            theirs = step_of(other)
            assert theirs is not None or other in HELPERS, f"{other} is in no layer: add it to this test"
            if theirs is None:  # a helper: fine from anywhere
                if me in FOUNDATIONS and other not in HELPERS:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports the helper {other}")
                continue
            if mine is None or theirs > mine:
                wrong.append(f"{path.relative_to(PACKAGE)} ({me}) imports {other}, which comes later")
    assert wrong == []


def test_the_layering_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "plan.py"
    bad.write_text("def f():\n    from kfm_gitops.obligations import Obligations\n")
    assert imports(bad) == {"obligations"}
    assert step_of("obligations") > step_of("plan")  # type: ignore[operator]
