"""What the catalogs are made from: the version folder's documents and receipts, the contract the version was made
under, the plan that asked for it, and the runtime metadata of its artifacts (from their GeoParquet footers).

``read_version`` is this package's own small reader of version folders, to be replaced by the typed reader of
``kfm_gitops.versions``. The builders never see a path: they take a ``CatalogInputs``, so the swap touches this
module only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import RUN_ID_RE, VERSION_ID_RE, is_digest, sha256_digest

MANIFEST = "promotion-manifest.json"
MAX_JSON_BYTES = 256 * 1024 * 1024  # a version of many partitions has large documents; still bounded


@dataclass(frozen=True, slots=True)
class Run:
    """A chunk run the version uses: its id, its receipt (repository path, digest) and the receipt's content."""

    run_id: str
    receipt_path: str
    receipt_digest: str
    receipt: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Rollup:
    """The roll-up that made the version (known before its receipt is written, so the roll-up can pass it in)."""

    run_id: str
    created_at: str
    actor: Mapping[str, str]
    receipt_path: str


@dataclass(frozen=True, slots=True)
class ArtifactMeta:
    """Runtime metadata of one PROCESSED artifact: what its writer recorded in the file."""

    digest: str
    size: int
    rows: int
    bbox: tuple[float, float, float, float]
    start: str  # the earliest instant on the partitioning axis, UTC
    end: str  # the latest


@dataclass(frozen=True, slots=True)
class VersionDocs:
    """A version folder as the catalogs need it."""

    folder: str  # repository-relative: releases/<slug>/<version>
    manifest: Mapping[str, Any]
    runs: Mapping[str, Any]
    rollup: Rollup
    chunk_runs: tuple[Run, ...]
    carried: Mapping[str, Run]  # carried partition -> the run (of an earlier version) that made it


@dataclass(frozen=True, slots=True)
class CatalogInputs:
    """Everything the three builders read. ``manifest['catalogs']`` is never read, so the roll-up can build the
    catalogs before it writes the manifest that lists them."""

    docs: VersionDocs
    dataset: Mapping[str, Any]  # dataset.yaml as loaded (the contract of the manifest's spec_hash)
    plan: Mapping[str, Any]  # the plan's requested_by and reviewers
    artifacts: Mapping[str, ArtifactMeta]  # by digest, every partition's
    open_label: str  # the least restrictive label of the vocabulary: extents under any other are coarsened
    media_types: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        types = {str(a.get("digest")): str(a.get("media_type") or "application/octet-stream")
                 for a in self.docs.manifest.get("artifacts", []) if isinstance(a, dict)}
        object.__setattr__(self, "media_types", types)

    @property
    def slug(self) -> str:
        return str(self.docs.manifest["dataset_slug"])

    @property
    def version(self) -> str:
        return str(self.docs.manifest["dataset_version_id"])

    @property
    def label(self) -> str:
        return str(self.docs.manifest["policy"]["policy_label"])

    @property
    def obligations(self) -> list[Mapping[str, Any]]:
        return list(self.docs.manifest["policy"].get("obligations", []))

    def partitions(self) -> list[Mapping[str, Any]]:
        return sorted(self.docs.manifest["partitions"], key=lambda p: str(p["partition"]))

    def media_type(self, digest: str) -> str:
        return self.media_types.get(digest, "application/octet-stream")


def read_json(root: Path, rel: str) -> tuple[dict[str, Any], str] | Finding:
    """A JSON object from a repository file, and its text; a finding (with line and column) when it is not."""
    from kfm_gitops._fs import read_text

    text = read_text(root / rel, shown=rel, limit=MAX_JSON_BYTES)
    if isinstance(text, Finding):
        return text
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return Finding("CATALOG_INPUT", f"not JSON: {exc.msg}", Location(rel, exc.lineno, exc.colno))
    if not isinstance(doc, dict):
        return Finding("CATALOG_INPUT", "not a JSON object", Location(rel, 1, 1))
    return doc, text


def _problem(rel: str, text: str, ptr: str, message: str, hint: str | None = None) -> Finding:
    from kfm_gitops.catalog._json import Locator, Problem

    name = rel.rsplit("/", 1)[-1]
    return Locator(rel.rsplit("/", 1)[0], {name: text}).finding(Problem(name, ptr, "CATALOG_INPUT", message, hint))


def _manifest_problems(rel: str, doc: dict[str, Any], text: str) -> list[Finding]:
    """The manifest fields the catalogs read, present and of the right kind."""
    out = []
    for key, kind in (("dataset_slug", str), ("dataset_version_id", str), ("spec_hash", str), ("partitions", list),
                      ("artifacts", list), ("policy", dict)):
        if not isinstance(doc.get(key), kind):
            out.append(_problem(rel, text, "", f"{key} is missing or not a {kind.__name__}"))
    if out:
        return out
    if not VERSION_ID_RE.fullmatch(doc["dataset_version_id"]):
        out.append(_problem(rel, text, "/dataset_version_id", "not a dataset_version_id"))
    for i, p in enumerate(doc["partitions"]):
        ok = (isinstance(p, dict) and isinstance(p.get("partition"), str) and is_digest(p.get("processed"))
              and isinstance(p.get("raw"), list) and all(is_digest(r) for r in p["raw"]))
        if not ok:
            out.append(_problem(rel, text, f"/partitions/{i}", "a partition needs its key, a processed digest and "
                                "a list of RAW digests"))
    if not isinstance(doc["policy"].get("policy_label"), str):
        out.append(_problem(rel, text, "/policy", "policy_label is missing"))
    return out


def read_version(root: Path, folder: Path) -> VersionDocs | list[Finding]:
    """Read a version folder: the one place to swap for ``kfm_gitops.versions`` once it exists."""
    try:
        rel = folder.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return [Finding("CATALOG_INPUT", f"{folder} is not inside the repository {root}", Location(str(folder)))]
    got: dict[str, tuple[dict[str, Any], str]] = {}
    findings: list[Finding] = []
    for name in (MANIFEST, "runs.json", "receipt.json"):
        doc = read_json(root, f"{rel}/{name}")
        if isinstance(doc, Finding):
            findings.append(doc)
        else:
            got[name] = doc
    if findings:
        return findings
    rollup = _rollup(f"{rel}/receipt.json", *got["receipt.json"])
    if isinstance(rollup, Finding):
        return [rollup]
    return version_docs(root, rel, got[MANIFEST][0], got["runs.json"][0], rollup,
                        texts=(got[MANIFEST][1], got["runs.json"][1]))


def version_docs(root: Path, folder: str, manifest: Mapping[str, Any], runs: Mapping[str, Any], rollup: Rollup,
                 texts: tuple[str, str] | None = None) -> VersionDocs | list[Finding]:
    """A version's documents, as held in memory (the roll-up's, before it writes the folder) or as read: the
    receipts of its runs and of the runs its carried partitions come from are read from their run folders.
    ``texts``: the manifest's and runs.json's text, to locate problems (else their one serialisation)."""
    from kfm_gitops.catalog._json import dumps

    manifest_text, runs_text = texts or (dumps(manifest).decode("utf-8"), dumps(runs).decode("utf-8"))
    findings = _manifest_problems(f"{folder}/{MANIFEST}", dict(manifest), manifest_text)
    chunk_runs, problems = _chunk_runs(root, f"{folder}/runs.json", dict(runs), runs_text)
    if findings or problems:
        return findings + problems
    made = {(k, d) for r in chunk_runs for k, d in _made_by(r.receipt).items()}
    wanted = {str(p["partition"]): str(p["processed"]) for p in manifest["partitions"]
              if (p["partition"], p["processed"]) not in made}
    carried = producing_runs(root, manifest["dataset_slug"], manifest.get("base_dataset_version_id") or "", wanted)
    if isinstance(carried, list):
        return carried
    return VersionDocs(folder, manifest, runs, rollup, tuple(chunk_runs), carried)


def _rollup(rel: str, doc: dict[str, Any], text: str) -> Rollup | Finding:
    actor = doc.get("actor")
    if (doc.get("operation") != "rollup" or not RUN_ID_RE.fullmatch(str(doc.get("run_id")))
            or not isinstance(doc.get("created_at"), str) or not isinstance(actor, dict)):
        return _problem(rel, text, "", "not a roll-up receipt (operation rollup, run_id, created_at, actor)")
    return Rollup(doc["run_id"], doc["created_at"], {k: str(v) for k, v in actor.items()}, rel)


def _made_by(receipt: Mapping[str, Any]) -> dict[str, str]:
    """partition -> digest, for the partitions a chunk run's receipt says it made."""
    out = {}
    for o in receipt.get("outputs", []):
        role = str(o.get("role", ""))
        if role.startswith("partition:"):
            out[role.split(":", 1)[1]] = str(o.get("digest"))
    return out


def _chunk_runs(root: Path, rel: str, doc: dict[str, Any], text: str) -> tuple[list[Run], list[Finding]]:
    """The runs runs.json lists, each receipt read and matched against the digest runs.json records."""
    runs: list[Run] = []
    findings: list[Finding] = []
    listed = doc.get("runs")
    if not isinstance(listed, list):
        return [], [_problem(rel, text, "", "runs is missing or not a list")]
    for i, r in enumerate(listed):
        if not isinstance(r, dict) or not RUN_ID_RE.fullmatch(str(r.get("run_id"))) or not is_digest(r.get("digest")):
            findings.append(_problem(rel, text, f"/runs/{i}", "a run needs its run_id, receipt and digest"))
            continue
        got = read_json(root, str(r.get("receipt")))
        if isinstance(got, Finding):
            findings.append(got)
            continue
        data = (root / str(r["receipt"])).read_bytes()
        if sha256_digest(data) != r["digest"]:
            findings.append(_problem(rel, text, f"/runs/{i}/digest", f"{r['receipt']} has the digest "
                                     f"{sha256_digest(data)}, not the one recorded here",
                                     hint="committed evidence was altered: restore it from git"))
            continue
        runs.append(Run(r["run_id"], str(r["receipt"]), r["digest"], got[0]))
    return runs, findings


def producing_runs(root: Path, slug: str, base: str, wanted: Mapping[str, str]) -> dict[str, Run] | list[Finding]:
    """For partitions carried from ``base``: the run that made each, found by walking the chain of base versions
    (each version's runs.json, then its own base)."""
    found: dict[str, Run] = {}
    seen: set[str] = set()
    version = base
    while len(found) < len(wanted) and version and version not in seen:
        seen.add(version)
        rel = f"releases/{slug}/{version}/runs.json"
        got = read_json(root, rel)
        if isinstance(got, Finding):
            return [got]
        runs, problems = _chunk_runs(root, rel, *got)
        if problems:
            return problems
        for run in runs:
            for key, digest in _made_by(run.receipt).items():
                if wanted.get(key) == digest and key not in found:
                    found[key] = run
        version = str(got[0].get("base_dataset_version_id") or "")
    missing = sorted(set(wanted) - set(found))
    if missing:
        return [Finding("CATALOG_INPUT", f"partition(s) {', '.join(missing)}: no run of this version or of its base "
                        "versions made them", Location(f"releases/{slug}"),
                        hint="the runs.json and receipts of the base versions must be committed")]
    return found


def contract_dataset(root: Path, docs: VersionDocs) -> dict[str, Any] | Finding:
    """dataset.yaml of the contract the version was made under: the working tree's when its spec_hash is the
    manifest's, else the one in the commit the roll-up recorded."""
    from kfm_gitops import _yaml
    from kfm_gitops.identity import spec_hash

    slug, want = str(docs.manifest["dataset_slug"]), str(docs.manifest["spec_hash"])
    paths = (f"datasets/{slug}/dataset.yaml", f"datasets/{slug}/pipeline.yaml")
    ok = [d for d in (_yaml.load(root / p, shown=p) for p in paths) if isinstance(d, _yaml.Document)]
    if len(ok) == 2 and spec_hash(ok[0].data, ok[1].data) == want:
        return dict(ok[0].data)
    commit = _evidence_contract(root, paths, docs)
    if commit is not None and spec_hash(commit[0], commit[1]) == want:
        return dict(commit[0])
    return Finding("CATALOG_CONTRACT", f"no contract of {slug} has the version's spec_hash {want}",
                   Location(f"{docs.folder}/{MANIFEST}"),
                   hint="the contract changed since the version was made, and the commit its roll-up recorded is "
                   "not in this repository")


def _evidence_contract(root: Path, paths: tuple[str, str], docs: VersionDocs) -> tuple[Any, Any] | None:
    from kfm_gitops import _git, _yaml

    receipt = read_json(root, docs.rollup.receipt_path)
    commit = receipt[0].get("environment", {}).get("git_commit") if not isinstance(receipt, Finding) else None
    repo = _git.discover(root) if isinstance(commit, str) else None
    if repo is None or not isinstance(commit, str):
        return None
    try:
        blobs = [_git.read_blob(repo, commit, p) for p in paths]
    except (KeyError, ValueError):
        return None
    loaded = [_yaml.loads(b.decode("utf-8"), p) if b is not None else None for b, p in zip(blobs, paths, strict=True)]
    if not all(isinstance(d, _yaml.Document) for d in loaded):
        return None
    return loaded[0].data, loaded[1].data  # type: ignore[union-attr]


def plan_people(root: Path, docs: VersionDocs) -> dict[str, Any] | Finding:
    """The plan's requester and reviewers (the agents PROV names beside the pipeline)."""
    from kfm_gitops import _yaml

    rel = str(docs.manifest.get("plan") or "")
    doc = _yaml.load(root / rel, shown=rel) if rel else None
    if not isinstance(doc, _yaml.Document):
        where = doc[0].location if isinstance(doc, list) else Location(f"{docs.folder}/{MANIFEST}")
        return Finding("CATALOG_INPUT", f"the version's plan {rel or '(none named)'} cannot be read", where)
    reviewers = doc.data.get("reviewers") or []
    return {"path": rel, "requested_by": str(doc.data.get("requested_by") or ""),
            "reviewers": [str(r) for r in reviewers if isinstance(r, str)]}
