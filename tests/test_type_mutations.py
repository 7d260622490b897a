"""Every key of the example's plan and contract, set to a value of the wrong type, is a finding (exit 1) or fine
(exit 0) in every command that reads it, never an internal error (exit 3): the hook is the first thing a contributor
meets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Runner

WRONG: list[Any] = [None, [], {}, "", 7]
PLAN = "plans/ks_storm_reports/backfill-20230705-0c1d2e.yml"
CONTRACT = ["datasets/ks_storm_reports/dataset.yaml", "datasets/ks_storm_reports/pipeline.yaml"]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key (and list item) below ``node``, parents before children."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key))


def mutated(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = yaml.safe_load(yaml.safe_dump(doc))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def crashes(kfm: Runner, root: Path, rel: str, commands: list[list[str]]) -> list[str]:
    original = (root / rel).read_text(encoding="utf-8")
    doc = yaml.safe_load(original)
    found: list[str] = []
    tried = 0
    try:
        for path in paths(doc):
            for value in WRONG:
                (root / rel).write_text(yaml.safe_dump(mutated(doc, path, value), sort_keys=False), encoding="utf-8")
                for command in commands:
                    tried += 1
                    r = kfm(*command)
                    if r.code not in (0, 1):
                        where = ".".join(map(str, path))
                        found.append(f"{rel} {where}={value!r}: kfm {' '.join(command)} -> {r.code}: {r.err[-300:]}")
    finally:
        (root / rel).write_text(original, encoding="utf-8")
    assert tried > 50, "the mutations ran"
    return found


def test_wrong_types_in_the_plan_are_findings(governed: Path, kfm: Runner) -> None:
    assert crashes(kfm, governed, PLAN, [["plan", "validate", PLAN], ["backfill", "run", "--dry-run", PLAN]]) == []


@pytest.mark.parametrize("rel", CONTRACT)
def test_wrong_types_in_the_contract_are_findings(governed: Path, kfm: Runner, rel: str) -> None:
    commands = [["dataset", "validate"], ["plan", "validate", PLAN], ["backfill", "run", "--dry-run", PLAN]]
    assert crashes(kfm, governed, rel, commands) == []
