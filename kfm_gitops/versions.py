"""Dataset versions: the layout under ``releases/``, the one reader and writer of a version folder, the one-label
rule, and the lineage of versions (what each builds on, the newest, what the release branch publishes).

    releases/<slug>/<dataset_version_id>/   a version: promotion-manifest.json, checksums.json, qa.json, runs.json,
                                            receipt.json (the roll-up's)
    releases/<slug>/runs/<run folder>/      one chunk run: receipt.json, qa.json, quarantine.json, policy.json
    releases/<slug>/published.yaml          (on release) the version published now
    releases/<slug>/ledger.jsonl            (on release) what was published, hash-chained
    releases/<slug>/incidents/              (on release) incident notes of rollbacks

A version folder is written once, by the roll-up, and never edited; a folder is a version when it holds a promotion
manifest.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfm_gitops._fs import display_path, read_text, write_folder
from kfm_gitops.config import Config
from kfm_gitops.errors import FindingsError, KfmError
from kfm_gitops.findings import Finding, Location

if TYPE_CHECKING:
    from kfm_gitops import _git

MANIFEST_FILE = "promotion-manifest.json"
CHECKSUMS_FILE = "checksums.json"
QA_FILE = "qa.json"  # a version's QA summary; a run's QA report
RUNS_FILE = "runs.json"
RUNS_DIR = "runs"
QUARANTINE_FILE = "quarantine.json"  # a run's quarantine record
POLICY_FILE = "policy.json"  # a run's processing decision
PUBLISHED_FILE = "published.yaml"
LEDGER_FILE = "ledger.jsonl"
INCIDENTS_DIR = "incidents"
RUN_PREFIX = "kfm://run/"
FIRST_RELEASE = ""  # the base of a first release: no version
MANIFEST_MAX_BYTES = 64 * 1024 * 1024  # one entry a partition: years of daily partitions stay far below it


# --- paths ----------------------------------------------------------------------------------------------------------


def releases_of(config: Config, slug: str) -> Path:
    """releases/<slug>/: a dataset's versions and runs (and, on release, its pointer, ledger and incidents)."""
    return config.releases_dir() / slug


def version_dir(config: Config, slug: str, version_id: str) -> Path:
    return releases_of(config, slug) / version_id


def runs_dir(config: Config, slug: str) -> Path:
    return releases_of(config, slug) / RUNS_DIR


def run_folder_name(run_id: str) -> str:
    """A run folder's name: the run id without ``kfm://run/``."""
    return run_id.removeprefix(RUN_PREFIX)


def run_id_of(folder: str | Path) -> str:
    """The run id of a run folder (a path whose last part is the folder's name)."""
    return f"{RUN_PREFIX}{Path(folder).name}"


def run_dir(config: Config, slug: str, run_id: str) -> Path:
    return runs_dir(config, slug) / run_folder_name(run_id)


def published_file(config: Config, slug: str) -> Path:
    return releases_of(config, slug) / PUBLISHED_FILE


def ledger_file(config: Config, slug: str) -> Path:
    return releases_of(config, slug) / LEDGER_FILE


def incidents_dir(config: Config, slug: str) -> Path:
    return releases_of(config, slug) / INCIDENTS_DIR


def repo_path(config: Config, path: Path) -> str:
    """A path below the repository as git names it (relative, with forward slashes)."""
    return path.relative_to(config.root).as_posix()


def is_version_dir(folder: Path) -> bool:
    return (folder / MANIFEST_FILE).is_file()


def repository_of(version_folder: Path) -> Path:
    """The repository root that holds a version folder (<root>/releases/<slug>/<version>)."""
    return version_folder.resolve().parent.parent.parent


# --- the promotion manifest -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of a version: its key, its PROCESSED artifact and the RAW objects it was made from."""

    key: str
    processed: str
    raw: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VersionManifest:
    """A version's promotion manifest as read from its folder; ``data`` is the whole document."""

    folder: Path
    slug: str
    version_id: str
    spec_hash: str
    base: str  # FIRST_RELEASE when the version builds on nothing
    partitions: tuple[Partition, ...]
    policy_label: str
    obligations: tuple[dict[str, Any], ...]
    decision_id: str | None
    plan: str
    data: Mapping[str, Any]

    @property
    def partition_keys(self) -> list[str]:
        return [p.key for p in self.partitions]

    @property
    def digests(self) -> set[str]:
        """Every PROCESSED artifact and RAW object the version's partitions name."""
        return {p.processed for p in self.partitions} | {r for p in self.partitions for r in p.raw}


class _Malformed(KfmError):
    """A promotion manifest field that is missing or of the wrong type (the reader turns it into a finding)."""

    code = "VERSION_INVALID"


def _get(doc: Any, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    if not isinstance(doc, dict) or key not in doc:
        raise _Malformed(f"{where}{key} is missing")
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _Malformed(f"{where}{key} has the wrong type")
    return value


def _strings(values: list[Any], what: str) -> tuple[str, ...]:
    if not all(isinstance(v, str) for v in values):
        raise _Malformed(f"{what} has the wrong type")
    return tuple(values)


def _partition(entry: Any, where: str) -> Partition:
    return Partition(_get(entry, "partition", str, where), _get(entry, "processed", str, where),
                     _strings(_get(entry, "raw", list, where), f"{where}raw"))


def _parse_manifest(folder: Path, data: Any) -> VersionManifest:
    """The typed manifest of a document; raises _Malformed naming the first field that is wrong."""
    policy = _get(data, "policy", dict)
    obligations = _get(policy, "obligations", list, "policy.")
    if not all(isinstance(o, dict) for o in obligations):
        raise _Malformed("policy.obligations has the wrong type")
    partitions = _get(data, "partitions", list)
    return VersionManifest(
        folder=folder, slug=_get(data, "dataset_slug", str), version_id=_get(data, "dataset_version_id", str),
        spec_hash=_get(data, "spec_hash", str), base=_get(data, "base_dataset_version_id", (str, type(None))) or "",
        partitions=tuple(_partition(p, f"partitions[{i}].") for i, p in enumerate(partitions)),
        policy_label=_get(policy, "policy_label", str, "policy."), obligations=tuple(dict(o) for o in obligations),
        decision_id=_get(policy, "decision_id", (str, type(None)), "policy."), plan=_get(data, "plan", str),
        data=data)


def read_version(folder: Path) -> VersionManifest | list[Finding]:
    """The one reader of a version folder: its promotion manifest, or findings at file:line:col saying why not."""
    path = folder / MANIFEST_FILE
    shown = display_path(path)
    text = read_text(path, shown=shown, limit=MANIFEST_MAX_BYTES)
    if isinstance(text, Finding):
        return [text]
    return parse_version(folder, text, shown)


def parse_version(folder: Path, text: str | bytes, shown: str) -> VersionManifest | list[Finding]:
    """A promotion manifest's text (from a folder, or from a commit: ``shown`` says where) as a version."""
    hint = "version folders are written by the roll-up and never edited: restore it from git"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [Finding("VERSION_INVALID", f"not JSON: {exc.msg}", Location(shown, exc.lineno, exc.colno), hint=hint)]
    try:
        return _parse_manifest(folder, data)
    except _Malformed as exc:
        return [Finding("VERSION_INVALID", f"not a promotion manifest: {exc}", Location(shown), hint=hint)]


def list_versions(config: Config, slug: str) -> dict[str, VersionManifest | list[Finding]]:
    """Every version folder of a dataset, by version id, each read (or the findings of why it cannot be)."""
    releases = releases_of(config, slug)
    folders = sorted(p.parent for p in releases.glob(f"*/{MANIFEST_FILE}")) if releases.is_dir() else []
    return {folder.name: read_version(folder) for folder in folders}


def require_base(config: Config, slug: str, version_id: str) -> VersionManifest:
    """The version a plan builds on, which must exist and read cleanly."""
    folder = version_dir(config, slug, version_id)
    if not is_version_dir(folder):
        raise KfmError(f"the base version {version_id} has no {MANIFEST_FILE}", hint="the plan's "
                       "prior_dataset_version_id must name a version of this repository")
    version = read_version(folder)
    if isinstance(version, list):
        raise FindingsError(version, f"the base version {version_id} cannot be read")
    return version


def write_version(config: Config, slug: str, version_id: str, files: Mapping[str, bytes]) -> Path:
    """The one writer of a version folder: ``files`` (the manifest among them) land together or not at all."""
    if MANIFEST_FILE not in files:
        raise KfmError(f"a version folder without its {MANIFEST_FILE}")
    folder = version_dir(config, slug, version_id)
    write_folder(config.root, f"version-{version_id}", folder, files)
    return folder


# --- one label per version ------------------------------------------------------------------------------------------


def same_policy(version: VersionManifest, label: str, obligations: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a version was made under this label and these obligations."""
    return (version.policy_label, list(version.obligations)) == (label, [dict(o) for o in obligations])


def carried_under_other_policy(base: VersionManifest, label: str, obligations: Sequence[Mapping[str, Any]],
                               window: Collection[str]) -> list[str]:
    """One label per version: the base partitions outside ``window`` (partition keys) that a version made under
    ``label`` and ``obligations`` would carry although the base was made under others (empty when it may carry
    them all)."""
    if same_policy(base, label, obligations):
        return []
    return sorted(k for k in base.partition_keys if k not in window)


def inherited_policy(config: Config, slug: str, base: str, label: str, obligations: Sequence[Mapping[str, Any]]
                     ) -> tuple[str, list[dict[str, Any]], bool]:
    """The label and obligations a new plan on ``base`` takes: the base's when they differ from the ones given (a
    version has one label), with whether they were inherited. Obligations are written type first."""
    version = read_version(version_dir(config, slug, base)) if base != FIRST_RELEASE else None
    if not isinstance(version, VersionManifest) or same_policy(version, label, obligations):
        return label, [dict(o) for o in obligations], False
    return version.policy_label, [{"type": o["type"], **{k: v for k, v in o.items() if k != "type"}}
                                  for o in version.obligations], True


# --- lineage --------------------------------------------------------------------------------------------------------


def leaf_versions(config: Config, slug: str) -> list[str]:
    """The versions no other version builds on (the newest of each line), sorted."""
    bases = {vid: v.base for vid, v in list_versions(config, slug).items() if isinstance(v, VersionManifest)}
    return sorted(set(bases) - set(bases.values()))


def release_head(config: Config, repo: _git.Repository) -> _git.Oid | None:
    """The release branch's commit: the local branch, else origin's (a CI checkout of a pull request has only the
    remote-tracking one)."""
    from kfm_gitops import _git

    return (_git.branch_head(repo, config.release_branch)
            or _git.remote_branch_head(repo, "origin", config.release_branch))


def published_version(config: Config, slug: str) -> str:
    """The version the release branch's published.yaml names for ``slug``, or FIRST_RELEASE when none does."""
    from kfm_gitops import _git, _yaml

    repo = _git.discover(config.root)
    head = release_head(config, repo) if repo is not None else None
    if repo is None or head is None:
        return FIRST_RELEASE
    rel = repo_path(config, published_file(config, slug))
    blob = _git.read_blob(repo, head, rel)
    if blob is None:
        return FIRST_RELEASE
    doc = _yaml.loads(blob.decode("utf-8", "replace"), f"{config.release_branch}:{rel}")
    if isinstance(doc, list):
        return FIRST_RELEASE
    return str(doc.data.get("dataset_version_id", FIRST_RELEASE))


def default_base(config: Config, slug: str) -> tuple[str, str]:
    """The version a new plan builds on, and a note when it is not the published one: the version the release
    branch publishes; else, when nothing is published yet, the newest version on main (the one no other version
    builds on); else FIRST_RELEASE."""
    published = published_version(config, slug)
    if published:
        return published, ""
    leaves = leaf_versions(config, slug)
    if len(leaves) == 1:
        return leaves[0], (f"nothing is published on {config.release_branch} yet: the plan builds on {leaves[0]}, "
                           f"the newest version under {repo_path(config, releases_of(config, slug))}/ (--prior names "
                           "another)")
    if leaves:
        return FIRST_RELEASE, (f"versions {', '.join(leaves)} all build on nothing newer: set "
                               "rollback.prior_dataset_version_id to the one this backfill replaces (or pass --prior)")
    return FIRST_RELEASE, ""
