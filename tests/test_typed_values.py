"""The values modules pass around are frozen and typed: a contract's partitioning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kfm_gitops.config import Vocabularies
from kfm_gitops.dataset import Contract, Partitioning, load_contract

SLUG = "ks_storm_reports"


def _contract(root: Path) -> Contract:
    contract = load_contract(root, SLUG, Vocabularies())
    assert isinstance(contract, Contract), contract
    return contract


def test_a_contract_s_partitioning_is_a_frozen_value(governed: Path) -> None:
    part = _contract(governed).partitioning
    assert part == Partitioning(mode="monthly", axis="event_time", timezone="UTC")
    with pytest.raises(dataclasses.FrozenInstanceError):
        part.mode = "daily"  # type: ignore[misc]
    assert not hasattr(part, "__dict__")  # slots: no attribute can be added either
    assert hash(part) == hash(Partitioning("monthly", "event_time"))


def test_the_partitioning_is_read_as_the_contract_writes_it_and_its_timezone_defaults_to_utc(governed: Path) -> None:
    dataset = governed / "datasets" / SLUG / "dataset.yaml"
    text = dataset.read_text()
    assert "  mode: monthly\n  axis: event_time\n  timezone: UTC\n" in text
    dataset.write_text(text.replace("  mode: monthly\n  axis: event_time\n  timezone: UTC\n",
                                    "  mode: daily\n  axis: event_time\n  timezone: America/Chicago\n"))
    assert _contract(governed).partitioning == Partitioning("daily", "event_time", "America/Chicago")
    dataset.write_text(text.replace("  mode: monthly\n  axis: event_time\n  timezone: UTC\n",
                                    "  mode: yearly\n  axis: event_time\n"))
    assert _contract(governed).partitioning == Partitioning("yearly", "event_time", "UTC")
