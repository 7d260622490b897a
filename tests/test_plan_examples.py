"""Acceptance tests over the example plans: every valid one passes, every invalid one fails with exactly the
message written beside it (`kfm plan validate --standalone`, as a contributor's hook runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EXAMPLES, Runner

VALID = sorted((EXAMPLES / "valid").glob("*.yml"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.yml"))


def test_there_are_examples() -> None:
    assert len(VALID) >= 3
    assert len(INVALID) >= 30
    for path in INVALID:
        assert path.with_suffix(".expected").is_file(), f"{path.name} has no .expected beside it"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_plan_passes(path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    r = kfm("plan", "validate", "--standalone", f"valid/{path.name}")
    assert r.out == "1 plan valid\n"
    assert r.code == 0


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_plan_fails_with_its_message(path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    r = kfm("plan", "validate", "--standalone", f"invalid/{path.name}")
    assert r.code == 1
    assert r.out == path.with_suffix(".expected").read_text(encoding="utf-8")
    assert r.err == ""  # a finding, never a traceback
    first = r.out.splitlines()[0]
    assert first.startswith(f"invalid/{path.name}")


def test_every_file_of_a_batch_is_reported(kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    names = ["invalid/naive-timestamp.yml", "valid/minimal.yml", "invalid/unknown-label.yml", "invalid/empty.yml"]
    r = kfm("plan", "validate", "--standalone", *names)
    assert r.code == 1
    lines = r.out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [names[0], names[2], names[3]]
    assert lines[-1] == "4 plans checked, 3 errors"


def test_several_errors_in_one_file_are_all_reported(kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    r = kfm("plan", "validate", "--standalone", "invalid/several-errors.yml")
    codes = [line.split(": ")[1] for line in r.out.splitlines()[:-1]]
    assert codes == ["SCHEMA_UNKNOWN_KEY", "PLAN_TIMESTAMP_NAIVE", "POLICY_UNKNOWN_LABEL", "SCHEMA_VALUE"]
