"""`kfm quickstart DIR`: the whole story on the example, with embedded defaults (local store, local git).

1. a governed repository with the example dataset; its upstream lost March 2023 in an outage;
2. the first release: a backfill of January to June, with the gap reported;
3. upstream redelivers March, with a batch of bad records;
4. a backfill plan for the gap, its dry run, and the backfill: the gap filled, the bad batch quarantined, a new
   version made from the first one's partitions plus March;
5. policy tightens: a plan re-publishes all of history under the label public_generalized, coordinates rounded to
   one decimal and the reporting source removed, with the evidence in each receipt.

Each step commits its evidence on main, as a merged plan PR would, and says where it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kfm_gitops import _git
from kfm_gitops._fs import atomic_write
from kfm_gitops.backfill import BackfillResult, dry_run, run_backfill
from kfm_gitops.config import Config, load_config, store_url
from kfm_gitops.errors import FindingsError, KfmError
from kfm_gitops.example import FIRST_PLAN, OUTAGE_MONTH, REDELIVERY, SLUG, UPSTREAM, repository_files, upstream_files
from kfm_gitops.plan import Plan, load_plan, new_plan_path, render_template, write_new_plan
from kfm_gitops.receipts import RECEIPT_FILE
from kfm_gitops.repository import init
from kfm_gitops.store import Store

Say = Callable[[str], None]
QUICKSTART_IDENTITY = ("kfm quickstart", "quickstart@example.invalid")


def _commit(root: Path, message: str, prefixes: list[str]) -> str:
    repo = _git.discover(root)
    assert repo is not None
    paths = _git.changed_paths(repo, prefixes)
    if not paths:
        return ""
    # Folders that git reports as untracked are expanded into their files.
    files: list[str] = []
    for p in paths:
        full = root / p
        files.extend(sorted(f.relative_to(root).as_posix() for f in full.rglob("*") if f.is_file())
                     if full.is_dir() else [p])
    return str(_git.commit_index_paths(repo, "main", files, message))[:12]


def _backfill_and_commit(cfg: Config, plan: Plan, store: Store, say: Say, what: str
                         ) -> tuple[BackfillResult, str, str] | None:
    """Run a plan, say how each chunk went, and commit its evidence on main as the merged plan PR would: the
    result, its version and the commit; None (said, nothing committed) when the run made no version or failed."""
    result = run_backfill(cfg, plan, store)
    _summary(result, say)
    if result.version is None or not result.ok:
        say(f"   the {what} did not produce a version")
        return None
    return result, result.version, _commit(cfg.root, f"Evidence: {what}, version {result.version}",
                                           ["data", "releases", "plans"])


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


def quickstart(directory: Path, say: Say) -> int:
    if directory.exists() and any(directory.iterdir()):
        raise KfmError(f"{directory} is not empty", hint="quickstart makes a new repository: name a new folder")
    say(f"1. A governed repository in {directory}, with the example dataset {SLUG}")
    directory.mkdir(parents=True, exist_ok=True)
    repo = _git.init(directory, "main")
    if _git.identity(repo) is None:
        _git.set_local_identity(repo, *QUICKSTART_IDENTITY)
        say(f"   git has no identity here: this demo repository commits as {QUICKSTART_IDENTITY[0]} "
            f"<{QUICKSTART_IDENTITY[1]}> (its own .git/config)")
    files = repository_files(redelivery=False)
    res = init(directory, files, message="kfm quickstart: governed repository with the example dataset")
    root = res.root
    say(f"   branches main and release; datasets/{SLUG}/ (contract), {FIRST_PLAN} (first-release plan),")
    say(f"   {UPSTREAM}/ (weekly CSV batches; March 2023 is missing: an upstream outage)")
    cfg = load_config(root)
    if isinstance(cfg, list):
        raise FindingsError(cfg, "kfm.yaml is invalid")
    store = Store(store_url(cfg))

    say("2. The first release: a backfill of January to June 2023")
    plan = load_plan(root / FIRST_PLAN, cfg)
    done = _backfill_and_commit(cfg, plan, store, say, f"first release of {SLUG}")
    if done is None:
        return 1
    first, first_version, commit = done
    say(f"   version {first.version}: {first.version_folder}/ (promotion-manifest.json, checksums.json, qa.json,")
    say(f"   runs.json, receipt.json); acquisitions in data/raw/{SLUG}/; committed on main as {commit}")

    say(f"3. Upstream redelivers {OUTAGE_MONTH}, with a batch of bad records")
    march = {rel.replace(REDELIVERY, UPSTREAM): data for rel, data in upstream_files().items()
             if rel.startswith(f"{REDELIVERY}/")}
    for rel, data in march.items():
        atomic_write(root / rel, data)
    commit = _commit(root, f"Upstream redelivery of {OUTAGE_MONTH}", ["upstream"])
    say(f"   {len(march)} files in {UPSTREAM}/{OUTAGE_MONTH}/; committed as {commit}")

    say(f"4. A backfill plan for the gap, based on version {first.version}")
    path = new_plan_path(cfg, SLUG, datetime.now(UTC))
    start, end = datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 4, 1, tzinfo=UTC)
    text = render_template(
        slug=SLUG, path=path.relative_to(root).as_posix(), reason="Gap fill after the March 2023 upstream outage",
        requested_by="ops-ana", reviewers=["steward-kim"], time_axis="event_time", start=start, end=end,
        mode="monthly", parallelism=1, timezone="UTC", terms=f"{UPSTREAM}/TERMS.txt", label=plan.label,
        obligations=list(plan.obligations), prior=first_version)
    write_new_plan(path, text)
    commit = _commit(root, "Plan: backfill the March 2023 gap", ["plans"])
    rel = path.relative_to(root).as_posix()
    say(f"   {rel} (validated; committed as {commit})")
    gap_plan = load_plan(path, cfg)
    say("   dry run (writes nothing):")
    for item in dry_run(cfg, gap_plan, store):
        say(f"     {item['chunk']}: partitions {', '.join(item['partitions'])}; sources "
            f"{', '.join(item['sources'])}")

    say("5. The backfill")
    done = _backfill_and_commit(cfg, gap_plan, store, say, f"backfill of {OUTAGE_MONTH}")
    if done is None:
        return 1
    second, second_version, commit = done
    say(f"   version {second.version} = the first release's partitions with {OUTAGE_MONTH} filled in:")
    say(f"   {second.version_folder}/; the plan's expected_dataset_version_id is set; committed as {commit}")
    for c in second.chunks:
        if c.rows[2] and c.run_folder:
            counts = json.loads((root / c.run_folder / "quarantine.json").read_text(encoding="utf-8"))["counts"]
            say(f"   {c.rows[2]} bad records in QUARANTINE: "
                + ", ".join(f"{n} {code}" for code, n in sorted(counts.items())))
            say(f"   ids, row hashes and reasons in {c.run_folder}/quarantine.json; the rows are a store object")

    say("6. Policy tightens: all of history re-published generalised, without the reporting source")
    path = new_plan_path(cfg, SLUG, datetime.now(UTC))
    tightened = [*plan.obligations,
                 {"type": "generalize_geometry", "params": {"method": "round_1_decimals"}},
                 {"type": "remove_attributes", "params": {"fields": ["source"]}}]
    text = render_template(
        slug=SLUG, path=path.relative_to(root).as_posix(), reason="Steward decision: publish generalised locations "
        "only, and no reporting source", requested_by="steward-kim", reviewers=["release-lee"],
        time_axis="event_time", start=datetime(2023, 1, 1, tzinfo=UTC), end=datetime(2023, 7, 1, tzinfo=UTC),
        mode="monthly", parallelism=2, timezone="UTC", terms=f"{UPSTREAM}/TERMS.txt", label="public_generalized",
        obligations=tightened, prior=second_version)
    write_new_plan(path, text)
    commit = _commit(root, "Plan: re-publish generalised", ["plans"])
    say(f"   {path.relative_to(root).as_posix()}: label public_generalized, generalize_geometry round_1_decimals, "
        f"remove_attributes source (committed as {commit})")
    done = _backfill_and_commit(cfg, load_plan(path, cfg), store, say, "generalised re-publication")
    if done is None:
        return 1
    third, _, commit = done
    say(f"   version {third.version}: {third.version_folder}/; committed as {commit}")
    sample = next(c for c in third.chunks if c.run_folder and c.partitions)
    assert sample.run_folder is not None
    receipt = json.loads((root / sample.run_folder / RECEIPT_FILE).read_text(encoding="utf-8"))
    evidence = {o["type"]: o["evidence"] for o in receipt["obligations_applied"]}
    say(f"   evidence in each receipt, e.g. {sample.run_folder}/receipt.json: coordinates have at most "
        f"{evidence['generalize_geometry']['max_decimals']} decimal(s); absent columns: "
        f"{', '.join(evidence['remove_attributes']['absent'])}")
    say("")
    say(f"Done. Look around in {root}: `git log --stat`, `kfm raw verify`, `kfm plan validate`.")
    say("Gates, promotion on the release branch and rollback come with the next releases of kfm.")
    return 0
