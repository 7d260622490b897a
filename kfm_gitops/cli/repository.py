"""`kfm init` and `kfm quickstart`: governed repositories."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kfm_gitops.errors import EXIT_OK

if TYPE_CHECKING:
    pass

@click.command("init", short_help="Make a folder a governed repository")
@click.argument("directory", default=".")
@click.option("--example", is_flag=True, help="also add the example dataset, its upstream files and a plan")
def init_cmd(directory: str, example: bool) -> int:
    """Make DIRECTORY a governed repository (main and release branches); adds only what is missing."""
    from kfm_gitops.repository import init

    extra = None
    if example:
        from kfm_gitops.example import repository_files

        extra = repository_files()
    result = init(Path(directory), extra)
    where = result.root
    if result.created_repository:
        click.echo(f"created a git repository in {where}")
    for rel in result.added:
        click.echo(f"  added {rel}")
    if result.main_commit:
        click.echo(f"committed on main: {result.main_commit[:12]}")
    if result.release_commit:
        click.echo(f"committed on release: {result.release_commit[:12]}")
    for note in result.notes:
        click.echo(f"note: {note}")
    if not (result.added or result.main_commit or result.release_commit):
        click.echo(f"{where} is already a governed repository; nothing to add")
    else:
        click.echo(_next_step(where))
    return EXIT_OK


@click.command("quickstart", short_help="Run the example's whole story in a new folder")
@click.argument("directory")
def quickstart_cmd(directory: str) -> int:
    """Make a governed repository in DIRECTORY (new or empty) and run the example's story: first release, backfill,
    quarantine."""
    from kfm_gitops.quickstart import quickstart

    return quickstart(Path(directory), click.echo)


def _next_step(root: Path) -> str:
    """What to do after kfm init: a plan for a dataset the repository has, or first a dataset contract."""
    from kfm_gitops.dataset import list_slugs

    slugs = list_slugs(root)
    if slugs:
        return (f"next: `pre-commit install`, then `kfm plan new {slugs[0]} --window START/END --chunking MODE "
                "--reason TEXT` for a backfill")
    return ("next: add a dataset contract, datasets/SLUG/dataset.yaml and pipeline.yaml (`kfm init --example DIR` "
            "writes a worked one to copy from), then `pre-commit install` and `kfm plan new SLUG ...`")
