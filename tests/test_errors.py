"""The one error tree: every exception class of the package is a KfmError with a finding-style code and an exit code
of DESIGN.md, every raise site raises one (or a builtin that this file lists, with the reason it never reaches a
user), and the CLI reports an error's own code."""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import kfm_gitops
from conftest import Runner
from kfm_gitops.errors import (
    EXIT_CONFLICT,
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_USAGE,
    ConflictError,
    FindingsError,
    InternalError,
    KfmError,
    UsageError,
)
from kfm_gitops.identity import IdentityError, check_digest, check_slug, digest_of
from kfm_gitops.periods import NaiveTimestamp, PeriodError, get_zone, parse_key, parse_timestamp
from kfm_gitops.store import StoreError
from kfm_gitops.templates import TemplateError, check_template

PACKAGE = Path(kfm_gitops.__file__).resolve().parent
CODE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")
EXIT_CODES = {EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL, EXIT_CONFLICT}
SLUG = "ks_storm_reports"

# Builtin exceptions the package raises that never reach a user as they are: each is caught next to where it is
# raised and becomes a finding or another path, or marks a defect of kfm itself (the exit path's internal error).
BUILTIN_RAISES = {
    ("normalize", "ValueError"),  # a source kfm cannot read: the chunk run makes it SOURCE_UNREADABLE
    ("schema", "ValueError"),  # kfm's own bundled schemas disagree: a defect of the package
    ("_yaml", "ValueError"),  # replace_scalar cannot edit in place: set_expected_version edits in round trip
    ("plan", "TypeError"),  # build_plan on a malformed plan: check_plan already has its findings
    ("policy", "ValueError"),  # grid_cell on a bad cell: obligation_problems makes OBLIGATION_INAPPLICABLE
    ("connectors.http", "HTTPError"),  # urllib's redirect protocol: the connector makes it UPSTREAM_REFUSED
    ("connectors.http", "TypeError"),  # urllib answered an http(s) url with no HTTP response: a defect
    ("catalog.prov", "ValueError"),  # an id kfm made itself is not of its own form: a defect of the package
    ("catalog.stac", "ValueError"),  # a schema the bundled STAC schemas name is not bundled: a defect, never fetched
}


def _modules() -> list[ModuleType]:
    names = [m.name for m in pkgutil.walk_packages(kfm_gitops.__path__, "kfm_gitops.")
             if "._generated" not in m.name and not m.name.endswith("__main__")]
    return [importlib.import_module(n) for n in ["kfm_gitops", *names]]


def _exception_classes() -> list[type[BaseException]]:
    out: list[type[BaseException]] = []
    for module in _modules():
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                out.append(obj)
    return out


def test_every_exception_class_of_the_package_is_a_kfm_error_with_a_code_and_an_exit_code() -> None:
    classes = _exception_classes()
    names = {c.__qualname__ for c in classes}
    # The walk sees them all (a walk that found nothing would pass for the wrong reason).
    assert {"KfmError", "UsageError", "ConflictError", "InternalError", "FindingsError", "IdentityError",
            "PeriodError", "NaiveTimestamp", "TemplateError", "StoreError", "_Refused", "_Retry"} <= names
    wrong = [c.__qualname__ for c in classes if not issubclass(c, KfmError)]
    assert wrong == []
    for c in (c for c in classes if issubclass(c, KfmError)):
        assert isinstance(c.code, str) and CODE.fullmatch(c.code), c
        assert c.exit_code in EXIT_CODES, c
        assert not issubclass(c, ValueError), c  # `except ValueError` must not swallow kfm's own errors


def _resolve(node: ast.expr, module: ModuleType, imported: dict[str, tuple[str, str]]) -> object:
    """What a raise site names: a class of the module, of a (possibly function-local) import, or a builtin."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        if node.id in imported:
            source, name = imported[node.id]
            return getattr(importlib.import_module(source), name, None)
        return vars(module).get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        try:
            return eval(compile(ast.Expression(node), "<raise>", "eval"), vars(module))  # a dotted name
        except (NameError, AttributeError):
            return None
    return None


def _raise_sites() -> list[tuple[str, int, type[BaseException]]]:
    out = []
    for module in _modules():
        path = Path(str(module.__file__))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {(a.asname or a.name): (n.module, a.name) for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.module and n.level == 0 for a in n.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                cls = _resolve(node.exc, module, imported)
                if isinstance(cls, type) and issubclass(cls, BaseException):
                    rel = module.__name__.removeprefix("kfm_gitops.")
                    out.append((rel, node.lineno, cls))
    return out


def test_every_raise_site_raises_a_kfm_error_or_a_listed_builtin() -> None:
    sites = _raise_sites()
    raised = {cls for _, _, cls in sites}
    assert {KfmError, UsageError, ConflictError, InternalError, FindingsError, IdentityError, PeriodError,
            NaiveTimestamp, StoreError} <= raised
    builtin = {(module, cls.__name__) for module, _, cls in sites if not issubclass(cls, KfmError)}
    unlisted = sorted(f"{module}:{line}: raise {cls.__name__}" for module, line, cls in sites
                      if not issubclass(cls, KfmError) and (module, cls.__name__) not in BUILTIN_RAISES)
    assert unlisted == []
    assert builtin == BUILTIN_RAISES  # a builtin no longer raised leaves the list too


@pytest.mark.parametrize(("call", "cls", "code", "message"), [
    (lambda: check_slug("Bad-Slug"), IdentityError, "SLUG_INVALID",
     "'Bad-Slug' is not a slug (lowercase letters, digits and underscores)"),
    (lambda: check_digest("sha256:" + "0" * 64), IdentityError, "DIGEST_INVALID",
     "the all-zero digest is not a digest of anything"),
    (lambda: digest_of({"n": 2**60}), IdentityError, "NOT_CANONICALISABLE", None),
    (lambda: get_zone("Mars/Olympus"), PeriodError, "TIMEZONE_UNKNOWN", "'Mars/Olympus' is not an IANA timezone name"),
    (lambda: parse_key("2023-13"), PeriodError, "PERIOD_KEY_INVALID", None),
    (lambda: parse_timestamp("2023-01-01"), NaiveTimestamp, "TIMESTAMP_NAIVE",
     "'2023-01-01' is a date with no time and no UTC offset"),
    (lambda: parse_timestamp("yesterday"), PeriodError, "TIMESTAMP_INVALID",
     "'yesterday' is not an RFC 3339 timestamp (like 2023-01-01T00:00:00Z)"),
    (lambda: check_template("{yeer}"), TemplateError, "TEMPLATE_INVALID", None),
])
def test_value_errors_are_kfm_errors_with_a_code(call: Callable[[], object], cls: type[KfmError], code: str,
                                                  message: str | None) -> None:
    with pytest.raises(KfmError) as info:
        call()
    assert type(info.value) is cls
    assert (info.value.code, info.value.exit_code) == (code, EXIT_FINDINGS)
    assert str(info.value) == info.value.message
    if message is not None:
        assert info.value.message == message


def test_a_code_given_at_the_raise_site_is_the_instance_s_and_leaves_the_class_default() -> None:
    err = StoreError("HASH_MISMATCH", "the stored object is corrupt", hint="pull it again")
    assert (err.code, err.message, err.hint, err.exit_code) == ("HASH_MISMATCH", "the stored object is corrupt",
                                                                "pull it again", EXIT_FINDINGS)
    assert StoreError.code == "STORE_ERROR"
    assert KfmError("refused").code == "KFM_ERROR"
    assert KfmError("refused", code="PLAN_REFUSED").code == "PLAN_REFUSED"
    assert KfmError.code == "KFM_ERROR"
    assert ConflictError("moved").exit_code == EXIT_CONFLICT


def test_the_cli_reports_a_store_error_s_own_code(governed: Path, kfm: Runner) -> None:
    r = kfm("raw", "verify", "--store", "nosuchproto://x/y", "--format", "json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert [f["code"] for f in doc["findings"]] == ["STORE_URL"]
    assert doc["error"].startswith("the store nosuchproto://x/y: ")


def test_a_contract_value_json_cannot_hold_is_refused_not_an_internal_error(governed: Path, kfm: Runner) -> None:
    pipeline = governed / "datasets" / SLUG / "pipeline.yaml"
    text = pipeline.read_text()
    assert "\n  params:\n" in text
    pipeline.write_text(text.replace("\n  params:\n", "\n  params:\n    big: 99999999999999999999\n"))
    message = "cannot canonicalise: 99999999999999999999 exceeds safe integer domain for JSON floats"
    r = kfm("dataset", "hash", SLUG)
    assert (r.code, r.out, r.err) == (1, "", f"kfm: {message}\n")
    r = kfm("dataset", "hash", SLUG, "--format", "json")
    assert r.code == 1
    assert [(f["code"], f["message"]) for f in json.loads(r.out)["findings"]] == [("NOT_CANONICALISABLE", message)]


def test_a_template_error_outside_the_checked_templates_is_refused_not_an_internal_error(governed: Path,
                                                                                         kfm: Runner) -> None:
    from kfm_gitops.example import FIRST_PLAN

    pipeline = governed / "datasets" / SLUG / "pipeline.yaml"
    text = pipeline.read_text()
    assert "    root: upstream/ks_storm_reports\n" in text
    pipeline.write_text(text.replace("    root: upstream/ks_storm_reports\n", "    root: upstream/ks{x}\n"))
    r = kfm("backfill", "run", FIRST_PLAN, "--dry-run", "--format", "json")
    assert r.code == 1
    assert "internal error" not in r.err
    assert [f["code"] for f in json.loads(r.out)["findings"]] == ["TEMPLATE_INVALID"]
