"""What the gates check: a candidate version, read once. Its promotion manifest, the runs it uses (runs.json and
each run's receipt), the roll-up's receipt, the contract it was made under and its base version. A problem met
while reading is kept as a finding; the gate that guards that piece of evidence reports it, and a gate that needs a
piece it cannot have fails closed.

The files are read below ``config.root``: a working tree, or an export of one commit (``commit``). History
questions (was a run's commit committed, what did the contract say then) go to the repository at ``history``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfm_gitops.config import Config
from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import ReleaseContext
from kfm_gitops.identity import sha256_digest
from kfm_gitops.receipts import RECEIPT_FILE
from kfm_gitops.store import Store
from kfm_gitops.versions import (
    MANIFEST_MAX_BYTES,
    RUNS_FILE,
    VersionManifest,
    read_version,
    repo_path,
    version_dir,
)

RESTORE = "committed evidence is never edited: restore it from git (`git checkout HEAD -- {path}`)"


@dataclass(frozen=True, slots=True)
class Run:
    """A chunk run a version uses: what runs.json says of it, and its receipt as found (None when missing or not
    JSON)."""

    chunk: str
    run_id: str
    receipt_path: str  # repository path
    recorded_digest: str  # the receipt's digest as runs.json records it
    receipt: Mapping[str, Any] | None
    digest: str | None  # the receipt file's digest (None: no file)

    @property
    def folder(self) -> str:
        return self.receipt_path.rsplit("/", 1)[0]

    def outputs(self, role: str) -> list[Mapping[str, Any]]:
        """The receipt's outputs with this role (``partition:`` matches every partition)."""
        items = self.receipt.get("outputs", []) if self.receipt is not None else []
        return [o for o in items if isinstance(o, dict) and (str(o.get("role", "")) == role
                                                              or (role.endswith(":") and
                                                                  str(o.get("role", "")).startswith(role)))]

    @property
    def partitions(self) -> dict[str, str]:
        """partition -> digest of the partitions the receipt says the run made."""
        return {str(o["role"]).split(":", 1)[1]: str(o.get("digest")) for o in self.outputs("partition:")}


@dataclass(frozen=True, slots=True)
class ContractAt:
    """The dataset contract a version was made under (the one whose spec_hash is the manifest's)."""

    dataset: Mapping[str, Any]
    pipeline: Mapping[str, Any]
    path: str  # datasets/<slug>/dataset.yaml
    source: str  # where it was read: "commit <12 hex>" or "the working tree"


@dataclass(frozen=True, slots=True)
class Target:
    config: Config
    folder: Path
    rel: str  # releases/<slug>/<version>, as git names it
    store: Store | None
    release: ReleaseContext | None
    commit: str | None  # the commit the files are from (None: the working tree)
    history: Path  # the repository whose history holds the evidence
    version: VersionManifest | None
    problems: tuple[Finding, ...]  # why the version folder cannot be read at all
    runs: tuple[Run, ...] = ()
    carried: tuple[str, ...] = ()
    runs_problems: tuple[Finding, ...] = ()
    rollup: Mapping[str, Any] | None = None
    contract: ContractAt | None = None
    contract_problem: Finding | None = None
    base: VersionManifest | None = None
    base_problem: Finding | None = None

    def file(self, rel: str) -> Path:
        return self.config.root / rel

    def where(self, name: str) -> Location:
        """A file of the version folder, as findings name it."""
        return Location(f"{self.rel}/{name}")

    @property
    def new_keys(self) -> list[str]:
        """The partitions this version made (not carried from its base)."""
        return [k for k in (self.version.partition_keys if self.version else []) if k not in self.carried]


def read_json(root: Path, rel: str, limit: int = MANIFEST_MAX_BYTES) -> tuple[Any, bytes] | Finding:
    """A repository file's JSON and bytes, or a finding (with line and column) saying why not."""
    from kfm_gitops._fs import read_text

    text = read_text(root / rel, shown=rel, limit=limit)
    if isinstance(text, Finding):
        return text
    try:
        return json.loads(text), text.encode("utf-8")
    except json.JSONDecodeError as exc:
        return Finding("EVIDENCE_INVALID", f"not JSON: {exc.msg}", Location(rel, exc.lineno, exc.colno),
                       hint=RESTORE.format(path=rel))


def load(config: Config, folder: Path, store: Store | None, *, release: ReleaseContext | None = None,
         commit: str | None = None, history: Path | None = None) -> Target:
    """Read a candidate version once for all the gates."""
    rel = repo_path(config, folder.resolve()) if folder.is_absolute() else folder.as_posix()
    target = Target(config, config.root / rel, rel, store, release, commit, history or config.root, None, ())
    version = read_version(target.folder)
    if isinstance(version, list):
        return _replace(target, problems=tuple(version))
    runs, carried, problems = _runs(config.root, f"{rel}/{RUNS_FILE}")
    rollup = read_json(config.root, f"{rel}/{RECEIPT_FILE}")
    target = _replace(target, version=version, runs=tuple(runs), carried=tuple(carried),
                      runs_problems=tuple(problems), rollup=rollup[0] if isinstance(rollup, tuple)
                      and isinstance(rollup[0], dict) else None)
    contract = contract_of(target)
    base, base_problem = _base(config, version)
    return _replace(target, contract=contract if isinstance(contract, ContractAt) else None,
                    contract_problem=contract if isinstance(contract, Finding) else None, base=base,
                    base_problem=base_problem)


def _replace(target: Target, **changes: Any) -> Target:
    from dataclasses import replace

    return replace(target, **changes)


def _runs(root: Path, rel: str) -> tuple[list[Run], list[str], list[Finding]]:
    """The runs runs.json lists, each with its receipt as found, and the partitions it says are carried."""
    got = read_json(root, rel)
    if isinstance(got, Finding):
        return [], [], [got]
    doc = got[0]
    listed, carried = (doc.get("runs"), doc.get("carried")) if isinstance(doc, dict) else (None, None)
    if not isinstance(listed, list) or not isinstance(carried, list):
        return [], [], [Finding("EVIDENCE_INVALID", "runs.json needs a list of runs and a list of carried "
                                "partitions", Location(rel), hint=RESTORE.format(path=rel))]
    runs, problems = [], []
    for i, entry in enumerate(listed):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in
                                                  ("chunk", "run_id", "receipt", "digest")):
            problems.append(Finding("EVIDENCE_INVALID", f"runs[{i}] needs its chunk, run_id, receipt and digest",
                                    Location(rel), hint=RESTORE.format(path=rel)))
            continue
        path = root / entry["receipt"]
        data = path.read_bytes() if path.is_file() else None
        receipt = _json_object(data)
        runs.append(Run(entry["chunk"], entry["run_id"], entry["receipt"], entry["digest"], receipt,
                        sha256_digest(data) if data is not None else None))
    return runs, [str(c) for c in carried], problems


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    try:
        doc = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _base(config: Config, version: VersionManifest) -> tuple[VersionManifest | None, Finding | None]:
    if not version.base:
        return None, None
    base = read_version(version_dir(config, version.slug, version.base))
    if isinstance(base, list):
        return None, Finding("BASE_UNREADABLE", f"the base version {version.base} cannot be read: "
                             f"{base[0].message}", base[0].location,
                             hint="a version's base must be committed beside it (releases/<slug>/<base>/)")
    return base, None


def contract_of(target: Target) -> ContractAt | Finding:
    """The contract whose spec_hash is the version's: the one in the commit the roll-up ran from, else the
    working tree's; a finding when neither hashes to it."""
    from kfm_gitops.identity import spec_hash

    assert target.version is not None
    slug, want = target.version.slug, target.version.spec_hash
    paths = (f"datasets/{slug}/dataset.yaml", f"datasets/{slug}/pipeline.yaml")
    commit = str((target.rollup or {}).get("environment", {}).get("git_commit") or "")
    tried = []
    for source, docs in ((f"commit {commit[:12]}", _contract_at_commit(target.history, commit, paths)),
                         ("the working tree", _contract_in_tree(target.config.root, paths))):
        if docs is None:
            continue
        got = spec_hash(docs[0], docs[1])
        if got == want:
            return ContractAt(docs[0], docs[1], paths[0], source)
        tried.append(f"{source} has {got}")
    return Finding("SPEC_HASH_MISMATCH", f"no contract of {slug} recomputes the version's spec_hash {want}"
                   + (f" ({'; '.join(tried)})" if tried else " (none could be read)"),
                   Location(f"{target.rel}/promotion-manifest.json"),
                   hint="a version is made under one contract, recorded by its roll-up's commit: restore the "
                   "manifest from git, or fetch the history that holds that commit")


def _contract_at_commit(history: Path, commit: str, paths: tuple[str, str]
                        ) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    from kfm_gitops import _git, _yaml

    repo = _git.discover(history) if commit else None
    if repo is None:
        return None
    try:
        blobs = [_git.read_blob(repo, commit, p) for p in paths]
    except (KeyError, ValueError):
        return None
    docs = [_yaml.loads(b.decode("utf-8", "replace"), p) if b is not None else None
            for b, p in zip(blobs, paths, strict=True)]
    if not all(isinstance(d, _yaml.Document) for d in docs):
        return None
    return docs[0].data, docs[1].data  # type: ignore[union-attr]


def _contract_in_tree(root: Path, paths: tuple[str, str]) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    from kfm_gitops import _yaml

    docs = [_yaml.load(root / p, shown=p) for p in paths]
    if not all(isinstance(d, _yaml.Document) for d in docs):
        return None
    return docs[0].data, docs[1].data  # type: ignore[union-attr]


def missing_input(gate: str, what: str, owner: str) -> Finding:
    """A gate that cannot check ``what`` because the evidence another gate guards is missing (fail closed)."""
    return Finding("GATE_INPUT_MISSING", f"gate {gate} cannot check {what}", None,
                   hint=f"gate {owner} says what is missing; fix that first")


def store_problem(gate: str, what: str, store: Store | None, where: Location | None) -> Finding | None:
    """Why a gate that re-hashes ``what`` in the store cannot (None when it can): it fails closed without one."""
    if store is not None and store.reachable():
        return None
    why = "no store was given" if store is None else f"there is no store at {store.url}"
    return Finding("STORE_UNREACHABLE", f"gate {gate} re-hashes {what} in the store, and {why}", where,
                   hint="set KFM_STORE (or --store) to the shared store, which the gates read")


def rehash(target: Target, named: Mapping[str, Sequence[tuple[str, str]]], named_by: str, hint: str
           ) -> tuple[int, list[Finding]]:
    """Re-hash objects in the store on every core (``named``: digest -> where each is named and what it is there);
    how many were re-hashed, the missing ones as one finding with what to pull, a corrupt one as a finding each."""
    from kfm_gitops.store import missing_finding

    store = target.store
    assert store is not None
    verdicts = store.verify_all(dict.fromkeys(named))
    missing = [(where, what, d) for d, code in verdicts.items() if code == "OBJECT_MISSING" for where, what in named[d]]
    findings = [missing_finding(store, target.config.shared_store, missing, named_by)] if missing else []
    findings += [Finding(code, f"{what} {d} does not hash to its name in the store {store.url}", Location(where),
                         hint=hint)
                 for d, code in verdicts.items() if code not in (None, "OBJECT_MISSING") for where, what in named[d]]
    return len(verdicts), findings
