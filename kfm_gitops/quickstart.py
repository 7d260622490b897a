"""`kfm quickstart DIR`: the whole story on the example, with embedded defaults (local store, local git).

1. a governed repository with the example dataset; its upstream lost March 2023 in an outage;
2. the first release: a plan PR (the backfill of January to June, the gap reported) merged into main with a
   steward's Approved-by; its release PR merged into release; `kfm promote` publishes it;
3. upstream redelivers March, with a batch of bad records;
4. a backfill plan for the gap, based on what is published, its dry run;
5. its plan PR: the gap filled, the bad batch quarantined, a new version made from the first one's partitions plus
   March; merged with approval; released and promoted;
6. a rollback to the first version (a revert of the pointer, with an incident note), promoted; history and status;
7. policy tightens: a plan re-publishes all of history under the label public_generalized, coordinates rounded to
   one decimal and the reporting source removed, with the evidence in each receipt (left for a release PR).

Pull requests are played locally as their merge buttons would: a branch, a merge commit with the approval's
trailer. Every gate runs at each promotion, fail closed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kfm_gitops import _git
from kfm_gitops._fs import atomic_write
from kfm_gitops.backfill import BackfillResult, dry_run, run_backfill
from kfm_gitops.config import Config, load_config, store_url
from kfm_gitops.errors import FindingsError, KfmError
from kfm_gitops.example import (
    FIRST_PLAN,
    OUTAGE_MONTH,
    REDELIVERY,
    RELEASE_MANAGER,
    SLUG,
    STEWARD,
    UPSTREAM,
    repository_files,
    upstream_files,
)
from kfm_gitops.plan import Plan, load_plan, new_plan_path, render_template, write_new_plan
from kfm_gitops.receipts import RECEIPT_FILE
from kfm_gitops.repository import init
from kfm_gitops.store import Store

Say = Callable[[str], None]
QUICKSTART_IDENTITY = ("kfm quickstart", "quickstart@example.invalid")


@dataclass(frozen=True, slots=True)
class Story:
    """What the quickstart's steps share."""

    cfg: Config
    store: Store
    say: Say

    @property
    def root(self) -> Path:
        return self.cfg.root

    def repo(self) -> _git.Repository:
        repo = _git.discover(self.root)
        assert repo is not None
        return repo


def _commit(story: Story, message: str, prefixes: list[str]) -> str:
    """Commit what changed under ``prefixes`` on HEAD's branch; its short id ("" when nothing changed)."""
    repo = story.repo()
    paths = _git.changed_paths(repo, prefixes)
    if not paths:
        return ""
    # Folders that git reports as untracked are expanded into their files.
    files: list[str] = []
    for p in paths:
        full = story.root / p
        files.extend(sorted(f.relative_to(story.root).as_posix() for f in full.rglob("*") if f.is_file())
                     if full.is_dir() else [p])
    branch = _git.current_branch(repo)
    assert branch is not None
    return str(_git.commit_index_paths(repo, branch, files, message))[:12]


def _summary(result: BackfillResult, say: Say) -> None:
    for c in result.chunks:
        total, accepted, quarantined = c.rows
        rows = f"{accepted} of {total} rows" + (f", {quarantined} quarantined" if quarantined else "")
        say(f"     {c.key}: {c.state}" + (f" ({rows})" if total else "") + (f" -> {c.run_folder}/" if c.run_folder
                                                                                   else ""))
    for note in result.notes:
        say(f"     {note}")
    problems = [f for c in result.chunks for f in c.findings if f.code != "EMPTY_CHUNK"] + result.findings
    for f in problems:
        say(f"     {f.severity}: {f.code}: {f.message}")


def _plan_pr(story: Story, plan_path: Path, what: str, *, new_plan: bool = False) -> BackfillResult | None:
    """A plan PR: a branch from main (committing the new plan on it), the backfill, its evidence committed, the
    branch merged into main with a steward's Approved-by. None (said) when the run made no version."""
    repo = story.repo()
    branch = f"plan/{plan_path.stem}"
    _git.start_branch(repo, branch, story.cfg.main_branch)
    if new_plan:
        story.say(f"   {plan_path.relative_to(story.root).as_posix()} on branch {branch} (committed as "
                  f"{_commit(story, f'Plan: {what}', ['plans'])})")
    result = run_backfill(story.cfg, load_plan(plan_path, story.cfg), story.store)
    _summary(result, story.say)
    if result.version is None or not result.ok:
        story.say(f"   the {what} did not produce a version")
        return None
    _commit(story, f"Evidence: {what}, version {result.version}", ["data", "releases", "plans"])
    merge = _git.merge_branch(repo, story.cfg.main_branch, branch,
                              f"Merge plan PR {branch}: {what}\n\nApproved-by: steward {STEWARD}")
    _git.switch(repo, story.cfg.main_branch)
    story.say(f"   version {result.version}: {result.version_folder}/")
    story.say(f"   plan PR {branch} merged into main as {str(merge)[:12]} (Approved-by: steward {STEWARD})")
    return result


def _release(story: Story, version: str | None = None, *, rollback_reason: str = "") -> str:
    """A release PR (or a rollback's) merged into release with a release manager's approval, then `kfm promote`:
    the gates again, the ledger entry, the alias moved. The version published."""
    from kfm_gitops.gates import gate_release
    from kfm_gitops.release import Actor, promote, propose, rollback, target_check, trailer_approvals

    if rollback_reason:
        prop = rollback(story.cfg, SLUG, to=version, reason=rollback_reason,
                        check=target_check(story.cfg, story.store))
    else:
        prop = propose(story.cfg, SLUG, version)
    story.say(f"   release PR {prop.branch}: published.yaml -> {prop.pointer.version_id}"
              + (" (a revert, and an incident note)" if rollback_reason else ""))
    _git.merge_branch(story.repo(), story.cfg.release_branch, prop.branch,
                      f"Merge release PR {prop.branch}\n\nApproved-by: release_manager {RELEASE_MANAGER}")
    [p] = promote(story.cfg, [SLUG], gates=lambda cfg, ctx: gate_release(cfg, ctx, story.store),
                  approvals=trailer_approvals, actor=Actor(RELEASE_MANAGER))
    story.say(f"   kfm promote: {p.event}; gates {' '.join(f'{r.gate}' for r in p.gates)} passed; approvals "
              + ", ".join(f"{a.role} {a.principal}" for a in p.approvals))
    story.say(f"   published/{SLUG} -> {str(p.alias_to)[:12]} (ledger entry on release); tag "
              f"datasets/{SLUG}/{p.version_id}")
    return p.version_id


def _setup(directory: Path, say: Say) -> Story:
    say(f"1. A governed repository in {directory}, with the example dataset {SLUG}")
    directory.mkdir(parents=True, exist_ok=True)
    repo = _git.init(directory, "main")
    if _git.identity(repo) is None:
        _git.set_local_identity(repo, *QUICKSTART_IDENTITY)
        say(f"   git has no identity here: this demo repository commits as {QUICKSTART_IDENTITY[0]} "
            f"<{QUICKSTART_IDENTITY[1]}> (its own .git/config)")
    res = init(directory, repository_files(redelivery=False),
               message="kfm quickstart: governed repository with the example dataset")
    say(f"   branches main and release; datasets/{SLUG}/ (contract), {FIRST_PLAN} (first-release plan),")
    say(f"   {UPSTREAM}/ (weekly CSV batches; March 2023 is missing: an upstream outage)")
    cfg = load_config(res.root)
    if isinstance(cfg, list):
        raise FindingsError(cfg, "kfm.yaml is invalid")
    return Story(cfg, Store(store_url(cfg)), say)


def _gap_plan(story: Story, base: Plan, prior: str) -> Path:
    path = new_plan_path(story.cfg, SLUG, datetime.now(UTC))
    text = render_template(
        slug=SLUG, path=path.relative_to(story.root).as_posix(), reason="Gap fill after the March 2023 upstream "
        "outage", requested_by="ops-ana", reviewers=[STEWARD], time_axis="event_time",
        start=datetime(2023, 3, 1, tzinfo=UTC), end=datetime(2023, 4, 1, tzinfo=UTC), mode="monthly",
        parallelism=1, timezone="UTC", terms=f"{UPSTREAM}/TERMS.txt", label=base.label,
        obligations=list(base.obligations), prior=prior)
    write_new_plan(path, text)
    return path


def _redelivery(story: Story) -> None:
    say = story.say
    say(f"3. Upstream redelivers {OUTAGE_MONTH}, with a batch of bad records")
    march = {rel.replace(REDELIVERY, UPSTREAM): data for rel, data in upstream_files().items()
             if rel.startswith(f"{REDELIVERY}/")}
    for rel, data in march.items():
        atomic_write(story.root / rel, data)
    commit = _commit(story, f"Upstream redelivery of {OUTAGE_MONTH}", ["upstream"])
    say(f"   {len(march)} files in {UPSTREAM}/{OUTAGE_MONTH}/; committed as {commit}")


def _quarantine(story: Story, result: BackfillResult) -> None:
    for c in result.chunks:
        if c.rows[2] and c.run_folder:
            counts = json.loads((story.root / c.run_folder / "quarantine.json").read_text(encoding="utf-8"))["counts"]
            story.say(f"   {c.rows[2]} bad records in QUARANTINE: "
                      + ", ".join(f"{n} {code}" for code, n in sorted(counts.items())))
            story.say(f"   ids, row hashes and reasons in {c.run_folder}/quarantine.json; the rows are a store object")


def _tightened(story: Story, base: Plan, prior: str) -> BackfillResult | None:
    path = new_plan_path(story.cfg, SLUG, datetime.now(UTC))
    tightened = [*base.obligations,
                 {"type": "generalize_geometry", "params": {"method": "round_1_decimals"}},
                 {"type": "remove_attributes", "params": {"fields": ["source"]}}]

    write_new_plan(path, render_template(
        slug=SLUG, path=path.relative_to(story.root).as_posix(), reason="Steward decision: publish generalised "
        "locations only, and no reporting source", requested_by="ops-ana", reviewers=[STEWARD],
        time_axis="event_time", start=datetime(2023, 1, 1, tzinfo=UTC), end=datetime(2023, 7, 1, tzinfo=UTC),
        mode="monthly", parallelism=2, timezone="UTC", terms=f"{UPSTREAM}/TERMS.txt",
        label="public_generalized", obligations=tightened, prior=prior))
    story.say("   label public_generalized, generalize_geometry round_1_decimals, remove_attributes source")
    result = _plan_pr(story, path, "re-publish generalised", new_plan=True)
    if result is None:
        return None
    sample = next(c for c in result.chunks if c.run_folder and c.partitions)
    assert sample.run_folder is not None
    receipt = json.loads((story.root / sample.run_folder / RECEIPT_FILE).read_text(encoding="utf-8"))
    evidence = {o["type"]: o["evidence"] for o in receipt["obligations_applied"]}
    story.say(f"   evidence in each receipt, e.g. {sample.run_folder}/receipt.json: coordinates have at most "
              f"{evidence['generalize_geometry']['max_decimals']} decimal(s); absent columns: "
              f"{', '.join(evidence['remove_attributes']['absent'])}")
    return result


def _epilogue(story: Story) -> None:
    from kfm_gitops.release import history, status

    s = status(story.cfg, SLUG)
    story.say(f"   kfm status: published {s.alias_version} ({s.last_event}); to propose: "
              f"{', '.join(s.candidates) or 'none'}")
    story.say("   kfm history:")
    for e in history(story.cfg, SLUG):
        story.say(f"     {e['seq']}  {e['event_type']:<9} {e['subject']['dataset_version_id']}  by {e['principal']}")
    story.say("")
    story.say(f"Done. Look around in {story.root}: `git log --graph --all --oneline`, `kfm status`, `kfm history "
              f"{SLUG}`, `kfm verify`, `kfm gate run all releases/{SLUG}/<version>`, `kfm report {FIRST_PLAN}`.")


def quickstart(directory: Path, say: Say) -> int:
    if directory.exists() and any(directory.iterdir()):
        raise KfmError(f"{directory} is not empty", hint="quickstart makes a new repository: name a new folder")
    story = _setup(directory, say)
    say("2. The first release: a plan PR with the backfill of January to June 2023, then its release PR")
    plan = load_plan(story.root / FIRST_PLAN, story.cfg)
    first = _plan_pr(story, story.root / FIRST_PLAN, f"first release of {SLUG}")
    if first is None or first.version is None:
        return 1
    v1 = _release(story, first.version)
    _redelivery(story)
    say(f"4. A backfill plan for the gap, based on the published version {v1}")
    gap = _gap_plan(story, plan, v1)
    say("   dry run (writes nothing):")
    for item in dry_run(story.cfg, load_plan(gap, story.cfg), story.store):
        say(f"     {item['chunk']}: partitions {', '.join(item['partitions'])}; sources "
            f"{', '.join(item['sources'])}")
    say("5. The gap's plan PR, then its release PR")
    second = _plan_pr(story, gap, f"backfill of {OUTAGE_MONTH}", new_plan=True)
    if second is None or second.version is None:
        return 1
    say(f"   = the first release's partitions with {OUTAGE_MONTH} filled in")
    _quarantine(story, second)
    _release(story, second.version)
    say(f"6. March's batch turns out wrong downstream: roll back to {v1}")
    _release(story, v1, rollback_reason="downstream consumers report March 2023 totals off; back to the first "
             "release while the batch is checked")
    say("7. Policy tightens: all of history re-published generalised, without the reporting source")
    if _tightened(story, plan, v1) is None:
        return 1
    _epilogue(story)
    return 0
