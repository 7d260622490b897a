"""`kfm reindex`, `kfm gaps`, `kfm doctor`: the projections of what is published, its missing history, and the
runbook's step 0 (backfill or reindex)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from kfm_gitops.cli._shared import format_choice, require_config, store_for, store_option
from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK, UsageError

if TYPE_CHECKING:
    from kfm_gitops.config import Config
    from kfm_gitops.doctor import Diagnosis
    from kfm_gitops.gaps import Coverage
    from kfm_gitops.projections import Reindexed

target_option = click.option("--target", default=None, metavar="URL",
                             help="a DuckDB file (default .kfm/projections.duckdb) or "
                                  "postgresql://USER:PASSWORD@HOST/DB[?schema=NAME] (PostGIS)")


def _said_reindex(r: Reindexed) -> None:
    if not r.rebuilt:
        click.echo(f"{r.slug}: up to date in {r.target} (built from {r.version_id}; the alias has not moved)")
        return
    was = r.previous or "nothing"
    click.echo(f"{r.slug}: projected {r.version_id} into {r.target}: {r.rows} rows (was: {was})")
    click.echo(f"  digest {r.digest}")


@click.command("reindex", short_help="Rebuild the projections of what is published")
@click.argument("slugs", nargs=-1)
@target_option
@click.option("--moved", is_flag=True, help="only datasets whose alias moved since their projection was built")
@store_option
@format_choice("text", "json", help="text for people, json for machines")
def reindex_cmd(slugs: tuple[str, ...], target: str | None, moved: bool, store_url: str | None, fmt: str) -> int:
    """Rebuild the projection (a table per dataset) of each SLUG (default: every published dataset) from the
    PROCESSED artifacts of the version its alias published/SLUG shows, never the working tree. Built aside and
    swapped in in one transaction: a failed rebuild leaves the previous projection."""
    from kfm_gitops.projections import parse_target, published_slugs, reindex_one

    cfg = require_config()
    where = parse_target(cfg, target)
    store = store_for(cfg, store_url)
    names = list(slugs) or published_slugs(cfg)
    done = []
    for slug in names:
        result = reindex_one(cfg, slug, where, store, moved=moved)
        done.append(result)
        if fmt == "text":
            _said_reindex(result)
    if fmt == "json":
        click.echo(json.dumps([{"dataset_slug": r.slug, "dataset_version_id": r.version_id, "digest": r.digest,
                                "rows": r.rows, "target": r.target, "previous": r.previous or None,
                                "rebuilt": r.rebuilt} for r in done], indent=2))
    elif not names:
        click.echo("nothing is published: there is no projection to build")
    return EXIT_OK


def _until(text: str | None) -> datetime | None:
    from kfm_gitops.periods import PeriodError, parse_timestamp

    if text is None:
        return None
    if text == "now":
        return datetime.now(UTC)
    try:
        return parse_timestamp(text)
    except PeriodError as exc:
        raise UsageError(f"--until: {exc}", hint="an RFC 3339 timestamp with an offset, or now") from exc


def _said_gaps(cov: Coverage) -> None:
    n = len(cov.present)
    click.echo(f"{cov.slug} {cov.version_id}: {n} {cov.mode} partition{'s' if n != 1 else ''} ({cov.timezone}) "
               f"from {cov.present[0]} to {cov.present[-1]}, cadence {cov.cadence}"
               + (f", expected until {cov.as_dict()['until']}" if cov.until else ""))
    if not cov.gaps:
        click.echo(f"no gaps: every {cov.mode} partition from {cov.present[0]} to {cov.present[-1]} is published")
        return
    click.echo(f"missing: {len(cov.gaps)} interval{'s' if len(cov.gaps) != 1 else ''}, {cov.missing} "
               f"partition{'s' if cov.missing != 1 else ''}")
    for g in cov.gaps:
        d = g.as_dict()
        keys = g.partitions[0] if len(g.partitions) == 1 else f"{g.partitions[0]} .. {g.partitions[-1]}"
        click.echo(f"  [{d['start']}, {d['end']})  {keys}"
                   + (f" ({len(g.partitions)} partitions)" if len(g.partitions) > 1 else ""))


@click.command("gaps", short_help="The history missing from what is published")
@click.argument("slug")
@click.option("--until", default=None, metavar="TIME",
              help="also expect the partitions after the last one whose cadence has passed by TIME (or now)")
@click.option("--plan", "make_plan", is_flag=True, help="draft a backfill plan for the missing intervals")
@click.option("--reason", default=None, help="the plan's reason (default: the gaps found)")
@click.option("--reviewer", "reviewers", multiple=True, help="a reviewer of the plan (steward); repeat for several")
@format_choice("text", "json", help="text for people, json for machines")
def gaps_cmd(slug: str, until: str | None, make_plan: bool, reason: str | None, reviewers: tuple[str, ...],
             fmt: str) -> int:
    """Compare the temporal coverage of the version published/SLUG shows with the dataset's partitioning and
    cadence, and list the missing intervals, one a line. With --plan, write one backfill plan (as `kfm plan new`
    does) whose window covers them. Exit 1 when something is missing."""
    from kfm_gitops.gaps import coverage

    cfg = require_config()
    cov = coverage(cfg, slug, until=_until(until))
    written = _write_plan(cfg, cov, reason, reviewers, fmt) if make_plan and cov.gaps else None
    if fmt == "json":
        click.echo(json.dumps({**cov.as_dict(), "plan": written}, indent=2))
    else:
        _said_gaps(cov)
    return EXIT_FINDINGS if cov.gaps else EXIT_OK


def _write_plan(cfg: Config, cov: Coverage, reason: str | None, reviewers: tuple[str, ...], fmt: str) -> str:
    from kfm_gitops.cli.plan import write_draft
    from kfm_gitops.gaps import backfill_draft

    draft = backfill_draft(cfg, cov, reason=reason, reviewers=reviewers)
    return write_draft(cfg, draft, "kfm backfill run --dry-run", say=fmt == "text")


ANSWERS = {
    "backfill": "backfill: canonical artifacts are missing or wrong (runbook steps 1-9: `kfm plan new`)",
    "reindex": "reindex: only the projection is stale; the canonical artifacts are fine (`kfm reindex {slug}`)",
    "nothing": "nothing to do: the artifacts, catalogs, history and projection of what is published are sound",
    "unknown": "unknown: a check could not run (see its evidence); fix that and ask again",
}


def _said_diagnosis(d: Diagnosis) -> None:
    published = (f"{d.version_id} (published/{d.slug} at {d.alias_commit[:12]}, evidence commit "
                 f"{d.evidence_commit[:12]})" if d.version_id else "nothing published")
    click.echo(f"{d.slug}: {published}")
    for c in d.checks:
        label = {"ok": "ok", "failed": "FAILED", "error": "ERROR"}[c.status]
        click.echo(f"  {label:<7} {c.name:<11} {c.evidence[0]}")
        for line in c.evidence[1:]:
            click.echo(f"  {'':<7} {'':<11} {line}")
    click.echo("answer: " + ANSWERS[d.answer].format(slug=d.slug))


@click.command("doctor", short_help="Backfill or reindex? The runbook's step 0")
@click.argument("slug")
@target_option
@store_option
@format_choice("text", "json", help="text for people, json for machines")
def doctor_cmd(slug: str, target: str | None, store_url: str | None, fmt: str) -> int:
    """Answer the runbook's step 0 for the version published/SLUG shows: PROCESSED artifacts missing or not
    matching their digests, catalogs invalid, or partitions missing (backfill); only the projection stale or
    changed (reindex); or nothing to do. Each check with its evidence. Exit 0 only when there is nothing to do."""
    from kfm_gitops.doctor import diagnose

    cfg = require_config()
    diagnosis = diagnose(cfg, slug, store=store_for(cfg, store_url), target=target)
    if fmt == "json":
        click.echo(json.dumps(diagnosis.as_dict(), indent=2))
    else:
        _said_diagnosis(diagnosis)
    return EXIT_OK if diagnosis.answer == "nothing" else EXIT_FINDINGS
