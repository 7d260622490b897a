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
from kfm_gitops.receipts import RECEIPT_FILE

if TYPE_CHECKING:
    from kfm_gitops import _git
    from kfm_gitops.store import Store

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


# --- reading a version: where it is, where its partitions come from, what they hold ---------------------------------


def find_version(config: Config, arg: str) -> Path:
    """A version named by its folder's path, or by its id (searched under releases/*/)."""
    folder = Path(arg)
    if is_version_dir(folder):
        return folder
    releases = config.releases_dir()
    found = sorted(p.parent for p in releases.glob(f"*/{arg}/{MANIFEST_FILE}")) if (
        releases.is_dir() and "/" not in arg and arg not in ("", ".", "..")) else []
    if len(found) == 1:
        return found[0]
    if found:
        raise KfmError(f"version {arg} exists for several datasets: {', '.join(p.parent.name for p in found)}",
                       hint="name the version by its folder, e.g. " + repo_path(config, found[0]))
    raise KfmError(f"no version {arg} under {repo_path(config, releases)}/", hint="`kfm versions SLUG` lists a "
                   f"dataset's versions; a version is named by its id or by its folder (which holds {MANIFEST_FILE})")


def read_json(path: Path, code: str, hint: str, limit: int = MANIFEST_MAX_BYTES) -> tuple[Any, Finding | None]:
    """A small JSON file of kfm's (a run's qa.json, a version's checksums.json ...), or a finding at file:line:col
    saying why it cannot be read."""
    shown = display_path(path)
    text = read_text(path, shown=shown, limit=limit)
    if isinstance(text, Finding):
        return None, Finding(code, text.message, text.location, hint=hint)
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, Finding(code, f"not JSON: {exc.msg}", Location(shown, exc.lineno, exc.colno), hint=hint)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a version's partition was made: the version that brought it, that version's plan, and the chunk run
    (None when its evidence cannot be read)."""

    version_id: str
    plan: str
    run_folder: str | None
    chunk: str | None
    size: int | None = None  # the artifact's size, when the run's receipt records it


def _runs_made(config: Config, version: VersionManifest) -> dict[str, tuple[str, str, str | None, int | None]]:
    """partition -> (digest, run folder, chunk key, size) of the partitions the version's own runs made."""
    doc, problem = read_json(version.folder / RUNS_FILE, "VERSION_INVALID", "")
    out: dict[str, tuple[str, str, str | None, int | None]] = {}
    for entry in doc.get("runs", []) if problem is None and isinstance(doc, dict) else []:
        receipt_path = config.root / str(entry.get("receipt", "")) if isinstance(entry, dict) else config.root
        receipt, bad = read_json(receipt_path, "RECEIPT_INVALID", "")
        if bad is not None or not isinstance(receipt, dict):
            continue
        chunk = receipt.get("chunk", {}).get("key") if isinstance(receipt.get("chunk"), dict) else None
        for o in receipt.get("outputs", []):
            role = str(o.get("role", "")) if isinstance(o, dict) else ""
            if role.startswith("partition:"):
                size = o.get("size") if isinstance(o.get("size"), int) else None
                out[role.split(":", 1)[1]] = (str(o.get("digest")), repo_path(config, receipt_path.parent), chunk,
                                              size)
    return out


def partition_origins(config: Config, version: VersionManifest) -> dict[str, Origin]:
    """For each partition of ``version``, the nearest version in its lineage whose own runs made that artifact."""
    out: dict[str, Origin] = {}
    wanted = {p.key: p.processed for p in version.partitions}
    current: VersionManifest | None = version
    seen: set[str] = set()
    while current is not None and len(out) < len(wanted) and current.version_id not in seen:
        seen.add(current.version_id)
        for key, (digest, folder, chunk, size) in _runs_made(config, current).items():
            if key not in out and wanted.get(key) == digest:
                out[key] = Origin(current.version_id, current.plan, folder, chunk, size)
        base = read_version(version_dir(config, current.slug, current.base)) if current.base else None
        current = base if isinstance(base, VersionManifest) else None
    for key in wanted:
        out.setdefault(key, Origin(version.version_id, version.plan, None, None))
    return out


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """What a PROCESSED artifact's Parquet footer says: its rows and the time span of its time column."""

    rows: int
    start: str | None
    end: str | None


def partition_stats(store: Store, digest: str, time_column: str | None = None) -> PartitionStats | str:
    """Rows and time span of a PROCESSED artifact, from its footer alone (no row is read); the time column is
    ``time_column``, else the first timestamp column. A string says why not (not in the store, unreadable)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not store.exists(digest):
        return "not in the store"
    try:
        with store.open(digest) as fh:
            meta = pq.ParquetFile(fh).metadata
            schema = meta.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        return f"unreadable ({type(exc).__name__}): `kfm verify` checks it"
    names = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    column = time_column if time_column in schema.names else (names[0] if names else None)
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            stats = group.column(c).statistics
            if group.column(c).path_in_schema == column and stats is not None and stats.has_min_max:
                lows.append(stats.min)
                highs.append(stats.max)
    return PartitionStats(meta.num_rows, _iso(min(lows)) if lows else None, _iso(max(highs)) if highs else None)


def _iso(value: Any) -> str:
    from datetime import UTC, datetime

    from kfm_gitops.periods import iso_utc

    if isinstance(value, datetime):
        return iso_utc(value if value.tzinfo else value.replace(tzinfo=UTC))
    return str(value)


def quarantine_counts(config: Config, origins: Mapping[str, Origin]) -> dict[str, int]:
    """The rows quarantined, by reason, in the runs that made a version's partitions."""
    counts: dict[str, int] = {}
    for folder in sorted({o.run_folder for o in origins.values() if o.run_folder}):
        doc, problem = read_json(config.root / folder / QUARANTINE_FILE, "RUN_INVALID", "")
        found = doc.get("counts", {}) if problem is None and isinstance(doc, dict) else {}
        for reason, n in found.items() if isinstance(found, dict) else ():
            counts[reason] = counts.get(reason, 0) + int(n)
    return dict(sorted(counts.items()))


def gaps(config: Config, version: VersionManifest) -> list[str]:
    """The partitions a version has no data for: those missing between its first and last partition, and the
    empty chunks of the plans in its lineage that no partition filled since."""
    from kfm_gitops.periods import PeriodError, key_of, next_start, parse_key

    have = set(version.partition_keys)
    out: set[str] = set()
    try:
        parsed = sorted(parse_key(k) for k in have)
        if parsed and len({m for m, _ in parsed}) == 1:
            mode, day = parsed[0]
            while day < parsed[-1][1]:
                out.add(key_of(day, mode))
                day = next_start(day, mode)
    except PeriodError:
        pass  # keys kfm did not write: no gap can be said
    current: VersionManifest | None = version
    seen: set[str] = set()
    while current is not None and current.version_id not in seen:
        seen.add(current.version_id)
        doc, problem = read_json(current.folder / QA_FILE, "VERSION_INVALID", "")
        for chunk in doc.get("chunks", []) if problem is None and isinstance(doc, dict) else []:
            if isinstance(chunk, dict) and chunk.get("state") == "empty":
                out.add(str(chunk.get("chunk")))
        base = read_version(version_dir(config, current.slug, current.base)) if current.base else None
        current = base if isinstance(base, VersionManifest) else None
    return sorted(out - have)


# --- verifying PROCESSED ----------------------------------------------------------------------------------------------


def _checksums(version: VersionManifest, findings: list[Finding]) -> list[tuple[str, str, str]]:
    """(partition, path, digest) of each artifact of a version's checksums.json, after checking the file against
    the manifest (findings say where they differ)."""
    from kfm_gitops.identity import sha256_digest

    path = version.folder / CHECKSUMS_FILE
    hint = "version folders are written by the roll-up and never edited: restore it from git"
    doc, problem = read_json(path, "CHECKSUMS_INVALID", hint)
    if problem is not None:
        findings.append(problem)
        return []
    shown = display_path(path)
    artifacts = doc.get("artifacts") if isinstance(doc, dict) else None
    if not isinstance(artifacts, list) or not all(
            isinstance(a, dict) and all(isinstance(a.get(k), str) for k in ("partition", "path", "digest"))
            for a in artifacts):
        findings.append(Finding("CHECKSUMS_INVALID", "artifacts is missing or malformed", Location(shown), hint=hint))
        return []
    listed = [(a["partition"], a["path"], a["digest"]) for a in artifacts]
    if sha256_digest(path.read_bytes()) != version.data.get("checksums_digest"):
        findings.append(Finding("CHECKSUMS_ALTERED", "its digest is not the manifest's checksums_digest",
                                Location(shown), hint=hint))
    if sorted((k, d) for k, _, d in listed) != sorted((p.key, p.processed) for p in version.partitions):
        findings.append(Finding("CHECKSUMS_ALTERED", "its artifacts differ from the manifest's partitions",
                                Location(shown), hint=hint))
    return listed


def _processed_hint(origin: Origin, shared: str | None) -> str:
    rerun = (f"re-run the chunk that made it: `kfm backfill run {origin.plan} --chunk {origin.chunk} --force`"
             if origin.chunk else f"re-run the chunk of {origin.plan} that made it with --force")
    return f"{rerun}, or pull it from the team's store (`kfm store pull --from {shared or '<its URL>'}`)"


def verify_processed(config: Config, store: Store, slugs: Sequence[str], jobs: int | None = None
                     ) -> tuple[list[str], list[Finding], int, int]:
    """Re-hash every PROCESSED artifact the versions' checksums.json name, on all cores, and check each checksums.json
    against its manifest. Returns (versions checked, findings, artifacts named, artifacts missing)."""
    from kfm_gitops.store import missing_finding

    checked: list[str] = []
    findings: list[Finding] = []
    work: list[tuple[str, str, str]] = []  # (checksums shown, partition, digest)
    origins: dict[str, Origin] = {}
    for slug in slugs:
        for vid, version in list_versions(config, slug).items():
            checked.append(display_path(version_dir(config, slug, vid)))
            if isinstance(version, list):
                findings.extend(version)
                continue
            shown = display_path(version.folder / CHECKSUMS_FILE)
            work.extend((shown, f"partition {key}", digest) for key, _, digest in _checksums(version, findings))
            by_key = partition_origins(config, version)
            origins.update({p.processed: by_key[p.key] for p in version.partitions if p.processed not in origins})
    verdicts = store.verify_all({d: origins[d].size if d in origins else None for _, _, d in work}, jobs)
    missing = [w for w in work if verdicts[w[2]] == "OBJECT_MISSING"]
    if missing:
        findings.append(missing_finding(store, config.shared_store, missing, "version"))
    said: set[str] = set()
    for shown, name, digest in work:
        code = verdicts[digest]
        if code in (None, "OBJECT_MISSING") or digest in said:
            continue
        said.add(digest)
        origin = origins.get(digest)
        findings.append(Finding(code, f"{name} ({digest}) is corrupt in the store {store.url}", Location(shown),
                                hint=_processed_hint(origin, config.shared_store) if origin else None))
    return checked, findings, len(verdicts), len({d for _, _, d in missing})


# --- exporting a version as real files ------------------------------------------------------------------------------

SUMS_FILE = "SHA256SUMS"  # `sha256sum -c SHA256SUMS` checks an export


@dataclass(frozen=True, slots=True)
class Exported:
    """One file of an export: its path below the target folder, its digest, and whether it was already there."""

    path: str
    digest: str
    present: bool


def _export_paths(version: VersionManifest) -> list[tuple[str, str, str]]:
    """(partition, path, digest) of each artifact, refused unless checksums.json agrees with the manifest and every
    path stays below the target folder."""
    from kfm_gitops._fs import leaves_folder

    findings: list[Finding] = []
    artifacts = _checksums(version, findings)
    shown = Location(display_path(version.folder / CHECKSUMS_FILE))
    findings += [Finding("CHECKSUMS_INVALID", f"the path {p!r} of partition {k} is not a file below the export",
                         shown) for k, p, _ in artifacts
                 if not p or p.endswith("/") or leaves_folder(p, absolute_ok=False)]
    if findings:
        raise FindingsError(findings, f"{display_path(version.folder)} cannot be exported")
    return artifacts


def export_version(config: Config, version: VersionManifest, store: Store, target: Path) -> list[Exported]:
    """The version's partitions as real files below ``target``, named as its checksums.json names them, each
    verified while it is copied, with checksums.json and SHA256SUMS beside them. A file already there with the
    right digest is kept; one with other bytes is refused, never overwritten."""
    from kfm_gitops._fs import atomic_write, atomic_write_stream
    from kfm_gitops.identity import sha256_digest
    from kfm_gitops.store import StoreError, file_digest, pull_hint

    artifacts = _export_paths(version)
    checksums = (version.folder / CHECKSUMS_FILE).read_bytes()
    origins = partition_origins(config, version)
    sums = "".join(f"{digest[7:]}  {path}\n" for _, path, digest in artifacts).encode()
    files = [*((path, digest) for _, path, digest in artifacts), (CHECKSUMS_FILE, sha256_digest(checksums)),
             (SUMS_FILE, sha256_digest(sums))]
    there = {p: (target / p).is_file() for p, _ in files}
    differ = [p for p, d in files if there[p] and file_digest(target / p) != d]
    if differ:
        raise KfmError(f"{target / differ[0]} exists with other bytes", hint="export into a new or empty folder: "
                       "kfm never overwrites a file")
    missing = [(k, d) for k, p, d in artifacts if not there[p] and not store.exists(d)]
    if missing:  # said before anything is written
        raise KfmError(f"{len(missing)} partition(s) of {version.version_id} are not in the store {store.url} (the "
                       f"first: {missing[0][0]} {missing[0][1]})", code="OBJECT_MISSING",
                       hint=pull_hint(store, config.shared_store))
    for key, path, digest in artifacts:
        if there[path]:
            continue
        try:
            atomic_write_stream(target / path, store.iter_bytes(digest, verify=True))
        except StoreError as exc:
            raise KfmError(f"partition {key}: {exc.message}", code=exc.code,
                           hint=_processed_hint(origins[key], config.shared_store)) from exc
    for name, data in ((CHECKSUMS_FILE, checksums), (SUMS_FILE, sums)):
        if not there[name]:
            atomic_write(target / name, data)
    return [Exported(p, d, there[p]) for p, d in files]


# --- a version described --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionView:
    """A partition as `kfm show` tells it: its artifact, what its footer says (or why not), where it was made."""

    key: str
    digest: str
    stats: PartitionStats | str
    origin: Origin


@dataclass(frozen=True, slots=True)
class VersionView:
    """A version in words: its manifest, whether it is published, its partitions, its quarantine, its gaps."""

    version: VersionManifest
    published: bool
    partitions: tuple[PartitionView, ...]
    quarantine: Mapping[str, int]
    gaps: tuple[str, ...]

    @property
    def rows(self) -> int | None:
        """The rows of every partition, or None when a partition cannot be read."""
        counts = [p.stats.rows for p in self.partitions if isinstance(p.stats, PartitionStats)]
        return sum(counts) if len(counts) == len(self.partitions) else None

    @property
    def span(self) -> tuple[str | None, str | None]:
        stats = [p.stats for p in self.partitions if isinstance(p.stats, PartitionStats)]
        starts = [s.start for s in stats if s.start]
        ends = [s.end for s in stats if s.end]
        return (min(starts) if starts else None, max(ends) if ends else None)


def describe_version(config: Config, version: VersionManifest, store: Store, *, published: str,
                     time_column: str | None = None, cache: dict[str, PartitionStats | str] | None = None
                     ) -> VersionView:
    """What `kfm versions` and `kfm show` say of a version (``published``: the version the release branch publishes;
    ``cache`` keeps footers read for other versions)."""
    seen = {} if cache is None else cache
    origins = partition_origins(config, version)
    parts = []
    for p in version.partitions:
        if p.processed not in seen:
            seen[p.processed] = partition_stats(store, p.processed, time_column)
        parts.append(PartitionView(p.key, p.processed, seen[p.processed], origins[p.key]))
    return VersionView(version, version.version_id == published, tuple(parts), quarantine_counts(config, origins),
                       tuple(gaps(config, version)))


def lineage_order(versions: Mapping[str, VersionManifest]) -> list[str]:
    """Version ids, each after the version it builds on (oldest line first, then by id)."""
    def depth(vid: str) -> int:
        n, seen = 0, {vid}
        while (base := versions[vid].base) in versions and base not in seen:
            seen.add(base)
            vid, n = base, n + 1
        return n

    return sorted(versions, key=lambda v: (depth(v), v))


# --- an existing version folder against what the roll-up would write ------------------------------------------------

# The manifest's fields that say what the version is; the others record how it was made (its plan, runs and QA
# report), which another plan, or another run of the same chunks, makes differently.
# What a manifest says of the data, compared when a roll-up finds its version folder there already (the catalogs
# it lists are checked by their digests on disk: PROV records each run's own ids and times).
MANIFEST_CONTENT = ("kfm_promotion_manifest_version", "dataset_slug", "dataset_version_id", "spec_hash", "partitions",
                    "artifacts", "checksums_digest")
ROLLUP_FILES = (MANIFEST_FILE, CHECKSUMS_FILE, QA_FILE, RUNS_FILE)


def compare_version(config: Config, folder: Path, expected: Mapping[str, bytes]) -> list[Finding]:
    """An existing version folder against the files the roll-up would write there now (``expected``): the same
    checksums.json, byte for byte; a manifest with the same content (partitions, artifacts, spec, label and
    obligations) whose digests of runs.json and qa.json are those files'; a roll-up receipt whose outputs are the
    folder's files and whose inputs are the runs runs.json names, as they are on disk. A finding per difference,
    naming the file."""
    from kfm_gitops.identity import sha256_digest

    hint = (f"version folders are written once and never edited: restore it with `git checkout HEAD -- "
            f"{repo_path(config, folder)}`, or, if it was never committed, remove the folder and run again")
    docs: dict[str, Any] = {}
    out: list[Finding] = []

    def differs(name: str, what: str) -> None:
        out.append(Finding("VERSION_DIFFERS", f"{what}: it differs from what kfm would write",
                           Location(display_path(folder / name)), hint=hint))

    for name in (*ROLLUP_FILES, RECEIPT_FILE):
        doc, problem = read_json(folder / name, "VERSION_DIFFERS", hint)
        if problem is not None:
            out.append(problem)
        docs[name] = doc
    if out:
        return out
    digests = {name: sha256_digest((folder / name).read_bytes()) for name in ROLLUP_FILES}
    if (folder / CHECKSUMS_FILE).read_bytes() != expected[CHECKSUMS_FILE]:
        differs(CHECKSUMS_FILE, "its artifacts or their digests")
    mine, theirs = json.loads(expected[MANIFEST_FILE]), docs[MANIFEST_FILE]
    policy = ("policy_label", "obligations")
    if not isinstance(theirs, dict) or any(theirs.get(k) != mine.get(k) for k in MANIFEST_CONTENT) or any(
            (theirs.get("policy") or {}).get(k) != mine["policy"].get(k) for k in policy):
        differs(MANIFEST_FILE, "its content (partitions, artifacts, spec_hash, label or obligations)")
    elif theirs.get("runs_digest") != digests[RUNS_FILE] or (theirs.get("qa") or {}).get("report_digest") != digests[
            QA_FILE]:
        differs(MANIFEST_FILE, f"its digests of {RUNS_FILE} and {QA_FILE}")
    out.extend(_receipt_differs(config, folder, docs, digests, hint))
    return out


def _outputs_are_the_folder(folder: Path, outputs: Sequence[Mapping[str, Any]], digests: Mapping[str, str]) -> bool:
    """The roll-up's outputs: the folder's files as they are (the roll-up files as ``digests`` says, the catalogs
    by their bytes on disk), each once."""
    from kfm_gitops.identity import sha256_digest

    listed = {str(o.get("uri")): o.get("digest") for o in outputs}
    if len(listed) != len(outputs) or {k: listed.get(k) for k in digests} != dict(digests):
        return False
    others = {k: v for k, v in listed.items() if k not in digests}
    return all((folder / k).is_file() and sha256_digest((folder / k).read_bytes()) == v for k, v in others.items())


def _receipt_differs(config: Config, folder: Path, docs: Mapping[str, Any], digests: Mapping[str, str], hint: str
                     ) -> list[Finding]:
    """The roll-up receipt of an existing version: its outputs are the folder's files, its inputs the runs runs.json
    names, each receipt as it is on disk."""
    from kfm_gitops.identity import sha256_digest
    from kfm_gitops.schema import validate_data

    receipt, runs = docs[RECEIPT_FILE], docs[RUNS_FILE]
    listed = [(str(r.get("receipt")), r.get("digest")) for r in runs.get("runs", []) if isinstance(r, dict)] if (
        isinstance(runs, dict)) else []
    on_disk = [(p, sha256_digest((config.root / p).read_bytes()) if (config.root / p).is_file() else None)
               for p, _ in listed]
    why = ""
    if validate_data(receipt, "receipt") or receipt.get("operation") != "rollup" or receipt.get(
            "dataset_version_id") != folder.name or receipt.get("validation", {}).get("status") != "pass":
        why = "it is not this version's roll-up receipt"
    elif not _outputs_are_the_folder(folder, receipt["outputs"], digests):
        why = "its outputs are not the folder's files"
    elif on_disk != listed or sorted((i.get("uri"), i.get("digest")) for i in receipt["inputs"]) != sorted(listed):
        why = f"its inputs are not the runs {RUNS_FILE} names, as they are"
    if not why:
        return []
    return [Finding("VERSION_DIFFERS", f"{why}: it differs from what kfm would write",
                    Location(display_path(folder / RECEIPT_FILE)), hint=hint)]
