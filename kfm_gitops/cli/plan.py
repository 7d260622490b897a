"""`kfm plan`: write, validate and inspect backfill plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import (
    config_for,
    emit,
    format_choice,
    format_option,
    require_config,
)
from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK, FindingsError

if TYPE_CHECKING:
    from kfm_gitops.config import Config
    from kfm_gitops.findings import Finding
    from kfm_gitops.periods import Mode
    from kfm_gitops.plan import Draft

@click.group(short_help="Write, validate and inspect backfill plans")
def plan() -> None:
    """Write, validate and inspect backfill plans."""


@plan.command("validate", short_help="Check plans; every error at its line")
@click.argument("files", nargs=-1)
@format_option
@click.option("--standalone", is_flag=True, help="check the files alone, without a governed repository")
def plan_validate(files: tuple[str, ...], fmt: str, standalone: bool) -> int:
    """Check plan FILEs (all plans of the repository when none is given); every error of every file."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.config import no_root_finding
    from kfm_gitops.findings import Finding, Location, Report, sort_findings
    from kfm_gitops.plan import check_plan

    report = Report()
    paths = [Path(f) for f in files]
    if not paths:
        cfg = require_config()
        paths = sorted(p for p in cfg.plans_dir().glob("*/*.y*ml") if p.suffix in (".yml", ".yaml"))
        if not paths:
            report.findings.append(Finding(
                "PLAN_NONE", "this repository has no plan yet", Location(display_path(cfg.plans_dir()) + "/"),
                hint="write one with `kfm plan new SLUG --window START/END --chunking MODE --reason TEXT`"))
    cache: dict[Path, Config | list[Finding]] = {}
    for path in paths:
        shown = display_path(path)
        report.checked.append(shown)
        config: Config | None = None
        if not standalone:
            root, loaded = config_for(path.parent if not path.is_dir() else path, cache)
            if root is None:
                report.findings.append(no_root_finding(shown))
            elif isinstance(loaded, list):
                report.findings.append(Finding("CONFIG_INVALID", "kfm.yaml of this repository is invalid",
                                               Location(display_path(root / "kfm.yaml")),
                                               hint="run `kfm dataset validate` or fix kfm.yaml"))
                report.findings.extend(f for f in loaded if f not in report.findings)
            else:
                config = loaded
        _, findings = check_plan(path, config=config, shown=shown)
        report.extend(sort_findings(findings))
    return emit(report, fmt, Summary("plan"))


@plan.command("chunks", short_help="List a plan's chunks and their intervals")
@click.argument("file")
@format_choice("text", "json", help="text for people, json for scripts")
@click.option("--standalone", is_flag=True, help="check the plan alone, without a governed repository")
def plan_chunks(file: str, fmt: str, standalone: bool) -> int:
    """List the chunks of a plan as half-open UTC intervals with their keys."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.plan import load_plan

    path = Path(file)
    config = None if standalone else require_config(path.parent, standalone_hint=True)
    try:
        p = load_plan(path, config)
    except FindingsError as exc:
        if fmt != "json":
            raise
        click.echo(json.dumps({"ok": False, "plan": display_path(path),
                               "findings": [f.as_dict() for f in exc.findings]}, indent=2))
        return EXIT_FINDINGS
    chunks = p.chunks()
    if fmt == "json":
        doc = {"plan": display_path(path), "dataset_slug": p.slug, "mode": p.mode, "timezone": p.timezone,
               "chunks": [c.as_dict() for c in chunks]}
        click.echo(json.dumps(doc, indent=2))
        return EXIT_OK
    click.echo(f"{display_path(path)}: {len(chunks)} {p.mode} chunk{'s' if len(chunks) != 1 else ''} "
               f"of {p.slug} in {p.timezone}")
    for c in chunks:
        d = c.as_dict()
        click.echo(f"  {c.key:<12} [{d['start']}, {d['end']})")
    return EXIT_OK


@plan.command("new", short_help="Write a new plan from the commented template")
@click.argument("slug")
@click.option("--window", required=True, help="START/END, e.g. 2023-01-01T00:00:00Z/2023-04-01T00:00:00Z")
@click.option("--chunking", "mode", required=True,
              type=click.Choice(["daily", "weekly", "monthly", "quarterly", "yearly"]))
@click.option("--reason", required=True, help="why this backfill is needed")
@click.option("--time-axis", default=None, help="default: the axis the dataset is partitioned on")
@click.option("--requested-by", default=None, help="default: git user.email, else $USER")
@click.option("--reviewer", "reviewers", multiple=True, help="a reviewer (steward); repeat for several")
@click.option("--max-parallelism", type=click.IntRange(1, 64), default=None,
              help="chunks run at once (default: 2, or 1 for a one-chunk plan)")
@click.option("--prior", default=None, help='the base version (default: the one release publishes; while nothing '
              'is published, the newest version under releases/<slug>/; "" for a first release)')
@click.option("--terms", default=None, help="upstream licence/terms snapshot source (URI or repository path)")
def plan_new(slug: str, window: str, mode: str, reason: str, time_axis: str | None, requested_by: str | None,
             reviewers: tuple[str, ...], max_parallelism: int | None, prior: str | None, terms: str | None) -> int:
    """Write plans/SLUG/backfill-YYYYMMDD-<hex6>.yml from the commented template."""
    from kfm_gitops.plan import Request, draft_plan

    cfg = require_config()
    draft = draft_plan(cfg, Request(slug, window, cast("Mode", mode), reason, time_axis, requested_by, reviewers,
                                    max_parallelism, prior, terms))
    write_draft(cfg, draft, "kfm plan chunks")
    return EXIT_OK


def write_draft(cfg: Config, draft: Draft, then: str, *, say: bool = True) -> str:
    """Write a new plan, say where with its notes and what is left to do before review; its path as shown."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.findings import sort_findings
    from kfm_gitops.plan import check_plan, write_new_plan

    write_new_plan(draft.path, draft.text)
    shown = display_path(draft.path)
    if not say:
        return shown
    click.echo(f"wrote {shown}")
    for note in draft.notes:
        click.echo(f"note: {note}")
    _, findings = check_plan(draft.path, config=cfg)
    if findings:
        click.echo("to do before review:")
        for f in sort_findings(findings):
            click.echo(f"  {f.text()}")
    click.echo(f"next: edit it, then `kfm plan validate {shown}` and `{then} {shown}`")
    return shown
