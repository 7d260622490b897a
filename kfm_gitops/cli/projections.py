"""`kfm reindex`: the projections of what is published."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from kfm_gitops.cli._shared import format_choice, require_config, store_for, store_option
from kfm_gitops.errors import EXIT_OK

if TYPE_CHECKING:
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
