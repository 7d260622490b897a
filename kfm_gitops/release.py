"""The release half of the flow: what is published, and how it moves.

- ``releases/<slug>/published.yaml`` on the release branch names the published version (the pointer);
- ``kfm release propose`` makes a branch from release whose one commit changes only that file (a release PR);
- ``kfm promote`` reconciles: for each dataset whose pointer differs from what its alias ``published/<slug>``
  shows, it gates the version again (fail closed), appends a ledger entry in one commit on release
  (compare-and-swap), moves the alias there (compare-and-swap, fast-forward only) and tags the evidence commit;
- ``kfm rollback`` prepares the revert of the commit that last changed the pointer, with an incident note.

The commit that holds a dataset's newest ledger entry is where its alias belongs: a promote killed half-way is
finished by the next, and a promote with nothing to do does nothing. Commits are built without the working tree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kfm_gitops import _git, ledger
from kfm_gitops._fs import RepoLock
from kfm_gitops.approvals import Approval
from kfm_gitops.config import Config
from kfm_gitops.errors import ConflictError, FindingsError, KfmError
from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import GATE_NAMES, GateResult, ReleaseContext
from kfm_gitops.identity import VERSION_ID_RE, check_slug
from kfm_gitops.store import Store
from kfm_gitops.versions import (
    FIRST_RELEASE,
    MANIFEST_FILE,
    VersionManifest,
    incidents_dir,
    ledger_file,
    parse_version,
    published_file,
    releases_of,
    repo_path,
    version_dir,
)

PROPOSE_PREFIX = "kfm/release/"
ROLLBACK_PREFIX = "kfm/rollback/"
REPUBLISH = "republish"
POINTER_HEADER = ("# The version of {slug} that this branch publishes. Change it only through a release pull request\n"
                  "# (`kfm release propose`, `kfm rollback`); merging one moves the alias published/{slug}.\n")

# Gates a version again for a release: (the repository's config, what the release adds) -> the gates' results.
GateRunner = Callable[[Config, ReleaseContext], Sequence[GateResult]]
# The approvals of a pointer change: (the repository's config, the pointer) -> approvals found.
ApprovalFinder = Callable[[Config, "Pointer"], Sequence[Approval]]


@dataclass(frozen=True, slots=True)
class Pointer:
    """releases/<slug>/published.yaml: the published version, the main commit holding its evidence, the digest of
    its promotion manifest, and why (a republish names its reason)."""

    slug: str
    version_id: str
    evidence_commit: str
    manifest_digest: str
    reason: str = ""

    def to_bytes(self) -> bytes:
        body = {"dataset_slug": self.slug, "dataset_version_id": self.version_id,
                "evidence_commit": self.evidence_commit, "manifest_digest": self.manifest_digest,
                "reason": self.reason}
        return (POINTER_HEADER.format(slug=self.slug)
                + "".join(f"{k}: {json.dumps(v)}\n" for k, v in body.items())).encode()


def parse_pointer(data: bytes, shown: str) -> Pointer | list[Finding]:
    from kfm_gitops import _yaml

    doc = _yaml.loads(data.decode("utf-8", "replace"), shown)
    if isinstance(doc, list):
        return doc
    d = doc.data
    wanted = ("dataset_slug", "dataset_version_id", "evidence_commit", "manifest_digest")
    bad = [k for k in wanted if not isinstance(d, dict) or not isinstance(d.get(k), str) or not d.get(k)]
    if bad or not VERSION_ID_RE.fullmatch(str(d["dataset_version_id"])):
        what = f"missing or empty: {', '.join(bad)}" if bad else "dataset_version_id is not a version id"
        return [Finding("POINTER_INVALID", f"not a published pointer ({what})", Location(shown),
                        hint="published.yaml is written by `kfm release propose` and `kfm rollback`")]
    reason = d.get("reason") or ""
    return Pointer(str(d["dataset_slug"]), str(d["dataset_version_id"]), str(d["evidence_commit"]),
                   str(d["manifest_digest"]), str(reason))


# --- reading the branches ---------------------------------------------------------------------------------------


def _repo(config: Config) -> _git.Repository:
    repo = _git.discover(config.root)
    if repo is None:
        raise KfmError(f"{config.root} is not a git repository", hint="run `kfm init` there first")
    return repo


def _head(repo: _git.Repository, branch: str) -> _git.Oid:
    head = _git.branch_head(repo, branch)
    if head is None:
        raise KfmError(f"there is no branch {branch}", hint="run `kfm init`: a governed repository has main and "
                       "release (in a clone, `git fetch origin` first)")
    return head


def pointer_at(config: Config, repo: _git.Repository, commit: _git.Rev, slug: str) -> Pointer | None:
    """The pointer a release commit holds for ``slug`` (None when it publishes nothing); refused when unreadable."""
    rel = repo_path(config, published_file(config, slug))
    blob = _git.read_blob(repo, commit, rel)
    if blob is None:
        return None
    pointer = parse_pointer(blob, f"{config.release_branch}:{rel}")
    if isinstance(pointer, list):
        raise FindingsError(pointer, f"{rel} on {config.release_branch} cannot be read")
    return pointer


def ledger_at(config: Config, repo: _git.Repository, commit: _git.Rev, slug: str) -> bytes:
    return _git.read_blob(repo, commit, repo_path(config, ledger_file(config, slug))) or b""


def published_slugs(config: Config, repo: _git.Repository, commit: _git.Rev) -> list[str]:
    """The datasets whose pointer the release commit holds."""
    folder = repo_path(config, config.releases_dir())
    return [s for s in _git.tree_names(repo, commit, folder)
            if _git.read_blob(repo, commit, repo_path(config, published_file(config, s))) is not None]


def version_at(config: Config, repo: _git.Repository, commit: _git.Rev, slug: str, version_id: str
               ) -> tuple[VersionManifest, bytes] | None:
    """A version's manifest as a commit holds it, with its bytes (None when the commit does not have it)."""
    rel = repo_path(config, version_dir(config, slug, version_id) / MANIFEST_FILE)
    blob = _git.read_blob(repo, commit, rel)
    if blob is None:
        return None
    version = parse_version(version_dir(config, slug, version_id), blob, f"{str(commit)[:12]}:{rel}")
    if isinstance(version, list):
        raise FindingsError(version, f"the version {version_id} cannot be read at {str(commit)[:12]}")
    return version, blob


def versions_at(config: Config, repo: _git.Repository, commit: _git.Rev, slug: str) -> dict[str, VersionManifest]:
    """Every version of a dataset that a commit of main holds, by id (unreadable ones are refused)."""
    folder = repo_path(config, releases_of(config, slug))
    out = {}
    for name in _git.tree_names(repo, commit, folder):
        if VERSION_ID_RE.fullmatch(name):
            found = version_at(config, repo, commit, slug, name)
            if found is not None:
                out[name] = found[0]
    return out


@dataclass(frozen=True, slots=True)
class Standing:
    """What a dataset's ledger says of one version: whether it was ever published, and whether it was rolled back
    since it was last published."""

    published: bool
    rolled_back: bool


def standing(data: bytes, version_id: str) -> Standing:
    """Read from the lines that name the version only (a byte search finds them): a long ledger is not parsed."""
    published = rolled_back = False
    needle = version_id.encode()
    for line in data.splitlines():
        if needle not in line:
            continue
        entry = json.loads(line)
        if entry["subject"]["dataset_version_id"] == version_id:
            published, rolled_back = True, False
        elif entry["event_type"] == "rollback" and entry.get("supersedes") == version_id:
            rolled_back = True
    return Standing(published, rolled_back)


def published_versions(data: bytes) -> list[str]:
    """Every version a ledger ever published, in order of first publication."""
    seen: dict[str, None] = {}
    for line in data.splitlines():
        seen.setdefault(str(json.loads(line)["subject"]["dataset_version_id"]), None)
    return list(seen)


# --- release propose --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proposal:
    branch: str
    commits: tuple[str, ...]
    pointer: Pointer
    published_now: str
    event: str


def _manifest_digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def pointer_for(config: Config, repo: _git.Repository, main_head: _git.Oid, slug: str, version_id: str,
                reason: str) -> Pointer:
    """The pointer that publishes a version of main: its evidence commit is the first-parent commit of main that
    brought its manifest (the plan PR's merge, where its approvals are)."""
    found = version_at(config, repo, main_head, slug, version_id)
    if found is None:
        known = ", ".join(sorted(versions_at(config, repo, main_head, slug))) or "none"
        raise KfmError(f"{config.main_branch} has no version {version_id} of {slug}",
                       hint=f"versions on {config.main_branch}: {known} (merge the plan PR with its evidence first)")
    _, blob = found
    rel = repo_path(config, version_dir(config, slug, version_id) / MANIFEST_FILE)
    evidence = _git.arrival(repo, main_head, rel)
    assert evidence is not None
    return Pointer(slug, version_id, str(evidence), _manifest_digest(blob), reason)


def event_of(version_id: str, published_now: str, data: bytes) -> str:
    """What moving the alias to ``version_id`` is: a rolled-back version comes back as a republish; a version
    published before is a rollback to it; anything else is a (forward) promotion."""
    seen = standing(data, version_id)
    if seen.rolled_back:
        return REPUBLISH
    if seen.published and version_id != published_now:
        return "rollback"
    return "promotion"


def newest_on(versions: Mapping[str, VersionManifest], published_now: str) -> str:
    """The default version to propose: the newest on main that builds on what is published now."""
    candidates = sorted(v for v, m in versions.items() if m.base == published_now and v != published_now)
    if not candidates:
        raise KfmError("no version on main builds on what is published now"
                       + (f" ({published_now})" if published_now else " (nothing yet)"),
                       hint="run and merge a backfill plan based on it, or name the version to propose")
    if len(candidates) > 1:
        slug = next(iter(versions.values())).slug
        raise KfmError(f"several versions build on {published_now or 'nothing'}: {', '.join(candidates)}",
                       hint=f"name the one to propose: `kfm release propose {slug} {candidates[-1]}`")
    return candidates[0]


def propose(config: Config, slug: str, version_id: str | None = None, reason: str = "") -> Proposal:
    """A release branch from release whose one commit points published.yaml at the version."""
    check_slug(slug)
    with RepoLock(config.root):
        repo = _repo(config)
        main_head, release_head = _head(repo, config.main_branch), _head(repo, config.release_branch)
        current = pointer_at(config, repo, release_head, slug)
        published_now = current.version_id if current else FIRST_RELEASE
        target = version_id or newest_on(versions_at(config, repo, main_head, slug), published_now)
        if current is not None and current.version_id == target:
            raise KfmError(f"{target} is what {config.release_branch} publishes already", hint="nothing to propose")
        event = event_of(target, published_now, ledger_at(config, repo, release_head, slug))
        if event == REPUBLISH and not reason.startswith(REPUBLISH):
            raise KfmError(f"{target} was rolled back: it is published again only with a reason",
                           hint=f'pass --reason "{REPUBLISH}: why it is safe again"')
        pointer = pointer_for(config, repo, main_head, slug, target, reason)
        if event == "promotion":
            _refuse_a_stale_base(config, repo, main_head, pointer, published_now)
        branch = f"{PROPOSE_PREFIX}{slug}/{target}"
        message = f"Release {slug} {target}" + (f" ({event})" if event != "promotion" else "") + \
                  (f"\n\n{reason}" if reason else "")
        rel = repo_path(config, published_file(config, slug))
        _make_room(repo, branch, release_head)
        commit = _git.branch_from(repo, branch, release_head, {rel: pointer.to_bytes()}, message)
        return Proposal(branch, (str(commit),), pointer, published_now, event)


def _make_room(repo: _git.Repository, branch: str, release_head: _git.Oid) -> None:
    """A proposal's branch name is free, or names a proposal already merged into release (then it goes: the merge
    keeps its commits); an open one with that name is refused."""
    old = _git.branch_head(repo, branch)
    if old is None:
        return
    if not _git.is_ancestor(repo, old, release_head):
        raise KfmError(f"{branch} exists and is not merged into release: a pull request for it may be open",
                       hint=f"merge or close it, or delete the branch (`git branch -D {branch}`), then run this again")
    _git.delete_branch(repo, branch, old)


def _refuse_a_stale_base(config: Config, repo: _git.Repository, main_head: _git.Oid, pointer: Pointer,
                         published_now: str) -> None:
    """A forward promotion builds on what is published now: a version built on an older one would silently drop
    what was published since."""
    found = version_at(config, repo, main_head, pointer.slug, pointer.version_id)
    assert found is not None
    base = found[0].base
    if base != published_now:
        raise KfmError(f"{pointer.version_id} builds on {base or 'nothing'}, but {config.release_branch} publishes "
                       f"{published_now or 'nothing'}: publishing it would drop what was published since",
                       hint=f"re-plan on {published_now or 'nothing'}: `kfm plan new {pointer.slug} ...` (it builds "
                       "on what is published), run it, and propose the new version")


def _ledger_shown(config: Config, slug: str) -> str:
    return f"{config.release_branch}:{repo_path(config, ledger_file(config, slug))}"


# --- promote (reconcile) ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Promotion:
    """What promote did for one dataset: ``event`` None when nothing differed; ``finished`` when it only moved
    the alias to an entry a killed promote had recorded."""

    slug: str
    event: str | None
    version_id: str
    alias_from: str | None
    alias_to: str | None
    ledger_commit: str | None = None
    gates: tuple[GateResult, ...] = ()
    approvals: tuple[Approval, ...] = ()
    finished: bool = False
    tagged: bool = False


@dataclass(frozen=True, slots=True)
class Actor:
    principal: str
    role: str = "release_manager"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def alias_branch(config: Config, slug: str) -> str:
    return f"{config.published_prefix}{slug}"


def _move_alias(repo: _git.Repository, branch: str, new: _git.Oid, old: _git.Oid | None) -> None:
    """Fast-forward only, compare-and-swap: an alias that moved elsewhere meanwhile is a conflict."""
    if old is not None and not _git.is_ancestor(repo, old, new):
        raise ConflictError(f"{branch} is at {str(old)[:12]}, which the release branch does not contain",
                            hint="an alias only moves forward along release: re-read and run kfm promote again")
    _git.move_branch(repo, branch, new, old)


def _receipts(config: Config, repo: _git.Repository, pointer: Pointer) -> list[dict[str, str]]:
    """The receipts the version uses, by digest (runs.json and the roll-up's receipt at the evidence commit)."""
    folder = version_dir(config, pointer.slug, pointer.version_id)
    out: list[dict[str, str]] = []
    runs = _git.read_blob(repo, pointer.evidence_commit, repo_path(config, folder / "runs.json"))
    if runs is not None:
        doc = json.loads(runs)
        items = doc.get("runs", []) if isinstance(doc, dict) else []
        out += [{"run_id": str(r.get("run_id")), "digest": str(r.get("receipt_digest") or r.get("digest"))}
                for r in items if isinstance(r, dict)]
    rollup = _git.read_blob(repo, pointer.evidence_commit, repo_path(config, folder / "receipt.json"))
    if rollup is not None:
        out.append({"run_id": str(json.loads(rollup).get("run_id")), "digest": _manifest_digest(rollup)})
    return out


def _entry(config: Config, repo: _git.Repository, pointer: Pointer, event: str, ctx: ReleaseContext,
           results: Sequence[GateResult], alias_previous: _git.Oid | None, actor: Actor) -> dict[str, Any]:
    found = version_at(config, repo, pointer.evidence_commit, pointer.slug, pointer.version_id)
    decision = found[0].decision_id if found else None
    return {
        "event_type": event, "status": "published", "principal": actor.principal, "role": actor.role,
        "created_at": actor.created_at,
        "subject": {"dataset_version_id": pointer.version_id, "evidence_commit": pointer.evidence_commit},
        "receipts": _receipts(config, repo, pointer), "gates": {r.gate: r.status for r in results},
        "policy_decision_id": decision,
        "approvals": [{"role": a.role, "principal": a.principal, "source": a.source} for a in ctx.approvals],
        "alias_previous": str(alias_previous) if alias_previous else None,
        "supersedes": ctx.published_now or None, "reason": pointer.reason,
    }


def promote(config: Config, slugs: Sequence[str] = (), *, gates: GateRunner, approvals: ApprovalFinder,
            actor: Actor) -> list[Promotion]:
    """Reconcile every dataset (or those named) whose pointer on release differs from its alias."""
    out = []
    with RepoLock(config.root):
        repo = _repo(config)
        _git.clear_stale_locks(repo)
        for slug in slugs or published_slugs(config, repo, _head(repo, config.release_branch)):
            out.append(_promote_one(config, repo, slug, gates, approvals, actor))
    return out


def _promote_one(config: Config, repo: _git.Repository, slug: str, gates: GateRunner, approvals: ApprovalFinder,
                 actor: Actor) -> Promotion:
    release_head = _head(repo, config.release_branch)
    pointer = pointer_at(config, repo, release_head, slug)
    if pointer is None:
        raise KfmError(f"{config.release_branch} publishes nothing for {slug}",
                       hint=f"propose a version first: `kfm release propose {slug}`")
    branch = alias_branch(config, slug)
    alias = _git.branch_head(repo, branch)
    data = ledger_at(config, repo, release_head, slug)
    head = ledger.head_of(data, _ledger_shown(config, slug))
    recorded = head.entry if head else None
    if recorded and recorded["subject"] == {"dataset_version_id": pointer.version_id,
                                            "evidence_commit": pointer.evidence_commit}:
        holder = _git.last_change(repo, release_head, repo_path(config, ledger_file(config, slug)))
        assert holder is not None
        if alias == holder:
            return Promotion(slug, None, pointer.version_id, str(alias), str(alias))
        _move_alias(repo, branch, holder, alias)
        tagged = _tag(repo, pointer)
        return Promotion(slug, str(recorded["event_type"]), pointer.version_id, _hex(alias), str(holder),
                         finished=True, tagged=tagged)
    published_now = str(recorded["subject"]["dataset_version_id"]) if recorded else FIRST_RELEASE
    event = event_of(pointer.version_id, published_now, data)
    ctx = ReleaseContext(slug, pointer.version_id, pointer.evidence_commit, pointer.manifest_digest, pointer.reason,
                         published_now, data, _ledger_shown(config, slug), tuple(approvals(config, pointer)))
    results = tuple(gates(config, ctx))
    failed = [r for r in results if r.status != "passed"]
    if failed or len(results) < len(GATE_NAMES):
        findings = [f for r in failed for f in r.findings] or [
            Finding("GATE_FAILED", f"gate {r.gate} ({r.name}) failed", None) for r in failed] or [
            Finding("GATES_INCOMPLETE", f"only {len(results)} of {len(GATE_NAMES)} gates ran", None)]
        raise FindingsError(findings, f"not promoted: gate(s) {', '.join(r.gate for r in failed) or 'missing'} "
                            f"failed for {slug} {pointer.version_id}; nothing was written")
    line = ledger.new_line(_entry(config, repo, pointer, event, ctx, results, alias, actor), head)
    commit = _git.commit_files(repo, config.release_branch, {repo_path(config, ledger_file(config, slug)):
                                                             data + line},
                               f"kfm promote: {slug} {pointer.version_id} ({event})", expected_head=release_head)
    _move_alias(repo, branch, commit, alias)
    tagged = _tag(repo, pointer)
    return Promotion(slug, event, pointer.version_id, _hex(alias), str(commit), str(commit), results,
                     tuple(ctx.approvals), tagged=tagged)


def _tag(repo: _git.Repository, pointer: Pointer) -> bool:
    """Tag the evidence commit datasets/<slug>/<version> (never moved)."""
    return _git.create_tag(repo, f"datasets/{pointer.slug}/{pointer.version_id}",
                           _git.resolve(repo, pointer.evidence_commit))


def _hex(oid: _git.Oid | None) -> str | None:
    return str(oid) if oid is not None else None


# --- rollback ---------------------------------------------------------------------------------------------------


def rollback(config: Config, slug: str, *, to: str | None, reason: str, check: Callable[[Pointer], None],
             today: str | None = None) -> Proposal:
    """A branch from release that moves the pointer back (the revert of the commit that last changed it, when
    that is where it goes) and adds an incident note in a commit of its own. ``check`` refuses a target that no
    longer verifies (raising)."""
    check_slug(slug)
    if not reason.strip():
        raise KfmError("a rollback needs a reason", hint='pass --reason "what is wrong with the published version"')
    with RepoLock(config.root):
        repo = _repo(config)
        release_head = _head(repo, config.release_branch)
        current = pointer_at(config, repo, release_head, slug)
        if current is None:
            raise KfmError(f"{config.release_branch} publishes nothing for {slug}: there is nothing to roll back")
        data = ledger_at(config, repo, release_head, slug)
        head = ledger.head_of(data, _ledger_shown(config, slug))
        recorded = head.entry if head else None
        target = to or (str(recorded["supersedes"]) if recorded and recorded.get("supersedes") else "")
        if not target or not standing(data, target).published or target == current.version_id:
            known = ", ".join(v for v in published_versions(data) if v != current.version_id) or "none"
            raise KfmError(f"cannot roll {slug} back to {target or 'a version before ' + current.version_id}: only "
                           "a version that was published before can be rolled back to",
                           hint=f"versions published before: {known}")
        pointer, files, message = _rollback_pointer(config, repo, release_head, current, target, reason)
        check(pointer)
        branch = f"{ROLLBACK_PREFIX}{slug}/{target}"
        _make_room(repo, branch, release_head)
        first = _git.branch_from(repo, branch, release_head, files, message)
        day = today or datetime.now(UTC).strftime("%Y-%m-%d")
        note_rel = repo_path(config, incidents_dir(config, slug) / f"{day}-{current.version_id}.md")
        note = incident_note(config, current, pointer, reason, day)
        second = _git.commit_files(repo, branch, {note_rel: note}, f"Incident: {slug} {current.version_id} rolled "
                                   f"back to {target}", expected_head=first)
        return Proposal(branch, (str(first), str(second)), pointer, current.version_id, "rollback")


def _rollback_pointer(config: Config, repo: _git.Repository, release_head: _git.Oid, current: Pointer,
                      target: str, reason: str) -> tuple[Pointer, dict[str, bytes], str]:
    """The pointer a rollback writes, and its commit: the revert of the commit that last changed published.yaml
    when that commit came from the target; else the target's pointer written afresh."""
    rel = repo_path(config, published_file(config, current.slug))
    last = _git.last_change(repo, release_head, rel)
    assert last is not None
    parents = _git.parents(repo, last)
    before = pointer_at(config, repo, parents[0], current.slug) if parents else None
    if before is not None and before.version_id == target:
        blob = _git.read_blob(repo, parents[0], rel)
        assert blob is not None
        subject = _git.commit_message(repo, last).splitlines()[0]
        return before, {rel: blob}, f'Revert "{subject}"\n\nThis reverts commit {last}.\n\n{reason}'
    pointer = pointer_for(config, repo, _head(repo, config.main_branch), current.slug, target, "")
    return pointer, {rel: pointer.to_bytes()}, f"Roll {current.slug} back to {target}\n\n{reason}"


def incident_note(config: Config, current: Pointer, target: Pointer, reason: str, day: str) -> bytes:
    folder = repo_path(config, version_dir(config, current.slug, current.version_id))
    return (f"# {day}: {current.slug} {current.version_id} rolled back to {target.version_id}\n\n"
            f"Reason: {reason}\n\n"
            f"- rolled-back version: `{current.version_id}`, evidence commit `{current.evidence_commit}` on "
            f"{config.main_branch}\n"
            f"- its manifest: `{folder}/{MANIFEST_FILE}` ({current.manifest_digest})\n"
            f"- its receipts: `{folder}/runs.json` and `{folder}/receipt.json`\n"
            f"- published again: `{target.version_id}` (evidence commit `{target.evidence_commit}`)\n\n"
            "No evidence was deleted: RAW and PROCESSED keep every byte of the rolled-back version. It is published "
            f"again only through a release PR whose published.yaml carries a `{REPUBLISH}: ...` reason.\n").encode()


# --- approvals without a forge ----------------------------------------------------------------------------------


def trailer_approvals(config: Config, pointer: Pointer) -> list[Approval]:
    """Approved-by trailers on the merge that brought the version's evidence into main, and on the merge that
    brought its pointer into release (a release PR's); trailers anywhere else count for nothing."""
    from kfm_gitops.approvals import parse_trailers

    repo = _repo(config)
    found: list[Approval] = []
    manifest = repo_path(config, version_dir(config, pointer.slug, pointer.version_id) / MANIFEST_FILE)
    for head, path in ((pointer.evidence_commit, manifest),
                       (str(_head(repo, config.release_branch)), repo_path(config, published_file(config,
                                                                                                 pointer.slug)))):
        commit = _git.last_change(repo, head, path) if path.endswith(".yaml") else _git.arrival(repo, head, path)
        if commit is not None and _git.parent_count(repo, commit) > 1:
            found += parse_trailers(_git.commit_message(repo, commit), str(commit)[:12])
    return found


# --- pushing what promote made ----------------------------------------------------------------------------------


def push(config: Config, remote: str, promotions: Sequence[Promotion], before: Mapping[str, str]) -> list[str]:
    """Push the release branch, the aliases that moved and their tags in one atomic push, each ref leased on the
    value the remote had (``before``: remote ref -> 40 hex, or "" when it did not exist)."""
    moved = [p for p in promotions if p.alias_to and p.alias_to != p.alias_from]
    if not moved:
        return []
    release = f"refs/heads/{config.release_branch}"
    updates = [(release, release, before.get(release, ""))]
    for p in moved:
        alias = f"refs/heads/{alias_branch(config, p.slug)}"
        tag = f"refs/tags/datasets/{p.slug}/{p.version_id}"
        updates += [(alias, alias, before.get(alias, "")), (tag, tag, before.get(tag, ""))]
    _git.push_atomic(config.root, remote, updates)
    return [dst for _, dst, _ in updates]


# --- status and history -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    slug: str
    published: str  # what release's pointer names ("" when nothing)
    alias: str | None  # the alias's commit
    alias_version: str  # the version the alias's ledger entry names ("" when none)
    since: str  # when the alias's version was published
    last_event: str
    pending: bool  # the pointer differs from what the alias shows: kfm promote has work to do
    proposals: tuple[str, ...]  # release and rollback branches of this dataset not merged yet
    candidates: tuple[str, ...]  # versions on main that build on what is published


def status(config: Config, slug: str) -> Status:
    check_slug(slug)
    repo = _repo(config)
    release_head = _git.branch_head(repo, config.release_branch)
    pointer = pointer_at(config, repo, release_head, slug) if release_head else None
    alias = _git.branch_head(repo, alias_branch(config, slug))
    entry = None
    if alias is not None:
        head = ledger.head_of(ledger_at(config, repo, alias, slug), _ledger_shown(config, slug))
        entry = head.entry if head else None
    alias_version = str(entry["subject"]["dataset_version_id"]) if entry else ""
    published = pointer.version_id if pointer else ""
    main_head = _git.branch_head(repo, config.main_branch)
    on_main = versions_at(config, repo, main_head, slug) if main_head else {}
    prefixes = (f"{PROPOSE_PREFIX}{slug}/", f"{ROLLBACK_PREFIX}{slug}/")
    data = ledger_at(config, repo, release_head, slug) if release_head else b""
    proposals = tuple(b for b in _git.local_branches(repo) if b.startswith(prefixes)
                      and not _merged(repo, b, release_head))
    # What could be proposed next: versions on main built on what the alias shows, not already on their way (an
    # open proposal, or the pointer release names while a promote is pending).
    on_their_way = {b.rsplit("/", 1)[-1] for b in proposals} | {published}
    candidates = [v + (" (rolled back: republish only)" if standing(data, v).rolled_back else "")
                  for v, m in sorted(on_main.items())
                  if m.base == alias_version and v != alias_version and v not in on_their_way]
    return Status(slug, published, _hex(alias), alias_version, str(entry["created_at"]) if entry else "",
                  str(entry["event_type"]) if entry else "", published != alias_version, proposals,
                  tuple(candidates))


def _merged(repo: _git.Repository, branch: str, into: _git.Oid | None) -> bool:
    head = _git.branch_head(repo, branch)
    return into is not None and head is not None and _git.is_ancestor(repo, head, into)


def history(config: Config, slug: str) -> list[dict[str, Any]]:
    """Every alias move of a dataset, oldest first, as its ledger on release records them."""
    check_slug(slug)
    repo = _repo(config)
    data = ledger_at(config, repo, _head(repo, config.release_branch), slug)
    return [json.loads(line) for line in data.splitlines()]


def verify_ledger(config: Config, slug: str) -> tuple[str, int, list[Finding]] | None:
    """`kfm ledger verify SLUG`: the chain of the ledger the release branch holds (None when the dataset was never
    published: there is no ledger to verify; a pointer without a ledger is a finding)."""
    repo = _repo(config)
    shown = _ledger_shown(config, slug)
    release_head = _head(repo, config.release_branch)
    data = ledger_at(config, repo, release_head, slug)
    if not data:
        if pointer_at(config, repo, release_head, slug) is None:
            return None
        return shown, 0, [Finding("LEDGER_MISSING", f"{slug} has a published.yaml on {config.release_branch} but no "
                                  "ledger", Location(shown), hint="run `kfm promote`: it records the promotion")]
    n, findings = ledger.verify(data, shown)
    return shown, n, findings


def remote_refs(config: Config, remote: str) -> dict[str, str]:
    """What the remote's release branch, aliases and dataset tags point at now (the leases of a push)."""
    return _git.remote_refs(config.root, remote, [f"refs/heads/{config.release_branch}",
                                                  f"refs/heads/{config.published_prefix}*", "refs/tags/datasets/*"])


def target_check(config: Config, store: Store) -> Callable[[Pointer], None]:
    """A rollback's target must still verify: every object its manifest names is in the store, whole."""

    def check(pointer: Pointer) -> None:
        from concurrent.futures import ThreadPoolExecutor

        repo = _repo(config)
        found = version_at(config, repo, pointer.evidence_commit, pointer.slug, pointer.version_id)
        if found is None:
            raise KfmError(f"the evidence commit {pointer.evidence_commit[:12]} has no version {pointer.version_id}")
        digests = sorted(found[0].digests)
        with ThreadPoolExecutor(max_workers=4) as pool:
            verdicts = list(pool.map(store.verify, digests))
        bad = [Finding(v, f"{d} of {pointer.version_id} is {'missing from' if v == 'OBJECT_MISSING' else 'corrupt in'}"
                       f" {store.url}", None, hint="pull it from the team's store (`kfm store pull`) before rolling "
                       "back to this version") for d, v in zip(digests, verdicts, strict=True) if v]
        if bad:
            raise FindingsError(bad, f"{pointer.version_id} no longer verifies: not rolled back to it")

    return check


# --- the gates of a release -------------------------------------------------------------------------------------


def gate_runner(store: Store) -> GateRunner:
    """Promote's gates: the seven, on the version as its evidence commit holds it, with what the release adds."""
    from kfm_gitops.gates import gate_release

    def run(config: Config, ctx: ReleaseContext) -> Sequence[GateResult]:
        return gate_release(config, ctx, store)

    return run


def release_context(config: Config, base: str, head: str, slug: str,
                    approvals: ApprovalFinder | None = None) -> ReleaseContext:
    """What a release change (BASE..HEAD moves releases/<slug>/published.yaml) adds to the gates: the pointer at
    HEAD, what the ledger at BASE says is published, that ledger, and the approvals found."""
    repo = _repo(config)
    pointer = pointer_at(config, repo, head, slug)
    if pointer is None:
        raise KfmError(f"{head[:12]} has no releases/{slug}/published.yaml: nothing to gate for {slug}",
                       hint="a release change points published.yaml at a version")
    data = ledger_at(config, repo, base, slug)
    newest = ledger.head_of(data, _ledger_shown(config, slug))
    published_now = str(newest.entry["subject"]["dataset_version_id"]) if newest else FIRST_RELEASE
    found = tuple((approvals or trailer_approvals)(config, pointer))
    return ReleaseContext(slug, pointer.version_id, pointer.evidence_commit, pointer.manifest_digest, pointer.reason,
                          published_now, data, _ledger_shown(config, slug), found)


def alias_version(config: Config, slug: str) -> str:
    """The version the alias published/<slug> shows (its newest ledger entry's); "" when nothing is published."""
    repo = _repo(config)
    alias = _git.branch_head(repo, alias_branch(config, slug))
    if alias is None:
        return FIRST_RELEASE
    newest = ledger.head_of(ledger_at(config, repo, alias, slug), _ledger_shown(config, slug))
    return str(newest.entry["subject"]["dataset_version_id"]) if newest else FIRST_RELEASE


def verify_published(config: Config, slug: str) -> tuple[str, list[Finding]] | None:
    """The published chain of `kfm verify`: the ledger's chain on release, the alias at the commit that holds its
    newest entry, the pointer agreeing with it (else a promote is pending), and the manifest the pointer names
    having the digest it records. None when nothing is published."""
    repo = _repo(config)
    alias = _git.branch_head(repo, alias_branch(config, slug))
    release_head = _git.branch_head(repo, config.release_branch)
    if alias is None or release_head is None:
        return None
    shown, where = _ledger_shown(config, slug), Location(f"published/{slug}")
    data = ledger_at(config, repo, release_head, slug)
    _, findings = ledger.verify(data, shown)
    holder = _git.last_change(repo, release_head, repo_path(config, ledger_file(config, slug)))
    if holder is not None and alias != holder and not findings:
        findings.append(Finding("ALIAS_BEHIND", f"published/{slug} is not at the commit that holds its newest ledger "
                                "entry", where, hint="run `kfm promote`: it finishes the move"))
    pointer = pointer_at(config, repo, release_head, slug)
    if pointer is not None:
        found = version_at(config, repo, pointer.evidence_commit, slug, pointer.version_id)
        if found is None or _manifest_digest(found[1]) != pointer.manifest_digest:
            findings.append(Finding("POINTER_DIGEST", f"the manifest of {pointer.version_id} at "
                                    f"{pointer.evidence_commit[:12]} is not the one published.yaml records", where,
                                    hint="the evidence a pointer names is never edited: restore it from git"))
        if pointer.version_id != alias_version(config, slug):
            findings.append(Finding("PROMOTE_PENDING", f"release names {pointer.version_id}, published/{slug} shows "
                                    f"{alias_version(config, slug) or 'nothing'}", where, severity="warning",
                                    hint="run `kfm promote`"))
    return f"published {slug}", findings
