"""kfm.yaml: where the repository root is, the store, branch names, vocabularies, roles and approval rules."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfm_gitops.findings import Finding, Location

CONFIG_NAME = "kfm.yaml"
DEFAULT_STORE = ".kfm/objects"

TIME_AXES: tuple[str, ...] = ("event_time", "valid_time", "transaction_time")
# Ordered from least to most restrictive: a plan may move a dataset's label right, never left.
POLICY_LABELS: tuple[str, ...] = (
    "public",
    "public_generalized",
    "internal",
    "restricted",
    "restricted_sensitive_location",
    "embargoed",
    "quarantine",
)
OBLIGATION_TYPES: tuple[str, ...] = (
    "generalize_geometry",
    "remove_attributes",
    "redact_fields",
    "min_count_threshold",
    "require_attribution",
    "show_notice",
    "deny_asset_links",
)
OBLIGATION_ALIASES: dict[str, str] = {"redact_fields": "remove_attributes"}
QUARANTINE_REASONS: tuple[str, ...] = (
    "SCHEMA_INVALID",
    "GEOMETRY_INVALID",
    "GEOMETRY_OVERPRECISE",
    "OUT_OF_WINDOW",
    "OUT_OF_EXTENT",
    "DUPLICATE_ID",
    "UNKNOWN_LICENSE",
    "RIGHTS_UNKNOWN",
    "SENSITIVITY_UNRESOLVED",
    "HASH_MISMATCH",
    "QA_THRESHOLD",
)


@dataclass(frozen=True, slots=True)
class Vocabularies:
    time_axes: tuple[str, ...] = TIME_AXES
    policy_labels: tuple[str, ...] = POLICY_LABELS
    obligation_types: tuple[str, ...] = OBLIGATION_TYPES
    quarantine_reasons: tuple[str, ...] = QUARANTINE_REASONS

    def label_rank(self, label: str) -> int | None:
        try:
            return self.policy_labels.index(label)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Config:
    root: Path
    store: str = DEFAULT_STORE  # the store this machine reads and writes (kfm.yaml's store, or its store.cache)
    main_branch: str = "main"
    release_branch: str = "release"
    published_prefix: str = "published/"
    vocab: Vocabularies = field(default_factory=Vocabularies)
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    approvals: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    shared_store: str | None = None  # the team's shared store (kfm.yaml's store.shared), where objects are pulled from

    @property
    def path(self) -> Path:
        return self.root / CONFIG_NAME

    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    def plans_dir(self) -> Path:
        return self.root / "plans"

    def releases_dir(self) -> Path:
        return self.root / "releases"


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds kfm.yaml."""
    here = start.resolve()
    if here.is_file():
        here = here.parent
    for d in (here, *here.parents):
        if (d / CONFIG_NAME).is_file():
            return d
    return None


def from_data(root: Path, data: dict[str, Any]) -> Config:
    """Build a Config from a kfm.yaml already validated against its schema."""
    branches = data.get("branches", {})
    vocab_data = data.get("vocabularies", {})
    vocab = Vocabularies(
        time_axes=tuple(vocab_data.get("time_axes", TIME_AXES)),
        policy_labels=tuple(vocab_data.get("policy_labels", POLICY_LABELS)),
        obligation_types=tuple(vocab_data.get("obligation_types", OBLIGATION_TYPES)),
        quarantine_reasons=tuple(vocab_data.get("quarantine_reasons", QUARANTINE_REASONS)),
    )
    store = data.get("store", DEFAULT_STORE)
    if isinstance(store, dict):  # {cache: URL, shared: URL}
        store, shared = store.get("cache", DEFAULT_STORE), store.get("shared")
    else:
        shared = None
    return Config(
        root=root,
        store=str(store),
        shared_store=str(shared) if shared is not None else None,
        main_branch=str(branches.get("main", "main")),
        release_branch=str(branches.get("release", "release")),
        published_prefix=str(branches.get("published_prefix", "published/")),
        vocab=vocab,
        roles={k: tuple(v) for k, v in data.get("roles", {}).items()},
        approvals={k: tuple((r["role"], int(r["min"])) for r in v) for k, v in data.get("approvals", {}).items()},
    )


def load_config(root: Path) -> Config | list[Finding]:
    """Load and validate ``root/kfm.yaml``."""
    from kfm_gitops import _yaml, schema

    path = root / CONFIG_NAME
    doc = _yaml.load(path)
    if isinstance(doc, list):
        return doc
    findings = schema.validate(doc, "kfm")
    if findings:
        return findings
    return from_data(root, doc.data)


def store_url(config: Config, override: str | None = None) -> str:
    """The object store: --store, else KFM_STORE, else kfm.yaml's store (relative to the root)."""
    url = override or os.environ.get("KFM_STORE") or config.store
    if "://" in url:
        return url
    p = Path(url)
    return str(p if p.is_absolute() else config.root / p)


def no_root_finding(start: str) -> Finding:
    return Finding(
        "NO_REPOSITORY",
        f"no {CONFIG_NAME} in {start} or any folder above it",
        Location(start),
        hint="run `kfm init` to make a governed repository, or pass --standalone to check the file alone",
    )
