"""`kfm doctor SLUG`: the runbook's step 0, backfill or reindex, answered from the repository and the store.

For the version ``published/<slug>`` shows, read from its evidence commit:

- PROCESSED: every partition's artifact is in the store and matches its digest; else backfill (unless another
  store still has it intact: `kfm store pull`);
- catalogs: its DCAT, STAC and PROV validate as committed (`kfm catalog validate`, on the evidence commit's files);
  else backfill;
- history: no partition is missing between the first and the last (`kfm gaps`); else backfill;
- projection: the target holds a projection built from that version, whose digest still recomputes; else reindex.

The answer: backfill when a canonical artifact is missing or wrong; reindex when only the projection is; nothing
when all is well; unknown when a check could not run (the store or the database unreachable) and nothing else
calls for a backfill. Each check gives its evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kfm_gitops import _git
from kfm_gitops.config import Config
from kfm_gitops.errors import KfmError
from kfm_gitops.store import Store

Action = Literal["backfill", "reindex"]
Status = Literal["ok", "failed", "error"]
Answer = Literal["backfill", "reindex", "nothing", "unknown"]
MAX_EVIDENCE = 12  # lines of evidence a failed check shows; the rest are counted


@dataclass(frozen=True, slots=True)
class Check:
    """One question of step 0: ``status`` ok, failed (the evidence says what is wrong: ``action`` fixes it) or
    error (the check could not run: the evidence says why)."""

    name: str
    status: Status
    action: Action
    evidence: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "action": self.action, "evidence": list(self.evidence)}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    slug: str
    version_id: str  # "" when nothing is published
    evidence_commit: str
    alias_commit: str
    target: str
    checks: tuple[Check, ...]

    @property
    def answer(self) -> Answer:
        if any(c.status == "failed" and c.action == "backfill" for c in self.checks):
            return "backfill"
        if any(c.status == "error" for c in self.checks):
            return "unknown"
        if any(c.status == "failed" for c in self.checks):
            return "reindex"
        return "nothing"

    def as_dict(self) -> dict[str, Any]:
        return {"dataset_slug": self.slug, "dataset_version_id": self.version_id or None,
                "evidence_commit": self.evidence_commit or None, "alias_commit": self.alias_commit or None,
                "target": self.target, "answer": self.answer, "checks": [c.as_dict() for c in self.checks]}


def _capped(lines: list[str]) -> tuple[str, ...]:
    if len(lines) <= MAX_EVIDENCE:
        return tuple(lines)
    return (*lines[:MAX_EVIDENCE], f"... and {len(lines) - MAX_EVIDENCE} more")


def _guarded(name: str, action: Action, run: Callable[[], Check]) -> Check:
    """A check that raised could not run: an error, with why."""
    try:
        return run()
    except KfmError as exc:
        return Check(name, "error", action, (exc.message, *([f"hint: {exc.hint}"] if exc.hint else [])))
    except OSError as exc:
        return Check(name, "error", action, (f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename
                                                                         else ""),))


def processed_check(store: Store, partitions: tuple[tuple[str, str], ...]) -> Check:
    from concurrent.futures import ThreadPoolExecutor

    if not store.reachable():
        return Check("PROCESSED", "error", "backfill", (f"the store {store.url} cannot be reached",))
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(store.verify, [d for _, d in partitions]))
    bad = [f"{key}: {digest} " + ("is missing from the store" if v == "OBJECT_MISSING" else
                                  "does not match its digest (corrupt)")
           for (key, digest), v in zip(partitions, verdicts, strict=True) if v]
    if not bad:
        return Check("PROCESSED", "ok", "backfill", (f"{len(partitions)} artifacts in {store.url} match their "
                                                     "digests",))
    return Check("PROCESSED", "failed", "backfill", (*_capped(bad), "if another store still has them intact, "
                                                     "`kfm store pull` restores them; otherwise backfill those "
                                                     "partitions"))


def catalogs_check(config: Config, repo: _git.Repository, slug: str, version_id: str, evidence_commit: str,
                   store: Store) -> Check:
    """`kfm catalog validate` on the version's folder as its evidence commit holds it (its files written into a
    temporary folder), with today's vocabularies."""
    import tempfile

    from kfm_gitops.catalog import validate_catalogs
    from kfm_gitops.errors import FindingsError
    from kfm_gitops.versions import repo_path, version_dir

    where = f"at {evidence_commit[:12]}"
    with tempfile.TemporaryDirectory(prefix="kfm-doctor-") as tmp:
        root = Path(tmp)
        for rel, data in _git.list_tree(repo, evidence_commit).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        folder = root / repo_path(config, version_dir(config, slug, version_id))
        try:
            check = validate_catalogs(root, folder, store, vocab=config.vocab)
        except FindingsError as exc:
            return Check("catalogs", "failed", "backfill",
                         _capped([f"{where}: {exc.message}", *(f.text() for f in exc.findings)]))
    errors = [f.text() for f in check.findings if f.severity == "error"]
    if check.ok:
        return Check("catalogs", "ok", "backfill", (f"DCAT, STAC and PROV of {version_id} validate {where} "
                                                    f"({len(check.checked)} files, links resolve)",))
    return Check("catalogs", "failed", "backfill", _capped([f"{where}: {len(errors) or 'no'} error(s) in "
                                                           f"{len(check.checked)} catalog file(s)", *errors]))


def history_check(config: Config, slug: str) -> Check:
    from kfm_gitops.gaps import coverage

    cov = coverage(config, slug)
    if not cov.gaps:
        return Check("history", "ok", "backfill", (f"every {cov.mode} partition from {cov.present[0]} to "
                                                   f"{cov.present[-1]} is published ({len(cov.present)})",))
    lines = [f"missing [{g.as_dict()['start']}, {g.as_dict()['end']}): {', '.join(g.partitions)}" for g in cov.gaps]
    return Check("history", "failed", "backfill", (*_capped(lines), f"`kfm gaps {slug} --plan` drafts the plan"))


def projection_check(config: Config, slug: str, version_id: str, alias_commit: str, target: str | None) -> Check:
    from kfm_gitops.projections import parse_target, recompute, recorded

    shown = parse_target(config, target).shown
    fix = f"`kfm reindex {slug}" + (f" --target {shown}`" if target else "`")
    found = recorded(config, slug, target)
    if found is None:
        return Check("projection", "failed", "reindex", (f"{shown} holds no projection of {slug}", fix))
    if found.version_id != version_id:
        return Check("projection", "failed", "reindex", (f"{shown}: built from {found.version_id} (alias commit "
                                                         f"{found.alias_commit[:12]}), but the alias publishes "
                                                         f"{version_id} (alias commit {alias_commit[:12]})", fix))
    now = recompute(config, slug, target)
    if now != found.digest:
        return Check("projection", "failed", "reindex", (
            f"{shown}: built from {version_id} with digest {found.digest} ({found.engine}), but the table gives "
            f"{now} now: it was changed since it was built", fix))
    return Check("projection", "ok", "reindex", (f"{shown}: built from {version_id} at {found.built_at}; its digest "
                                                 f"{found.digest} recomputes",))


def diagnose(config: Config, slug: str, *, store: Store, target: str | None = None) -> Diagnosis:
    """Step 0 for one dataset: every check, each with its evidence, and the answer they give."""
    from kfm_gitops.export import published
    from kfm_gitops.identity import check_slug
    from kfm_gitops.projections import parse_target
    from kfm_gitops.release import alias_branch, version_at

    check_slug(slug)
    shown = parse_target(config, target).shown
    repo = _git.discover(config.root)
    if repo is None:
        raise KfmError(f"{config.root} is not a git repository", hint="run `kfm init` there first")
    found = next((p for p in published(config, repo) if p.slug == slug), None)
    alias = _git.branch_head(repo, alias_branch(config, slug))
    if found is None or alias is None:
        return Diagnosis(slug, "", "", "", shown, (Check("published", "failed", "backfill", (
            f"{alias_branch(config, slug)} shows no version: nothing is published, and a first release is a "
            "backfill of the whole history",)),))
    vid, commit = found.version_id, found.evidence_commit
    version = version_at(config, repo, commit, slug, vid)
    if version is None:
        return Diagnosis(slug, vid, commit, str(alias), shown, (Check("published", "failed", "backfill", (
            f"the ledger names {vid} at {commit[:12]}, which has no such version",)),))
    partitions = tuple(sorted((p.key, p.processed) for p in version[0].partitions))
    checks = (
        _guarded("PROCESSED", "backfill", lambda: processed_check(store, partitions)),
        _guarded("catalogs", "backfill", lambda: catalogs_check(config, repo, slug, vid, commit, store)),
        _guarded("history", "backfill", lambda: history_check(config, slug)),
        _guarded("projection", "reindex", lambda: projection_check(config, slug, vid, str(alias), target)),
    )
    return Diagnosis(slug, vid, commit, str(alias), shown, checks)
