"""The checks of the pre-commit hooks, on a laptop before any push, with the gates' own rules:

- ``staged_alterations``: what the index would commit against HEAD may add evidence, never edit or delete it
  (`kfm evidence check-append-only`, hook ``kfm-evidence-append-only``);
- ``validate_files``: promotion manifests, receipts and acquisition manifests, each against its schema and against
  the files beside it, without the object store (`kfm manifest validate FILES`, hook ``kfm-manifest-validate``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from kfm_gitops import _git
from kfm_gitops.config import Config
from kfm_gitops.errors import KfmError
from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import sha256_digest
from kfm_gitops.receipts import RECEIPT_FILE
from kfm_gitops.versions import MANIFEST_FILE, RUNS_DIR


def staged_alterations(config: Config) -> tuple[list[str], list[Finding]]:
    """(the evidence paths the index changes, the edits and deletions of committed evidence among them)."""
    from kfm_gitops.gates.changes import sort_changes

    repo = _git.discover(config.root)
    if repo is None:
        raise KfmError(f"{config.root} is not a git repository", hint="the hook checks what git would commit")
    head = _git.head_commit(repo)
    if head is None:
        return [], []  # the first commit alters nothing
    changes = _git.staged_changes(repo)
    change = sort_changes(repo, head, changes, lambda path: _git.staged_blob(repo, path), base_name="HEAD")
    evidence = [c.path for c in changes if c.path.startswith(("data/raw/", "releases/", "plans/"))]
    return evidence, change.altered


def validate_files(paths: Sequence[Path]) -> tuple[list[str], list[Finding]]:
    """Each file by its kind: a promotion manifest, a receipt, or an acquisition manifest (data/raw/<slug>/)."""
    checked: list[str] = []
    findings: list[Finding] = []
    for path in paths:
        shown = _shown(path)
        checked.append(shown)
        if path.name == MANIFEST_FILE:
            findings += _promotion_manifest(path)
        elif path.name == RECEIPT_FILE:
            findings += _receipt(path, shown)
        elif path.parent.parent.name == "raw" and path.suffix == ".json":
            findings += _acquisition(path, shown)
        else:
            findings.append(Finding("MANIFEST_UNKNOWN", f"not a file kfm validates ({MANIFEST_FILE}, {RECEIPT_FILE} "
                                    "or an acquisition manifest under data/raw/<slug>/)", Location(shown)))
    return checked, findings


def _shown(path: Path) -> str:
    from kfm_gitops._fs import display_path

    return display_path(path)


def _promotion_manifest(path: Path) -> list[Finding]:
    """The manifest's ids and digests, and the files beside it: what gates A, D and G check without a store."""
    from kfm_gitops.config import CONFIG_NAME, find_root, load_config
    from kfm_gitops.gates import catalog, identity, manifest
    from kfm_gitops.gates.target import load

    root = find_root(path)
    config = load_config(root) if root is not None else None
    if not isinstance(config, Config):
        return config if isinstance(config, list) else [Finding(
            "NO_REPOSITORY", f"no {CONFIG_NAME} above it: a version folder is checked inside its repository",
            Location(_shown(path)))]
    target = load(config, path.parent.resolve(), None)
    if target.version is None:
        return list(target.problems)
    _, findings = identity.ids(target)
    return [*findings, *manifest.consistency(target), *catalog.listed(target)[1]]


def _receipt(path: Path, shown: str) -> list[Finding]:
    """Schema and canonical form, then the run it belongs to: a run folder named for its run id, or the version
    folder of its roll-up; and the files beside it that it records, by digest."""
    from kfm_gitops.receipts import read_receipt
    from kfm_gitops.versions import run_folder_name

    receipt = read_receipt(path)
    if isinstance(receipt, list):
        return receipt
    data, folder = receipt.data, path.parent
    where = Location(shown)
    problems = []
    if folder.parent.name == RUNS_DIR and run_folder_name(receipt.run_id) != folder.name:
        problems.append(f"it is the receipt of {receipt.run_id}, in the run folder {folder.name}")
    elif (folder / MANIFEST_FILE).is_file() and (data.get("operation"), data.get("dataset_version_id")) != (
            "rollup", folder.name):
        problems.append(f"it is not the roll-up receipt of the version {folder.name}")
    for out in data.get("outputs", []):
        uri = str(out.get("uri", ""))
        beside = folder / uri if "/" not in uri or uri.startswith("catalog/") else None
        if beside is not None and (not beside.is_file() or sha256_digest(beside.read_bytes()) != out.get("digest")):
            problems.append(f"{uri} beside it is {'missing' if not beside.is_file() else 'not the file it records'}")
    return [Finding("RECEIPT_INVALID", p, where, hint="receipts and what they record are never edited: restore "
                    "them from git") for p in problems]


def _acquisition(path: Path, shown: str) -> list[Finding]:
    from kfm_gitops.acquire import check_manifest

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [Finding("MANIFEST_INVALID", f"not JSON: {exc.msg}", Location(shown, exc.lineno, exc.colno))]
    except (OSError, ValueError) as exc:
        return [Finding("MANIFEST_INVALID", f"unreadable: {exc}", Location(shown))]
    return check_manifest(path, doc, path.parent.name)
