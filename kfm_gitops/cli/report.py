"""`kfm report PLAN`: a backfill's closeout report in Markdown."""

from __future__ import annotations

from pathlib import Path

import click

from kfm_gitops.cli._shared import require_config
from kfm_gitops.errors import EXIT_OK


@click.command("report", short_help="A backfill's closeout report (Markdown)")
@click.argument("plan_file", metavar="PLAN")
def report_cmd(plan_file: str) -> int:
    """Print PLAN's closeout report in Markdown: the window, each chunk with its rows and quarantine, the version,
    its gates when published, links to the evidence, and a Mermaid gantt of coverage."""
    from kfm_gitops.plan import load_plan
    from kfm_gitops.report import report

    path = Path(plan_file)
    cfg = require_config(path.parent)
    click.echo(report(cfg, load_plan(path, cfg)), nl=False)
    return EXIT_OK
