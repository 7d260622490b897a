"""The gates: seven fail-closed checks of a candidate version, each its own required check on a pull request.

    GATES                                    the registry: gate id -> the module that checks it
    run_gates(config, version_dir, store)    gate a version folder of the working tree -> [GateResult]
    gate_release(config, release)            gate the version a release pointer names, from its evidence commit
    changes.gate_changes(...)                gate what a range of commits changes (`kfm gate run X --changed`)

Fail closed: a gate that cannot read what it needs, raises, or evaluates nothing has failed. Each gate module
exposes ``GATE`` (its id) and ``check(target) -> GateResult``; the version is read once (``target.load``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from kfm_gitops import _git
from kfm_gitops.config import Config
from kfm_gitops.errors import KfmError, UsageError
from kfm_gitops.gates import catalog, identity, licensing, manifest, policy, qa, receipts
from kfm_gitops.gates.model import GATE_NAMES, GateResult, ReleaseContext, crashed, verdict
from kfm_gitops.gates.target import Target, load
from kfm_gitops.store import Store

__all__ = ["ALL", "GATES", "GATE_NAMES", "GateResult", "ReleaseContext", "gate_release", "run_gates", "select",
           "verdict"]


class Gate(Protocol):
    """A gate module: its id and its check."""

    __name__: str
    GATE: str

    def check(self, target: Target) -> GateResult: ...


GATES: dict[str, Gate] = {
    "A": identity,
    "B": licensing,
    "C": policy,
    "D": catalog,
    "E": qa,
    "F": receipts,
    "G": manifest,
}
ALL = "".join(GATES)


def select(which: str) -> list[str]:
    """The gates a command names: one id, several ("AC"), or "all"."""
    ids = ALL if which.lower() == "all" else which.upper()
    unknown = sorted(set(ids) - set(GATES))
    if not ids or unknown:
        raise UsageError(f"no gate {which!r}", hint=f"gates: {', '.join(GATES)} or all")
    return [g for g in GATES if g in ids]


def run_one(gate: str, target: Target) -> GateResult:
    """One gate on a loaded target; an exception inside it is its failure, naming the exception."""
    try:
        return GATES[gate].check(target)
    except Exception as exc:  # fail closed: a gate that could not run did not pass
        _debug_traceback()
        return crashed(gate, exc)


def run_gates(config: Config, version_dir: Path, store: Store | None, *, gates: str = ALL,
              release: ReleaseContext | None = None, commit: str | None = None,
              history: Path | None = None) -> list[GateResult]:
    """Gate a version folder below ``config.root``. ``commit``: the files are that commit's (an export), not a
    working tree; ``history``: the repository that holds the evidence's history (default ``config.root``)."""
    selected = select(gates)
    try:
        target = load(config, version_dir, store, release=release, commit=commit, history=history)
    except Exception as exc:  # the version cannot be read at all: every gate fails, naming why
        _debug_traceback()
        return [crashed(g, exc) for g in selected]
    return [run_one(g, target) for g in selected]


def gate_release(config: Config, release: ReleaseContext, store: Store | None = None, *,
                 gates: str = ALL) -> list[GateResult]:
    """The gates of a release (a release PR, a promotion): the version the pointer names, read from its evidence
    commit on main (wherever the working tree is), with today's kfm.yaml and policies (main's head), plus what the
    release adds: approvals (C), the ledger's chain (F), the promotion rules (G). Matches the release flow's
    ``GateRunner`` (config, release) -> results."""
    import tempfile

    from kfm_gitops.config import load_config, store_url
    from kfm_gitops.errors import FindingsError
    from kfm_gitops.versions import version_dir

    repo = _git.discover(config.root)
    if repo is None:
        raise KfmError(f"{config.root} is not a git repository", hint="gate a release inside its repository")
    with tempfile.TemporaryDirectory(prefix="kfm-gates-") as tmp:
        root = Path(tmp)
        export_version(config, repo, release.evidence_commit, release.slug, release.version_id, root)
        exported = load_config(root)
        if isinstance(exported, list):
            raise FindingsError(exported, "kfm.yaml of the main branch is invalid")
        return run_gates(exported, version_dir(exported, release.slug, release.version_id),
                         store or Store(store_url(config)), gates=gates, release=release,
                         commit=release.evidence_commit, history=config.root)


def export_version(config: Config, repo: _git.Repository, evidence_commit: str, slug: str, version_id: str,
                   dest: Path) -> None:
    """What the gates read of one version, written below ``dest``: the dataset's contract, plans, acquisitions,
    runs and versions (the catalogs of this version only) as the evidence commit holds them; kfm.yaml and the
    policies as main's head holds them (today's rules)."""
    from kfm_gitops.config import CONFIG_NAME
    from kfm_gitops.policy import POLICY_DIR

    try:
        evidence = _git.resolve(repo, evidence_commit)
    except (KeyError, ValueError) as exc:
        raise KfmError(f"the evidence commit {evidence_commit} is not in this repository",
                       hint=f"fetch {config.main_branch} (its full history) first") from exc
    today = _git.branch_head(repo, config.main_branch) or _git.remote_branch_head(repo, "origin", config.main_branch)
    rules = today or evidence
    config_blob = _git.read_blob(repo, rules, CONFIG_NAME)
    if config_blob is not None:
        (dest / CONFIG_NAME).write_bytes(config_blob)
    _git.export(repo, rules, POLICY_DIR, dest)

    def keep(path: str) -> bool:  # other versions' catalogs are never read
        parts = path.split("/")
        return not (len(parts) >= 4 and parts[2] not in (version_id, "runs") and parts[3] == "catalog")

    for folder in (f"datasets/{slug}", f"plans/{slug}", f"data/raw/{slug}", f"releases/{slug}"):
        _git.export(repo, evidence, folder, dest, keep)


def _debug_traceback() -> None:
    import os

    if os.environ.get("KFM_DEBUG") == "1":
        import traceback

        traceback.print_exc()


def results_ok(results: Iterable[GateResult]) -> bool:
    found = list(results)
    return bool(found) and all(r.status == "passed" for r in found)
